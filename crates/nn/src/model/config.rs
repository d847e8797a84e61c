//! Training configuration, callbacks, and what training reports.

use crate::error::{NnError, Result};
use crate::float::Float;
use crate::input::Data;
use std::fmt;

/// What a per-epoch hook asks of the training loop.
///
/// ```
/// use dendrite_nn::{Control, FitConfig};
/// let config: FitConfig = FitConfig::default()
///     .epochs(100)
///     .on_epoch_end(|logs| if logs.loss < 0.01 { Control::Stop } else { Control::Continue });
/// # let _ = config;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Go on to the next epoch.
    Continue,
    /// Stop after this epoch.
    Stop,
}

/// The quantity early stopping watches. Losses should fall, accuracies rise.
///
/// ```
/// let stop = dendrite_nn::EarlyStopping::new(dendrite_nn::Monitor::ValAccuracy).patience(2);
/// # let _ = stop;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Monitor {
    /// The training loss.
    Loss,
    /// The training accuracy (the first metric).
    Accuracy,
    /// The validation loss (Keras' default).
    ValLoss,
    /// The validation accuracy.
    ValAccuracy,
}

impl Monitor {
    /// The name Keras gives the quantity.
    ///
    /// ```
    /// assert_eq!(dendrite_nn::Monitor::ValLoss.name(), "val_loss");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Monitor::Loss => "loss",
            Monitor::Accuracy => "accuracy",
            Monitor::ValLoss => "val_loss",
            Monitor::ValAccuracy => "val_accuracy",
        }
    }

    /// Whether larger is better.
    pub(crate) fn maximize(self) -> bool {
        matches!(self, Monitor::Accuracy | Monitor::ValAccuracy)
    }

    /// The monitored value in `logs`, if this epoch computed it.
    pub(crate) fn value(self, logs: &EpochLogs) -> Option<f64> {
        match self {
            Monitor::Loss => Some(logs.loss),
            Monitor::Accuracy => logs.accuracy,
            Monitor::ValLoss => logs.val_loss,
            Monitor::ValAccuracy => logs.val_accuracy,
        }
    }
}

/// Early stopping, as Keras' `EarlyStopping` callback: stop when the monitored quantity has
/// not improved by more than `min_delta` for `patience` epochs (and at least one), and with
/// `restore_best_weights`, end training with the weights of the best epoch.
///
/// ```
/// use dendrite_nn::{EarlyStopping, FitConfig, Monitor};
/// let stop = EarlyStopping::new(Monitor::ValLoss).patience(3).restore_best_weights(true);
/// let config: FitConfig = FitConfig::default().epochs(100).validation_split(0.1).early_stopping(stop);
/// # let _ = config;
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EarlyStopping {
    pub(crate) monitor: Monitor,
    pub(crate) patience: usize,
    pub(crate) min_delta: f64,
    pub(crate) restore_best_weights: bool,
}

impl EarlyStopping {
    /// Watches `monitor` with patience 0, no minimum improvement, no restoring.
    ///
    /// ```
    /// let stop = dendrite_nn::EarlyStopping::new(dendrite_nn::Monitor::Loss);
    /// # let _ = stop;
    /// ```
    pub fn new(monitor: Monitor) -> Self {
        EarlyStopping {
            monitor,
            patience: 0,
            min_delta: 0.0,
            restore_best_weights: false,
        }
    }

    /// Epochs without improvement to wait before stopping.
    ///
    /// ```
    /// let stop = dendrite_nn::EarlyStopping::new(dendrite_nn::Monitor::Loss).patience(5);
    /// # let _ = stop;
    /// ```
    pub fn patience(mut self, epochs: usize) -> Self {
        self.patience = epochs;
        self
    }

    /// The smallest change that counts as an improvement (its absolute value, as in Keras).
    /// It must be finite: `fit` refuses NaN or ±∞ with [`NnError::Hyperparameter`] before the
    /// first step (a NaN would make every epoch count as no improvement).
    ///
    /// ```
    /// let stop = dendrite_nn::EarlyStopping::new(dendrite_nn::Monitor::Loss).min_delta(1e-4);
    /// # let _ = stop;
    /// ```
    pub fn min_delta(mut self, delta: f64) -> Self {
        self.min_delta = delta.abs();
        self
    }

    /// `min_delta` finite.
    pub(crate) fn check(&self) -> Result<()> {
        if self.min_delta.is_finite() {
            Ok(())
        } else {
            Err(NnError::Hyperparameter {
                owner: "early stopping",
                name: "min_delta",
                value: self.min_delta,
                reason: "must be finite",
            })
        }
    }

    /// Whether to end training with the weights of the best epoch.
    ///
    /// ```
    /// let stop = dendrite_nn::EarlyStopping::new(dendrite_nn::Monitor::Loss).restore_best_weights(true);
    /// # let _ = stop;
    /// ```
    pub fn restore_best_weights(mut self, restore: bool) -> Self {
        self.restore_best_weights = restore;
        self
    }
}

pub(crate) type Hook<'a> = Box<dyn FnMut(&EpochLogs) -> Control + 'a>;

/// Where validation data come from.
pub(crate) enum Validation<'a, F: Float> {
    None,
    Split(f64),
    Data(&'a dyn Data<F>),
}

/// How `fit` trains: epochs, batch size, shuffling, validation, output and callbacks.
///
/// Defaults are Keras': 1 epoch, batch size 32, shuffled (here with seed 0), no validation,
/// verbosity 1.
///
/// ```
/// use dendrite_nn::{Control, FitConfig};
/// let mut seen = Vec::new();
/// let config: FitConfig = FitConfig::default()
///     .epochs(5)
///     .batch_size(64)
///     .seed(7)
///     .validation_split(0.1)
///     .verbosity(2)
///     .on_epoch_end(|logs| {
///         seen.push(logs.loss);
///         Control::Continue
///     });
/// assert_eq!(config.batch_size_value(), 64);
/// ```
pub struct FitConfig<'a, F: Float = f32> {
    pub(crate) epochs: usize,
    pub(crate) batch_size: usize,
    pub(crate) shuffle: bool,
    pub(crate) seed: u64,
    pub(crate) validation: Validation<'a, F>,
    pub(crate) verbosity: u8,
    pub(crate) early_stopping: Option<EarlyStopping>,
    pub(crate) hooks: Vec<Hook<'a>>,
    /// The callbacks, called in the order added (see [`FitConfig::callback`]).
    pub(crate) callbacks: Vec<Box<dyn super::Callback<F> + 'a>>,
    /// Epochs already done: the fit runs epochs `initial_epoch + 1 ..= epochs`.
    pub(crate) initial_epoch: usize,
    /// 0: the default (see [`FitConfig::threads`]).
    pub(crate) threads: usize,
}

impl<F: Float> fmt::Debug for FitConfig<'_, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let validation = match self.validation {
            Validation::None => "none".to_owned(),
            Validation::Split(s) => format!("split {s}"),
            Validation::Data(d) => format!("{} samples", d.len()),
        };
        f.debug_struct("FitConfig")
            .field("epochs", &self.epochs)
            .field("batch_size", &self.batch_size)
            .field("shuffle", &self.shuffle)
            .field("seed", &self.seed)
            .field("validation", &validation)
            .field("verbosity", &self.verbosity)
            .field("early_stopping", &self.early_stopping)
            .field("hooks", &self.hooks.len())
            .field("callbacks", &self.callbacks.len())
            .field("initial_epoch", &self.initial_epoch)
            .field("threads", &self.threads_value())
            .finish()
    }
}

impl<F: Float> Default for FitConfig<'_, F> {
    fn default() -> Self {
        FitConfig {
            epochs: 1,
            batch_size: 32,
            shuffle: true,
            seed: 0,
            validation: Validation::None,
            verbosity: 1,
            early_stopping: None,
            hooks: Vec::new(),
            callbacks: Vec::new(),
            initial_epoch: 0,
            threads: 0,
        }
    }
}

impl<'a, F: Float> FitConfig<'a, F> {
    /// Number of passes over the training data (at least 1).
    ///
    /// ```
    /// let config: dendrite_nn::FitConfig = dendrite_nn::FitConfig::default().epochs(5);
    /// # let _ = config;
    /// ```
    pub fn epochs(mut self, epochs: usize) -> Self {
        self.epochs = epochs;
        self
    }

    /// Samples per gradient step (at least 1; the last batch of an epoch may be smaller).
    ///
    /// ```
    /// let config: dendrite_nn::FitConfig = dendrite_nn::FitConfig::default().batch_size(128);
    /// # let _ = config;
    /// ```
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size;
        self
    }

    /// The batch size set.
    ///
    /// ```
    /// let config: dendrite_nn::FitConfig = dendrite_nn::FitConfig::default();
    /// assert_eq!(config.batch_size_value(), 32);
    /// ```
    pub fn batch_size_value(&self) -> usize {
        self.batch_size
    }

    /// Threads `fit` may use: with 2 or more, a second thread writes the next batch (gathering
    /// its images and converting them to floats) while the current one trains, and the
    /// large kernels of a step (convolutions, and elementwise and pooling steps over large
    /// tensors) share their work between that many threads (see
    /// [`Plan::set_threads`](dendrite_graph::Plan::set_threads)); with 1, everything runs on
    /// the calling thread. Only where the work happens changes: the same seed gives
    /// bit-identical losses and weights at any thread count. 0 (the default) means
    /// `DENDRITE_THREADS` from the environment if it is set, else 2 when the machine has two or
    /// more cores.
    ///
    /// ```
    /// let config: dendrite_nn::FitConfig = dendrite_nn::FitConfig::default().threads(1);
    /// assert_eq!(config.threads_value(), 1);
    /// ```
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }

    /// The thread count `fit` will use (the default resolved, see [`FitConfig::threads`]).
    ///
    /// ```
    /// assert!(dendrite_nn::FitConfig::<f32>::default().threads_value() >= 1);
    /// ```
    pub fn threads_value(&self) -> usize {
        match self.threads {
            0 => default_threads(),
            n => n,
        }
    }

    /// Whether to visit the training samples in a new random order each epoch (default yes).
    ///
    /// ```
    /// let config: dendrite_nn::FitConfig = dendrite_nn::FitConfig::default().shuffle(false);
    /// # let _ = config;
    /// ```
    pub fn shuffle(mut self, shuffle: bool) -> Self {
        self.shuffle = shuffle;
        self
    }

    /// Seed of the shuffling: epoch `e`'s order depends only on `(seed, e)`.
    ///
    /// ```
    /// let config: dendrite_nn::FitConfig = dendrite_nn::FitConfig::default().seed(42);
    /// # let _ = config;
    /// ```
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Holds out the last `fraction` of the training data (before shuffling, as Keras does)
    /// for validation (replaces validation data set before).
    ///
    /// ```
    /// let config: dendrite_nn::FitConfig = dendrite_nn::FitConfig::default().validation_split(0.1);
    /// # let _ = config;
    /// ```
    pub fn validation_split(mut self, fraction: f64) -> Self {
        self.validation = Validation::Split(fraction);
        self
    }

    /// Validates on these data at the end of each epoch (replaces a validation split set
    /// before).
    ///
    /// ```
    /// let (x, y) = (ndarray::Array2::<f32>::zeros((4, 2)), ndarray::Array1::<f32>::zeros(4));
    /// let valid = (x.view(), y.view());
    /// let config: dendrite_nn::FitConfig = dendrite_nn::FitConfig::default().validation_data(&valid);
    /// # let _ = config;
    /// ```
    pub fn validation_data(mut self, data: &'a dyn Data<F>) -> Self {
        self.validation = Validation::Data(data);
        self
    }

    /// 0: silent; 1: a progress bar per epoch when standard output is a terminal, otherwise
    /// one line per epoch; 2: one line per epoch.
    ///
    /// ```
    /// let config: dendrite_nn::FitConfig = dendrite_nn::FitConfig::default().verbosity(2);
    /// # let _ = config;
    /// ```
    pub fn verbosity(mut self, verbosity: u8) -> Self {
        self.verbosity = verbosity;
        self
    }

    /// Stops early (see [`EarlyStopping`]).
    ///
    /// ```
    /// let config: dendrite_nn::FitConfig = dendrite_nn::FitConfig::default().early_stopping(dendrite_nn::EarlyStopping::new(dendrite_nn::Monitor::Loss));
    /// # let _ = config;
    /// ```
    pub fn early_stopping(mut self, early_stopping: EarlyStopping) -> Self {
        self.early_stopping = Some(early_stopping);
        self
    }

    /// Calls `hook` after every epoch with its logs; returning [`Control::Stop`] ends training.
    ///
    /// ```
    /// let config: dendrite_nn::FitConfig = dendrite_nn::FitConfig::default().on_epoch_end(|logs| { println!("{}", logs.loss); dendrite_nn::Control::Continue });
    /// # let _ = config;
    /// ```
    pub fn on_epoch_end(mut self, hook: impl FnMut(&EpochLogs) -> Control + 'a) -> Self {
        self.hooks.push(Box::new(hook));
        self
    }

    /// Checks the configuration before `fit` reads any data: epochs and batch size at least 1,
    /// early stopping's `min_delta` finite, a validation split in `[0, 1)` that leaves samples
    /// on both sides of `samples`, and (once the model is compiled with `metrics` metrics) an
    /// early-stopping monitor that the fit computes.
    pub(crate) fn check(&self, samples: usize, metrics: Option<usize>) -> Result<()> {
        if self.epochs == 0 {
            return Err(NnError::ZeroEpochs);
        }
        if self.batch_size == 0 {
            return Err(NnError::ZeroBatchSize);
        }
        if let Some(es) = &self.early_stopping {
            es.check()?;
        }
        let validating = self.check_split(samples)?;
        match (self.early_stopping, metrics) {
            (Some(es), Some(metrics)) => check_monitor(es.monitor, validating, metrics > 0),
            _ => Ok(()),
        }
    }

    /// A validation split must lie in `[0, 1)` and leave samples on both sides; returns
    /// whether the fit validates.
    fn check_split(&self, samples: usize) -> Result<bool> {
        let split = match self.validation {
            Validation::None => return Ok(false),
            Validation::Data(_) => return Ok(true),
            Validation::Split(split) => split,
        };
        let bad = |reason| NnError::ValidationSplit {
            split,
            samples,
            reason,
        };
        if !(0.0..1.0).contains(&split) {
            return Err(bad("it must lie in [0, 1)"));
        }
        match split_point(split, samples) {
            0 if samples > 0 => Err(bad("it leaves no training samples")),
            at if at == samples && split > 0.0 && samples > 0 => {
                Err(bad("it leaves no validation samples"))
            }
            at => Ok(at < samples),
        }
    }
}

/// Keras' split: the first `⌊n (1 - split)⌋` samples train, the rest validate.
pub(crate) fn split_point(split: f64, samples: usize) -> usize {
    (samples as f64 * (1.0 - split)).floor() as usize
}

/// Early stopping's monitor must be computed by the fit.
fn check_monitor(monitor: Monitor, validating: bool, has_metric: bool) -> Result<()> {
    let available = match monitor {
        Monitor::Loss => true,
        Monitor::Accuracy => has_metric,
        Monitor::ValLoss => validating,
        Monitor::ValAccuracy => validating && has_metric,
    };
    if available {
        return Ok(());
    }
    Err(NnError::MonitorUnavailable {
        monitor: monitor.name(),
        hint: if validating {
            ": compile the model with a metric"
        } else {
            ": give validation data or a validation split"
        },
    })
}

/// One epoch's results, handed to hooks and recorded in the [`History`].
///
/// ```
/// let mut losses = Vec::new();
/// let config: dendrite_nn::FitConfig = dendrite_nn::FitConfig::default().on_epoch_end(|logs| {
///     losses.push((logs.epoch, logs.loss, logs.seconds));
///     dendrite_nn::Control::Continue
/// });
/// # let _ = config;
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct EpochLogs {
    /// The epoch number, from 1.
    pub epoch: usize,
    /// Mean training loss over the epoch's samples, regularization penalty included.
    pub loss: f64,
    /// Training value of the first metric, if the model has a metric.
    pub accuracy: Option<f64>,
    /// Validation loss, when validating.
    pub val_loss: Option<f64>,
    /// Validation value of the first metric, when validating with a metric.
    pub val_accuracy: Option<f64>,
    /// Seconds the epoch took, validation included.
    pub seconds: f64,
    /// Every metric's training value, by name, in the order given to `compile`.
    pub metrics: Vec<(&'static str, f64)>,
    /// Every metric's validation value, by name (empty when not validating).
    pub val_metrics: Vec<(&'static str, f64)>,
    /// The mean regularization penalty over the epoch's steps (included in `loss`), when the
    /// model has regularizers.
    pub regularization: Option<f64>,
}

/// What `fit` reports: one entry per epoch run.
///
/// `accuracy` and the validation vectors are empty when not computed. `metrics` holds every
/// metric under its name (`val_metrics` on the validation data), `accuracy` the first one, as
/// before there were several.
///
/// ```
/// use dendrite_nn::{Activation, Adam, Dense, FitConfig, Loss, Metric, Regularizer, Sequential};
/// let (x, y) = (ndarray::array![[0.0_f32], [1.0], [2.0], [3.0]], ndarray::array![[0.0_f32], [2.0], [4.0], [6.0]]);
/// let mut model = Sequential::new();
/// model.add(Dense::new(1).input_dim(1).kernel_regularizer(Regularizer::l2(1e-3)));
/// model.compile(Adam::new(0.1), Loss::MeanSquaredError, &[Metric::MeanAbsoluteError, Metric::RootMeanSquaredError])?;
/// let data = (x.view(), y.view());
/// let history = model.fit(&data, FitConfig::default().epochs(3).validation_data(&data).verbosity(0))?;
/// assert_eq!(history.epochs(), 3);
/// assert_eq!(history.metric("root_mean_squared_error").map(<[f64]>::len), Some(3));
/// assert_eq!(history.metric("val_mean_absolute_error").map(<[f64]>::len), Some(3));
/// assert!(history.regularization.iter().all(|&p| p > 0.0));
/// assert!(history.best_epoch.is_some()); // of val_loss here
/// # Ok::<(), dendrite_nn::NnError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    /// Mean training loss per epoch (regularization penalty included, as in Keras).
    pub loss: Vec<f64>,
    /// Training value of the first metric per epoch.
    pub accuracy: Vec<f64>,
    /// Validation loss per epoch.
    pub val_loss: Vec<f64>,
    /// Validation value of the first metric per epoch.
    pub val_accuracy: Vec<f64>,
    /// Seconds per epoch.
    pub seconds: Vec<f64>,
    /// Every metric's training values per epoch, by name, in the order given to `compile`.
    pub metrics: Vec<(&'static str, Vec<f64>)>,
    /// Every metric's validation values per epoch, by name.
    pub val_metrics: Vec<(&'static str, Vec<f64>)>,
    /// The mean regularization penalty per epoch (part of `loss`); empty without regularizers.
    pub regularization: Vec<f64>,
    /// The epoch (from 1) after which early stopping or a hook ended training, if one did.
    pub stopped_epoch: Option<usize>,
    /// The epoch (from 1) with the best value of the monitored quantity: early stopping's
    /// monitor when there is one, else the validation loss when validating, else the loss.
    /// The first such epoch on ties; `None` when no epoch has a finite value.
    pub best_epoch: Option<usize>,
}

impl History {
    /// Number of epochs run.
    ///
    /// ```
    /// assert_eq!(dendrite_nn::History::default().epochs(), 0);
    /// ```
    pub fn epochs(&self) -> usize {
        self.loss.len()
    }

    /// The per-epoch values recorded under `name`, as Keras' `history.history[name]`: `loss`,
    /// `val_loss`, `regularization`, a metric's name, or `val_` and a metric's name.
    pub fn metric(&self, name: &str) -> Option<&[f64]> {
        fn find<'h>(series: &'h [(&'static str, Vec<f64>)], name: &str) -> Option<&'h [f64]> {
            let found = series.iter().find(|(n, _)| *n == name);
            found.map(|(_, v)| v.as_slice())
        }
        match name {
            "loss" => Some(&self.loss),
            "val_loss" => Some(&self.val_loss),
            "regularization" => Some(&self.regularization),
            _ => match name.strip_prefix("val_") {
                Some(metric) => {
                    find(&self.val_metrics, metric).or_else(|| find(&self.metrics, name))
                }
                None => find(&self.metrics, name),
            },
        }
    }

    pub(crate) fn record(&mut self, logs: &EpochLogs) {
        self.loss.push(logs.loss);
        self.seconds.push(logs.seconds);
        if let Some(a) = logs.accuracy {
            self.accuracy.push(a);
        }
        if let Some(v) = logs.val_loss {
            self.val_loss.push(v);
        }
        if let Some(v) = logs.val_accuracy {
            self.val_accuracy.push(v);
        }
        if let Some(p) = logs.regularization {
            self.regularization.push(p);
        }
        append(&mut self.metrics, &logs.metrics);
        append(&mut self.val_metrics, &logs.val_metrics);
    }

    /// The first epoch (from 1) with the best finite value of `monitor`.
    pub(crate) fn best(&self, monitor: Monitor) -> Option<usize> {
        let values = match monitor {
            Monitor::Loss => &self.loss,
            Monitor::Accuracy => &self.accuracy,
            Monitor::ValLoss => &self.val_loss,
            Monitor::ValAccuracy => &self.val_accuracy,
        };
        let better = |a: f64, b: f64| if monitor.maximize() { a > b } else { a < b };
        let mut best: Option<(usize, f64)> = None;
        for (i, &v) in values.iter().enumerate() {
            if v.is_finite() && best.is_none_or(|(_, b)| better(v, b)) {
                best = Some((i + 1, v));
            }
        }
        best.map(|(epoch, _)| epoch)
    }
}

/// Appends one epoch's value of each named series.
fn append(series: &mut Vec<(&'static str, Vec<f64>)>, values: &[(&'static str, f64)]) {
    for (i, &(name, value)) in values.iter().enumerate() {
        match series.get_mut(i) {
            Some((n, v)) if *n == name => v.push(value),
            _ => series.insert(i, (name, vec![value])),
        }
    }
}

/// What `evaluate` reports.
///
/// ```
/// use dendrite_nn::{Dense, Loss, Metric, Sequential, Sgd};
/// let (x, y) = (ndarray::array![[0.0_f32], [1.0]], ndarray::array![[0.0_f32], [1.0]]);
/// let mut model = Sequential::new();
/// model.add(Dense::new(1).input_dim(1));
/// model.compile(Sgd::new(0.1), Loss::MeanSquaredError, &[Metric::BinaryAccuracy, Metric::MeanSquaredError])?;
/// let result = model.evaluate(&(x.view(), y.view()), 2)?;
/// assert_eq!(result.samples, 2);
/// let mse = result.metric("mean_squared_error").ok_or(dendrite_nn::NnError::NoTargets)?;
/// assert!((mse - result.loss).abs() < 1e-6); // no regularizer: the loss is the MSE
/// # Ok::<(), dendrite_nn::NnError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Mean loss over the samples (regularization penalty included).
    pub loss: f64,
    /// The first metric's value, if the model has a metric.
    pub accuracy: Option<f64>,
    /// Every metric's value, by name, in the order given to `compile`.
    pub metrics: Vec<(&'static str, f64)>,
    /// The regularization penalty (included in `loss`), when the model has regularizers.
    pub regularization: Option<f64>,
    /// Number of samples evaluated.
    pub samples: usize,
}

impl Evaluation {
    /// The value of the metric named `name`.
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.metrics
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(_, v)| v)
    }
}

/// The thread count when none is given: `DENDRITE_THREADS` if it is set to a positive number,
/// else 2 on a machine of two or more cores, else 1. `fit` uses it unless
/// [`FitConfig::threads`] says otherwise; `predict` and `evaluate` always use it.
pub(crate) fn default_threads() -> usize {
    std::env::var("DENDRITE_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get().min(2)))
}
