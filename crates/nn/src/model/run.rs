//! Running plans over batches: the reusable batch buffers, feeding, `evaluate` and `predict`.

use super::config::Evaluation;
use super::{
    Fetched, Network, Sequential, Training, INPUT_NAME, LABELS_NAME, STEP_NAME, TARGETS_NAME,
};
use crate::data::DataError;
use crate::error::{label_error, NnError, Result};
use crate::float::Float;
use crate::input::{Data, Features, Targets};
use crate::loss::Loss;
use crate::metrics::{Mean, Metric};
use crate::optim::{index_vec, zeroed_vec};
use dendrite_graph::{Element, Outputs};
use ndarray::{Array2, ArrayViewD, IxDyn};

/// Batch buffers, allocated once for the largest batch and reused for every batch.
#[derive(Debug)]
pub(crate) struct Batch<F> {
    pub(crate) x: Vec<F>,
    pub(crate) y: Vec<F>,
    pub(crate) idx: Vec<usize>,
    pub(crate) features: usize,
    /// The sample shape the inputs are fed in (`[28, 28, 1]`), whose product is `features`.
    pub(crate) sample: Vec<usize>,
    pub(crate) targets: Targets,
}

impl<F: Float> Batch<F> {
    /// Buffers for batches of up to `batch_size` samples, allocated through the per-tensor
    /// limit and fallibly.
    pub(crate) fn new(batch_size: usize, sample: &[usize], targets: Targets) -> Result<Self> {
        let features = super::build::checked_product(sample)
            .ok_or_else(|| too_small("features", usize::MAX))?;
        Ok(Batch {
            x: zeroed_vec("batch", INPUT_NAME, &[batch_size, features])?,
            y: zeroed_vec("batch", "targets", &[batch_size, targets.width()])?,
            idx: index_vec("batch", batch_size)?,
            features,
            sample: sample.to_vec(),
            targets,
        })
    }

    /// Writes the inputs and targets of the samples `indices` into the buffers.
    pub(crate) fn fill<D: Data<F> + ?Sized>(&mut self, data: &D, indices: &[usize]) -> Result<()> {
        let n = indices.len();
        let (f, w) = (self.features, self.targets.width());
        let x = self
            .x
            .get_mut(..n * f)
            .ok_or_else(|| too_small("features", n * f))?;
        data.write_features(indices, x)?;
        let y = self
            .y
            .get_mut(..n * w)
            .ok_or_else(|| too_small("targets", n * w))?;
        data.write_targets(indices, self.targets, y)
    }

    /// The fed views of a batch of `n` samples: inputs `[n, sample...]`, targets `[n]`
    /// (class indices) or `[n, width]`, and the training step (a [`step_value`]).
    pub(crate) fn feeds<'b>(
        &'b self,
        n: usize,
        step: &'b [F; 1],
    ) -> Result<[(&'static str, ArrayViewD<'b, F>); 3]> {
        let x = batch_view(&self.x, n, &self.sample)?;
        let y = match self.targets {
            Targets::ClassIndices { .. } => (LABELS_NAME, view(&self.y, &[n])?),
            Targets::Values { width } => (TARGETS_NAME, view(&self.y, &[n, width])?),
        };
        Ok([(INPUT_NAME, x), y, step_feed(step)?])
    }

    /// Makes `idx` the sequential indices `start..end`.
    pub(crate) fn range(&mut self, start: usize, end: usize) -> &[usize] {
        self.idx.clear();
        self.idx.extend(start..end);
        &self.idx
    }
}

fn too_small(buffer: &'static str, expected: usize) -> NnError {
    NnError::Data(DataError::BufferSize {
        buffer,
        expected,
        actual: 0,
    })
}

/// A view of the front of `data` in `shape` (`IxDyn` keeps up to 4 axes inline: no allocation).
pub(crate) fn view<'b, F: Element>(data: &'b [F], shape: &[usize]) -> Result<ArrayViewD<'b, F>> {
    let n: usize = shape.iter().product();
    let front = data.get(..n).ok_or_else(|| too_small("batch", n))?;
    ArrayViewD::from_shape(IxDyn(shape), front).map_err(|_| too_small("batch", n))
}

/// The value fed as the training step after `steps` optimizer steps, refused when the
/// element type cannot hold it exactly (`f32` from 2^24 on): random draws keyed by a rounded
/// step would repeat.
pub(crate) fn step_value<F: Float>(steps: u64) -> Result<[F; 1]> {
    match steps <= F::MAX_EXACT_INTEGER {
        true => Ok([F::of(steps as f64)]),
        false => Err(NnError::StepLimit {
            step: steps,
            limit: F::MAX_EXACT_INTEGER,
        }),
    }
}

/// The [`STEP_NAME`] feed: a 0-dimensional view of `step` (no allocation).
fn step_feed<F: Element>(step: &[F; 1]) -> Result<(&'static str, ArrayViewD<'_, F>)> {
    Ok((STEP_NAME, view(step, &[])?))
}

/// The most axes a sample may have: the batch shape `[n, sample...]` is built on the stack.
pub(crate) const MAX_SAMPLE_AXES: usize = 7;

/// A view of the front of `data` as `[n, sample...]`, its shape built on the stack (with
/// `IxDyn` keeping up to 4 axes inline, a batch of samples of up to 3 axes allocates nothing).
pub(crate) fn batch_view<'b, F: Element>(
    data: &'b [F],
    n: usize,
    sample: &[usize],
) -> Result<ArrayViewD<'b, F>> {
    let mut dims = [0usize; MAX_SAMPLE_AXES + 1];
    let shape = dims
        .get_mut(..=sample.len())
        .ok_or_else(|| too_small("batch", usize::MAX))?;
    shape[0] = n;
    shape[1..].copy_from_slice(sample);
    view(data, shape)
}

/// What data must fit: the model's input, the loss's targets, and whether to check that the
/// values are finite.
#[derive(Debug, Clone)]
pub(crate) struct Expect {
    pub(crate) features: usize,
    /// The model's sample shape (product `features`).
    pub(crate) sample: Vec<usize>,
    pub(crate) targets: Targets,
    pub(crate) loss: Loss,
    pub(crate) finite: bool,
}

/// Checks, once before the first step, that `data` fits the model: feature count, targets
/// (count, width, class labels), not empty, every value finite, binary and categorical
/// cross-entropy targets in `[0, 1]`. `what` names the data in the errors; samples from `validation_from` on are
/// named `validation` (a validation split). Errors in validation data that do not name the
/// data themselves come wrapped in [`NnError::InData`].
pub(crate) fn check_data<F: Float, D: Data<F> + ?Sized>(
    data: &D,
    expect: &Expect,
    what: &'static str,
    validation_from: usize,
) -> Result<()> {
    check_shape(data, expect, what).map_err(|err| match (what, err) {
        (
            "validation",
            err @ (NnError::FeatureMismatch { .. }
            | NnError::LengthMismatch { .. }
            | NnError::TargetMismatch { .. }
            | NnError::LabelOutOfRange { .. }),
        ) => NnError::InData {
            data: what,
            source: Box::new(err),
        },
        (_, err) => err,
    })?;
    let named = |sample: usize| {
        if sample >= validation_from {
            "validation"
        } else {
            what
        }
    };
    check_values(data, expect, named)
}

/// Data that know their sample shape must have the model's (a plain matrix feeds any input
/// with as many values per sample).
fn check_sample_shape(actual: Option<Vec<usize>>, expected: &[usize]) -> Result<()> {
    match actual {
        Some(actual) if actual != expected => Err(NnError::SampleShapeMismatch {
            expected: expected.to_vec(),
            actual,
        }),
        _ => Ok(()),
    }
}

fn check_shape<F: Float, D: Data<F> + ?Sized>(
    data: &D,
    expect: &Expect,
    what: &'static str,
) -> Result<()> {
    if data.features() != expect.features {
        return Err(NnError::FeatureMismatch {
            expected: expect.features,
            actual: data.features(),
        });
    }
    check_sample_shape(data.sample_shape(), &expect.sample)?;
    data.check_targets(expect.targets)
        .map_err(|err| match err {
            NnError::TargetMismatch {
                expected, actual, ..
            } => NnError::TargetMismatch {
                loss: expect.loss.name(),
                expected,
                actual,
            },
            other => other,
        })?;
    if data.is_empty() {
        return Err(NnError::EmptyDataset { what });
    }
    Ok(())
}

/// [`NnError::NonFiniteData`] for the first NaN or infinite feature of `x`.
fn finite_features<F: Float, X: Features<F> + ?Sized>(x: &X, data: &'static str) -> Result<()> {
    match x.first_non_finite()? {
        Some((sample, index, value)) => Err(NnError::NonFiniteData {
            data,
            part: "feature",
            sample,
            index,
            value,
        }),
        None => Ok(()),
    }
}

/// Finite features and targets (when asked), targets in the loss's range.
fn check_values<F: Float, D: Data<F> + ?Sized>(
    data: &D,
    expect: &Expect,
    named: impl Fn(usize) -> &'static str,
) -> Result<()> {
    let non_finite = |part, (sample, index, value)| NnError::NonFiniteData {
        data: named(sample),
        part,
        sample,
        index,
        value,
    };
    if expect.finite {
        if let Some(found) = data.first_non_finite()? {
            return Err(non_finite("feature", found));
        }
        if let Targets::Values { .. } = expect.targets {
            let inf = f64::INFINITY;
            if let Some(found) = data.first_target_outside(expect.targets, -inf, inf)? {
                return Err(non_finite("target", found));
            }
        }
    }
    if let Loss::Outputs(outputs) = &expect.loss {
        outputs.check_data(data, &named)?;
    }
    // Cross-entropies on target values are defined for targets in [0, 1] (0/1 labels, one-hot
    // or soft rows): outside, the loss is unbounded below and training diverges silently.
    if matches!(
        expect.loss,
        Loss::BinaryCrossentropy | Loss::CategoricalCrossentropy
    ) && let Some((sample, index, value)) =
        data.first_target_outside(expect.targets, 0.0, 1.0)?
    {
        return Err(NnError::TargetOutOfRange {
            loss: expect.loss.name(),
            data: named(sample),
            sample,
            index,
            value,
            low: 0.0,
            high: 1.0,
        });
    }
    Ok(())
}

/// The running means of one epoch or evaluation: the loss, the penalty and every metric.
/// Allocated once per epoch; adding a step allocates nothing.
#[derive(Debug)]
pub(crate) struct Tally {
    pub(crate) loss: Mean,
    penalty: Mean,
    metrics: Vec<Mean>,
}

impl Tally {
    pub(crate) fn new(metrics: usize) -> Self {
        Tally {
            loss: Mean::default(),
            penalty: Mean::default(),
            metrics: vec![Mean::default(); metrics],
        }
    }

    /// Adds the metric sums (and the penalty) of one step on `n` samples; the caller adds
    /// the loss, which it checks first.
    pub(crate) fn add<F: Float>(
        &mut self,
        out: &Outputs<'_, F>,
        fetched: Fetched,
        metrics: &[Metric],
        n: usize,
        width: usize,
    ) -> Result<()> {
        if let Some(at) = fetched.penalty {
            self.penalty.update(out.scalar(at)?.as_f64(), n as f64);
        }
        for (i, (m, mean)) in metrics.iter().zip(&mut self.metrics).enumerate() {
            let sum = out.scalar(fetched.metrics + i)?.as_f64();
            mean.add_sum(sum, m.count(n, width) as f64);
        }
        Ok(())
    }

    /// The first metric's value so far (what the progress bar shows).
    pub(crate) fn first(&self, metrics: &[Metric]) -> Option<f64> {
        let (m, mean) = metrics.first().zip(self.metrics.first())?;
        mean.result().map(|v| m.finish(v))
    }

    /// Every metric's value, by the name given to `compile`, in compile order.
    pub(crate) fn metrics(
        &self,
        metrics: &[Metric],
        names: &[&'static str],
    ) -> Vec<(&'static str, f64)> {
        let values = metrics.iter().zip(names).zip(&self.metrics);
        values
            .map(|((m, &name), mean)| (name, m.finish(mean.result().unwrap_or(f64::NAN))))
            .collect()
    }

    /// The mean penalty, when the model has one.
    pub(crate) fn penalty(&self, fetched: Fetched) -> Option<f64> {
        fetched.penalty.and_then(|_| self.penalty.result())
    }

    /// The results so far of a model compiled as `training`, over `samples` samples.
    pub(crate) fn evaluation<F: Float>(
        &self,
        training: &Training<F>,
        samples: usize,
    ) -> Evaluation {
        let metrics = &training.metrics;
        Evaluation {
            loss: self.loss.result().unwrap_or(f64::NAN),
            accuracy: self.first(metrics),
            metrics: self.metrics(metrics, &training.names),
            regularization: self.penalty(training.fetched),
            samples,
        }
    }
}

/// Runs the evaluation plan over samples `start..end` of `data`, in batches of the buffers'
/// size, and returns the mean loss, the penalty and the metrics.
pub(crate) fn evaluate_range<F: Float, D: Data<F> + ?Sized>(
    net: &Network<F>,
    training: &mut Training<F>,
    data: &D,
    (start, end): (usize, usize),
    batch: &mut Batch<F>,
    batch_size: usize,
) -> Result<Evaluation> {
    let mut tally = Tally::new(training.metrics.len());
    let mut at = start;
    while at < end {
        let stop = (at + batch_size).min(end);
        let n = stop - at;
        batch.range(at, stop);
        let idx = std::mem::take(&mut batch.idx);
        let filled = batch.fill(data, &idx);
        batch.idx = idx;
        filled?;
        let step = step_value::<F>(training.step)?;
        let feeds = batch.feeds(n, &step)?;
        let out = training.eval.run(&net.graph, &feeds).map_err(label_error)?;
        tally.loss.update(out.scalar(0)?.as_f64(), n as f64);
        tally.add(&out, training.fetched, &training.metrics, n, net.width)?;
        at = stop;
    }
    Ok(tally.evaluation(training, end - start))
}

impl<F: Float> Sequential<F> {
    fn parts(&mut self, method: &'static str) -> Result<(&mut Network<F>, &mut Training<F>)> {
        match (self.net.as_mut(), self.training.as_mut()) {
            (Some(net), Some(training)) => Ok((net, training)),
            _ => Err(NnError::NotCompiled { method }),
        }
    }

    pub(super) fn parts_for_fit(&mut self) -> Result<(&mut Network<F>, &mut Training<F>)> {
        self.parts("fit")
    }

    /// What data given to `fit` or `evaluate` must fit.
    pub(super) fn expect(&self) -> Result<Expect> {
        match (self.net.as_ref(), self.training.as_ref()) {
            (Some(net), Some(training)) => Ok(Expect {
                features: net.features,
                sample: net.input_shape.clone(),
                targets: training.targets,
                loss: training.loss.clone(),
                finite: self.finite_check,
            }),
            _ => Err(NnError::NotCompiled { method: "fit" }),
        }
    }

    /// Mean loss and accuracy of the model on `data`, in batches of `batch_size`. Weights do
    /// not change.
    ///
    /// The data are checked first, as by `fit`: feature count, targets, and (unless
    /// [turned off](Sequential::with_finite_check)) that every value is finite.
    ///
    /// # Errors
    /// [`NnError::NotCompiled`], [`NnError::ZeroBatchSize`], [`NnError::EmptyDataset`],
    /// [`NnError::FeatureMismatch`] and the target errors of [`Data::check_targets`];
    /// [`NnError::NonFiniteData`] for a NaN or infinite value, [`NnError::TargetOutOfRange`] for
    /// a cross-entropy target outside `[0, 1]`.
    ///
    /// ```
    /// use dendrite_nn::{Activation, Dense, Loss, Metric, Sequential, Sgd};
    /// use ndarray::array;
    /// let mut model = Sequential::new();
    /// model.add(Dense::new(2).input_dim(2).activation(Activation::Softmax));
    /// model.compile(Sgd::new(0.1), Loss::SparseCategoricalCrossentropy, &[Metric::Accuracy])?;
    /// let (x, y) = (array![[1.0_f32, 0.0], [0.0, 1.0]], array![0.0_f32, 1.0]);
    /// let result = model.evaluate(&(x.view(), y.view()), 32)?;
    /// assert!(result.loss > 0.0 && result.accuracy.is_some());
    /// # Ok::<(), dendrite_nn::NnError>(())
    /// ```
    pub fn evaluate<D: Data<F> + ?Sized>(
        &mut self,
        data: &D,
        batch_size: usize,
    ) -> Result<Evaluation> {
        if batch_size == 0 {
            return Err(NnError::ZeroBatchSize);
        }
        self.parts("evaluate")?;
        let expect = self.expect()?;
        check_data(data, &expect, "evaluation", usize::MAX)?;
        let (net, training) = self.parts("evaluate")?;
        let bs = batch_size.min(data.len());
        let mut batch = Batch::new(bs, &net.input_shape, training.targets)?;
        evaluate_range(net, training, data, (0, data.len()), &mut batch, bs)
    }

    /// The model's outputs for every sample of `x`, in batches of `batch_size`: a matrix of
    /// `x.len()` rows (after softmax or sigmoid when the last layer has them).
    ///
    /// Needs a built model (`build` or `compile`).
    ///
    /// # Errors
    /// [`NnError::NotBuilt`], [`NnError::ZeroBatchSize`], [`NnError::FeatureMismatch`];
    /// [`NnError::NonFiniteData`] (data `prediction`) for a NaN or infinite feature, unless
    /// [turned off](Sequential::with_finite_check); graph errors for outputs over the
    /// per-tensor limit.
    ///
    /// ```
    /// use dendrite_nn::{Activation, Dense, Sequential};
    /// let mut model = Sequential::new();
    /// model.add(Dense::new(3).input_dim(2).activation(Activation::Softmax));
    /// model.build()?;
    /// let p = model.predict(&ndarray::array![[1.0_f32, 2.0]].view(), 32)?;
    /// assert!((p.sum() - 1.0).abs() < 1e-6);
    /// # Ok::<(), dendrite_nn::NnError>(())
    /// ```
    pub fn predict<X: Features<F> + ?Sized>(
        &mut self,
        x: &X,
        batch_size: usize,
    ) -> Result<Array2<F>> {
        if batch_size == 0 {
            return Err(NnError::ZeroBatchSize);
        }
        let net = self
            .net
            .as_mut()
            .ok_or(NnError::NotBuilt { method: "predict" })?;
        if x.features() != net.features {
            return Err(NnError::FeatureMismatch {
                expected: net.features,
                actual: x.features(),
            });
        }
        check_sample_shape(x.sample_shape(), &net.input_shape)?;
        if self.finite_check {
            finite_features(x, "prediction")?;
        }
        let step = step_value::<F>(self.training.as_ref().map_or(0, |t| t.step))?;
        let (len, f, w) = (x.len(), net.features, net.width);
        let mut result =
            Array2::from_shape_vec((len, w), zeroed_vec("predict", "output", &[len, w])?)
                .map_err(|_| too_small("predictions", len.saturating_mul(w)))?;
        let bs = batch_size.min(len).max(1);
        let mut xs = zeroed_vec("predict", INPUT_NAME, &[bs, f])?;
        let mut idx = index_vec("predict", bs)?;
        let mut at = 0;
        while at < len {
            let stop = (at + bs).min(len);
            let n = stop - at;
            idx.clear();
            idx.extend(at..stop);
            let front = xs
                .get_mut(..n * f)
                .ok_or_else(|| too_small("features", n * f))?;
            x.write_features(&idx, front)?;
            let feeds = [
                (INPUT_NAME, batch_view(&xs, n, &net.input_shape)?),
                step_feed(&step)?,
            ];
            let out = net.predict.run(&net.graph, &feeds)?;
            let values = out.get(0)?;
            let src = values.to_slice().ok_or_else(|| NnError::NonContiguous {
                name: "output".into(),
            })?;
            let dst = result
                .as_slice_mut()
                .and_then(|r| r.get_mut(at * w..stop * w))
                .ok_or_else(|| too_small("predictions", len * w))?;
            if src.len() != dst.len() {
                return Err(too_small("predictions", dst.len()));
            }
            dst.copy_from_slice(src);
            at = stop;
        }
        Ok(result)
    }
}
