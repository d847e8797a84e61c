//! Callbacks: code that `fit` calls at the start and end of every epoch and after every
//! batch, and that can stop training ([`Callback`]); and the FitConfig settings for resuming.

use super::config::{Control, EpochLogs, FitConfig};
use super::Sequential;
use crate::error::Result;
use crate::float::Float;

/// What a callback sees after each training step. It is `Copy` and built on the stack: the
/// default path of a step allocates nothing for it.
///
/// ```
/// let logs = dendrite_nn::BatchLogs { epoch: 1, batch: 3, size: 32, loss: 0.5 };
/// assert_eq!(logs.batch, 3);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchLogs {
    /// The epoch, from 1.
    pub epoch: usize,
    /// The batch within the epoch, from 1.
    pub batch: usize,
    /// Samples in the batch.
    pub size: usize,
    /// The batch's mean loss (regularization penalty included).
    pub loss: f64,
}

/// Code run by `fit` around epochs and batches, as Keras' callbacks. Every method has a
/// default that does nothing; returning [`Control::Stop`] ends training: from
/// `on_epoch_begin` before the epoch runs, from `on_batch_end` after that batch (the rest of
/// the epoch is skipped, its logs cover the batches run), from `on_epoch_end` after the epoch.
///
/// ```
/// use dendrite_nn::{BatchLogs, Callback, Control, Dense, FitConfig, Loss, Sequential, Sgd};
///
/// /// Stops after a number of batches.
/// struct StopAfter(usize);
///
/// impl Callback<f32> for StopAfter {
///     fn on_batch_end(&mut self, logs: &BatchLogs) -> Control {
///         match logs.batch >= self.0 {
///             true => Control::Stop,
///             false => Control::Continue,
///         }
///     }
/// }
///
/// let x = ndarray::Array2::<f32>::zeros((64, 2));
/// let y = ndarray::Array2::<f32>::zeros((64, 1));
/// let mut model = Sequential::new();
/// model.add(Dense::new(1).input_dim(2));
/// model.compile(Sgd::new(0.1), Loss::MeanSquaredError, &[])?;
/// let config = FitConfig::default().epochs(5).batch_size(8).verbosity(0).callback(StopAfter(3));
/// let history = model.fit(&(x.view(), y.view()), config)?;
/// assert_eq!((history.epochs(), model.steps_taken()), (1, 3));
/// assert_eq!(history.stopped_epoch, Some(1));
/// # Ok::<(), dendrite_nn::NnError>(())
/// ```
pub trait Callback<F: Float> {
    /// Before epoch `epoch` (from 1) runs; may change the model (its learning rate, say).
    ///
    /// # Errors
    /// Any error of the callback; it ends `fit` with that error.
    fn on_epoch_begin(&mut self, epoch: usize, model: &mut Sequential<F>) -> Result<Control> {
        let _ = (epoch, model);
        Ok(Control::Continue)
    }

    /// After every training step. It runs on the training loop's hot path: keep it cheap and
    /// free of allocation.
    fn on_batch_end(&mut self, logs: &BatchLogs) -> Control {
        let _ = logs;
        Control::Continue
    }

    /// After epoch `logs.epoch` and its validation (the model is lent mutably so that it can
    /// be [saved](Sequential::save)); the model's
    /// [`epochs_trained`](Sequential::epochs_trained) already counts it, so a model saved
    /// here resumes after it.
    ///
    /// # Errors
    /// Any error of the callback (a checkpoint that could not be written); it ends `fit`.
    fn on_epoch_end(&mut self, logs: &EpochLogs, model: &mut Sequential<F>) -> Result<Control> {
        let _ = (logs, model);
        Ok(Control::Continue)
    }
}

impl<'a, F: Float> FitConfig<'a, F> {
    /// Adds a callback (they are called in the order added, after the
    /// [`on_epoch_end`](FitConfig::on_epoch_end) hooks).
    ///
    /// ```
    /// let config: dendrite_nn::FitConfig = dendrite_nn::FitConfig::default().callback(dendrite_nn::TerminateOnNaN);
    /// # let _ = config;
    /// ```
    pub fn callback(mut self, callback: impl Callback<F> + 'a) -> Self {
        self.callbacks.push(Box::new(callback));
        self
    }

    /// The number of epochs already done, as Keras' `initial_epoch`: the fit runs epochs
    /// `initial_epoch + 1 ..= epochs` (so `epochs` is the total), none when `initial_epoch`
    /// is at least `epochs`. With the model's [`Sequential::epochs_trained`] and the same
    /// [`seed`](FitConfig::seed), a resumed fit does exactly what the rest of an uninterrupted
    /// one would have done.
    ///
    /// ```
    /// use dendrite_nn::{Dense, FitConfig, Loss, Sequential, Sgd};
    /// let x = ndarray::Array2::<f32>::ones((16, 2));
    /// let y = ndarray::Array2::<f32>::ones((16, 1));
    /// let data = (x.view(), y.view());
    /// let mut model = Sequential::new();
    /// model.add(Dense::new(1).input_dim(2));
    /// model.compile(Sgd::new(0.1), Loss::MeanSquaredError, &[])?;
    /// model.fit(&data, FitConfig::default().epochs(2).verbosity(0))?;
    /// let rest = FitConfig::default().epochs(4).initial_epoch(model.epochs_trained());
    /// let history = model.fit(&data, rest.verbosity(0))?;
    /// assert_eq!((history.epochs(), model.epochs_trained()), (2, 4));
    /// # Ok::<(), dendrite_nn::NnError>(())
    /// ```
    pub fn initial_epoch(mut self, epochs_done: usize) -> Self {
        self.initial_epoch = epochs_done;
        self
    }
}

/// A borrowed callback is a callback: lend one to `fit` and read what it gathered afterwards.
impl<F: Float, C: Callback<F> + ?Sized> Callback<F> for &mut C {
    fn on_epoch_begin(&mut self, epoch: usize, model: &mut Sequential<F>) -> Result<Control> {
        (**self).on_epoch_begin(epoch, model)
    }
    fn on_batch_end(&mut self, logs: &BatchLogs) -> Control {
        (**self).on_batch_end(logs)
    }
    fn on_epoch_end(&mut self, logs: &EpochLogs, model: &mut Sequential<F>) -> Result<Control> {
        (**self).on_epoch_end(logs, model)
    }
}
