//! The phases of [`Sequential::build`] and [`Sequential::compile`]: the forward graph with its
//! initial weights, then the loss, metrics, gradients, plans and optimizer state.

use super::{Entry, Fetched, Network, Sequential, Training, INPUT_NAME, LABELS_NAME, TARGETS_NAME};
use crate::error::{NnError, Result};
use crate::float::Float;
use crate::input::Targets;
use crate::layer::{Init, LayerNodes};
use crate::loss::Loss;
use crate::metrics::Metric;
use crate::optim::Optimizer;
use dendrite_graph::{compile, Graph, NodeId};

impl<F: Float> Entry<F> {
    /// The layer's parameter count for `input`; an overflow is an error naming the layer.
    pub(super) fn param_count(&self, input: &[usize]) -> Result<usize> {
        self.layer
            .param_count(input)
            .ok_or_else(|| NnError::ParamCountOverflow {
                layer: self.name.clone(),
                kind: self.layer.kind(),
                input: input.to_vec(),
            })
    }

    /// Puts the model's name for the layer (`dense_2`) into a shape error the layer raised
    /// under the only name it knows.
    pub(super) fn rename(&self, err: NnError) -> NnError {
        match err {
            NnError::LayerInput { shape, reason, .. } => NnError::LayerInput {
                layer: self.name.clone(),
                shape,
                reason,
            },
            other => other,
        }
    }
}

impl<F: Float> Sequential<F> {
    /// The forward graph: input, layers (shapes and parameter counts checked before any
    /// weight is drawn), prediction plan.
    pub(super) fn build_network(&mut self) -> Result<Network<F>> {
        let input_shape = self.model_input_shape()?;
        let features = checked_product(&input_shape).ok_or_else(|| NnError::LayerInput {
            layer: self
                .layers
                .first()
                .map(|e| e.name.clone())
                .unwrap_or_default(),
            shape: input_shape.clone(),
            reason: "the sample shape has more elements than fit in usize",
        })?;
        self.check_unique_names()?;
        let mut g = Graph::<F>::new();
        let dims: Vec<Option<usize>> = std::iter::once(None)
            .chain(input_shape.iter().map(|&d| Some(d)))
            .collect();
        let x = g.input(INPUT_NAME, dims.as_slice())?;
        let (output, shape, params, penalties) = self.build_layers(&mut g, x, &input_shape)?;
        let width = self.output_width(shape)?;
        for &p in &params {
            if !g.value(p)?.is_standard_layout() {
                return Err(NnError::NonContiguous {
                    name: g.name(p)?.to_owned(),
                });
            }
        }
        let predict = compile(&g, &[output.output])?;
        Ok(Network {
            graph: g,
            features,
            input_shape,
            width,
            output,
            params,
            penalties,
            predict,
        })
    }

    /// The first layer's declared sample shape (without the batch axis): `[784]` for an MLP,
    /// `[28, 28, 1]` for a convnet on MNIST; every axis non-zero, at most
    /// [`MAX_SAMPLE_AXES`](super::run::MAX_SAMPLE_AXES) axes.
    fn model_input_shape(&self) -> Result<Vec<usize>> {
        let first = self.layers.first().ok_or(NnError::NoLayers)?;
        let input_shape = first
            .layer
            .input_shape()
            .ok_or_else(|| NnError::UnknownInputShape {
                layer: first.name.clone(),
            })?;
        let fits = !input_shape.is_empty()
            && input_shape.len() <= super::run::MAX_SAMPLE_AXES
            && input_shape.iter().all(|&d| d > 0);
        match fits {
            true => Ok(input_shape),
            false => Err(NnError::LayerInput {
                layer: first.name.clone(),
                shape: input_shape,
                reason: "a Sequential model takes samples of 1 to 7 axes, none of size 0",
            }),
        }
    }

    fn check_unique_names(&self) -> Result<()> {
        for (i, e) in self.layers.iter().enumerate() {
            if self.layers[..i].iter().any(|other| other.name == e.name) {
                return Err(NnError::DuplicateLayerName {
                    name: e.name.clone(),
                });
            }
        }
        Ok(())
    }

    /// Each layer in its name scope, with its own seeded generator; returns the last layer's
    /// nodes, its output shape, all parameters and all penalties.
    #[allow(clippy::type_complexity)]
    fn build_layers(
        &mut self,
        g: &mut Graph<F>,
        x: NodeId,
        input_shape: &[usize],
    ) -> Result<(LayerNodes, Vec<usize>, Vec<NodeId>, Vec<NodeId>)> {
        let mut current = LayerNodes::new(x);
        let mut shape = input_shape.to_vec();
        let mut params = Vec::new();
        let mut penalties = Vec::new();
        let seed = self.seed;
        for (i, e) in self.layers.iter_mut().enumerate() {
            let next = e.layer.output_shape(&shape).map_err(|err| e.rename(err))?;
            e.param_count(&shape)?;
            let mut init = Init::for_layer(seed, i).named(&e.name);
            let built = g.with_scope(&e.name, |g| {
                e.layer.build(g, current.output, &shape, &mut init)
            });
            let nodes = built.map_err(|err| e.rename(err))?;
            params.extend_from_slice(&nodes.parameters);
            penalties.extend_from_slice(&nodes.penalties);
            current = nodes;
            shape = next;
        }
        Ok((current, shape, params, penalties))
    }

    fn output_width(&self, shape: Vec<usize>) -> Result<usize> {
        match shape.as_slice() {
            [w] => Ok(*w),
            _ => Err(NnError::LayerInput {
                layer: self
                    .layers
                    .last()
                    .map(|e| e.name.clone())
                    .unwrap_or_default(),
                shape,
                reason: "the last layer of a Sequential model must output a vector per sample",
            }),
        }
    }

    /// `compile` after `build`: metrics checked against the loss before the graph grows,
    /// then loss (with the penalties), metric sums, gradients, the three plans and the
    /// optimizer's state.
    pub(super) fn training(
        &mut self,
        mut optimizer: Box<dyn Optimizer<F>>,
        loss: Loss,
        metrics: &[Metric],
    ) -> Result<Training<F>> {
        let net = self
            .net
            .as_mut()
            .ok_or(NnError::NotBuilt { method: "compile" })?;
        check_loss(&loss, net.width)?;
        let resolved = check_metrics(&loss, net.width, metrics)?;
        let targets = loss.targets(net.width);
        let target_node = target_input(&mut net.graph, targets)?;
        let (loss_node, penalty) = loss_nodes(net, &loss, target_node)?;
        let g = &mut net.graph;
        let output = &net.output;
        let mut sums = Vec::with_capacity(resolved.len());
        for m in &resolved {
            let sum = g.with_scope("metrics", |g| m.build(g, output, target_node));
            sums.push(sum.map_err(|source| NnError::Metric {
                metric: m.name(),
                loss: loss.name(),
                source: Box::new(source),
            })?);
        }
        let grads = dendrite_autodiff::grad(g, loss_node, &net.params)?;
        let mut fetches = vec![loss_node];
        fetches.extend(penalty);
        let fetched = Fetched {
            penalty: penalty.map(|_| 1),
            metrics: fetches.len(),
            grads: fetches.len() + sums.len(),
        };
        fetches.extend_from_slice(&sums);
        let eval = compile(g, &fetches)?;
        fetches.extend_from_slice(&grads);
        // Folding, common subexpressions and identities trim the derived gradient graph (the
        // reference model's step loses a few nodes, each a kernel launch per step).
        let train_fetches = dendrite_autodiff::simplify(g, &fetches)?.outputs;
        let train = compile(g, &train_fetches)?;
        let sizes: Vec<usize> = net
            .params
            .iter()
            .map(|&p| g.value(p).map(|v| v.len()))
            .collect::<Result<_, _>>()?;
        optimizer.prepare(&sizes)?;
        // Each parameter's backup holds its values and then its optimizer state.
        let mut backup_sizes = sizes.clone();
        for (k, size) in backup_sizes.iter_mut().enumerate() {
            optimizer.visit_state(k, &mut |state| *size = size.saturating_add(state.len()));
        }
        let clipping = optimizer.clipping();
        let clipped = match clipping.is_active() {
            true => crate::optim::zeroed::<F>("clipped gradients", &sizes)?,
            false => Vec::new(),
        };
        Ok(Training {
            optimizer,
            loss,
            metrics: resolved,
            names: metrics.iter().map(Metric::name).collect(),
            given: metrics.to_vec(),
            targets,
            train,
            eval,
            fetched,
            clipping,
            clipped,
            step: 0,
            position: super::Position::default(),
            backup: crate::optim::zeroed::<F>("weight backup", &backup_sizes)?,
        })
    }
}

/// The product of `dims`, or `None` when it overflows `usize`.
pub(crate) fn checked_product(dims: &[usize]) -> Option<usize> {
    dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
}

/// The loss the model minimizes (scope `loss`), and the sum of the layers' penalties (scope
/// `regularization`) when there are any, which the loss then includes, as in Keras.
fn loss_nodes<F: Float>(
    net: &mut Network<F>,
    loss: &Loss,
    targets: NodeId,
) -> Result<(NodeId, Option<NodeId>)> {
    let output = &net.output;
    let g = &mut net.graph;
    let data_loss = g.with_scope("loss", |g| loss.build(g, output, targets))?;
    let Some((&first, rest)) = net.penalties.split_first() else {
        return Ok((data_loss, None));
    };
    g.with_scope("regularization", |g| {
        let mut penalty = first;
        for &p in rest {
            penalty = g.add(penalty, p)?;
        }
        Ok((g.add(data_loss, penalty)?, Some(penalty)))
    })
}

/// The targets input the loss reads (reused when compiling again).
fn target_input<F: Float>(g: &mut Graph<F>, targets: Targets) -> Result<NodeId> {
    Ok(match targets {
        Targets::ClassIndices { .. } => match g.node_by_name(LABELS_NAME) {
            Some(node) => node,
            None => g.input(LABELS_NAME, [None])?,
        },
        Targets::Values { width } => match g.node_by_name(TARGETS_NAME) {
            Some(node) => node,
            None => g.input(TARGETS_NAME, [None, Some(width)])?,
        },
    })
}

/// A categorical cross-entropy needs at least two outputs.
fn check_loss(loss: &Loss, width: usize) -> Result<()> {
    let categorical = matches!(
        loss,
        Loss::CategoricalCrossentropy | Loss::SparseCategoricalCrossentropy
    );
    if categorical && width < 2 {
        return Err(NnError::LossOutput {
            loss: loss.name(),
            width,
            reason: "a categorical cross-entropy needs at least 2 outputs (over a single output the normalized probability is always 1 and the loss always 0): use Loss::BinaryCrossentropy with a sigmoid output",
        });
    }
    Ok(())
}

/// Resolves every metric for `loss` and refuses those that cannot measure it.
///
/// | metric | needs |
/// | --- | --- |
/// | sparse categorical accuracy, sparse top-k | class-index targets (the sparse loss) |
/// | categorical accuracy, top-k | a loss on one-hot rows (not the sparse one) and at least 2 outputs |
/// | binary accuracy | a loss on 0/1 values: neither categorical cross-entropy |
/// | mean absolute / squared errors | target values, one per output (not class indices) |
/// | top-k (both) | `k >= 1` |
/// | a custom metric | the targets it declares ([`MetricFn::targets`](crate::MetricFn::targets)), if any, are the loss's |
pub(crate) fn check_metrics(loss: &Loss, width: usize, metrics: &[Metric]) -> Result<Vec<Metric>> {
    let mut resolved = Vec::with_capacity(metrics.len());
    for given in metrics {
        let m = given.resolve(loss, width);
        if let Some(reason) = refusal(&m, loss, width) {
            return Err(NnError::MetricMismatch {
                metric: given.name(),
                loss: loss.name(),
                width,
                reason,
            });
        }
        resolved.push(m);
    }
    Ok(resolved)
}

/// Why the resolved metric `m` cannot measure a model trained with `loss`, if it cannot.
fn refusal(m: &Metric, loss: &Loss, width: usize) -> Option<&'static str> {
    let targets = loss.targets(width);
    let sparse = matches!(targets, Targets::ClassIndices { .. });
    let categorical = matches!(loss, Loss::CategoricalCrossentropy);
    match m {
        Metric::SparseCategoricalAccuracy | Metric::SparseTopKCategoricalAccuracy { .. } if !sparse => Some(
            "it reads one class index per sample, but this loss takes one target value per output: use Metric::CategoricalAccuracy for one-hot targets, Metric::BinaryAccuracy for 0/1 targets, or Metric::Accuracy to pick",
        ),
        Metric::CategoricalAccuracy | Metric::Accuracy | Metric::TopKCategoricalAccuracy { .. } if sparse => Some(
            "it reads one-hot target rows, but this loss takes class indices: use Metric::SparseCategoricalAccuracy (or Metric::Accuracy)",
        ),
        Metric::CategoricalAccuracy | Metric::Accuracy | Metric::TopKCategoricalAccuracy { .. } if width < 2 => Some(
            "it ranks the outputs, which for a single output always gives class 0: use Metric::BinaryAccuracy",
        ),
        Metric::TopKCategoricalAccuracy { k: 0 } | Metric::SparseTopKCategoricalAccuracy { k: 0 } => Some(
            "k must be at least 1 (no class is among the 0 highest scores)",
        ),
        Metric::BinaryAccuracy if sparse || categorical => Some(
            "it thresholds every output at 0.5 on its own, which does not measure a categorical classifier: use Metric::CategoricalAccuracy for one-hot targets, Metric::SparseCategoricalAccuracy for class indices (or Metric::Accuracy)",
        ),
        Metric::MeanAbsoluteError | Metric::MeanSquaredError | Metric::RootMeanSquaredError if sparse => Some(
            "it compares every output with a target value, but this loss takes class indices",
        ),
        Metric::Custom(c) => match c.targets(width) {
            Some(t) if t != targets => Some(
                "the targets the metric declares (MetricFn::targets) are not those the loss reads",
            ),
            _ => None,
        },
        Metric::Accuracy
        | Metric::SparseCategoricalAccuracy
        | Metric::CategoricalAccuracy
        | Metric::BinaryAccuracy
        | Metric::MeanAbsoluteError
        | Metric::MeanSquaredError
        | Metric::RootMeanSquaredError
        | Metric::TopKCategoricalAccuracy { .. }
        | Metric::SparseTopKCategoricalAccuracy { .. } => None,
    }
}
