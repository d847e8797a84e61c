//! The listings of the book page "Saving, resuming, callbacks and datasets"
//! (`docs/src/nn/lifecycle.md`), compiled and run by `cargo test --test book_lifecycle`.
//!
//! The page pulls the regions between `// ANCHOR: name` and `// ANCHOR_END: name` out of this
//! file with `{{#include ../../../tests/book_lifecycle.rs:name}}`. Each listing holds its own
//! `use` lines.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

/// A fresh directory for one listing.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "dendrite-book-lifecycle-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

// ANCHOR: save_load
use dendrite::nn::data::synthetic_digits;
use dendrite::nn::{Activation, Adam, Dense, FitConfig, Loss, Metric, NnError, Sequential};

fn reference_model() -> Result<Sequential, NnError> {
    let mut model = Sequential::new().with_seed(7);
    model.add(Dense::new(32).input_dim(784).activation(Activation::Relu));
    model.add(Dense::new(10).activation(Activation::Softmax));
    model.compile(
        Adam::default(),
        Loss::SparseCategoricalCrossentropy,
        &[Metric::Accuracy],
    )?;
    Ok(model)
}

fn save_and_load(dir: &std::path::Path) -> Result<(), NnError> {
    let data = synthetic_digits(512, 0)?;
    let mut model = reference_model()?;
    model.fit(&data, FitConfig::default().epochs(1).verbosity(0))?;

    let path = dir.join("digits.safetensors");
    model.save(&path)?; // architecture, weights, optimizer state, position
    let mut loaded = Sequential::<f32>::load(&path)?;

    let x = data.take(16);
    assert_eq!(loaded.predict(&x, 16)?, model.predict(&x, 16)?); // the same bits
    assert_eq!(loaded.weights_digest()?, model.weights_digest()?);
    assert_eq!(loaded.epochs_trained(), 1);
    Ok(())
}
// ANCHOR_END: save_load

#[test]
fn a_saved_model_loads_and_predicts_the_same_bits() {
    save_and_load(&scratch("save")).unwrap();
}

// ANCHOR: resume
fn resume(dir: &std::path::Path) -> Result<(), NnError> {
    let data = synthetic_digits(512, 0)?;
    let config = |epochs| FitConfig::default().epochs(epochs).seed(3).verbosity(0);

    let mut straight = reference_model()?;
    straight.fit(&data, config(4))?;

    let mut first = reference_model()?;
    first.fit(&data, config(2))?;
    first.save(dir.join("half.safetensors"))?;

    // Later, perhaps in another process:
    let mut resumed = Sequential::<f32>::load(dir.join("half.safetensors"))?;
    let done = resumed.epochs_trained(); // 2
    resumed.fit(&data, config(4).initial_epoch(done))?; // epochs 3 and 4

    assert_eq!(resumed.weights_digest()?, straight.weights_digest()?);
    Ok(())
}
// ANCHOR_END: resume

#[test]
fn resuming_gives_the_weights_of_one_straight_run() {
    resume(&scratch("resume")).unwrap();
}

// ANCHOR: callbacks
use dendrite::nn::{
    BatchLogs, Callback, Control, CsvLogger, LearningRateScheduler, ModelCheckpoint, Monitor,
    TerminateOnNaN,
};

/// Counts the steps and stops training once the batch loss falls below a target.
struct StopBelow {
    target: f64,
    steps: usize,
}

impl Callback<f32> for StopBelow {
    fn on_batch_end(&mut self, logs: &BatchLogs) -> Control {
        self.steps += 1;
        if logs.loss < self.target {
            Control::Stop
        } else {
            Control::Continue
        }
    }
}

fn with_callbacks(dir: &std::path::Path) -> Result<usize, NnError> {
    let data = synthetic_digits(1024, 0)?;
    let mut model = reference_model()?;
    let mut stop = StopBelow {
        target: 0.05,
        steps: 0,
    };
    let config = FitConfig::default()
        .epochs(20)
        .validation_split(0.2)
        .verbosity(0)
        .callback(ModelCheckpoint::new(
            dir.join("best.safetensors").to_string_lossy(),
            Monitor::ValLoss,
            true, // only when val_loss improved
        ))
        .callback(CsvLogger::new(dir.join("log.csv")))
        .callback(LearningRateScheduler::new(|epoch, lr| {
            if epoch > 5 {
                lr * 0.9
            } else {
                lr
            }
        }))
        .callback(TerminateOnNaN)
        .callback(&mut stop);
    let history = model.fit(&data, config)?;
    let best = Sequential::<f32>::load(dir.join("best.safetensors"))?;
    assert_eq!(Some(best.epochs_trained()), history.best_epoch);
    Ok(stop.steps)
}
// ANCHOR_END: callbacks

#[test]
fn callbacks_checkpoint_log_schedule_and_stop() {
    let dir = scratch("callbacks");
    let steps = with_callbacks(&dir).unwrap();
    assert!(steps > 0);
    let log = std::fs::read_to_string(dir.join("log.csv")).unwrap();
    assert!(
        log.starts_with("epoch,loss,accuracy,val_loss,val_accuracy\n"),
        "{log}"
    );
    assert!(log.lines().count() >= 2, "{log}");
}

// ANCHOR: datasets
use dendrite::nn::datasets::{mnist_or_synthetic, FetchConfig, Origin, Source};

fn offline_mnist(cache: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    // Look in `cache` only, never on the network: the files are not there, so the result is
    // the synthetic digits, and `origin` is the one line that says where it looked.
    let config = FetchConfig::new(cache).download(false);
    let (mnist, origin) = mnist_or_synthetic(&Source::mnist(), &config, 0)?;
    println!("data: {origin}");
    assert!(matches!(origin, Origin::Synthetic(_)));
    assert_eq!(mnist.train.len(), 6000);
    Ok(())
}
// ANCHOR_END: datasets

#[test]
fn offline_mnist_falls_back_to_the_synthetic_digits() {
    offline_mnist(&scratch("datasets")).unwrap();
}
