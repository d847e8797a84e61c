//! The training loop.

use super::config::{EpochLogs, FitConfig, History, Validation};
use super::prefetch;
use super::progress::Progress;
use super::run::{check_data, evaluate_range, Batch};
use super::{Network, Sequential, Training};
use crate::data::EpochOrder;
use crate::error::{label_error, NnError, Result};
use crate::float::Float;
use crate::input::Data;
use crate::metrics::Mean;
use crate::optim::{all_finite, Optimizer};
use std::time::Instant;

/// Training steps between two updates of the progress bar (besides the first and last step).
/// The bar redraws at most 15 times a second whatever it is told; updating it on every step
/// cost two clock reads and some atomics, about 0.6 µs a step with a terminal attached.
const PROGRESS_EVERY: usize = 16;

/// Where the validation samples are.
enum ValSet<'v, F: Float> {
    None,
    /// Samples `start..end` of the training data.
    Tail(usize, usize),
    Other(&'v dyn Data<F>),
}

impl<F: Float> Sequential<F> {
    /// Trains the model on `data` (a labelled [`Dataset`](crate::data::Dataset), or an
    /// `(x, y)` pair of ndarray arrays) as `config` says, and returns the per-epoch
    /// [`History`].
    ///
    /// The configuration, then the inputs and targets (training and validation) are checked
    /// once before the first step: the feature count against the model, as many targets as
    /// samples, class labels in range, every value finite (unless
    /// [turned off](Sequential::with_finite_check)), cross-entropy targets in `[0, 1]`.
    /// A refused fit has taken no step.
    ///
    /// # Errors
    /// [`NnError::NotCompiled`]; [`NnError::ZeroEpochs`], [`NnError::ZeroBatchSize`],
    /// [`NnError::ValidationSplit`], [`NnError::MonitorUnavailable`], [`NnError::Hyperparameter`]
    /// (early stopping's `min_delta`) for a bad configuration; [`NnError::EmptyDataset`],
    /// [`NnError::FeatureMismatch`], [`NnError::LengthMismatch`], [`NnError::TargetMismatch`],
    /// [`NnError::LabelOutOfRange`] (inside [`NnError::InData`] for validation data),
    /// [`NnError::NonFiniteData`], [`NnError::TargetOutOfRange`] for bad data;
    /// [`NnError::NonFiniteLoss`], [`NnError::NonFiniteParameter`] and
    /// [`NnError::LearningRate`] when training stops being finite (the weights are then those
    /// after the last finite step); graph errors for batch buffers over the per-tensor limit.
    ///
    /// ```
    /// use dendrite_nn::{Activation, Adam, Dense, FitConfig, Loss, Metric, Sequential};
    /// use dendrite_nn::data::synthetic_digits;
    ///
    /// let data = synthetic_digits(256, 0)?;
    /// let mut model = Sequential::new();
    /// model.add(Dense::new(16).input_dim(784).activation(Activation::Relu));
    /// model.add(Dense::new(10).activation(Activation::Softmax));
    /// model.compile(Adam::default(), Loss::SparseCategoricalCrossentropy, &[Metric::Accuracy])?;
    /// let history = model.fit(&data, FitConfig::default().epochs(2).validation_split(0.25).verbosity(0))?;
    /// assert_eq!(history.val_accuracy.len(), 2);
    /// # Ok::<(), dendrite_nn::NnError>(())
    /// ```
    ///
    /// One step: write the batch into the reused buffers, run the compiled training plan (loss,
    /// correct counts, gradients), check that the loss is finite, then let the optimizer update
    /// every parameter in place from the fetched gradients, scanning each right after its
    /// update. The loss is checked *before* the update, and a parameter that the update made
    /// non-finite is put back with the others the step changed, so a NaN stops training with
    /// the weights of the last finite step. With two or
    /// more [threads](FitConfig::threads), a second thread writes the next batches while the
    /// current one trains (hence `Sync` data); results are the same bits either way.
    pub fn fit<D: Data<F> + Sync + ?Sized>(
        &mut self,
        data: &D,
        mut config: FitConfig<'_, F>,
    ) -> Result<History> {
        let (train_len, val) = self.check_fit(data, &config)?;
        let (_, training) = self.parts_for_fit()?;
        let validating = !matches!(val, ValSet::None);
        let mut stopper = make_stopper(&config, validating, !training.metrics.is_empty())?;
        let expect = self.expect()?;
        let batch_size = config.batch_size.min(train_len);
        let mut batch = Batch::new(batch_size, expect.features, expect.targets)?;
        // The ring of buffers a second thread writes batches into, ahead of the steps.
        let mut ring = match config.threads_value() >= 2 {
            true => Some(
                (0..prefetch::DEPTH)
                    .map(|_| Batch::new(batch_size, expect.features, expect.targets))
                    .collect::<Result<Vec<_>>>()?,
            ),
            false => None,
        };
        let mut epochs = Epochs {
            order: EpochOrder::new(train_len, config.seed)?,
            val,
            progress: Progress::new(config.verbosity, config.epochs, "accuracy"),
        };
        let mut history = History::default();
        for epoch in 1..=config.epochs {
            if config.shuffle {
                epochs.order.shuffle(epoch as u64 - 1);
            } else {
                epochs.order.sequential();
            }
            let (net, training) = self.parts_for_fit()?;
            let mut buffers = Buffers {
                batch: &mut batch,
                ring: ring.as_mut(),
                batch_size,
            };
            let logs = run_epoch(net, training, data, &mut epochs, &mut buffers, epoch)?;
            history.record(&logs);
            let mut stop = false;
            for hook in config.hooks.iter_mut() {
                stop |= hook(&logs) == super::Control::Stop;
            }
            if let Some(s) = stopper.as_mut() {
                stop |= s.observe(&logs, epoch, net)?;
            }
            if stop {
                history.stopped_epoch = Some(epoch);
                break;
            }
        }
        if let (Some(s), Some(net)) = (stopper.as_ref(), self.net.as_mut()) {
            s.restore(net)?;
        }
        Ok(history)
    }

    /// Everything `fit` checks before the first step, in order: the configuration, a compiled
    /// model, the validation split against the number of samples, then the training data and
    /// any validation data (shape, targets, finite values, the loss's target range). Returns
    /// the number of training samples and where validation samples come from.
    fn check_fit<'v, D: Data<F> + ?Sized>(
        &mut self,
        data: &D,
        config: &FitConfig<'v, F>,
    ) -> Result<(usize, ValSet<'v, F>)> {
        config.check()?;
        self.parts_for_fit()?;
        let expect = self.expect()?;
        let (train_len, val) = split_validation(config, data.len())?;
        let validation_from = match val {
            ValSet::Tail(start, _) => start,
            _ => usize::MAX,
        };
        check_data(data, &expect, "training", validation_from)?;
        if let ValSet::Other(v) = val {
            check_data(v, &expect, "validation", 0)?;
        }
        Ok((train_len, val))
    }
}

/// What every epoch of a fit shares: the sample order, the validation samples, the progress
/// display.
struct Epochs<'v, F: Float> {
    order: EpochOrder,
    val: ValSet<'v, F>,
    progress: Progress,
}

/// One epoch: the training steps, then validation; returns the epoch's logs (also shown).
fn run_epoch<F: Float, D: Data<F> + Sync + ?Sized>(
    net: &mut Network<F>,
    training: &mut Training<F>,
    data: &D,
    epochs: &mut Epochs<'_, F>,
    buffers: &mut Buffers<'_, F>,
    epoch: usize,
) -> Result<EpochLogs> {
    let started = Instant::now();
    let progress = &mut epochs.progress;
    progress.start_epoch(epoch, epochs.order.len().div_ceil(buffers.batch_size));
    let trained = train_epoch(net, training, data, &epochs.order, buffers, epoch, progress);
    let (loss, accuracy) = trained.inspect_err(|_| progress.abandon())?;
    let validation = match epochs.val {
        ValSet::None => None,
        ValSet::Tail(start, end) => Some(validate(net, training, data, start, end, buffers)?),
        ValSet::Other(v) => Some(validate(net, training, v, 0, v.len(), buffers)?),
    };
    let logs = EpochLogs {
        epoch,
        loss,
        accuracy,
        val_loss: validation.map(|v| v.loss),
        val_accuracy: validation.and_then(|v| v.accuracy),
        seconds: started.elapsed().as_secs_f64(),
    };
    progress.end_epoch(&logs);
    Ok(logs)
}

/// The batch buffers of a fit: the one the steps use without a second thread (and that
/// validation uses), the prefetch ring, and the batch size.
struct Buffers<'b, F> {
    batch: &'b mut Batch<F>,
    ring: Option<&'b mut Vec<Batch<F>>>,
    batch_size: usize,
}

/// The training samples and where validation samples come from: a split must lie in
/// `[0, 1)` and leave samples on both sides.
fn split_validation<'v, F: Float>(
    config: &FitConfig<'v, F>,
    len: usize,
) -> Result<(usize, ValSet<'v, F>)> {
    Ok(match config.validation {
        Validation::None => (len, ValSet::None),
        Validation::Data(v) => (len, ValSet::Other(v)),
        Validation::Split(split) => {
            let bad = |reason| NnError::ValidationSplit {
                split,
                samples: len,
                reason,
            };
            if !(0.0..1.0).contains(&split) {
                return Err(bad("it must lie in [0, 1)"));
            }
            // Keras: the first ⌊n (1 - split)⌋ samples train, the rest validate.
            let at = (len as f64 * (1.0 - split)).floor() as usize;
            match at {
                0 if len > 0 => return Err(bad("it leaves no training samples")),
                at if at == len && split > 0.0 && len > 0 => {
                    return Err(bad("it leaves no validation samples"))
                }
                at if at >= len => (len, ValSet::None),
                at => (at, ValSet::Tail(at, len)),
            }
        }
    })
}

/// Early stopping's state, if configured, once its monitor is known to be computed.
fn make_stopper<F: Float>(
    config: &FitConfig<'_, F>,
    validating: bool,
    has_metric: bool,
) -> Result<Option<Stopper<F>>> {
    let Some(es) = config.early_stopping else {
        return Ok(None);
    };
    let available = match es.monitor {
        super::Monitor::Loss => true,
        super::Monitor::Accuracy => has_metric,
        super::Monitor::ValLoss => validating,
        super::Monitor::ValAccuracy => validating && has_metric,
    };
    if !available {
        return Err(NnError::MonitorUnavailable {
            monitor: es.monitor.name(),
            hint: if validating {
                ": compile the model with a metric"
            } else {
                ": give validation data or a validation split"
            },
        });
    }
    Ok(Some(Stopper::new(es)))
}

fn validate<F: Float, D: Data<F> + ?Sized>(
    net: &mut Network<F>,
    training: &mut Training<F>,
    data: &D,
    start: usize,
    end: usize,
    buffers: &mut Buffers<'_, F>,
) -> Result<super::Evaluation> {
    let m = &training.metrics;
    evaluate_range(
        &net.graph,
        &mut training.eval,
        m,
        net.width,
        data,
        start,
        end,
        buffers.batch,
        buffers.batch_size,
    )
}

/// One epoch of training steps; returns the mean loss and the first metric's accuracy. With a
/// ring of batch buffers, the batches are written ahead on a second thread (see [`prefetch`]);
/// without, each into `batch` just before its step.
fn train_epoch<F: Float, D: Data<F> + Sync + ?Sized>(
    net: &mut Network<F>,
    training: &mut Training<F>,
    data: &D,
    order: &EpochOrder,
    buffers: &mut Buffers<'_, F>,
    epoch: usize,
    progress: &mut Progress,
) -> Result<(f64, Option<f64>)> {
    let batch_size = buffers.batch_size;
    let mut loss_mean = Mean::default();
    let mut accuracy = Mean::default();
    let steps = order.len().div_ceil(batch_size);
    let mut run_step = |s: usize, batch: &Batch<F>, n: usize| -> Result<()> {
        let loss = train_step(net, training, batch, n, epoch, s, &mut accuracy)?;
        loss_mean.update(loss, n as f64);
        let step = s + 1;
        if step % PROGRESS_EVERY == 0 || step == 1 || step == steps {
            progress.step(step, loss_mean.result().unwrap_or(loss), accuracy.result());
        }
        Ok(())
    };
    let ring = match buffers.ring.as_deref_mut() {
        Some(ring) => ring.iter_mut().collect(),
        None => vec![&mut *buffers.batch],
    };
    prefetch::pipelined(
        order.batches(batch_size)?,
        ring,
        |buffer: &mut Batch<F>, indices: &[usize]| buffer.fill(data, indices),
        epoch,
        |s, filled: &Batch<F>, indices| run_step(s, filled, indices.len()),
    )?;
    Ok((loss_mean.result().unwrap_or(f64::NAN), accuracy.result()))
}

/// One training step on the `n` samples in `batch`: run the training plan, check the loss,
/// update every parameter, check the updated values. Returns the loss; adds the first metric's
/// correct count to `accuracy`.
///
/// A non-finite loss or learning rate stops the step before any update. Each parameter is
/// copied into the backup (allocated at compile time) before its update and scanned right
/// after it ([`crate::optim::all_finite`]); a non-finite value puts back every parameter this
/// step changed, so the weights are those after the last finite step.
fn train_step<F: Float>(
    net: &mut Network<F>,
    training: &mut Training<F>,
    batch: &Batch<F>,
    n: usize,
    epoch: usize,
    s: usize,
    accuracy: &mut Mean,
) -> Result<f64> {
    let n_metrics = training.metrics.len();
    let feeds = batch.feeds(n)?;
    let out = training
        .train
        .run(&net.graph, &feeds)
        .map_err(label_error)?;
    let loss = out.scalar(0)?.as_f64();
    if !loss.is_finite() {
        return Err(NnError::NonFiniteLoss {
            epoch,
            step: s + 1,
            value: loss,
        });
    }
    if let Some(m) = training.metrics.first() {
        accuracy.add_sum(out.scalar(1)?.as_f64(), m.count(n, net.width) as f64);
    }
    training.optimizer.begin_step(training.step);
    let lr = training.optimizer.learning_rate();
    if !(lr.is_finite() && lr >= 0.0) {
        return Err(NnError::LearningRate {
            optimizer: training.optimizer.name(),
            epoch,
            step: s + 1,
            value: lr,
        });
    }
    for k in 0..net.params.len() {
        let grad = out.get(1 + n_metrics + k)?;
        let grad = grad
            .as_slice()
            .ok_or_else(|| non_contiguous(&net.graph, net.params[k]))?;
        let (optimizer, backup) = (training.optimizer.as_mut(), &mut training.backup);
        update_parameter(net, optimizer, backup, k, grad).map_err(|stop| match stop {
            NnError::NonFiniteParameter {
                name,
                in_optimizer_state,
                value,
                ..
            } => NnError::NonFiniteParameter {
                name,
                in_optimizer_state,
                epoch,
                step: s + 1,
                value,
            },
            other => other,
        })?;
    }
    training.step += 1;
    Ok(loss)
}

/// Updates parameter `k` from its gradient: saves it and its optimizer state in the backup,
/// lets the optimizer update both, scans the results. A non-finite value undoes the step for
/// parameters `0..=k` (values and state) and is returned as [`NnError::NonFiniteParameter`]
/// (the caller fills in epoch and step).
fn update_parameter<F: Float>(
    net: &mut Network<F>,
    optimizer: &mut dyn Optimizer<F>,
    backup: &mut [Vec<F>],
    k: usize,
    grad: &[F],
) -> Result<()> {
    let p = net.params[k];
    let mut param = net.graph.parameter_mut(p)?;
    let Some(w) = param.as_slice_mut() else {
        drop(param);
        return Err(non_contiguous(&net.graph, p));
    };
    save_step(optimizer, backup, k, w)?;
    optimizer.update(k, w, grad)?;
    let Some(found) = first_non_finite(optimizer, k, w) else {
        return Ok(());
    };
    drop(param);
    undo_step(net, optimizer, backup, k)?;
    Err(NnError::NonFiniteParameter {
        name: net.graph.name(p)?.to_owned(),
        in_optimizer_state: found.in_state,
        epoch: 0,
        step: 0,
        value: found.value,
    })
}

/// A non-finite value found after an update, and whether it is in the optimizer's state.
struct NonFinite {
    value: f64,
    in_state: bool,
}

/// The first value of `w`, then of the optimizer's state for parameter `k`, that is not finite.
fn first_non_finite<F: Float>(
    optimizer: &mut dyn Optimizer<F>,
    k: usize,
    w: &[F],
) -> Option<NonFinite> {
    let first = |values: &[F]| {
        values
            .iter()
            .map(|v| v.as_f64())
            .find(|v| !v.is_finite())
            .unwrap_or(f64::NAN)
    };
    if !all_finite(w) {
        return Some(NonFinite {
            value: first(w),
            in_state: false,
        });
    }
    let mut found = None;
    optimizer.visit_state(k, &mut |state| {
        if found.is_none() && !all_finite(state) {
            found = Some(NonFinite {
                value: first(state),
                in_state: true,
            });
        }
    });
    found
}

/// Copies parameter `k`'s values `w`, then its optimizer state, into its backup (sized at
/// compile time for both).
fn save_step<F: Float>(
    optimizer: &mut dyn Optimizer<F>,
    backup: &mut [Vec<F>],
    k: usize,
    w: &[F],
) -> Result<()> {
    let mut needed = w.len();
    optimizer.visit_state(k, &mut |state| needed = needed.saturating_add(state.len()));
    let actual = backup.get(k).map_or(0, Vec::len);
    let saved = backup.get_mut(k).filter(|_| actual == needed);
    let saved = saved.ok_or(NnError::OptimizerState {
        index: k,
        expected: needed,
        actual,
    })?;
    let (values, mut rest) = saved.split_at_mut(w.len());
    values.copy_from_slice(w);
    optimizer.visit_state(k, &mut |state| {
        // `needed` counted these lengths, so each split fits; `min` keeps that a fact.
        let taken = std::mem::take(&mut rest);
        let (head, tail) = taken.split_at_mut(state.len().min(taken.len()));
        for (b, &v) in head.iter_mut().zip(state.iter()) {
            *b = v;
        }
        rest = tail;
    });
    Ok(())
}

/// Puts parameters `0..=last` and their optimizer state back to what they were before this
/// step.
fn undo_step<F: Float>(
    net: &mut Network<F>,
    optimizer: &mut dyn Optimizer<F>,
    backup: &[Vec<F>],
    last: usize,
) -> Result<()> {
    for (k, (&p, saved)) in net.params.iter().zip(backup).enumerate().take(last + 1) {
        let mut param = net.graph.parameter_mut(p)?;
        let n = param.len();
        let (values, mut rest) = saved.split_at(n.min(saved.len()));
        for (w, &v) in param.iter_mut().zip(values) {
            *w = v;
        }
        optimizer.visit_state(k, &mut |state| {
            let (head, tail) = rest.split_at(state.len().min(rest.len()));
            for (s, &v) in state.iter_mut().zip(head) {
                *s = v;
            }
            rest = tail;
        });
    }
    Ok(())
}

fn non_contiguous<F: Float>(g: &dendrite_graph::Graph<F>, p: dendrite_graph::NodeId) -> NnError {
    NnError::NonContiguous {
        name: g.name(p).map(str::to_owned).unwrap_or_default(),
    }
}

/// Early-stopping state: the best value so far, epochs since, and the best weights.
struct Stopper<F> {
    config: super::EarlyStopping,
    best: Option<f64>,
    wait: usize,
    best_weights: Vec<Vec<F>>,
}

impl<F: Float> Stopper<F> {
    fn new(config: super::EarlyStopping) -> Self {
        Stopper {
            config,
            best: None,
            wait: 0,
            best_weights: Vec::new(),
        }
    }

    /// Records an epoch; returns whether to stop.
    fn observe(&mut self, logs: &EpochLogs, epoch: usize, net: &Network<F>) -> Result<bool> {
        let Some(current) = self.config.monitor.value(logs) else {
            return Ok(false);
        };
        let delta = self.config.min_delta;
        let improved = match self.best {
            None => current.is_finite(),
            Some(best) if self.config.monitor.maximize() => current - delta > best,
            Some(best) => current + delta < best,
        };
        self.wait += 1;
        if improved {
            self.best = Some(current);
            self.wait = 0;
            if self.config.restore_best_weights {
                self.best_weights.resize_with(net.params.len(), Vec::new);
                for (saved, &p) in self.best_weights.iter_mut().zip(&net.params) {
                    let value = net.graph.value(p)?;
                    saved.clear();
                    saved.try_reserve_exact(value.len()).map_err(|_| {
                        NnError::Graph(dendrite_graph::GraphError::AllocationFailed {
                            op: "early stopping",
                            node: "best weights".into(),
                            bytes: value.len().saturating_mul(std::mem::size_of::<F>()),
                        })
                    })?;
                    saved.extend(value.iter().copied());
                }
            }
            return Ok(false);
        }
        Ok(self.wait >= self.config.patience && epoch > 1)
    }

    /// Puts the best epoch's weights back, when asked to.
    fn restore(&self, net: &mut Network<F>) -> Result<()> {
        if !self.config.restore_best_weights || self.best_weights.len() != net.params.len() {
            return Ok(());
        }
        for (saved, &p) in self.best_weights.iter().zip(&net.params) {
            let mut param = net.graph.parameter_mut(p)?;
            for (w, &s) in param.iter_mut().zip(saved) {
                *w = s;
            }
        }
        Ok(())
    }
}
