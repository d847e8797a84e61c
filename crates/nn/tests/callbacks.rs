//! Callbacks: checkpoints by pattern and best value, CSV logs, learning-rate schedules set per
//! epoch, stopping from a batch, and NaN termination.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dendrite_nn::data::{synthetic_digits, Dataset};
use dendrite_nn::{
    Activation, Adam, BatchLogs, Callback, Control, CsvLogger, Dense, EpochLogs, FitConfig,
    LearningRateScheduler, Loss, Metric, ModelCheckpoint, Monitor, Sequential, TerminateOnNaN,
};
use std::path::PathBuf;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "dendrite-nn-callbacks-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn model() -> Sequential {
    let mut m = Sequential::new().with_seed(4);
    m.add(Dense::new(8).input_dim(784).activation(Activation::Relu));
    m.add(Dense::new(10).activation(Activation::Softmax));
    m.compile(
        Adam::new(0.01),
        Loss::SparseCategoricalCrossentropy,
        &[Metric::Accuracy],
    )
    .unwrap();
    m
}

fn data() -> Dataset {
    synthetic_digits(160, 2).unwrap()
}

fn config<'a>(epochs: usize) -> FitConfig<'a> {
    FitConfig::default()
        .epochs(epochs)
        .batch_size(32)
        .verbosity(0)
        .threads(1)
}

#[test]
fn model_checkpoint_saves_each_epoch_by_pattern_or_only_the_best() {
    let dir = scratch("checkpoint");
    let data = data();
    let mut m = model();
    let every = ModelCheckpoint::new(
        dir.join("e{epoch:02}.safetensors").to_str().unwrap(),
        Monitor::Loss,
        false,
    );
    let best = ModelCheckpoint::new(
        dir.join("best.safetensors").to_str().unwrap(),
        Monitor::ValLoss,
        true,
    );
    let history = m
        .fit(
            &data,
            config(3)
                .validation_split(0.2)
                .callback(every)
                .callback(best),
        )
        .unwrap();
    for epoch in 1..=3 {
        let saved = Sequential::<f32>::load(dir.join(format!("e{epoch:02}.safetensors"))).unwrap();
        assert_eq!(saved.epochs_trained(), epoch);
    }
    let best_epoch = history.best_epoch.unwrap();
    let best = Sequential::<f32>::load(dir.join("best.safetensors")).unwrap();
    assert_eq!(best.epochs_trained(), best_epoch);
    // The last epoch's checkpoint holds the final weights.
    let last = Sequential::<f32>::load(dir.join("e03.safetensors")).unwrap();
    assert_eq!(last.get_weights().unwrap(), m.get_weights().unwrap());
}

#[test]
fn csv_logger_writes_a_header_and_a_line_per_epoch_and_appends_on_resume() {
    let dir = scratch("csv");
    let path = dir.join("log.csv");
    let data = data();
    let mut m = model();
    let h = m
        .fit(
            &data,
            config(2)
                .validation_split(0.2)
                .callback(CsvLogger::new(&path)),
        )
        .unwrap();
    let rest = config(3).validation_split(0.2).initial_epoch(2);
    m.fit(&data, rest.callback(CsvLogger::new(&path).append(true)))
        .unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "epoch,loss,accuracy,val_loss,val_accuracy");
    assert_eq!(lines.len(), 4, "{text}");
    let first: Vec<f64> = lines[1].split(',').map(|v| v.parse().unwrap()).collect();
    assert_eq!(
        first,
        [
            1.0,
            h.loss[0],
            h.accuracy[0],
            h.val_loss[0],
            h.val_accuracy[0]
        ]
    );
    assert!(lines[3].starts_with("3,"));
}

#[test]
fn learning_rate_scheduler_sets_the_rate_before_each_epoch() {
    let data = data();
    let mut m = model();
    let mut seen = Vec::new();
    let scheduler = LearningRateScheduler::new(|epoch, lr| {
        seen.push((epoch, lr));
        0.01 / epoch as f64
    });
    m.fit(&data, config(3).callback(scheduler)).unwrap();
    assert_eq!(seen, [(1, 0.01), (2, 0.01), (3, 0.005)]);
    assert_eq!(m.learning_rate(), Some(0.01 / 3.0));
}

/// Stops after `after` batches and records the batch logs.
struct StopAfter {
    after: usize,
    seen: Vec<BatchLogs>,
    epochs_begun: usize,
}

impl Callback<f32> for StopAfter {
    fn on_epoch_begin(
        &mut self,
        _epoch: usize,
        _model: &mut Sequential,
    ) -> dendrite_nn::Result<Control> {
        self.epochs_begun += 1;
        Ok(Control::Continue)
    }
    fn on_batch_end(&mut self, logs: &BatchLogs) -> Control {
        self.seen.push(*logs);
        if self.seen.len() >= self.after {
            Control::Stop
        } else {
            Control::Continue
        }
    }
}

#[test]
fn a_batch_callback_sees_each_step_and_stops_training_after_it() {
    let data = data();
    let mut m = model();
    let mut stop = StopAfter {
        after: 7,
        seen: Vec::new(),
        epochs_begun: 0,
    };
    let history = m.fit(&data, config(5).callback(&mut stop)).unwrap();
    // 5 steps an epoch: the seventh is the second step of epoch 2.
    assert_eq!(m.steps_taken(), 7);
    assert_eq!(
        (history.epochs(), history.stopped_epoch, stop.epochs_begun),
        (2, Some(2), 2)
    );
    let last = stop.seen.last().unwrap();
    assert_eq!((last.epoch, last.batch, last.size), (2, 2, 32));
    assert!(stop.seen.iter().all(|b| b.loss.is_finite()));
}

#[test]
fn terminate_on_nan_stops_on_a_non_finite_loss() {
    let mut t = TerminateOnNaN;
    let batch = |loss| BatchLogs {
        epoch: 1,
        batch: 1,
        size: 1,
        loss,
    };
    assert_eq!(
        Callback::<f32>::on_batch_end(&mut t, &batch(0.5)),
        Control::Continue
    );
    assert_eq!(
        Callback::<f32>::on_batch_end(&mut t, &batch(f64::NAN)),
        Control::Stop
    );
    let mut m = model();
    let logs = |val_loss| EpochLogs {
        epoch: 1,
        loss: 0.5,
        accuracy: None,
        val_loss,
        val_accuracy: None,
        seconds: 0.0,
        metrics: Vec::new(),
        val_metrics: Vec::new(),
        regularization: None,
    };
    assert_eq!(
        t.on_epoch_end(&logs(Some(0.4)), &mut m).unwrap(),
        Control::Continue
    );
    assert_eq!(
        t.on_epoch_end(&logs(Some(f64::INFINITY)), &mut m).unwrap(),
        Control::Stop
    );
}
