//! The built-in callbacks: [`ModelCheckpoint`], [`CsvLogger`], [`LearningRateScheduler`] and
//! [`TerminateOnNaN`], as Keras has them.

use super::callback::{BatchLogs, Callback};
use super::config::{Control, EpochLogs, Monitor};
use super::Sequential;
use crate::error::{NnError, Result};
use crate::float::Float;
use crate::optim::Schedule;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Saves the whole model ([`Sequential::save`]) at the end of epochs, as Keras'
/// `ModelCheckpoint`: every epoch, or with `save_best_only` only when `monitor` improved
/// (an epoch that did not compute it saves nothing). `{epoch}` in the path pattern becomes
/// the epoch number, `{epoch:03}` the number padded with zeros to 3 digits.
///
/// ```
/// use dendrite_nn::{ModelCheckpoint, Monitor};
/// let every = ModelCheckpoint::new("model-{epoch:02}.safetensors", Monitor::Loss, false);
/// assert_eq!(every.path_for(7), std::path::PathBuf::from("model-07.safetensors"));
/// let best = ModelCheckpoint::new("best.safetensors", Monitor::ValAccuracy, true);
/// assert_eq!(best.path_for(7), std::path::PathBuf::from("best.safetensors"));
/// ```
#[derive(Debug, Clone)]
pub struct ModelCheckpoint {
    pattern: String,
    monitor: Monitor,
    save_best_only: bool,
    best: Option<f64>,
}

impl ModelCheckpoint {
    /// Saves to `pattern` (see above) watching `monitor`.
    pub fn new(pattern: impl Into<String>, monitor: Monitor, save_best_only: bool) -> Self {
        ModelCheckpoint {
            pattern: pattern.into(),
            monitor,
            save_best_only,
            best: None,
        }
    }

    /// The file the model is saved to after epoch `epoch`.
    pub fn path_for(&self, epoch: usize) -> PathBuf {
        let mut out = String::with_capacity(self.pattern.len());
        let mut rest = self.pattern.as_str();
        while let Some(start) = rest.find("{epoch") {
            out.push_str(&rest[..start]);
            let after = &rest[start + "{epoch".len()..];
            let Some(end) = after.find('}') else {
                out.push_str(&rest[start..]);
                rest = "";
                break;
            };
            match after[..end].strip_prefix(":0").map(str::parse::<usize>) {
                Some(Ok(width)) => out.push_str(&format!("{epoch:0width$}")),
                _ if end == 0 => out.push_str(&epoch.to_string()),
                _ => out.push_str(&rest[start..start + "{epoch".len() + end + 1]),
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        PathBuf::from(out)
    }

    /// Whether `logs` improve on the best value so far (and record it when they do).
    fn improved(&mut self, logs: &EpochLogs) -> bool {
        let Some(value) = self.monitor.value(logs).filter(|v| v.is_finite()) else {
            return false;
        };
        let better = match self.best {
            None => true,
            Some(best) if self.monitor.maximize() => value > best,
            Some(best) => value < best,
        };
        if better {
            self.best = Some(value);
        }
        better
    }
}

impl<F: Float> Callback<F> for ModelCheckpoint {
    fn on_epoch_end(&mut self, logs: &EpochLogs, model: &mut Sequential<F>) -> Result<Control> {
        if !self.save_best_only || self.improved(logs) {
            model.save(self.path_for(logs.epoch))?;
        }
        Ok(Control::Continue)
    }
}

/// Writes one CSV line per epoch, as Keras' `CSVLogger`: `epoch,loss`, each metric, then
/// `val_loss` and each validation metric when validating. The file is created (truncated) at
/// the first epoch's end, or appended to with [`CsvLogger::append`] (the header is then
/// written only into an empty file, so a resumed run continues the same log). Each line is
/// flushed as it is written.
///
/// ```
/// let logger = dendrite_nn::CsvLogger::new("training.csv").append(true);
/// # let _ = logger;
/// ```
#[derive(Debug)]
pub struct CsvLogger {
    path: PathBuf,
    append: bool,
    file: Option<BufWriter<File>>,
}

impl CsvLogger {
    /// Logs to `path`.
    pub fn new(path: impl AsRef<Path>) -> Self {
        CsvLogger {
            path: path.as_ref().to_path_buf(),
            append: false,
            file: None,
        }
    }

    /// Appends to an existing file instead of replacing it.
    pub fn append(mut self, append: bool) -> Self {
        self.append = append;
        self
    }

    /// Opens the file and writes the header line (unless appending to a non-empty file).
    fn open(&mut self, logs: &EpochLogs) -> std::io::Result<BufWriter<File>> {
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .append(self.append)
            .truncate(!self.append)
            .open(&self.path)?;
        let empty = file.metadata()?.len() == 0;
        let mut out = BufWriter::new(file);
        if empty {
            let mut header = vec!["epoch".to_owned(), "loss".to_owned()];
            header.extend(logs.metrics.iter().map(|(n, _)| (*n).to_owned()));
            if logs.val_loss.is_some() {
                header.push("val_loss".to_owned());
                header.extend(logs.val_metrics.iter().map(|(n, _)| format!("val_{n}")));
            }
            writeln!(out, "{}", header.join(","))?;
        }
        Ok(out)
    }

    fn write(&mut self, logs: &EpochLogs) -> std::io::Result<()> {
        if self.file.is_none() {
            self.file = Some(self.open(logs)?);
        }
        let Some(out) = self.file.as_mut() else {
            return Ok(());
        };
        let mut row = vec![logs.epoch.to_string(), logs.loss.to_string()];
        row.extend(logs.metrics.iter().map(|(_, v)| v.to_string()));
        if let Some(v) = logs.val_loss {
            row.push(v.to_string());
            row.extend(logs.val_metrics.iter().map(|(_, v)| v.to_string()));
        }
        writeln!(out, "{}", row.join(","))?;
        out.flush()
    }
}

impl<F: Float> Callback<F> for CsvLogger {
    fn on_epoch_end(&mut self, logs: &EpochLogs, _model: &mut Sequential<F>) -> Result<Control> {
        self.write(logs).map_err(|source| NnError::Io {
            path: self.path.clone(),
            source,
        })?;
        Ok(Control::Continue)
    }
}

/// Sets the learning rate at the start of each epoch, as Keras' `LearningRateScheduler`:
/// `schedule(epoch, current)` gets the epoch (from 1) and the rate the next step would use,
/// and returns the rate for the epoch, which replaces the optimizer's
/// [`Schedule`] by a constant. The replaced schedule is saved with the model, and a resumed
/// fit calls the function again for its first epoch, so resuming stays exact.
///
/// ```
/// use dendrite_nn::{Dense, FitConfig, LearningRateScheduler, Loss, Sequential, Sgd};
/// let x = ndarray::Array2::<f32>::ones((8, 1));
/// let data = (x.view(), x.view());
/// let mut model = Sequential::new();
/// model.add(Dense::new(1).input_dim(1));
/// model.compile(Sgd::new(0.1), Loss::MeanSquaredError, &[])?;
/// let halve = LearningRateScheduler::new(|epoch, lr| if epoch > 1 { lr * 0.5 } else { lr });
/// model.fit(&data, FitConfig::default().epochs(3).verbosity(0).callback(halve))?;
/// assert_eq!(model.learning_rate(), Some(0.025));
/// # Ok::<(), dendrite_nn::NnError>(())
/// ```
pub struct LearningRateScheduler<S> {
    schedule: S,
}

impl<S> std::fmt::Debug for LearningRateScheduler<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LearningRateScheduler")
    }
}

impl<S: FnMut(usize, f64) -> f64> LearningRateScheduler<S> {
    /// Calls `schedule(epoch, current_rate)` before every epoch.
    pub fn new(schedule: S) -> Self {
        LearningRateScheduler { schedule }
    }
}

impl<F: Float, S: FnMut(usize, f64) -> f64> Callback<F> for LearningRateScheduler<S> {
    fn on_epoch_begin(&mut self, epoch: usize, model: &mut Sequential<F>) -> Result<Control> {
        let current = model.learning_rate().unwrap_or(f64::NAN);
        let rate = (self.schedule)(epoch, current);
        if !model.set_learning_rate(Schedule::Constant(rate))? {
            return Err(NnError::Hyperparameter {
                owner: "learning rate scheduler",
                name: "learning_rate",
                value: rate,
                reason: "the optimizer has no learning-rate schedule to replace",
            });
        }
        Ok(Control::Continue)
    }
}

/// Stops training when a loss is not finite, as Keras' `TerminateOnNaN`. `fit` itself refuses
/// a non-finite training loss before the step's update (an error, with the weights of the last
/// finite step), so what this adds is a graceful stop when the validation loss (which `fit`
/// only reports) becomes NaN or infinite, and after a batch whose loss is not finite.
///
/// ```
/// let config: dendrite_nn::FitConfig = dendrite_nn::FitConfig::default().callback(dendrite_nn::TerminateOnNaN);
/// # let _ = config;
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct TerminateOnNaN;

impl<F: Float> Callback<F> for TerminateOnNaN {
    fn on_batch_end(&mut self, logs: &BatchLogs) -> Control {
        match logs.loss.is_finite() {
            true => Control::Continue,
            false => Control::Stop,
        }
    }

    fn on_epoch_end(&mut self, logs: &EpochLogs, _model: &mut Sequential<F>) -> Result<Control> {
        let finite = logs.loss.is_finite() && logs.val_loss.is_none_or(f64::is_finite);
        Ok(if finite {
            Control::Continue
        } else {
            Control::Stop
        })
    }
}
