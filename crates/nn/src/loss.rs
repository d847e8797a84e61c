//! Loss functions, built as graph nodes: the mean over the batch of a per-sample loss.

use crate::activation::Activation;
use crate::error::{NnError, Result};
use crate::float::Float;
use crate::input::Targets;
use crate::layer::LayerNodes;
use dendrite_graph::{Dim, Graph, NodeId};
use std::fmt::Debug;
use std::sync::Arc;

/// Keras' `epsilon()`: the clip margin for probabilities.
pub const EPSILON: f64 = 1e-7;

/// A loss function.
///
/// | loss | per sample | targets |
/// | --- | --- | --- |
/// | `MeanSquaredError` | `mean_c (p_c - y_c)²` | values, one per output |
/// | `MeanAbsoluteError` | `mean_c \|p_c - y_c\|` | values, one per output |
/// | `BinaryCrossentropy` | `mean_c -(y_c log p_c + (1 - y_c) log(1 - p_c))` | values in `[0, 1]` |
/// | `CategoricalCrossentropy` | `-Σ_c y_c log p_c` | one-hot (or soft) rows |
/// | `SparseCategoricalCrossentropy` | `-log p_y` | class indices, fed as floats |
///
/// The model's loss is the mean of the per-sample losses over the batch.
///
/// ```
/// use dendrite_graph::compile;
/// use dendrite_nn::{Loss, LayerNodes};
/// use ndarray::array;
/// let mut g = dendrite_graph::Graph::<f64>::new();
/// let p = g.input("p", [None, Some(2)])?;
/// let y = g.input("y", [None, Some(2)])?;
/// let loss = Loss::MeanSquaredError.build(&mut g, &LayerNodes::new(p), y)?;
/// let mut plan = compile(&g, &[loss])?;
/// let (pv, yv) = (array![[1.0, 2.0], [0.0, 0.0]].into_dyn(), array![[0.0, 0.0], [0.0, 2.0]].into_dyn());
/// let out = plan.run(&g, &[("p", pv.view()), ("y", yv.view())])?;
/// assert_eq!(out.scalar(0)?, (1.0 + 4.0 + 0.0 + 4.0) / 4.0);
/// # Ok::<(), dendrite_nn::NnError>(())
/// ```
///
/// The cross-entropies are where numerics bite. A softmax output that saturates to exactly 0
/// or 1 in `f32` makes `log p` infinite and its gradient NaN, so, as Keras does, when the
/// model's last activation is softmax (sigmoid) the categorical (binary) cross-entropy is
/// computed from the logits `z`:
///
/// - categorical: `-Σ_c y_c log_softmax(z)_c`, with `log_softmax` shifted by the (stopped)
///   maximum, so logits of `1e4` are harmless;
/// - binary: `softplus(z) - y z`, which is `-(y log σ(z) + (1 - y) log(1 - σ(z)))` written with
///   `log σ(z) = -softplus(-z)` and `log(1 - σ(z)) = -softplus(z)`.
///
/// Otherwise the outputs are taken as probabilities and clipped into `[1e-7, 1 - 1e-7]`
/// (Keras' epsilon) before the logarithm.
///
/// [`Loss::custom`] wraps a loss of your own (a [`LossFn`]); it is differentiated like the
/// built-ins.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Loss {
    /// Mean squared error.
    MeanSquaredError,
    /// Mean absolute error.
    MeanAbsoluteError,
    /// Binary cross-entropy; from the logits when the output is a sigmoid.
    BinaryCrossentropy,
    /// Categorical cross-entropy with one-hot targets; from the logits after a softmax.
    CategoricalCrossentropy,
    /// Categorical cross-entropy with class-index targets; from the logits after a softmax.
    SparseCategoricalCrossentropy,
    /// A user's loss (see [`Loss::custom`]).
    Custom(CustomLoss),
    /// A loss per output of a multi-output model, weighted and summed (see
    /// [`OutputLosses`](crate::OutputLosses); [`Model::compile_outputs`](crate::Model::compile_outputs)
    /// makes it).
    Outputs(crate::outputs::OutputLosses),
}

/// A loss of your own: the per-sample loss, built as graph nodes from the model's last layer
/// and the targets. The model averages it over the batch and differentiates it like any other
/// node, so only differentiable ops may be used (every graph op is).
///
/// The method is generic over the element type, so one implementation serves `f32` and `f64`
/// models alike.
///
/// ```
/// use dendrite_graph::{Graph, NodeId};
/// use dendrite_nn::{Float, LayerNodes, Loss, LossFn, NnError};
///
/// /// Huber loss with δ = 1: ½d² for |d| ≤ 1, |d| - ½ beyond, averaged over the outputs.
/// #[derive(Debug)]
/// struct Huber;
///
/// impl LossFn for Huber {
///     fn name(&self) -> &'static str {
///         "huber"
///     }
///     fn per_sample<F: Float>(&self, g: &mut Graph<F>, nodes: &LayerNodes, targets: NodeId) -> Result<NodeId, NnError> {
///         let d = g.sub(nodes.output, targets)?;
///         let a = g.abs(d)?;
///         let one = g.scalar(1.0);
///         let small = g.minimum(a, one)?; // min(|d|, 1)
///         let sq = g.square(small)?;
///         let half = g.scalar(0.5);
///         let quadratic = g.mul(half, sq)?;
///         let linear = g.sub(a, small)?; // |d| - min(|d|, 1)
///         let per_output = g.add(quadratic, linear)?;
///         Ok(g.mean(per_output, &[1], false)?)
///     }
/// }
///
/// let huber = Loss::custom(Huber);
/// assert_eq!(huber.name(), "huber");
/// assert_eq!(huber, huber.clone());
/// ```
pub trait LossFn: Send + Sync + Debug {
    /// The loss's name, as `fit` reports it.
    fn name(&self) -> &'static str;

    /// The targets the loss reads for a model with `width` outputs: by default one value per
    /// output (`[batch, width]`, fed as `targets`); [`Targets::ClassIndices`] for class indices
    /// (`[batch]`, fed as `labels`).
    fn targets(&self, width: usize) -> Targets {
        Targets::Values { width }
    }

    /// Appends the per-sample loss to `g`: a node of shape `[batch]` (or a scalar, taken as the
    /// batch's loss as it is). `nodes.output` is the model's output `[batch, width]`,
    /// `nodes.pre_activation` its logits when the last layer has a softmax or sigmoid.
    ///
    /// # Errors
    /// Graph errors; any [`NnError`] of your own.
    fn per_sample<F: Float>(
        &self,
        g: &mut Graph<F>,
        nodes: &LayerNodes,
        targets: NodeId,
    ) -> Result<NodeId>;
}

/// The object-safe face of a [`LossFn`]: its generic method at each element type.
trait ErasedLoss: Send + Sync + Debug {
    fn name(&self) -> &'static str;
    fn targets(&self, width: usize) -> Targets;
    fn per_sample_f32(&self, g: &mut Graph<f32>, nodes: &LayerNodes, y: NodeId) -> Result<NodeId>;
    fn per_sample_f64(&self, g: &mut Graph<f64>, nodes: &LayerNodes, y: NodeId) -> Result<NodeId>;
}

impl<T: LossFn> ErasedLoss for T {
    fn name(&self) -> &'static str {
        LossFn::name(self)
    }
    fn targets(&self, width: usize) -> Targets {
        LossFn::targets(self, width)
    }
    fn per_sample_f32(&self, g: &mut Graph<f32>, nodes: &LayerNodes, y: NodeId) -> Result<NodeId> {
        self.per_sample(g, nodes, y)
    }
    fn per_sample_f64(&self, g: &mut Graph<f64>, nodes: &LayerNodes, y: NodeId) -> Result<NodeId> {
        self.per_sample(g, nodes, y)
    }
}

/// A user's [`LossFn`], shared: what [`Loss::Custom`] holds. Two custom losses are equal when
/// they are the same instance (clones of one `Loss::custom`).
#[derive(Debug, Clone)]
pub struct CustomLoss(Arc<dyn ErasedLoss>);

impl PartialEq for CustomLoss {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::addr_eq(Arc::as_ptr(&self.0), Arc::as_ptr(&other.0))
    }
}

impl Eq for CustomLoss {}

impl std::hash::Hash for CustomLoss {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.name().hash(state);
    }
}

impl Loss {
    /// Wraps a loss of your own (see [`LossFn`]).
    pub fn custom(loss: impl LossFn + 'static) -> Loss {
        Loss::Custom(CustomLoss(Arc::new(loss)))
    }

    /// The loss's name, as Keras spells it (a custom loss's own name).
    ///
    /// ```
    /// assert_eq!(dendrite_nn::Loss::SparseCategoricalCrossentropy.name(), "sparse_categorical_crossentropy");
    /// ```
    pub fn name(&self) -> &'static str {
        match self {
            Loss::MeanSquaredError => "mean_squared_error",
            Loss::MeanAbsoluteError => "mean_absolute_error",
            Loss::BinaryCrossentropy => "binary_crossentropy",
            Loss::CategoricalCrossentropy => "categorical_crossentropy",
            Loss::SparseCategoricalCrossentropy => "sparse_categorical_crossentropy",
            Loss::Custom(c) => c.0.name(),
            Loss::Outputs(_) => "loss",
        }
    }

    /// The targets this loss needs for a model with `width` outputs per sample.
    ///
    /// ```
    /// use dendrite_nn::{Loss, Targets};
    /// assert_eq!(Loss::SparseCategoricalCrossentropy.targets(10), Targets::ClassIndices { classes: 10 });
    /// assert_eq!(Loss::MeanSquaredError.targets(3), Targets::Values { width: 3 });
    /// ```
    pub fn targets(&self, width: usize) -> Targets {
        match self {
            Loss::SparseCategoricalCrossentropy => Targets::ClassIndices { classes: width },
            Loss::Custom(c) => c.0.targets(width),
            Loss::Outputs(o) => o.targets(),
            Loss::MeanSquaredError
            | Loss::MeanAbsoluteError
            | Loss::BinaryCrossentropy
            | Loss::CategoricalCrossentropy => Targets::Values { width },
        }
    }

    /// Appends the batch-mean loss of the prediction `nodes` (a model's last layer) against
    /// `targets` to the graph, and returns the scalar loss node.
    ///
    /// `targets` is `[batch, width]` for every loss but the sparse one, which takes `[batch]`
    /// class indices (a custom loss says which in [`LossFn::targets`]).
    ///
    /// # Errors
    /// [`NnError::TargetMismatch`] when `targets` does not have the shape the loss needs;
    /// [`NnError::LossShape`] when a custom loss's per-sample node is neither `[batch]` nor a
    /// scalar; graph errors.
    ///
    /// ```
    /// use dendrite_graph::compile;
    /// use dendrite_nn::{Activation, Loss};
    /// use ndarray::array;
    /// let mut g = dendrite_graph::Graph::<f32>::new();
    /// let z = g.input("z", [None, Some(2)])?;
    /// let labels = g.input("labels", [None])?;
    /// let nodes = Activation::Softmax.nodes(&mut g, z)?;
    /// let loss = Loss::SparseCategoricalCrossentropy.build(&mut g, &nodes, labels)?;
    /// let mut plan = compile(&g, &[loss])?;
    /// let (zv, lv) = (array![[1e4_f32, 0.0]].into_dyn(), array![1.0_f32].into_dyn());
    /// let out = plan.run(&g, &[("z", zv.view()), ("labels", lv.view())])?;
    /// assert_eq!(out.scalar(0)?, 1e4); // -log_softmax(z)[1], finite although softmax(z)[1] = 0
    /// # Ok::<(), dendrite_nn::NnError>(())
    /// ```
    pub fn build<F: Float>(
        &self,
        g: &mut Graph<F>,
        nodes: &LayerNodes,
        targets: NodeId,
    ) -> Result<NodeId> {
        // A loss refused half-way (a node of another graph, say) leaves the graph as it was.
        g.atomically(|g| self.build_nodes(g, nodes, targets))
    }

    fn build_nodes<F: Float>(
        &self,
        g: &mut Graph<F>,
        nodes: &LayerNodes,
        targets: NodeId,
    ) -> Result<NodeId> {
        if let Loss::Outputs(o) = self {
            return o.build(g, nodes, targets);
        }
        let output = nodes.output;
        check_targets(g, self, output, targets)?;
        let axis = g.shape(output)?.rank().saturating_sub(1);
        let from = |a: Activation| {
            nodes
                .pre_activation
                .filter(|p| p.activation == a)
                .map(|p| p.node)
        };
        let per_sample = match self {
            Loss::MeanSquaredError => {
                let d = g.sub(output, targets)?;
                let d2 = g.square(d)?;
                g.mean(d2, &[axis], false)?
            }
            Loss::MeanAbsoluteError => {
                let d = g.sub(output, targets)?;
                let a = g.abs(d)?;
                g.mean(a, &[axis], false)?
            }
            Loss::BinaryCrossentropy => {
                let elementwise = match from(Activation::Sigmoid) {
                    Some(z) => {
                        // softplus(z) - y z: stable for any z (see the module docs).
                        let sp = g.softplus(z)?;
                        let yz = g.mul(targets, z)?;
                        g.sub(sp, yz)?
                    }
                    None => {
                        let p = clip(g, output)?;
                        let log_p = g.log(p)?;
                        let one = g.scalar(1.0);
                        let q = g.sub(one, p)?;
                        let log_q = g.log(q)?;
                        let not_y = g.sub(one, targets)?;
                        let a = g.mul(targets, log_p)?;
                        let b = g.mul(not_y, log_q)?;
                        let s = g.add(a, b)?;
                        g.neg(s)?
                    }
                };
                g.mean(elementwise, &[axis], false)?
            }
            Loss::CategoricalCrossentropy => {
                cross_entropy(g, nodes, from(Activation::Softmax), targets, axis)?
            }
            Loss::SparseCategoricalCrossentropy => {
                let classes = fixed_width(g, output)?;
                let one_hot = g.one_hot(targets, classes)?;
                cross_entropy(g, nodes, from(Activation::Softmax), one_hot, axis)?
            }
            Loss::Custom(c) => {
                let per_sample = crate::float::pick(
                    g,
                    |g| c.0.per_sample_f32(g, nodes, targets),
                    |g| c.0.per_sample_f64(g, nodes, targets),
                )?;
                match g.shape(per_sample)?.rank() {
                    0 => return Ok(per_sample),
                    1 => per_sample,
                    _ => {
                        return Err(NnError::LossShape {
                            loss: c.0.name(),
                            shape: g.shape(per_sample)?.clone(),
                        })
                    }
                }
            }
            Loss::Outputs(o) => return o.build(g, nodes, targets),
        };
        Ok(g.mean(per_sample, &[0], false)?)
    }
}

/// `-Σ_c y_c log p_c` per sample, from the logits when there are any.
fn cross_entropy<F: Float>(
    g: &mut Graph<F>,
    nodes: &LayerNodes,
    logits: Option<NodeId>,
    targets: NodeId,
    axis: usize,
) -> Result<NodeId> {
    let log_p = match logits {
        Some(z) => g.log_softmax(z, axis)?,
        None => {
            // Probabilities: renormalize, clip, log (as Keras does without from_logits).
            let total = g.sum_keep_dims(nodes.output, &[axis])?;
            let p = g.div(nodes.output, total)?;
            let p = clip(g, p)?;
            g.log(p)?
        }
    };
    let picked = g.mul(targets, log_p)?;
    let s = g.sum(picked, &[axis])?;
    Ok(g.neg(s)?)
}

/// `p` clipped into `[EPSILON, 1 - EPSILON]`.
fn clip<F: Float>(g: &mut Graph<F>, p: NodeId) -> Result<NodeId> {
    let lo = g.scalar(EPSILON);
    let hi = g.scalar(1.0 - EPSILON);
    let p = g.maximum(p, lo)?;
    Ok(g.minimum(p, hi)?)
}

/// The fixed size of the last axis of `output`.
fn fixed_width<F: Float>(g: &Graph<F>, output: NodeId) -> Result<usize> {
    match g.shape(output)?.dims().last() {
        Some(Dim::Fixed(n)) => Ok(*n),
        _ => Err(NnError::LayerInput {
            layer: g.name(output)?.to_owned(),
            shape: Vec::new(),
            reason: "a classifier's output needs a fixed number of classes on its last axis",
        }),
    }
}

/// Targets must be `[batch, width]` like the output, or `[batch]` for the sparse loss.
fn check_targets<F: Float>(
    g: &Graph<F>,
    loss: &Loss,
    output: NodeId,
    targets: NodeId,
) -> Result<()> {
    let out = g.shape(output)?.clone();
    let tgt = g.shape(targets)?.clone();
    let (out_d, tgt_d) = (out.dims(), tgt.dims());
    let width = |d: &[Dim]| match d.last() {
        Some(Dim::Fixed(n)) => *n,
        _ => 0,
    };
    let sparse = matches!(loss.targets(width(out_d)), Targets::ClassIndices { .. });
    let ok = match sparse {
        true => tgt_d.len() + 1 == out_d.len(),
        false => tgt_d.len() == out_d.len() && width(tgt_d) == width(out_d),
    };
    if ok {
        Ok(())
    } else {
        Err(NnError::TargetMismatch {
            loss: loss.name(),
            expected: if sparse { 1 } else { width(out_d) },
            actual: if tgt_d.len() < out_d.len() {
                1
            } else {
                width(tgt_d)
            },
        })
    }
}
