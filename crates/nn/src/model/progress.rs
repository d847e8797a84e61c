//! What `fit` prints: a Keras-like progress bar per epoch on a terminal, otherwise one line per
//! epoch, or nothing.
//!
//! The bar's position is set on every step (cheap: indicatif redraws at most 15 times a
//! second); its message, which needs a formatted string, is refreshed at most every 100 ms so
//! that the training loop does not allocate on every step.

use super::config::EpochLogs;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

const MESSAGE_EVERY: Duration = Duration::from_millis(100);

#[derive(Debug)]
enum Mode {
    Silent,
    Lines,
    Bar,
}

#[derive(Debug)]
pub(crate) struct Progress {
    mode: Mode,
    epochs: usize,
    steps: usize,
    bar: Option<ProgressBar>,
    last_message: Instant,
    metric: &'static str,
}

impl Progress {
    /// `metric` names the accuracy column (`"accuracy"`).
    pub(crate) fn new(verbosity: u8, epochs: usize, metric: &'static str) -> Self {
        let mode = match verbosity {
            0 => Mode::Silent,
            1 if std::io::stdout().is_terminal() => Mode::Bar,
            _ => Mode::Lines,
        };
        Progress {
            mode,
            epochs,
            steps: 0,
            bar: None,
            last_message: Instant::now(),
            metric,
        }
    }

    pub(crate) fn start_epoch(&mut self, epoch: usize, steps: usize) {
        self.steps = steps;
        if let Mode::Bar = self.mode {
            println!("Epoch {epoch}/{}", self.epochs);
            let bar =
                ProgressBar::with_draw_target(Some(steps as u64), ProgressDrawTarget::stdout());
            let style = ProgressStyle::with_template("{pos:>5}/{len} [{bar:30}] {elapsed} {msg}")
                .map(|s| s.progress_chars("=> "))
                .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            self.bar = Some(bar);
            self.last_message = Instant::now();
        }
    }

    /// After step `step` (from 1), with the running means so far.
    #[inline]
    pub(crate) fn step(&mut self, step: usize, loss: f64, accuracy: Option<f64>) {
        let Some(bar) = &self.bar else { return };
        bar.set_position(step as u64);
        if step == 1 || step == self.steps || self.last_message.elapsed() >= MESSAGE_EVERY {
            self.last_message = Instant::now();
            bar.set_message(match accuracy {
                Some(a) => format!("- loss: {loss:.4} - {}: {a:.4}", self.metric),
                None => format!("- loss: {loss:.4}"),
            });
        }
    }

    pub(crate) fn end_epoch(&mut self, logs: &EpochLogs) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if !matches!(self.mode, Mode::Silent) {
            println!("{}", epoch_line(logs, self.epochs, self.steps));
        }
    }

    /// Removes a bar left by an epoch that ended in an error.
    pub(crate) fn abandon(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.abandon();
        }
    }
}

/// `Epoch 1/5 - 1875/1875 - 0.84s - loss: 0.2876 - accuracy: 0.9181 - val_loss: ...`: every
/// metric, by name.
pub(crate) fn epoch_line(logs: &EpochLogs, epochs: usize, steps: usize) -> String {
    let mut line = format!(
        "Epoch {}/{epochs} - {steps}/{steps} - {:.2}s - loss: {:.4}",
        logs.epoch, logs.seconds, logs.loss
    );
    for (name, v) in &logs.metrics {
        line.push_str(&format!(" - {name}: {v:.4}"));
    }
    if let Some(v) = logs.val_loss {
        line.push_str(&format!(" - val_loss: {v:.4}"));
    }
    for (name, v) in &logs.val_metrics {
        line.push_str(&format!(" - val_{name}: {v:.4}"));
    }
    line
}
