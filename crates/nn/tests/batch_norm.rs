//! BatchNormalization: hand-derived training and inference outputs, the moving statistics'
//! update, gradients through the batch statistics checked in f64, and the state trained by
//! `fit`, counted by the summary, saved and loaded.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dendrite_autodiff::check::{check_gradients, CheckConfig};
use dendrite_graph::{compile, Graph, Shape};
use dendrite_nn::data::synthetic_digits;
use dendrite_nn::{
    Activation, Adam, BatchNormalization, Dense, FitConfig, Init, Layer, Loss, Metric, Mode,
    Sequential,
};
use ndarray::{arr2, ArrayD, IxDyn};

/// Builds the layer on `x` in `mode`; returns the output and the states' new values.
fn run(layer: &mut BatchNormalization, x: &ArrayD<f64>, mode: Mode) -> Vec<ArrayD<f64>> {
    let mut g = Graph::<f64>::new();
    let input = g.input("x", Shape::fixed(x.shape())).unwrap();
    let step = g.scalar(0.0);
    let mut init = Init::new(0).with_mode(mode).with_step(step);
    let nodes = layer
        .build(&mut g, input, &x.shape()[1..], &mut init)
        .unwrap();
    let mut fetches = vec![nodes.output];
    fetches.extend(nodes.state_updates.iter().map(|&(_, v)| v));
    let mut plan = compile(&g, &fetches).unwrap();
    let out = plan.run(&g, &[("x", x.view())]).unwrap();
    (0..fetches.len())
        .map(|k| out.get(k).unwrap().to_owned())
        .collect()
}

/// Two samples of one feature, 1 and 3: the batch mean is 2, the biased variance 1, so
/// training gives (x - 2) / sqrt(1 + 0.001) = -/+ 0.9995003746877732; the moving mean becomes
/// 0.99 * 0 + 0.01 * 2 = 0.02 and the moving variance 0.99 * 1 + 0.01 * 1 = 1.
#[test]
fn training_normalizes_with_the_batch_statistics() {
    let x = arr2(&[[1.0], [3.0]]).into_dyn();
    let out = run(&mut BatchNormalization::new(), &x, Mode::Training);
    let s = 1.0 / 1.001_f64.sqrt();
    assert_eq!(out[0].iter().copied().collect::<Vec<_>>(), vec![-s, s]);
    assert!((out[1][[0]] - 0.02).abs() < 1e-15);
    assert!((out[2][[0]] - 1.0).abs() < 1e-15);
}

/// Inference uses the moving statistics (mean 0, variance 1 at the start): x / sqrt(1.001),
/// whatever the rest of the batch holds.
#[test]
fn inference_uses_the_moving_statistics() {
    let x = arr2(&[[1.0, 2.0], [3.0, -4.0]]).into_dyn();
    let out = run(&mut BatchNormalization::new(), &x, Mode::Inference);
    let expected = x.mapv(|v| v / 1.001_f64.sqrt());
    assert_eq!(out[0], expected);
    assert_eq!(out.len(), 1, "no state update in inference");
}

/// Images: statistics per channel over the batch and every position.
#[test]
fn image_channels_are_normalized_separately() {
    let x = ArrayD::from_shape_fn(IxDyn(&[2, 3, 3, 2]), |i| {
        (i[0] * 18 + i[1] * 6 + i[2] * 2) as f64 * if i[3] == 0 { 1.0 } else { -3.0 }
    });
    let out = run(
        &mut BatchNormalization::new().epsilon(1e-12),
        &x,
        Mode::Training,
    );
    for c in 0..2 {
        let channel: Vec<f64> = out[0]
            .indexed_iter()
            .filter(|(i, _)| i[3] == c)
            .map(|(_, &v)| v)
            .collect();
        let mean = channel.iter().sum::<f64>() / channel.len() as f64;
        let var = channel.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / channel.len() as f64;
        assert!(
            mean.abs() < 1e-12 && (var - 1.0).abs() < 1e-9,
            "{c}: {mean} {var}"
        );
    }
}

/// The gradient of a weighted sum of the training output with respect to the input, through
/// the batch mean and variance, against central differences (f64), for a vector and an image
/// layer with and without `center`/`scale`.
#[test]
fn gradients_through_the_batch_statistics_pass_the_checker() {
    let cases = [
        (vec![5, 3], BatchNormalization::new()),
        (vec![2, 3, 3, 2], BatchNormalization::new().center(false)),
        (
            vec![4, 3, 2],
            BatchNormalization::new().axis(0).scale(false),
        ),
    ];
    for (shape, mut layer) in cases {
        let mut g = Graph::<f64>::new();
        let x = g.input("x", shape.as_slice()).unwrap();
        let step = g.scalar(0.0);
        let mut init = Init::new(0).with_mode(Mode::Training).with_step(step);
        let y = layer.build(&mut g, x, &shape[1..], &mut init).unwrap();
        let n: usize = shape.iter().product();
        let w = g.constant(ArrayD::from_shape_fn(IxDyn(&shape), |i| {
            let k: usize = (0..shape.len()).map(|a| i[a]).sum();
            0.5 + (k as f64 * 0.7).cos()
        }));
        let weighted = g.mul(y.output, w).unwrap();
        let loss = g.sum_all(weighted).unwrap();
        let values: Vec<f64> = (0..n).map(|k| (k as f64 * 0.37).sin() * 2.0).collect();
        let values = ArrayD::from_shape_vec(IxDyn(&shape), values).unwrap();
        let report = check_gradients(
            &mut g,
            loss,
            &[x],
            &[("x", values.view())],
            &CheckConfig::default(),
        )
        .unwrap();
        assert!(report.passed(), "{shape:?}: {report}");
    }
}

fn model() -> Sequential {
    let mut m = Sequential::new().with_seed(1);
    m.add(Dense::new(16).input_dim(784));
    m.add(BatchNormalization::new());
    m.add(dendrite_nn::Activation::Relu);
    m.add(Dense::new(10).activation(Activation::Softmax));
    m.compile(
        Adam::new(1e-3),
        Loss::SparseCategoricalCrossentropy,
        &[Metric::Accuracy],
    )
    .unwrap();
    m
}

/// The summary counts gamma and beta as trainable, the moving statistics as not; `fit`
/// moves the statistics; a saved and loaded model keeps them and predicts the same bits.
#[test]
fn fit_updates_the_moving_statistics_which_files_keep() {
    let mut m = model();
    let s = m.summary().unwrap();
    assert_eq!(s.trainable_params(), 784 * 16 + 16 + 32 + 170);
    assert_eq!(s.non_trainable_params(), 32);
    assert!(s.to_string().contains("Non-trainable params: 32"));
    let names: Vec<String> = m.weights().unwrap().into_iter().map(|(n, _)| n).collect();
    assert!(names.contains(&"batch_normalization_1/moving_mean".to_owned()));
    let before = m.get_weights().unwrap();
    let data = synthetic_digits(128, 3).unwrap();
    let config = FitConfig::default().epochs(2).batch_size(32).verbosity(0);
    let history = m.fit(&data, config).unwrap();
    assert!(history.loss[1] < history.loss[0]);
    let after = m.get_weights().unwrap();
    let moving_mean = names
        .iter()
        .position(|n| n.ends_with("moving_mean"))
        .unwrap();
    assert_ne!(before[moving_mean], after[moving_mean]);
    assert!(after.iter().flatten().all(|v| v.is_finite()));

    let dir = dendrite_test_support::scratch::Scratch::new("bn");
    let path = dir.file("bn.safetensors");
    m.save(&path).unwrap();
    let mut loaded = Sequential::<f32>::load(&path).unwrap();
    assert_eq!(loaded.get_weights().unwrap(), after);
    let x = ndarray::Array2::from_shape_fn((3, 784), |(i, j)| ((i + j) % 5) as f32 / 5.0);
    assert_eq!(
        loaded.predict(&x.view(), 8).unwrap(),
        m.predict(&x.view(), 8).unwrap()
    );
}

/// Bad settings are refused when the model is summarized or built.
#[test]
fn bad_settings_are_refused() {
    for layer in [
        BatchNormalization::new().momentum(1.5),
        BatchNormalization::new().epsilon(0.0),
        BatchNormalization::new().axis(3),
    ] {
        let mut m = Sequential::<f32>::new();
        m.add(Dense::new(3).input_dim(2));
        m.add(layer);
        assert!(m.summary().is_err());
        assert!(m.build().is_err());
    }
}
