//! The phases of [`Sequential::compile`] after `build`: the loss and metrics on each forward
//! graph, the gradients, the three plans and the optimizer's state.

use super::{Fetched, Forward, Sequential, Training, LABELS_NAME, TARGETS_NAME};
use crate::error::{NnError, Result};
use crate::float::Float;
use crate::input::Targets;
use crate::loss::Loss;
use crate::metrics::Metric;
use crate::optim::Optimizer;
use dendrite_graph::{compile, Graph, NodeId};

impl<F: Float> Sequential<F> {
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
        let inference = Forward {
            output: net.output.clone(),
            penalties: net.penalties.clone(),
        };
        let evaluated = objective(&mut net.graph, &inference, &loss, &resolved, target_node)?;
        let trained = match &net.training {
            Some(forward) => objective(&mut net.graph, forward, &loss, &resolved, target_node)?,
            None => evaluated.clone(),
        };
        let g = &mut net.graph;
        let grads = dendrite_autodiff::grad(g, trained[0], &net.params)?;
        let penalty = (evaluated.len() > resolved.len() + 1).then_some(1);
        let fetched = Fetched {
            penalty,
            metrics: evaluated.len() - resolved.len(),
            grads: evaluated.len(),
            state_updates: evaluated.len() + grads.len(),
        };
        let mut eval = compile(g, &evaluated)?;
        eval.set_threads(super::config::default_threads());
        let mut fetches = trained;
        fetches.extend_from_slice(&grads);
        fetches.extend(net.state_updates.iter().map(|&(_, value)| value));
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

/// What a plan over one forward graph fetches: the loss the model minimizes (scope `loss`,
/// with the sum of the layers' penalties, scope `regularization`, as in Keras), the penalty
/// when there is one, then each metric's sum (scope `metrics`).
fn objective<F: Float>(
    g: &mut Graph<F>,
    forward: &Forward,
    loss: &Loss,
    metrics: &[Metric],
    targets: NodeId,
) -> Result<Vec<NodeId>> {
    let output = &forward.output;
    let data_loss = g.with_scope("loss", |g| loss.build(g, output, targets))?;
    let mut fetches = match forward.penalties.split_first() {
        None => vec![data_loss],
        Some((&first, rest)) => g.with_scope("regularization", |g| {
            let mut penalty = first;
            for &p in rest {
                penalty = g.add(penalty, p)?;
            }
            Ok::<_, NnError>(vec![g.add(data_loss, penalty)?, penalty])
        })?,
    };
    for m in metrics {
        let sum = g.with_scope("metrics", |g| m.build(g, output, targets));
        fetches.push(sum.map_err(|source| NnError::Metric {
            metric: m.name(),
            loss: loss.name(),
            source: Box::new(source),
        })?);
    }
    Ok(fetches)
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

/// A categorical cross-entropy needs at least two outputs; a loss per output covers them all.
fn check_loss(loss: &Loss, width: usize) -> Result<()> {
    if let Loss::Outputs(o) = loss {
        if o.width() != width {
            return Err(NnError::LossOutput {
                loss: loss.name(),
                width,
                reason: "the outputs' losses do not cover the model's outputs (compile a Functional model's outputs with Model::compile_outputs)",
            });
        }
        return o
            .heads()
            .iter()
            .try_for_each(|h| check_loss(&h.loss, h.width));
    }
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
        Metric::Output(o) => o.metric.as_ref().and_then(|m| refusal(m, &o.loss, o.width)),
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
