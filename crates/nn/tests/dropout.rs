//! Dropout: inverted masks in training (exact values, rate, step and seed dependence), the
//! identity in inference, gradients through it, and training that is bit-identical at any
//! thread count and across a save and resume.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dendrite_graph::{compile, Graph, Shape};
use dendrite_nn::data::{synthetic_digits, Dataset};
use dendrite_nn::{
    Activation, Adam, Dense, Dropout, FitConfig, Init, Layer, Loss, Metric, Mode, NnError,
    Sequential,
};
use ndarray::{ArrayD, IxDyn};

/// Dropout at `rate` in training mode on `x`, at training step `step`.
fn dropped(rate: f64, seed: Option<u64>, x: &ArrayD<f64>, step: f64) -> ArrayD<f64> {
    let mut g = Graph::<f64>::new();
    let input = g.input("x", Shape::fixed(x.shape())).unwrap();
    let s = g.input("step", Shape::scalar()).unwrap();
    let mut layer = Dropout::new(rate);
    if let Some(seed) = seed {
        layer = layer.seed(seed);
    }
    let mut init = Init::for_layer(5, 1).with_mode(Mode::Training).with_step(s);
    let y = layer
        .build(&mut g, input, &x.shape()[1..], &mut init)
        .unwrap();
    let mut plan = compile(&g, &[y.output]).unwrap();
    let step = ndarray::arr0(step).into_dyn();
    let out = plan
        .run(&g, &[("x", x.view()), ("step", step.view())])
        .unwrap();
    out.get(0).unwrap().to_owned()
}

fn ramp(rows: usize, cols: usize) -> ArrayD<f64> {
    ArrayD::from_shape_fn(IxDyn(&[rows, cols]), |i| 0.25 + (i[0] * cols + i[1]) as f64)
}

/// Each value is either 0 or exactly `x / (1 - rate)`; about `rate` of them are 0.
#[test]
fn training_keeps_values_divided_by_the_keep_probability() {
    let x = ramp(200, 50);
    for rate in [0.1, 0.5, 0.8] {
        let y = dropped(rate, None, &x, 3.0);
        let mut zeros = 0usize;
        for (&out, &inp) in y.iter().zip(x.iter()) {
            if out == 0.0 {
                zeros += 1;
            } else {
                assert_eq!(out, inp / (1.0 - rate), "rate {rate}");
            }
        }
        let fraction = zeros as f64 / x.len() as f64;
        // 10,000 Bernoulli draws: a standard deviation under 0.005.
        assert!((fraction - rate).abs() < 0.03, "rate {rate}: {fraction}");
    }
}

/// The mask depends on the step and the seed, and only on them.
#[test]
fn masks_change_with_the_step_and_the_seed_and_repeat_otherwise() {
    let x = ramp(20, 30);
    let a = dropped(0.5, None, &x, 0.0);
    assert_eq!(a, dropped(0.5, None, &x, 0.0));
    assert_ne!(a, dropped(0.5, None, &x, 1.0));
    assert_ne!(a, dropped(0.5, Some(99), &x, 0.0));
    assert_eq!(
        dropped(0.5, Some(99), &x, 0.0),
        dropped(0.5, Some(99), &x, 0.0)
    );
}

/// In inference (the default mode) the layer adds no node: its output is its input.
#[test]
fn inference_is_the_identity() {
    let mut g = Graph::<f32>::new();
    let x = g.input("x", [None, Some(4)]).unwrap();
    let y = Dropout::new(0.5)
        .build(&mut g, x, &[4], &mut Init::new(0))
        .unwrap();
    assert_eq!(y.output, x);
}

/// `∂/∂x sum(w ⊙ dropout(x)) = w ⊙ mask / (1 - rate)`: the checker's central differences
/// agree with the reverse-mode gradient at a fixed step, and the gradient is exactly that.
#[test]
fn gradients_through_dropout_pass_the_checker() {
    use dendrite_autodiff::check::{check_gradients, CheckConfig};
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [3, 7]).unwrap();
    let step = g.scalar(4.0);
    let mut init = Init::new(1).with_mode(Mode::Training).with_step(step);
    let y = Dropout::new(0.3).build(&mut g, x, &[7], &mut init).unwrap();
    let w = g.constant(ArrayD::from_shape_fn(IxDyn(&[3, 7]), |i| {
        1.0 + (i[0] * 7 + i[1]) as f64 / 10.0
    }));
    let weighted = g.mul(y.output, w).unwrap();
    let loss = g.sum_all(weighted).unwrap();
    let values = ArrayD::from_shape_fn(IxDyn(&[3, 7]), |i| ((i[0] * 7 + i[1]) as f64).sin());
    let report = check_gradients(
        &mut g,
        loss,
        &[x],
        &[("x", values.view())],
        &CheckConfig::default(),
    )
    .unwrap();
    assert!(report.passed(), "{report}");
}

/// A rate outside `[0, 1)` is refused when the model is summarized or built.
#[test]
fn rates_outside_zero_to_one_are_refused() {
    for rate in [1.0, -0.1, f64::NAN, 2.0] {
        let mut m = Sequential::<f32>::new();
        m.add(Dense::new(3).input_dim(2));
        m.add(Dropout::new(rate));
        let err = m.build().unwrap_err();
        assert!(
            matches!(err, NnError::Hyperparameter { name: "rate", .. }),
            "{rate}: {err}"
        );
    }
}

fn model(rate: f64) -> Sequential {
    let mut m = Sequential::new().with_seed(3);
    m.add(Dense::new(16).input_dim(784).activation(Activation::Relu));
    m.add(Dropout::new(rate));
    m.add(Dense::new(10).activation(Activation::Softmax));
    m.compile(
        Adam::new(1e-3),
        Loss::SparseCategoricalCrossentropy,
        &[Metric::Accuracy],
    )
    .unwrap();
    m
}

fn data() -> Dataset {
    synthetic_digits(160, 2).unwrap()
}

fn config(epochs: usize, threads: usize) -> FitConfig<'static> {
    FitConfig::default()
        .epochs(epochs)
        .batch_size(32)
        .seed(4)
        .verbosity(0)
        .threads(threads)
}

fn bits(model: &Sequential) -> Vec<u32> {
    let weights = model.get_weights().unwrap();
    weights.iter().flatten().map(|v| v.to_bits()).collect()
}

/// Predictions ignore dropout; training with it differs from training without it; and the
/// same seed gives the same bits with one or two threads.
#[test]
fn training_drops_prediction_does_not_and_threads_do_not_matter() {
    let x = ndarray::Array2::from_shape_fn((5, 784), |(i, j)| ((i * 784 + j) % 7) as f32 / 7.0);
    let mut with = model(0.5);
    let mut without = model(0.0);
    assert_eq!(
        with.predict(&x.view(), 8).unwrap(),
        without.predict(&x.view(), 8).unwrap()
    );
    let data = data();
    with.fit(&data, config(2, 1)).unwrap();
    without.fit(&data, config(2, 1)).unwrap();
    assert_ne!(bits(&with), bits(&without));
    let mut two_threads = model(0.5);
    two_threads.fit(&data, config(2, 2)).unwrap();
    assert_eq!(bits(&two_threads), bits(&with));
    // Evaluation runs in inference mode: twice gives the same loss.
    let a = with.evaluate(&data, 32).unwrap();
    let b = with.evaluate(&data, 32).unwrap();
    assert_eq!(a.loss, b.loss);
}

/// Two epochs, a save and a resumed epoch draw the masks an uninterrupted run drew.
#[test]
fn a_resumed_run_draws_the_same_masks() {
    let data = data();
    let mut straight = model(0.5);
    straight.fit(&data, config(3, 1)).unwrap();
    let mut first = model(0.5);
    first.fit(&data, config(2, 1)).unwrap();
    let dir = dendrite_test_support::scratch::Scratch::new("dropout");
    let path = dir.file("half.safetensors");
    first.save(&path).unwrap();
    let mut resumed = Sequential::<f32>::load(&path).unwrap();
    resumed
        .fit(&data, config(3, 1).initial_epoch(resumed.epochs_trained()))
        .unwrap();
    assert_eq!(bits(&resumed), bits(&straight));
}

/// A layer built outside a model without a step node is told what is missing.
#[test]
fn a_training_build_without_a_step_is_an_error() {
    let mut g = Graph::<f32>::new();
    let x = g.input("x", [None, Some(4)]).unwrap();
    let mut init = Init::new(0).with_mode(Mode::Training).named("drop");
    let err = Dropout::new(0.5)
        .build(&mut g, x, &[4], &mut init)
        .unwrap_err();
    assert!(matches!(err, NnError::NoTrainingStep { .. }), "{err}");
    assert!(err.to_string().contains("drop"));
}
