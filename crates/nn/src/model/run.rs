//! Running plans over batches: the reusable batch buffers, feeding, `evaluate` and `predict`.

use super::config::Evaluation;
use super::{Network, Sequential, Training, INPUT_NAME, LABELS_NAME, TARGETS_NAME};
use crate::data::DataError;
use crate::error::{label_error, NnError, Result};
use crate::float::Float;
use crate::input::{Data, Features, Targets};
use crate::metrics::{Mean, Metric};
use dendrite_graph::{Element, Graph, Plan};
use ndarray::{Array2, ArrayViewD, IxDyn};

/// Batch buffers, allocated once for the largest batch and reused for every batch.
#[derive(Debug)]
pub(crate) struct Batch<F> {
    pub(crate) x: Vec<F>,
    pub(crate) y: Vec<F>,
    pub(crate) idx: Vec<usize>,
    pub(crate) features: usize,
    pub(crate) targets: Targets,
}

impl<F: Float> Batch<F> {
    pub(crate) fn new(batch_size: usize, features: usize, targets: Targets) -> Self {
        Batch {
            x: vec![F::zero(); batch_size * features],
            y: vec![F::zero(); batch_size * targets.width()],
            idx: Vec::with_capacity(batch_size),
            features,
            targets,
        }
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

    /// The fed views of a batch of `n` samples: inputs `[n, features]` and targets `[n]` (class
    /// indices) or `[n, width]`.
    pub(crate) fn feeds(&self, n: usize) -> Result<[(&'static str, ArrayViewD<'_, F>); 2]> {
        let x = view(&self.x, &[n, self.features])?;
        let y = match self.targets {
            Targets::ClassIndices { .. } => (LABELS_NAME, view(&self.y, &[n])?),
            Targets::Values { width } => (TARGETS_NAME, view(&self.y, &[n, width])?),
        };
        Ok([(INPUT_NAME, x), y])
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

/// Checks that `data` fits the model: feature count, targets, not empty.
pub(crate) fn check_data<F: Float, D: Data<F> + ?Sized>(
    data: &D,
    features: usize,
    targets: Targets,
    what: &'static str,
) -> Result<()> {
    if data.features() != features {
        return Err(NnError::FeatureMismatch {
            expected: features,
            actual: data.features(),
        });
    }
    data.check_targets(targets)?;
    if data.is_empty() {
        return Err(NnError::EmptyDataset { what });
    }
    Ok(())
}

/// Runs the evaluation plan over samples `start..end` of `data`, in batches of the buffers'
/// size, and returns the mean loss and the accuracies (of `metrics`, into `accuracy`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn evaluate_range<F: Float, D: Data<F> + ?Sized>(
    graph: &Graph<F>,
    plan: &mut Plan<F>,
    metrics: &[Metric],
    width: usize,
    data: &D,
    start: usize,
    end: usize,
    batch: &mut Batch<F>,
    batch_size: usize,
) -> Result<Evaluation> {
    let mut loss = Mean::default();
    let mut first = Mean::default();
    let mut at = start;
    while at < end {
        let stop = (at + batch_size).min(end);
        let n = stop - at;
        batch.range(at, stop);
        let idx = std::mem::take(&mut batch.idx);
        let filled = batch.fill(data, &idx);
        batch.idx = idx;
        filled?;
        let feeds = batch.feeds(n)?;
        let out = plan.run(graph, &feeds).map_err(label_error)?;
        loss.update(out.scalar(0)?.as_f64(), n as f64);
        if let Some(m) = metrics.first() {
            first.add_sum(out.scalar(1)?.as_f64(), m.count(n, width) as f64);
        }
        at = stop;
    }
    Ok(Evaluation {
        loss: loss.result().unwrap_or(f64::NAN),
        accuracy: first.result(),
        samples: end - start,
    })
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

    /// Mean loss and accuracy of the model on `data`, in batches of `batch_size`. Weights do
    /// not change.
    ///
    /// # Errors
    /// [`NnError::NotCompiled`], [`NnError::ZeroBatchSize`], [`NnError::EmptyDataset`],
    /// [`NnError::FeatureMismatch`] and the target errors of [`Data::check_targets`].
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
        let (net, training) = self.parts("evaluate")?;
        check_data(data, net.features, training.targets, "evaluation")?;
        let bs = batch_size.min(data.len());
        let mut batch = Batch::new(bs, net.features, training.targets);
        evaluate_range(
            &net.graph,
            &mut training.eval,
            &training.metrics,
            net.width,
            data,
            0,
            data.len(),
            &mut batch,
            bs,
        )
    }

    /// The model's outputs for every sample of `x`, in batches of `batch_size`: a matrix of
    /// `x.len()` rows (after softmax or sigmoid when the last layer has them).
    ///
    /// Needs a built model (`build` or `compile`).
    ///
    /// # Errors
    /// [`NnError::NotCompiled`], [`NnError::ZeroBatchSize`], [`NnError::FeatureMismatch`].
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
            .ok_or(NnError::NotCompiled { method: "predict" })?;
        if x.features() != net.features {
            return Err(NnError::FeatureMismatch {
                expected: net.features,
                actual: x.features(),
            });
        }
        let (len, f, w) = (x.len(), net.features, net.width);
        let mut result = Array2::<F>::zeros((len, w));
        let bs = batch_size.min(len).max(1);
        let mut xs = vec![F::zero(); bs * f];
        let mut idx = Vec::with_capacity(bs);
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
            let feeds = [(INPUT_NAME, view(&xs, &[n, f])?)];
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
