//! The training loop.

use super::callback::{BatchLogs, Callback};
use super::config::{Control, EpochLogs, Evaluation, FitConfig, History, Monitor, Validation};
use super::prefetch;
use super::progress::Progress;
use super::run::{check_data, evaluate_range, Batch, Tally};
use super::stopping::Stopper;
use super::update::{clip_gradients, non_contiguous, update_parameter};
use super::{Network, Sequential, Training};
use crate::data::EpochOrder;
use crate::error::{label_error, NnError, Result};
use crate::float::Float;
use crate::input::Data;
use dendrite_graph::Outputs;
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
        let mut run = self.prepare_fit(data, &config)?;
        let mut history = History::default();
        for epoch in config.initial_epoch.saturating_add(1)..=config.epochs {
            if self.epoch_begins(&mut config, epoch)? {
                history.stopped_epoch = Some(epoch - 1);
                break;
            }
            let logs = self.fit_epoch(data, &mut config, &mut run, epoch)?;
            history.record(&logs);
            if let Some((_, training)) = self.net.as_ref().zip(self.training.as_mut()) {
                training.position = super::Position {
                    epoch,
                    shuffle_seed: config.seed,
                };
            }
            if self.should_stop(&mut config, &mut run, &logs, epoch)? {
                history.stopped_epoch = Some(epoch);
                break;
            }
        }
        if let (Some(s), Some(net)) = (run.stopper.as_ref(), self.net.as_mut()) {
            s.restore(net)?;
        }
        let monitor = config.early_stopping.map(|es| es.monitor);
        history.best_epoch = history.best(monitor.unwrap_or(match run.epochs.val {
            ValSet::None => Monitor::Loss,
            _ => Monitor::ValLoss,
        }));
        Ok(history)
    }

    /// Everything before the first step: the checks ([`Sequential::check_fit`]), early
    /// stopping's state, the batch buffers (and the prefetch ring with two threads), the sample
    /// order and the progress display.
    fn prepare_fit<'v, D: Data<F> + ?Sized>(
        &mut self,
        data: &D,
        config: &FitConfig<'v, F>,
    ) -> Result<FitRun<'v, F>> {
        let (train_len, val) = self.check_fit(data, config)?;
        let stopper = config.early_stopping.map(Stopper::new);
        let expect = self.expect()?;
        let batch_size = config.batch_size.min(train_len);
        let batch = Batch::new(batch_size, &expect.sample, expect.targets)?;
        // The ring of buffers a second thread writes batches into, ahead of the steps.
        let ring = match config.threads_value() >= 2 {
            true => Some(
                (0..prefetch::DEPTH)
                    .map(|_| Batch::new(batch_size, &expect.sample, expect.targets))
                    .collect::<Result<Vec<_>>>()?,
            ),
            false => None,
        };
        let (_, training) = self.parts_for_fit()?;
        training.train.set_threads(config.threads_value());
        let first_metric = training.names.first().copied().unwrap_or("accuracy");
        let epochs = Epochs {
            order: EpochOrder::new(train_len, config.seed)?,
            val,
            progress: Progress::new(config.verbosity, config.epochs, first_metric),
        };
        Ok(FitRun {
            epochs,
            batch,
            ring,
            batch_size,
            stopper,
            stopped_in_epoch: false,
        })
    }

    /// Calls the callbacks' `on_epoch_begin`; returns whether one of them stops training.
    fn epoch_begins(&mut self, config: &mut FitConfig<'_, F>, epoch: usize) -> Result<bool> {
        let mut stop = false;
        for callback in config.callbacks.iter_mut() {
            stop |= callback.on_epoch_begin(epoch, self)? == super::Control::Stop;
        }
        Ok(stop)
    }

    /// One epoch: this epoch's sample order, then its steps and validation.
    fn fit_epoch<D: Data<F> + Sync + ?Sized>(
        &mut self,
        data: &D,
        config: &mut FitConfig<'_, F>,
        run: &mut FitRun<'_, F>,
        epoch: usize,
    ) -> Result<EpochLogs> {
        if config.shuffle {
            run.epochs.order.shuffle(epoch as u64 - 1);
        } else {
            run.epochs.order.sequential();
        }
        let (net, training) = self.parts_for_fit()?;
        let mut buffers = Buffers {
            batch: &mut run.batch,
            ring: run.ring.as_mut(),
            batch_size: run.batch_size,
        };
        let mut callbacks = Callbacks {
            list: &mut config.callbacks,
            stopped: false,
        };
        let logs = run_epoch(
            net,
            training,
            data,
            &mut run.epochs,
            &mut buffers,
            &mut callbacks,
            epoch,
        );
        run.stopped_in_epoch = callbacks.stopped;
        logs
    }

    /// Whether a hook or early stopping ends training after this epoch.
    fn should_stop(
        &mut self,
        config: &mut FitConfig<'_, F>,
        run: &mut FitRun<'_, F>,
        logs: &EpochLogs,
        epoch: usize,
    ) -> Result<bool> {
        let mut stop = std::mem::take(&mut run.stopped_in_epoch);
        for hook in config.hooks.iter_mut() {
            stop |= hook(logs) == super::Control::Stop;
        }
        for callback in config.callbacks.iter_mut() {
            stop |= callback.on_epoch_end(logs, self)? == super::Control::Stop;
        }
        if let Some(s) = run.stopper.as_mut() {
            let (net, _) = self.parts_for_fit()?;
            stop |= s.observe(logs, epoch, net)?;
        }
        Ok(stop)
    }

    /// Everything `fit` checks before the first step, in order: a compiled model, the
    /// configuration ([`FitConfig::check`], against the number of samples and metrics), then
    /// the training data and any validation data (shape, targets, finite values, the loss's
    /// target range). Returns the number of training samples and where validation samples
    /// come from.
    fn check_fit<'v, D: Data<F> + ?Sized>(
        &mut self,
        data: &D,
        config: &FitConfig<'v, F>,
    ) -> Result<(usize, ValSet<'v, F>)> {
        let metrics = self.training.as_ref().map(|t| t.metrics.len());
        config.check(data.len(), metrics)?;
        self.parts_for_fit()?;
        let expect = self.expect()?;
        let (train_len, val) = split_validation(config, data.len());
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

/// The state of one fit across its epochs.
struct FitRun<'v, F: Float> {
    epochs: Epochs<'v, F>,
    batch: Batch<F>,
    ring: Option<Vec<Batch<F>>>,
    batch_size: usize,
    stopper: Option<Stopper<F>>,
    /// Whether a callback's `on_batch_end` stopped the last epoch.
    stopped_in_epoch: bool,
}

/// The callbacks as the steps of an epoch see them, and whether one asked to stop.
struct Callbacks<'c, 'a, F: Float> {
    list: &'c mut Vec<Box<dyn Callback<F> + 'a>>,
    stopped: bool,
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
    callbacks: &mut Callbacks<'_, '_, F>,
    epoch: usize,
) -> Result<EpochLogs> {
    let started = Instant::now();
    let progress = &mut epochs.progress;
    progress.start_epoch(epoch, epochs.order.len().div_ceil(buffers.batch_size));
    let trained = train_epoch(net, training, data, epochs, buffers, callbacks, epoch);
    let progress = &mut epochs.progress;
    let trained = trained.inspect_err(|_| progress.abandon())?;
    let (batch, batch_size) = (&mut *buffers.batch, buffers.batch_size);
    let validation = match epochs.val {
        ValSet::None => None,
        ValSet::Tail(start, end) => Some(evaluate_range(
            net,
            training,
            data,
            (start, end),
            batch,
            batch_size,
        )?),
        ValSet::Other(v) => Some(evaluate_range(
            net,
            training,
            v,
            (0, v.len()),
            batch,
            batch_size,
        )?),
    };
    let logs = EpochLogs {
        epoch,
        loss: trained.loss,
        accuracy: trained.accuracy,
        val_loss: validation.as_ref().map(|v| v.loss),
        val_accuracy: validation.as_ref().and_then(|v| v.accuracy),
        seconds: started.elapsed().as_secs_f64(),
        metrics: trained.metrics,
        val_metrics: validation.map(|v| v.metrics).unwrap_or_default(),
        regularization: trained.regularization,
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

/// The training samples and where validation samples come from (the split was checked by
/// [`FitConfig::check`]). Keras: the first `⌊n (1 - split)⌋` samples train, the rest validate.
fn split_validation<'v, F: Float>(config: &FitConfig<'v, F>, len: usize) -> (usize, ValSet<'v, F>) {
    match config.validation {
        Validation::None => (len, ValSet::None),
        Validation::Data(v) => (len, ValSet::Other(v)),
        Validation::Split(split) => match super::config::split_point(split, len) {
            at if at >= len => (len, ValSet::None),
            at => (at, ValSet::Tail(at, len)),
        },
    }
}

/// One epoch of training steps; returns the means of the loss, the penalty and every metric.
/// With a ring of batch buffers, the batches are written ahead on a second thread (see
/// [`prefetch`]); without, each into `batch` just before its step.
fn train_epoch<F: Float, D: Data<F> + Sync + ?Sized>(
    net: &mut Network<F>,
    training: &mut Training<F>,
    data: &D,
    epochs: &mut Epochs<'_, F>,
    buffers: &mut Buffers<'_, F>,
    callbacks: &mut Callbacks<'_, '_, F>,
    epoch: usize,
) -> Result<Evaluation> {
    let (order, progress) = (&epochs.order, &mut epochs.progress);
    let batch_size = buffers.batch_size;
    let mut tally = Tally::new(training.metrics.len());
    let steps = order.len().div_ceil(batch_size);
    let mut run_step = |s: usize, batch: &Batch<F>, n: usize| -> Result<()> {
        if callbacks.stopped {
            // A callback stopped training after an earlier batch: the rest is skipped.
            return Ok(());
        }
        let loss = train_step(net, training, batch, n, epoch, s, &mut tally)?;
        tally.loss.update(loss, n as f64);
        let step = s + 1;
        let logs = BatchLogs {
            epoch,
            batch: step,
            size: n,
            loss,
        };
        for callback in callbacks.list.iter_mut() {
            callbacks.stopped |= callback.on_batch_end(&logs) == Control::Stop;
        }
        if step.is_multiple_of(PROGRESS_EVERY) || step == 1 || step == steps {
            let first = tally.first(&training.metrics);
            progress.step(step, tally.loss.result().unwrap_or(loss), first);
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
    Ok(tally.evaluation(training, order.len()))
}

/// One training step on the `n` samples in `batch`: run the training plan, check the loss,
/// clip the gradients if asked, update every parameter, check the updated values. Returns the
/// loss; adds the metrics' sums and the penalty to `tally`.
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
    tally: &mut Tally,
) -> Result<f64> {
    let step = super::run::step_value::<F>(training.step)?;
    let feeds = batch.feeds(n, &step)?;
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
    tally.add(&out, training.fetched, &training.metrics, n, net.width)?;
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
    let grads_at = training.fetched.grads;
    if training.clipping.is_active() {
        let clipped = &mut training.clipped;
        clip_gradients(net, training.clipping, clipped, &out, grads_at)?;
    }
    for k in 0..net.params.len() {
        let fetched = out.get(grads_at + k)?;
        let grad = match training.clipped.get(k) {
            Some(clipped) => clipped.as_slice(),
            None => fetched
                .as_slice()
                .ok_or_else(|| non_contiguous(&net.graph, net.params[k]))?,
        };
        let (optimizer, backup) = (training.optimizer.as_mut(), &mut training.backup);
        update_parameter(net, optimizer, backup, k, grad).map_err(|e| at_step(e, epoch, s))?;
    }
    write_states(net, &out, training.fetched.state_updates).map_err(|e| at_step(e, epoch, s))?;
    training.step += 1;
    Ok(loss)
}

/// Puts the epoch and the step (`s` counts from 0) into a non-finite-value error.
fn at_step(err: NnError, epoch: usize, s: usize) -> NnError {
    match err {
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
    }
}

/// Writes each state's new value (fetched from `at` on) into the state, after checking that
/// every value is finite: a non-finite one leaves all the states as they were.
fn write_states<F: Float>(net: &mut Network<F>, out: &Outputs<'_, F>, at: usize) -> Result<()> {
    for k in 0..net.state_updates.len() {
        let (state, _) = net.state_updates[k];
        if let Some(&bad) = out.get(at + k)?.iter().find(|v| !v.as_f64().is_finite()) {
            return Err(NnError::NonFiniteParameter {
                name: net.graph.name(state)?.to_owned(),
                in_optimizer_state: false,
                epoch: 0,
                step: 0,
                value: bad.as_f64(),
            });
        }
    }
    for k in 0..net.state_updates.len() {
        let (state, _) = net.state_updates[k];
        let value = out.get(at + k)?;
        let mut target = net.graph.parameter_mut(state)?;
        target.zip_mut_with(&value, |t, &v| *t = v);
    }
    Ok(())
}
