//! End-to-end training: XOR, the reference model on a slice of (synthetic or real) MNIST,
//! validation, callbacks, a non-finite loss, determinism and threads.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dendrite_nn::data::{load_mnist, mnist_dir_from_env, synthetic_mnist, Dataset, Mnist};
use dendrite_nn::{
    Activation, Adam, Control, Dense, EarlyStopping, FitConfig, Loss, Metric, Monitor, NnError,
    Optimizer, Sequential, Sgd,
};
use ndarray::{array, Array1, Array2};
use std::path::PathBuf;

fn xor() -> (Array2<f32>, Array1<f32>) {
    (
        array![[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]],
        array![0.0, 1.0, 1.0, 0.0],
    )
}

#[test]
fn xor_is_learned() {
    let (x, y) = xor();
    let mut model = Sequential::new().with_seed(3);
    model.add(Dense::new(8).input_dim(2).activation(Activation::Tanh));
    model.add(Dense::new(1).activation(Activation::Sigmoid));
    model
        .compile(
            Adam::new(0.05),
            Loss::BinaryCrossentropy,
            &[Metric::Accuracy],
        )
        .unwrap();
    let config = FitConfig::default().epochs(400).batch_size(4).verbosity(0);
    let history = model.fit(&(x.view(), y.view()), config).unwrap();
    assert!(
        history.loss.last().unwrap() < &0.1,
        "{:?}",
        history.loss.last()
    );
    assert_eq!(history.accuracy.last(), Some(&1.0));
    let p = model.predict(&x.view(), 4).unwrap();
    for (p, t) in p.column(0).iter().zip(&y) {
        assert_eq!((*p > 0.5) as u8 as f32, *t, "{p}");
    }
    let result = model.evaluate(&(x.view(), y.view()), 2).unwrap();
    assert_eq!(result.accuracy, Some(1.0));
}

#[test]
fn xor_with_mse_and_sgd_momentum() {
    let (x, y) = xor();
    let y2 = y.clone().into_shape_with_order((4, 1)).unwrap();
    let mut model = Sequential::new().with_seed(1);
    model.add(Dense::new(8).input_dim(2).activation(Activation::Relu));
    model.add(Dense::new(1));
    model
        .compile(Sgd::new(0.1).momentum(0.9), Loss::MeanSquaredError, &[])
        .unwrap();
    let history = model
        .fit(
            &(x.view(), y2.view()),
            FitConfig::default().epochs(300).batch_size(4).verbosity(0),
        )
        .unwrap();
    assert!(history.accuracy.is_empty());
    assert!(
        history.loss.last().unwrap() < &0.02,
        "{:?}",
        history.loss.last()
    );
}

/// The real MNIST files when available (DENDRITE_MNIST_DIR, or the shared folder beside the
/// checkout), otherwise the synthetic digits.
fn digits() -> Mnist {
    let shared = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/mnist");
    let dir = mnist_dir_from_env().or_else(|| shared.is_dir().then_some(shared));
    match dir {
        Some(dir) => load_mnist(&dir).unwrap(),
        None => synthetic_mnist(0).unwrap(),
    }
}

fn reference_model(seed: u64) -> Sequential {
    dendrite_test_support::reference::reference_model(seed).unwrap()
}

#[test]
fn reference_model_lowers_its_loss_and_reports_validation() {
    let data = digits();
    let (train, valid) = (data.train.take(3000), data.test.take(500));
    let mut model = reference_model(0);
    assert_eq!(model.summary().unwrap().total_params(), 25_450);
    let before = model.evaluate(&valid, 100).unwrap();
    let config = FitConfig::default()
        .epochs(3)
        .validation_data(&valid)
        .verbosity(2);
    let history = model.fit(&train, config).unwrap();
    assert_eq!(history.epochs(), 3);
    assert_eq!(history.val_loss.len(), 3);
    assert_eq!(history.val_accuracy.len(), 3);
    assert!(history.loss[2] < history.loss[0], "{:?}", history.loss);
    assert!(
        history.val_loss[2] < before.loss,
        "{} vs {}",
        history.val_loss[2],
        before.loss
    );
    assert!(history.val_accuracy[2] > 0.7, "{:?}", history.val_accuracy);
    // The last validation is an evaluation of the final weights, with the same batches.
    let after = model.evaluate(&valid, 32).unwrap();
    assert_eq!(after.loss, history.val_loss[2]);
    assert_eq!(after.accuracy, history.val_accuracy.last().copied());
    assert_eq!(model.steps_taken(), 3 * 3000_u64.div_ceil(32));
}

#[test]
fn validation_split_holds_out_the_tail() {
    let data = digits().train.take(400);
    let mut model = reference_model(0);
    let history = model
        .fit(
            &data,
            FitConfig::default()
                .epochs(2)
                .validation_split(0.25)
                .verbosity(0),
        )
        .unwrap();
    assert_eq!(history.val_loss.len(), 2);
    assert_eq!(model.steps_taken(), 2 * 300_u64.div_ceil(32));
    let (_, tail) = data.split(300);
    let tail_eval = model.evaluate(&tail, 32).unwrap();
    assert_eq!(tail_eval.loss, history.val_loss[1]);
}

#[test]
fn evaluate_agrees_with_predict() {
    let data = digits().test.take(300);
    let mut model = reference_model(5);
    model
        .fit(&data, FitConfig::default().epochs(1).verbosity(0))
        .unwrap();
    let p = model.predict(&data, 64).unwrap();
    let mut correct = 0;
    let mut loss = 0.0;
    for (row, &label) in p.rows().into_iter().zip(data.labels()) {
        let best = row
            .iter()
            .enumerate()
            .fold(0, |b, (i, &v)| if v > row[b] { i } else { b });
        correct += usize::from(best == usize::from(label));
        loss -= f64::from(row[usize::from(label)]).ln();
    }
    let result = model.evaluate(&data, 64).unwrap();
    assert_eq!(result.samples, 300);
    assert_eq!(result.accuracy, Some(correct as f64 / 300.0));
    assert!(
        (result.loss - loss / 300.0).abs() < 1e-4,
        "{} vs {}",
        result.loss,
        loss / 300.0
    );
}

fn train_once(seed: u64, data: &Dataset) -> (Vec<f64>, Vec<(String, ndarray::ArrayD<f32>)>) {
    let mut model = reference_model(seed);
    let history = model
        .fit(data, FitConfig::default().epochs(2).seed(seed).verbosity(0))
        .unwrap();
    (history.loss, model.weights().unwrap())
}

#[test]
fn same_seed_gives_bit_identical_losses_and_weights() {
    let data = digits().train.take(1000);
    let (loss_a, weights_a) = train_once(11, &data);
    let (loss_b, weights_b) = train_once(11, &data);
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&loss_a), bits(&loss_b));
    for ((na, wa), (nb, wb)) in weights_a.iter().zip(&weights_b) {
        assert_eq!(na, nb);
        assert!(
            wa.iter().zip(wb).all(|(a, b)| a.to_bits() == b.to_bits()),
            "{na} differs"
        );
    }
    let (loss_c, _) = train_once(12, &data);
    assert_ne!(bits(&loss_a), bits(&loss_c));
}

#[test]
fn models_are_send_and_train_on_two_threads_at_once() {
    fn assert_send<T: Send>() {}
    assert_send::<Sequential>();
    assert_send::<Sequential<f64>>();

    let data = digits().train.take(600);
    let reference = train_once(21, &data);
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let data = data.clone();
            std::thread::spawn(move || train_once(21, &data))
        })
        .collect();
    for h in handles {
        let (loss, weights) = h.join().unwrap();
        assert_eq!(loss, reference.0);
        assert_eq!(weights, reference.1);
    }
}

#[test]
fn hooks_see_every_epoch_and_can_stop() {
    let (x, y) = xor();
    let mut model = Sequential::new();
    model.add(Dense::new(1).input_dim(2).activation(Activation::Sigmoid));
    model
        .compile(
            Adam::default(),
            Loss::BinaryCrossentropy,
            &[Metric::Accuracy],
        )
        .unwrap();
    let mut seen = Vec::new();
    let config = FitConfig::default()
        .epochs(10)
        .verbosity(0)
        .on_epoch_end(|logs| {
            seen.push(logs.epoch);
            assert!(logs.accuracy.is_some() && logs.val_loss.is_none() && logs.seconds >= 0.0);
            if logs.epoch == 3 {
                Control::Stop
            } else {
                Control::Continue
            }
        });
    let history = model.fit(&(x.view(), y.view()), config).unwrap();
    assert_eq!(seen, vec![1, 2, 3]);
    assert_eq!(history.epochs(), 3);
    assert_eq!(history.stopped_epoch, Some(3));
}

/// A linear regression that SGD with a too-large rate makes diverge (finitely, for a while):
/// each epoch's loss is larger than the one before.
fn diverging() -> (Sequential, Array2<f32>, Array1<f32>) {
    let mut model = Sequential::new().with_seed(4);
    model.add(Dense::new(1).input_dim(1));
    model
        .compile(Sgd::new(1.0), Loss::MeanSquaredError, &[])
        .unwrap();
    (model, Array2::ones((4, 1)), Array1::from_elem(4, 2.0))
}

#[test]
fn early_stopping_restores_the_best_weights() {
    let (mut once, x, y) = diverging();
    let config = FitConfig::default()
        .epochs(1)
        .batch_size(1)
        .shuffle(false)
        .verbosity(0);
    once.fit(&(x.view(), y.view()), config).unwrap();

    let (mut model, x, y) = diverging();
    let stop = EarlyStopping::new(Monitor::Loss)
        .patience(1)
        .restore_best_weights(true);
    let config = FitConfig::default()
        .epochs(20)
        .batch_size(1)
        .shuffle(false)
        .verbosity(0)
        .early_stopping(stop);
    let history = model.fit(&(x.view(), y.view()), config).unwrap();
    assert!(history.loss[1] > history.loss[0], "{:?}", history.loss);
    assert_eq!(history.epochs(), 2);
    assert_eq!(history.stopped_epoch, Some(2));
    assert_eq!(model.weights().unwrap(), once.weights().unwrap());
}

#[test]
fn early_stopping_needs_what_it_monitors() {
    let (mut model, x, y) = diverging();
    let config = FitConfig::default()
        .verbosity(0)
        .early_stopping(EarlyStopping::new(Monitor::ValLoss));
    let err = model.fit(&(x.view(), y.view()), config).unwrap_err();
    assert!(
        matches!(
            err,
            NnError::MonitorUnavailable {
                monitor: "val_loss",
                ..
            }
        ),
        "{err}"
    );
    let config = FitConfig::default()
        .verbosity(0)
        .validation_split(0.5)
        .early_stopping(EarlyStopping::new(Monitor::ValAccuracy));
    let err = model.fit(&(x.view(), y.view()), config).unwrap_err();
    assert!(
        matches!(
            err,
            NnError::MonitorUnavailable {
                monitor: "val_accuracy",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_non_finite_loss_stops_fit_with_the_last_finite_weights() {
    // Sample 2 (the third step with batch size 1, no shuffling) holds an infinity. The data
    // check refuses it before any step; with the check off, the step that meets it stops.
    let x = array![[1.0_f32, 0.5], [0.0, 1.0], [f32::INFINITY, 0.0], [1.0, 1.0]];
    let y = array![1.0_f32, 0.0, 1.0, 0.0];
    let build = || {
        let mut model = Sequential::new().with_seed(9).with_finite_check(false);
        model.add(Dense::new(4).input_dim(2).activation(Activation::Relu));
        model.add(Dense::new(1).activation(Activation::Sigmoid));
        model
            .compile(
                Adam::new(0.01),
                Loss::BinaryCrossentropy,
                &[Metric::Accuracy],
            )
            .unwrap();
        model
    };
    let config = || {
        FitConfig::default()
            .epochs(3)
            .batch_size(1)
            .shuffle(false)
            .verbosity(0)
    };
    let mut checked = std::mem::take(&mut build()).with_finite_check(true);
    let err = checked.fit(&(x.view(), y.view()), config()).unwrap_err();
    assert!(
        matches!(
            err,
            NnError::NonFiniteData {
                data: "training",
                part: "feature",
                sample: 2,
                index: 0,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(checked.steps_taken(), 0);
    let mut model = build();
    let err = model.fit(&(x.view(), y.view()), config()).unwrap_err();
    match err {
        NnError::NonFiniteLoss { epoch, step, value } => {
            assert_eq!((epoch, step), (1, 3));
            assert!(!value.is_finite());
        }
        other => panic!("expected NonFiniteLoss, got {other}"),
    }
    assert!(err_text(&x, &y).contains("epoch 1, step 3"));
    // Same weights as training on the first two samples only.
    let mut two = build();
    let (x2, y2) = (x.slice(ndarray::s![..2, ..]), y.slice(ndarray::s![..2]));
    two.fit(&(x2, y2), config().epochs(1)).unwrap();
    assert_eq!(model.weights().unwrap(), two.weights().unwrap());
    assert!(model
        .weights()
        .unwrap()
        .iter()
        .all(|(_, w)| w.iter().all(|v| v.is_finite())));
}

fn err_text(x: &Array2<f32>, y: &Array1<f32>) -> String {
    let mut model = Sequential::new().with_seed(9).with_finite_check(false);
    model.add(Dense::new(1).input_dim(2).activation(Activation::Sigmoid));
    model
        .compile(Sgd::new(0.1), Loss::BinaryCrossentropy, &[])
        .unwrap();
    let config = FitConfig::default()
        .batch_size(1)
        .shuffle(false)
        .verbosity(0);
    model
        .fit(&(x.view(), y.view()), config)
        .unwrap_err()
        .to_string()
}

#[test]
fn f64_models_train_too() {
    let x = array![[0.0_f64, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]];
    let y = array![0.0_f64, 1.0, 1.0, 0.0];
    let mut model = Sequential::<f64>::default().with_seed(3);
    model.add(Dense::new(8).input_dim(2).activation(Activation::Tanh));
    model.add(Dense::new(2).activation(Activation::Softmax));
    model
        .compile(
            Adam::new(0.05),
            Loss::SparseCategoricalCrossentropy,
            &[Metric::Accuracy],
        )
        .unwrap();
    let history = model
        .fit(
            &(x.view(), y.view()),
            FitConfig::default().epochs(300).batch_size(4).verbosity(0),
        )
        .unwrap();
    assert_eq!(history.accuracy.last(), Some(&1.0));
}

#[test]
fn recompiling_keeps_the_weights_and_resets_the_optimizer() {
    let (x, y) = xor();
    let mut model = Sequential::new();
    model.add(Dense::new(4).input_dim(2).activation(Activation::Relu));
    model.add(Dense::new(2).activation(Activation::Softmax));
    model
        .compile(
            Adam::default(),
            Loss::SparseCategoricalCrossentropy,
            &[Metric::Accuracy],
        )
        .unwrap();
    model
        .fit(
            &(x.view(), y.view()),
            FitConfig::default().epochs(5).verbosity(0),
        )
        .unwrap();
    let trained = model.weights().unwrap();
    model
        .compile(Sgd::new(0.1), Loss::SparseCategoricalCrossentropy, &[])
        .unwrap();
    assert_eq!(model.weights().unwrap(), trained);
    assert_eq!(model.steps_taken(), 0);
    model
        .fit(
            &(x.view(), y.view()),
            FitConfig::default().epochs(1).verbosity(0),
        )
        .unwrap();
    assert_eq!(model.steps_taken(), 1);
    assert_eq!(Optimizer::<f32>::name(&Adam::<f32>::default()), "adam");
}
