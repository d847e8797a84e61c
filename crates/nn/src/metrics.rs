//! Metrics: accuracies and errors computed inside the graph, metrics of your own, and a
//! running mean to average them (and the loss) over an epoch.

use crate::activation::Activation;
use crate::error::{NnError, Result};
use crate::float::Float;
use crate::input::Targets;
use crate::layer::LayerNodes;
use crate::loss::Loss;
use dendrite_graph::{Graph, NodeId};
use std::fmt::Debug;
use std::sync::Arc;

/// A metric reported during training and evaluation.
///
/// `Accuracy` picks the right accuracy for the loss, as Keras' `"accuracy"` does: sparse
/// categorical for the sparse loss, binary for a single output, categorical otherwise.
///
/// ```
/// use dendrite_nn::{Loss, Metric};
/// assert_eq!(Metric::Accuracy.resolve(&Loss::SparseCategoricalCrossentropy, 10), Metric::SparseCategoricalAccuracy);
/// assert_eq!(Metric::Accuracy.resolve(&Loss::BinaryCrossentropy, 1), Metric::BinaryAccuracy);
/// assert_eq!(Metric::Accuracy.resolve(&Loss::CategoricalCrossentropy, 10), Metric::CategoricalAccuracy);
/// ```
///
/// | metric | per batch, in the graph | epoch value |
/// | --- | --- | --- |
/// | accuracies | `Σ [prediction right]` | sum / predictions |
/// | `MeanAbsoluteError` | `Σ \|p - y\|` | sum / (samples × outputs) |
/// | `MeanSquaredError` | `Σ (p - y)²` | sum / (samples × outputs) |
/// | `RootMeanSquaredError` | `Σ (p - y)²` | √(sum / (samples × outputs)) |
/// | top-k accuracies | `Σ [true class among the k highest scores]` | sum / samples |
/// | `Custom` | `Σ` of the per-sample values | sum / samples |
///
/// Each metric is built as a graph node holding a *sum* over the batch, fetched with the loss
/// on every step. Summing over the epoch and dividing by the number of values at the end
/// ([`Metric::finish`]) gives the exact epoch value, with no per-step allocation and no copy of
/// the predictions.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Metric {
    /// The accuracy that fits the loss (see [`Metric::resolve`]).
    Accuracy,
    /// `argmax p = y` for class-index targets.
    SparseCategoricalAccuracy,
    /// `argmax p = argmax y` for one-hot targets.
    CategoricalAccuracy,
    /// `[p > 0.5] = y`, element by element.
    BinaryAccuracy,
    /// `|p - y|`, averaged over every output of every sample.
    MeanAbsoluteError,
    /// `(p - y)²`, averaged over every output of every sample.
    MeanSquaredError,
    /// The square root of the epoch's mean squared error.
    RootMeanSquaredError,
    /// Whether the class `argmax y` of a one-hot target is among the `k` highest scores (Keras'
    /// `top_k_categorical_accuracy`, `k = 5` there). Classes tied with the true class's score
    /// count in its favour, as in Keras' `in_top_k`.
    TopKCategoricalAccuracy {
        /// How many of the highest scores count as a hit (at least 1).
        k: usize,
    },
    /// [`Metric::TopKCategoricalAccuracy`] for class-index targets.
    SparseTopKCategoricalAccuracy {
        /// How many of the highest scores count as a hit (at least 1).
        k: usize,
    },
    /// A user's metric (see [`Metric::custom`]).
    Custom(CustomMetric),
    /// A metric of one output of a multi-output model (see
    /// [`OutputMetric`](crate::OutputMetric); [`Model::compile_outputs`](crate::Model::compile_outputs)
    /// makes them).
    Output(crate::outputs::OutputMetric),
}

/// A metric of your own: per-sample values built as graph nodes from the model's last layer
/// and the targets; `fit`, `evaluate` and [`History`](crate::History) report their mean under
/// the metric's name.
///
/// The metric receives the targets node the loss reads. It may declare which targets it
/// needs ([`MetricFn::targets`]): `compile` then refuses it, with
/// [`NnError::MetricMismatch`], next to a loss that takes others.
///
/// ```
/// use dendrite_graph::{Graph, NodeId};
/// use dendrite_nn::{Float, LayerNodes, Metric, MetricFn, NnError};
///
/// /// The largest absolute error of each sample.
/// #[derive(Debug)]
/// struct MaxError;
///
/// impl MetricFn for MaxError {
///     fn name(&self) -> &'static str {
///         "max_error"
///     }
///     fn per_sample<F: Float>(&self, g: &mut Graph<F>, nodes: &LayerNodes, targets: NodeId) -> Result<NodeId, NnError> {
///         let d = g.sub(nodes.output, targets)?;
///         let a = g.abs(d)?;
///         Ok(g.max(a, &[1], false)?)
///     }
/// }
///
/// assert_eq!(Metric::custom(MaxError).name(), "max_error");
/// ```
pub trait MetricFn: Send + Sync + Debug {
    /// The metric's name, as `fit` reports it (`val_` is prepended for validation).
    fn name(&self) -> &'static str;

    /// The targets the metric needs for `width` outputs, or `None` (the default) when it works
    /// with whatever the loss reads.
    fn targets(&self, width: usize) -> Option<Targets> {
        let _ = width;
        None
    }

    /// Appends the metric's per-sample values to `g`: a node of shape `[batch]`.
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

/// The object-safe face of a [`MetricFn`]: its generic method at each element type.
trait ErasedMetric: Send + Sync + Debug {
    fn name(&self) -> &'static str;
    fn targets(&self, width: usize) -> Option<Targets>;
    fn per_sample_f32(&self, g: &mut Graph<f32>, nodes: &LayerNodes, y: NodeId) -> Result<NodeId>;
    fn per_sample_f64(&self, g: &mut Graph<f64>, nodes: &LayerNodes, y: NodeId) -> Result<NodeId>;
}

impl<T: MetricFn> ErasedMetric for T {
    fn name(&self) -> &'static str {
        MetricFn::name(self)
    }
    fn targets(&self, width: usize) -> Option<Targets> {
        MetricFn::targets(self, width)
    }
    fn per_sample_f32(&self, g: &mut Graph<f32>, nodes: &LayerNodes, y: NodeId) -> Result<NodeId> {
        self.per_sample(g, nodes, y)
    }
    fn per_sample_f64(&self, g: &mut Graph<f64>, nodes: &LayerNodes, y: NodeId) -> Result<NodeId> {
        self.per_sample(g, nodes, y)
    }
}

/// A user's [`MetricFn`], shared: what [`Metric::Custom`] holds. Two custom metrics are equal
/// when they are the same instance (clones of one `Metric::custom`).
#[derive(Debug, Clone)]
pub struct CustomMetric(Arc<dyn ErasedMetric>);

impl CustomMetric {
    /// The targets the metric declared for `width` outputs.
    pub(crate) fn targets(&self, width: usize) -> Option<Targets> {
        self.0.targets(width)
    }
}

impl PartialEq for CustomMetric {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::addr_eq(Arc::as_ptr(&self.0), Arc::as_ptr(&other.0))
    }
}

impl Eq for CustomMetric {}

impl std::hash::Hash for CustomMetric {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.name().hash(state);
    }
}

impl Metric {
    /// Wraps a metric of your own (see [`MetricFn`]).
    pub fn custom(metric: impl MetricFn + 'static) -> Metric {
        Metric::Custom(CustomMetric(Arc::new(metric)))
    }

    /// The metric's name, as Keras spells it (a custom metric's own name).
    ///
    /// ```
    /// assert_eq!(dendrite_nn::Metric::BinaryAccuracy.name(), "binary_accuracy");
    /// ```
    pub fn name(&self) -> &'static str {
        match self {
            Metric::Accuracy => "accuracy",
            Metric::SparseCategoricalAccuracy => "sparse_categorical_accuracy",
            Metric::CategoricalAccuracy => "categorical_accuracy",
            Metric::BinaryAccuracy => "binary_accuracy",
            Metric::MeanAbsoluteError => "mean_absolute_error",
            Metric::MeanSquaredError => "mean_squared_error",
            Metric::RootMeanSquaredError => "root_mean_squared_error",
            Metric::Output(o) => o.name,
            Metric::TopKCategoricalAccuracy { .. } => "top_k_categorical_accuracy",
            Metric::SparseTopKCategoricalAccuracy { .. } => "sparse_top_k_categorical_accuracy",
            Metric::Custom(c) => c.0.name(),
        }
    }

    /// Replaces `Accuracy` by the accuracy matching `loss` and an output of `width` values.
    ///
    /// ```
    /// use dendrite_nn::{Loss, Metric};
    /// assert_eq!(Metric::BinaryAccuracy.resolve(&Loss::MeanSquaredError, 3), Metric::BinaryAccuracy);
    /// ```
    pub fn resolve(&self, loss: &Loss, width: usize) -> Metric {
        let sparse = matches!(loss.targets(width), Targets::ClassIndices { .. });
        match self {
            Metric::Accuracy if sparse => Metric::SparseCategoricalAccuracy,
            Metric::Accuracy if width == 1 => Metric::BinaryAccuracy,
            Metric::Accuracy => Metric::CategoricalAccuracy,
            other => other.clone(),
        }
    }

    /// How many values one batch of `batch` samples with `width` outputs sums: the
    /// denominator of the epoch's mean.
    ///
    /// ```
    /// use dendrite_nn::Metric;
    /// assert_eq!(Metric::SparseCategoricalAccuracy.count(32, 10), 32);
    /// assert_eq!(Metric::BinaryAccuracy.count(32, 3), 96);
    /// ```
    pub fn count(&self, batch: usize, width: usize) -> usize {
        match self {
            Metric::BinaryAccuracy
            | Metric::MeanAbsoluteError
            | Metric::MeanSquaredError
            | Metric::RootMeanSquaredError => batch.saturating_mul(width),
            Metric::Accuracy
            | Metric::SparseCategoricalAccuracy
            | Metric::CategoricalAccuracy
            | Metric::TopKCategoricalAccuracy { .. }
            | Metric::SparseTopKCategoricalAccuracy { .. }
            | Metric::Custom(_) => batch,
            Metric::Output(o) => o.count(batch),
        }
    }

    /// The metric's value from the mean of the summed values: the mean itself, or its square
    /// root for `RootMeanSquaredError`.
    ///
    /// ```
    /// use dendrite_nn::Metric;
    /// assert_eq!(Metric::RootMeanSquaredError.finish(4.0), 2.0);
    /// assert_eq!(Metric::MeanSquaredError.finish(4.0), 4.0);
    /// ```
    pub fn finish(&self, mean: f64) -> f64 {
        match self {
            Metric::RootMeanSquaredError => mean.sqrt(),
            Metric::Output(o) => o.finish(mean),
            _ => mean,
        }
    }

    /// Appends the batch sum of the metric (for an accuracy, the number of correct
    /// predictions) of `nodes` (a model's last layer) against `targets` to the graph, as a
    /// scalar node. After a softmax, classes are read from the logits (the same order,
    /// without computing the probabilities). `Accuracy` must have been
    /// [resolved](Metric::resolve) (it counts as categorical otherwise).
    ///
    /// # Errors
    /// Graph errors when `targets` does not fit the metric; [`NnError::MetricShape`] when a
    /// custom metric's values are not `[batch]`.
    ///
    /// ```
    /// use dendrite_graph::compile;
    /// use dendrite_nn::{LayerNodes, Metric};
    /// use ndarray::array;
    /// let mut g = dendrite_graph::Graph::<f32>::new();
    /// let p = g.input("p", [None, Some(3)])?;
    /// let y = g.input("y", [None])?;
    /// let nodes = LayerNodes::new(p);
    /// let correct = Metric::SparseCategoricalAccuracy.build(&mut g, &nodes, y)?;
    /// let top2 = Metric::SparseTopKCategoricalAccuracy { k: 2 }.build(&mut g, &nodes, y)?;
    /// let mut plan = compile(&g, &[correct, top2])?;
    /// let pv = array![[0.1_f32, 0.7, 0.2], [0.5, 0.3, 0.2]].into_dyn();
    /// let yv = array![1.0_f32, 2.0].into_dyn();
    /// let out = plan.run(&g, &[("p", pv.view()), ("y", yv.view())])?;
    /// assert_eq!((out.scalar(0)?, out.scalar(1)?), (1.0, 1.0)); // class 2 of sample 2 is third
    /// # Ok::<(), dendrite_nn::NnError>(())
    /// ```
    pub fn build<F: Float>(
        &self,
        g: &mut Graph<F>,
        nodes: &LayerNodes,
        targets: NodeId,
    ) -> Result<NodeId> {
        // A metric refused half-way leaves the graph as it was.
        g.atomically(|g| self.build_nodes(g, nodes, targets))
    }

    fn build_nodes<F: Float>(
        &self,
        g: &mut Graph<F>,
        nodes: &LayerNodes,
        targets: NodeId,
    ) -> Result<NodeId> {
        let p = nodes.output;
        let axis = g.shape(p)?.rank().saturating_sub(1);
        // Softmax keeps the order of its inputs, so the predicted class is the argmax of the
        // logits: the training plan then need not compute the probabilities at all.
        let scores = match nodes.pre_activation {
            Some(pre) if pre.activation == Activation::Softmax => pre.node,
            _ => p,
        };
        let values = match self {
            Metric::SparseCategoricalAccuracy => {
                let class = g.argmax(scores, axis)?;
                g.equal(class, targets)?
            }
            Metric::BinaryAccuracy => {
                let half = g.scalar(0.5);
                let predicted = g.greater(p, half)?;
                g.equal(predicted, targets)?
            }
            Metric::Accuracy | Metric::CategoricalAccuracy => {
                let class = g.argmax(scores, axis)?;
                let truth = g.argmax(targets, axis)?;
                g.equal(class, truth)?
            }
            Metric::MeanAbsoluteError => {
                let d = g.sub(p, targets)?;
                g.abs(d)?
            }
            Metric::MeanSquaredError | Metric::RootMeanSquaredError => {
                let d = g.sub(p, targets)?;
                g.square(d)?
            }
            Metric::TopKCategoricalAccuracy { k } => {
                let truth = g.argmax(targets, axis)?;
                in_top_k(g, scores, truth, *k, axis)?
            }
            Metric::SparseTopKCategoricalAccuracy { k } => in_top_k(g, scores, targets, *k, axis)?,
            Metric::Custom(c) => {
                let values = crate::float::pick(
                    g,
                    |g| c.0.per_sample_f32(g, nodes, targets),
                    |g| c.0.per_sample_f64(g, nodes, targets),
                )?;
                if g.shape(values)?.rank() != 1 {
                    return Err(NnError::MetricShape {
                        metric: c.0.name(),
                        shape: g.shape(values)?.clone(),
                    });
                }
                values
            }
            Metric::Output(o) => return o.build(g, nodes, targets),
        };
        Ok(g.sum_all(values)?)
    }
}

/// `[fewer than k classes score above the true class]` per sample: the true class is among the
/// `k` highest scores, ties counted in its favour. `classes` holds class indices `[batch]`.
fn in_top_k<F: Float>(
    g: &mut Graph<F>,
    scores: NodeId,
    classes: NodeId,
    k: usize,
    axis: usize,
) -> Result<NodeId> {
    let width = match g.shape(scores)?.dims().last() {
        Some(dendrite_graph::Dim::Fixed(n)) => *n,
        _ => 0,
    };
    let one_hot = g.one_hot(classes, width)?;
    let picked = g.mul(scores, one_hot)?;
    let true_score = g.sum_keep_dims(picked, &[axis])?;
    let above = g.greater(scores, true_score)?;
    let ranked_above = g.sum(above, &[axis])?;
    let k = g.scalar(k as f64);
    Ok(g.less(ranked_above, k)?)
}

/// A weighted running mean: `Σ wᵢ vᵢ / Σ wᵢ`, in `f64`.
///
/// The epoch loss is the mean of the batch losses weighted by batch size, so a shorter last
/// batch counts for what it holds.
///
/// ```
/// let mut mean = dendrite_nn::Mean::default();
/// mean.update(1.0, 3.0);
/// mean.update(3.0, 1.0);
/// assert_eq!(mean.result(), Some(1.5));
/// mean.reset();
/// assert_eq!(mean.result(), None);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Mean {
    total: f64,
    weight: f64,
}

impl Mean {
    /// Adds `value` with weight `weight`.
    ///
    /// ```
    /// let mut mean = dendrite_nn::Mean::default();
    /// mean.update(2.0, 1.0);
    /// assert_eq!(mean.result(), Some(2.0));
    /// ```
    pub fn update(&mut self, value: f64, weight: f64) {
        self.total += value * weight;
        self.weight += weight;
    }

    /// Adds a sum of values and the number of values it sums (a batch's correct count).
    ///
    /// ```
    /// let mut accuracy = dendrite_nn::Mean::default();
    /// accuracy.add_sum(30.0, 32.0);
    /// accuracy.add_sum(2.0, 4.0);
    /// assert_eq!(accuracy.result(), Some(32.0 / 36.0));
    /// ```
    pub fn add_sum(&mut self, sum: f64, count: f64) {
        self.total += sum;
        self.weight += count;
    }

    /// The mean so far, `None` before any weight was added.
    ///
    /// ```
    /// assert_eq!(dendrite_nn::Mean::default().result(), None);
    /// ```
    pub fn result(&self) -> Option<f64> {
        (self.weight > 0.0).then(|| self.total / self.weight)
    }

    /// Forgets everything.
    ///
    /// ```
    /// let mut mean = dendrite_nn::Mean::default();
    /// mean.update(1.0, 1.0);
    /// mean.reset();
    /// assert_eq!(mean, dendrite_nn::Mean::default());
    /// ```
    pub fn reset(&mut self) {
        *self = Mean::default();
    }
}
