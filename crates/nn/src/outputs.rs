//! Models with several outputs: a loss, a weight and metrics per output (Keras' per-output
//! `loss`, `loss_weights` and `metrics`).
//!
//! A Functional [`Model`](crate::Model) with several outputs concatenates them (each
//! flattened) into one output row per sample, and keeps each one apart as a head
//! ([`LayerNodes::heads`]). Its targets are likewise one row per sample: each output's targets
//! in turn, one class index for a sparse loss, one value per output value otherwise. The
//! model's loss is [`Loss::Outputs`], `Σ_k w_k L_k`, each `L_k` computed on its own head
//! (from the logits, when that output ends in a softmax or sigmoid), and each output's metrics
//! are [`Metric::Output`]s reading that head and its columns of the targets.

use crate::error::{NnError, Result};
use crate::float::Float;
use crate::input::Targets;
use crate::layer::LayerNodes;
use crate::loss::Loss;
use crate::metrics::Metric;
use dendrite_graph::{Graph, NodeId};
use std::sync::{Arc, Mutex};

/// One output's loss, weight in the total loss, and metrics, for
/// [`Model::compile_outputs`](crate::Model::compile_outputs).
///
/// ```
/// use dendrite_nn::{Loss, Metric, OutputLoss};
/// let digit = OutputLoss::new(Loss::SparseCategoricalCrossentropy).metrics(&[Metric::Accuracy]);
/// let size = OutputLoss::new(Loss::MeanSquaredError).weight(0.5);
/// assert_eq!((digit.weight_value(), size.weight_value()), (1.0, 0.5));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct OutputLoss {
    loss: Loss,
    weight: f64,
    metrics: Vec<Metric>,
}

impl OutputLoss {
    /// `loss` on this output, with weight 1 and no metrics.
    pub fn new(loss: Loss) -> Self {
        OutputLoss {
            loss,
            weight: 1.0,
            metrics: Vec::new(),
        }
    }

    /// The output's weight in the total loss (Keras' `loss_weights`; finite, at least 0).
    pub fn weight(mut self, weight: f64) -> Self {
        self.weight = weight;
        self
    }

    /// The metrics reported for this output, named `<output>_<metric>`.
    pub fn metrics(mut self, metrics: &[Metric]) -> Self {
        self.metrics = metrics.to_vec();
        self
    }

    /// The output's loss.
    pub fn loss_value(&self) -> &Loss {
        &self.loss
    }

    /// The output's weight.
    pub fn weight_value(&self) -> f64 {
        self.weight
    }

    /// The output's metrics, as given.
    pub fn metrics_value(&self) -> &[Metric] {
        &self.metrics
    }
}

/// One output of a multi-output model, as its loss sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Head {
    /// The output's name (the step that makes it: `dense_3`).
    pub name: String,
    /// Values per sample of the output.
    pub width: usize,
    /// The output's loss.
    pub loss: Loss,
    /// Its weight in the total loss.
    pub weight: f64,
}

impl Head {
    /// The targets this output reads.
    pub fn targets(&self) -> Targets {
        self.loss.targets(self.width)
    }
}

/// The losses of a model's outputs, what [`Loss::Outputs`] holds: `Σ_k w_k L_k`.
///
/// ```
/// use dendrite_nn::{Head, Loss, OutputLosses, Targets};
/// let heads = OutputLosses::new(vec![
///     Head { name: "digit".into(), width: 10, loss: Loss::SparseCategoricalCrossentropy, weight: 1.0 },
///     Head { name: "size".into(), width: 2, loss: Loss::MeanSquaredError, weight: 0.5 },
/// ])?;
/// assert_eq!(Loss::Outputs(heads).targets(12), Targets::Values { width: 3 });
/// # Ok::<(), dendrite_nn::NnError>(())
/// ```
#[derive(Debug, Clone)]
pub struct OutputLosses(Arc<[Head]>);

impl PartialEq for OutputLosses {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl Eq for OutputLosses {}

impl std::hash::Hash for OutputLosses {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        for head in self.0.iter() {
            (&head.name, head.width, &head.loss, head.weight.to_bits()).hash(state);
        }
    }
}

impl OutputLosses {
    /// The losses of `heads`, in the model's output order.
    ///
    /// # Errors
    /// [`NnError::LossOutput`] for fewer than two heads, a weight that is negative or not
    /// finite, a head of no values, or a head whose loss is itself [`Loss::Outputs`].
    pub fn new(heads: Vec<Head>) -> Result<Self> {
        let refuse = |width, reason| NnError::LossOutput {
            loss: "outputs",
            width,
            reason,
        };
        if heads.len() < 2 {
            return Err(refuse(
                heads.len(),
                "a loss per output is for models of two or more outputs: give one loss otherwise",
            ));
        }
        for head in &heads {
            if !(head.weight.is_finite() && head.weight >= 0.0) {
                return Err(refuse(
                    head.width,
                    "an output's loss weight must be finite and at least 0",
                ));
            }
            if head.width == 0 || matches!(head.loss, Loss::Outputs(_)) {
                return Err(refuse(
                    head.width,
                    "an output has at least one value and a loss of its own",
                ));
            }
        }
        Ok(OutputLosses(heads.into()))
    }

    /// The heads, in output order.
    pub fn heads(&self) -> &[Head] {
        &self.0
    }

    /// The values per sample of all outputs together.
    pub fn width(&self) -> usize {
        self.0.iter().map(|h| h.width).sum()
    }

    /// Each head's first target column in the packed target row.
    pub fn offsets(&self) -> Vec<usize> {
        let mut at = 0;
        self.0
            .iter()
            .map(|h| {
                let start = at;
                at += h.targets().width();
                start
            })
            .collect()
    }

    /// The packed targets: every head's, in turn.
    pub(crate) fn targets(&self) -> Targets {
        Targets::Values {
            width: self.0.iter().map(|h| h.targets().width()).sum(),
        }
    }

    /// `Σ_k w_k L_k`, each loss on its head and its columns of `targets`.
    pub(crate) fn build<F: Float>(
        &self,
        g: &mut Graph<F>,
        nodes: &LayerNodes,
        targets: NodeId,
    ) -> Result<NodeId> {
        if nodes.heads.len() != self.0.len() {
            return Err(NnError::LossOutput {
                loss: "outputs",
                width: nodes.heads.len(),
                reason: "the model does not have one output per loss",
            });
        }
        let mut total = None;
        for ((head, nodes), at) in self.0.iter().zip(&nodes.heads).zip(self.offsets()) {
            let t = head_targets(g, targets, at, head.targets())?;
            let loss = g.with_scope(&head.name, |g| head.loss.build(g, nodes, t))?;
            let weighted = g.scale(loss, head.weight)?;
            total = Some(match total {
                None => weighted,
                Some(sum) => g.add(sum, weighted)?,
            });
        }
        total.ok_or(NnError::LossOutput {
            loss: "outputs",
            width: 0,
            reason: "no output",
        })
    }

    /// The metrics a multi-output model reports: each head's metrics (`<head>_<metric>`,
    /// resolved for its loss), then each head's loss (`<head>_loss`), as Keras does.
    pub(crate) fn metrics(&self, per_head: &[Vec<Metric>]) -> Vec<Metric> {
        let offsets = self.offsets();
        let mut all = Vec::new();
        for (k, (head, metrics)) in self.0.iter().zip(per_head).enumerate() {
            for m in metrics {
                let resolved = m.resolve(&head.loss, head.width);
                all.push(self.output_metric(k, offsets[k], m.name(), Some(resolved)));
            }
        }
        for (k, &at) in offsets.iter().enumerate() {
            all.push(self.output_metric(k, at, "loss", None));
        }
        all
    }

    /// Output `output`'s `metric` (its loss for `None`), named `<output>_<what>`.
    fn output_metric(
        &self,
        output: usize,
        offset: usize,
        what: &str,
        metric: Option<Metric>,
    ) -> Metric {
        let head = &self.0[output];
        let name = format!("{}_{what}", head.name);
        let metric = metric.map(Box::new);
        let loss = head.loss.clone();
        Metric::Output(OutputMetric::new(
            output,
            &name,
            metric,
            loss,
            (head.width, offset),
        ))
    }
}

/// A metric of one output of a multi-output model, what [`Metric::Output`] holds: one of
/// the output's metrics, or (`metric: None`) the output's own loss.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OutputMetric {
    /// The output's position among the model's outputs.
    pub output: usize,
    /// `<output>_<metric>` (`dense_3_accuracy`, `dense_3_loss`).
    pub name: &'static str,
    /// The metric, resolved for the output's loss; `None` for the loss itself.
    pub metric: Option<Box<Metric>>,
    /// The output's loss.
    pub loss: Loss,
    /// Values per sample of the output.
    pub width: usize,
    /// The output's first column in the packed targets.
    pub offset: usize,
}

impl OutputMetric {
    /// Output `output`'s `metric` (its loss for `None`) named `name`, the output having
    /// `width` values and its targets starting at column `offset`.
    pub(crate) fn new(
        output: usize,
        name: &str,
        metric: Option<Box<Metric>>,
        loss: Loss,
        (width, offset): (usize, usize),
    ) -> Self {
        OutputMetric {
            output,
            name: intern(name),
            metric,
            loss,
            width,
            offset,
        }
    }

    /// Values one batch of `batch` samples sums.
    pub(crate) fn count(&self, batch: usize) -> usize {
        match &self.metric {
            Some(m) => m.count(batch, self.width),
            None => batch,
        }
    }

    /// The metric's value from the mean of its sums.
    pub(crate) fn finish(&self, mean: f64) -> f64 {
        match &self.metric {
            Some(m) => m.finish(mean),
            None => mean,
        }
    }

    /// The batch sum: the metric's on the output's head, or its loss times the batch size.
    pub(crate) fn build<F: Float>(
        &self,
        g: &mut Graph<F>,
        nodes: &LayerNodes,
        targets: NodeId,
    ) -> Result<NodeId> {
        let head = nodes.heads.get(self.output).ok_or(NnError::LossOutput {
            loss: "outputs",
            width: nodes.heads.len(),
            reason: "a metric of an output the model does not have",
        })?;
        let t = head_targets(g, targets, self.offset, self.loss.targets(self.width))?;
        match &self.metric {
            Some(m) => m.build(g, head, t),
            None => {
                // The loss is the batch mean: times the batch size, read off the targets.
                let mean = self.loss.build(g, head, t)?;
                let zero = g.scale(t, 0.0)?;
                let one = g.scalar(1.0);
                let ones = g.add(zero, one)?;
                let rows = match g.shape(ones)?.rank() {
                    1 => ones,
                    _ => {
                        let first = g.slice(ones, 1, 0, 1)?;
                        g.reshape(first, [None])?
                    }
                };
                let batch = g.sum_all(rows)?;
                Ok(g.mul(mean, batch)?)
            }
        }
    }
}

/// A head's columns of the packed `targets`: `[batch]` class indices or `[batch, width]`.
fn head_targets<F: Float>(
    g: &mut Graph<F>,
    targets: NodeId,
    at: usize,
    kind: Targets,
) -> Result<NodeId> {
    let columns = g.slice(targets, 1, at, at + kind.width())?;
    Ok(match kind {
        Targets::ClassIndices { .. } => g.reshape(columns, [None])?,
        Targets::Values { .. } => columns,
    })
}

/// `name` as a `&'static str` (metric names are), each distinct name stored once for the
/// life of the process: a model's output names are few, so this stays small.
fn intern(name: &str) -> &'static str {
    static NAMES: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    let mut names = match NAMES.lock() {
        Ok(names) => names,
        Err(poisoned) => poisoned.into_inner(),
    };
    if let Some(&known) = names.iter().find(|&&n| n == name) {
        return known;
    }
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.push(leaked);
    leaked
}

impl OutputLosses {
    /// Checks every output's part of `data`'s targets once, before any step: class indices
    /// (integers in `0..classes`) for a sparse loss, values in `[0, 1]` for a cross-entropy
    /// on target values. `named` names the data a sample is in.
    pub(crate) fn check_data<F: Float, D: crate::input::Data<F> + ?Sized>(
        &self,
        data: &D,
        named: impl Fn(usize) -> &'static str,
    ) -> Result<()> {
        let packed = self.targets();
        let width = packed.width();
        let chunk = crate::input::SCAN_CHUNK.min(data.len());
        if chunk == 0 || width == 0 {
            return Ok(());
        }
        let n = dendrite_graph::limits::check_size::<F>("check targets", "data", &[chunk, width])?;
        let mut buffer = Vec::new();
        buffer
            .try_reserve_exact(n)
            .map_err(|_| dendrite_graph::GraphError::AllocationFailed {
                op: "check targets",
                node: "data".into(),
                bytes: n.saturating_mul(std::mem::size_of::<F>()),
            })?;
        buffer.resize(n, F::zero());
        let offsets = self.offsets();
        let mut indices = Vec::with_capacity(chunk);
        let mut start = 0;
        while start < data.len() {
            let end = (start + chunk).min(data.len());
            indices.clear();
            indices.extend(start..end);
            let rows = &mut buffer[..(end - start) * width];
            data.write_targets(&indices, packed, rows)?;
            for (r, row) in rows.chunks_exact(width).enumerate() {
                for (head, &at) in self.0.iter().zip(&offsets) {
                    check_head(
                        head,
                        &row[at..at + head.targets().width()],
                        at,
                        start + r,
                        &named,
                    )?;
                }
            }
            start = end;
        }
        Ok(())
    }
}

/// One sample's targets of one output: in range for its loss.
fn check_head<F: Float>(
    head: &Head,
    values: &[F],
    at: usize,
    sample: usize,
    named: &impl Fn(usize) -> &'static str,
) -> Result<()> {
    let unit = matches!(
        head.loss,
        Loss::BinaryCrossentropy | Loss::CategoricalCrossentropy
    );
    for (i, v) in values.iter().enumerate() {
        let v = v.as_f64();
        match head.targets() {
            Targets::ClassIndices { classes } => {
                if !(v >= 0.0 && v < classes as f64 && v.fract() == 0.0) {
                    return Err(NnError::LabelOutOfRange {
                        index: sample,
                        label: v,
                        classes,
                    });
                }
            }
            Targets::Values { .. } if unit && !(0.0..=1.0).contains(&v) => {
                return Err(NnError::TargetOutOfRange {
                    loss: head.loss.name(),
                    data: named(sample),
                    sample,
                    index: at + i,
                    value: v,
                    low: 0.0,
                    high: 1.0,
                });
            }
            Targets::Values { .. } => {}
        }
    }
    Ok(())
}
