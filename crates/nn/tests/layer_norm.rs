//! LayerNormalization: hand-derived values, gradients of first and second order checked in
//! f64 over random shapes, axes and values, parameter counts, refusals, training, model files.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dendrite_autodiff::check::{check_gradients, check_second_order, CheckConfig};
use dendrite_autodiff::strategies::values_in;
use dendrite_graph::Graph;
use dendrite_nn::{
    Activation, Adam, Dense, FitConfig, Flatten, Init, Initializer, Layer, LayerNormalization,
    Loss, Metric, NnError, Reshape, Sequential,
};
use ndarray::{arr1, Array1, Array2, ArrayD};
use proptest::prelude::*;

fn close(a: &[f64], b: &[f64]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() < 1e-12, "{a:?} vs {b:?}");
    }
}

/// Sample [1, 2, 3, 4]: mean 2.5, centered [-1.5, -0.5, 0.5, 1.5], biased variance
/// (2.25 + 0.25 + 0.25 + 2.25) / 4 = 1.25, so x̂ = centered / sqrt(1.25 + 0.001); with gamma 2
/// and beta 0.5, y = 2 x̂ + 0.5. Sample [2, 2, 2, 2] is constant: centered 0, so y = beta.
#[test]
fn the_last_axis_is_normalized_per_sample() {
    let mut m = Sequential::<f64>::default();
    m.add(
        LayerNormalization::new()
            .input_shape([4])
            .gamma_initializer(Initializer::Constant(2.0))
            .beta_initializer(Initializer::Constant(0.5)),
    );
    m.build().unwrap();
    let x = ndarray::arr2(&[[1.0, 2.0, 3.0, 4.0], [2.0, 2.0, 2.0, 2.0]]);
    let p = m.predict(&x.view(), 2).unwrap();
    let s = 1.251_f64.sqrt();
    let expected: Vec<f64> = [-1.5, -0.5, 0.5, 1.5]
        .iter()
        .map(|c| 2.0 * c / s + 0.5)
        .chain([0.5; 4])
        .collect();
    close(p.as_slice().unwrap(), &expected);
}

/// Samples of shape [2, 2], `axis(1)` (the rows of each sample, per column). Sample
/// [[1, 2], [3, 5]]: column 0 is [1, 3], mean 2, centered [-1, 1], variance 1; column 1 is
/// [2, 5], mean 3.5, centered [-1.5, 1.5], variance 2.25. gamma has one value per row,
/// [1, 10], and beta [0, -1]: row 0 is x̂, row 1 is 10 x̂ - 1.
#[test]
fn a_middle_axis_broadcasts_gamma_and_beta_over_the_others() {
    let mut m = Sequential::<f64>::default();
    m.add(Reshape::new([2, 2]).input_shape([4]));
    m.add(LayerNormalization::new().axis(1));
    m.add(Flatten::new());
    m.build().unwrap();
    let mut w = m.get_weights().unwrap();
    assert_eq!((w[0].shape(), w[1].shape()), (&[2][..], &[2][..]));
    w[0] = arr1(&[1.0, 10.0]).into_dyn();
    w[1] = arr1(&[0.0, -1.0]).into_dyn();
    m.set_weights(&w).unwrap();
    let p = m
        .predict(&ndarray::arr2(&[[1.0, 2.0, 3.0, 5.0]]).view(), 1)
        .unwrap();
    let (a, b) = (1.001_f64.sqrt(), 2.251_f64.sqrt());
    let expected = [-1.0 / a, -1.5 / b, 10.0 / a - 1.0, 10.0 * 1.5 / b - 1.0];
    close(p.as_slice().unwrap(), &expected);
}

/// Axes [1, 2] of a [2, 2, 1] sample normalize the whole sample: [0, 1, 2, 3] has mean 1.5
/// and variance (2.25 + 0.25 + 0.25 + 2.25) / 4 = 1.25, with epsilon 0.25 the divisor is
/// sqrt(1.5); without center and scale there are no parameters.
#[test]
fn several_axes_normalize_together() {
    let mut m = Sequential::<f64>::default();
    m.add(Reshape::new([2, 2, 1]).input_shape([4]));
    m.add(
        LayerNormalization::new()
            .axes([1, -2])
            .epsilon(0.25)
            .center(false)
            .scale(false),
    );
    m.add(Flatten::new());
    assert_eq!(m.summary().unwrap().total_params(), 0);
    m.build().unwrap();
    let p = m
        .predict(&ndarray::arr2(&[[0.0, 1.0, 2.0, 3.0]]).view(), 1)
        .unwrap();
    let s = 1.5_f64.sqrt();
    close(
        p.as_slice().unwrap(),
        &[-1.5 / s, -0.5 / s, 0.5 / s, 1.5 / s],
    );
}

/// Two features [a, b]: the mean is (a + b) / 2, so the centered values are ±h with
/// h = (a - b) / 2, the variance is h², and y₁ = h / sqrt(h² + ε). Its derivative in h is
/// ε / (h² + ε)^(3/2), and dh/da = 1/2, dh/db = -1/2: at a = 1, b = 0 (h = 0.5, ε = 0.001)
/// dy₁/da = 0.001 / (2 · 0.251^1.5) ≈ 0.003976 and dy₁/db is its negative. A lane of two is
/// almost always ±1, so its gradient is almost 0.
#[test]
fn a_lane_of_two_has_the_hand_derived_gradient() {
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [1, 2]).unwrap();
    let nodes = LayerNormalization::new()
        .build(&mut g, x, &[2], &mut Init::new(0))
        .unwrap();
    let first = g.slice(nodes.output, 1, 0, 1).unwrap();
    let y1 = g.sum_all(first).unwrap();
    let dx = dendrite_autodiff::grad(&mut g, y1, &[x]).unwrap();
    let mut plan = dendrite_graph::compile(&g, &[y1, dx[0]]).unwrap();
    let xv = ndarray::arr2(&[[1.0, 0.0]]).into_dyn();
    let out = plan.run(&g, &[("x", xv.view())]).unwrap();
    let slope = 0.001 / (2.0 * 0.251_f64.powf(1.5));
    close(&[out.scalar(0).unwrap()], &[0.5 / 0.251_f64.sqrt()]);
    close(out.get(1).unwrap().as_slice().unwrap(), &[slope, -slope]);
}

#[test]
fn the_summary_counts_gamma_and_beta() {
    let mut m = Sequential::<f32>::default();
    m.add(Dense::new(16).input_dim(8));
    m.add(LayerNormalization::new());
    m.add(LayerNormalization::new().center(false));
    let s = m.summary().unwrap();
    assert_eq!(s.total_params(), 8 * 16 + 16 + 32 + 16);
    let text = s.to_string();
    assert!(text.contains("LayerNormalization"), "{text}");
    assert!(text.contains("(None, 16)"), "{text}");
    let ln = LayerNormalization::new().axes([1, 2]);
    assert_eq!(Layer::<f32>::param_count(&ln, &[4, 5, 3]), Some(40));
    assert_eq!(Layer::<f32>::param_count(&ln, &[4]), None);
}

#[test]
fn bad_axes_and_epsilon_are_refused() {
    let bad = [
        LayerNormalization::new().axis(0),
        LayerNormalization::new().axis(3),
        LayerNormalization::new().axis(-3),
        LayerNormalization::new().axes([1, -2]),
        LayerNormalization::new().axes(Vec::new()),
    ];
    for layer in bad {
        let err = Layer::<f32>::output_shape(&layer, &[4, 3]).unwrap_err();
        assert!(
            matches!(err, NnError::LayerInput { .. }),
            "{layer:?}: {err}"
        );
    }
    for eps in [0.0, -1e-3, f64::NAN, f64::INFINITY] {
        let mut m = Sequential::<f32>::default();
        m.add(LayerNormalization::new().epsilon(eps).input_shape([3]));
        let err = m.build().unwrap_err();
        assert!(
            matches!(
                err,
                NnError::Hyperparameter {
                    name: "epsilon",
                    ..
                }
            ),
            "{eps}: {err}"
        );
    }
}

/// (sample shape, axes) pairs: the last axis, a middle one, two trailing, two apart.
fn layouts() -> impl Strategy<Value = (Vec<usize>, Vec<isize>)> {
    prop_oneof![
        (1usize..=5).prop_map(|n| (vec![n], vec![-1])),
        Just((vec![3, 2], vec![1])),
        Just((vec![2, 3, 2], vec![2, 3])),
        Just((vec![2, 2, 3], vec![1, -1])),
    ]
}

fn case() -> impl Strategy<Value = (Vec<usize>, Vec<isize>, ArrayD<f64>, u64)> {
    (layouts(), 1usize..=3, any::<u64>()).prop_flat_map(|((sample, axes), batch, seed)| {
        let mut shape = vec![batch];
        shape.extend(&sample);
        (
            Just(sample),
            Just(axes),
            values_in(shape, -2.0..2.0),
            Just(seed),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    /// Gradients (and Hessian-vector products) of the layer's output with respect to the
    /// input, gamma and beta, against central differences in f64, with random gamma and beta.
    #[test]
    fn gradients_pass_the_checker((sample, axes, x, seed) in case()) {
        let mut layer = LayerNormalization::new()
            .axes(axes)
            .gamma_initializer(Initializer::RandomUniform { minval: 0.5, maxval: 1.5 })
            .beta_initializer(Initializer::RandomUniform { minval: -0.5, maxval: 0.5 });
        let dims: Vec<usize> = x.shape().to_vec();
        for order in [1, 2] {
            let mut g = Graph::<f64>::new();
            let xi = g.input("x", dims.as_slice()).unwrap();
            let nodes = layer.build(&mut g, xi, &sample, &mut Init::new(seed)).unwrap();
            let wrt = [xi, nodes.parameters[0], nodes.parameters[1]];
            let feeds = [("x", x.view())];
            let config = CheckConfig::default().with_seed(seed);
            let report = match order {
                1 => check_gradients(&mut g, nodes.output, &wrt, &feeds, &config),
                _ => check_second_order(&mut g, nodes.output, &wrt, &feeds, &config),
            }
            .unwrap();
            prop_assert!(report.passed(), "order {order}, {sample:?}: {report}");
        }
    }
}

/// A dense layer, a layer normalization and a softmax learn which of two features is larger:
/// the training loss falls.
#[test]
fn a_model_with_layer_normalization_trains() {
    let n = 256;
    let x = Array2::from_shape_fn((n, 4), |(i, j)| {
        (((i * 7 + j * 13) % 17) as f32) / 17.0 - 0.5
    });
    let y = Array1::from_shape_fn(n, |i| f32::from(u8::from(x[[i, 0]] > x[[i, 1]])));
    let mut m = Sequential::<f32>::default().with_seed(3);
    m.add(Dense::new(8).input_dim(4).activation(Activation::Relu));
    m.add(LayerNormalization::new());
    m.add(Dense::new(2).activation(Activation::Softmax));
    m.compile(
        Adam::new(1e-2),
        Loss::SparseCategoricalCrossentropy,
        &[Metric::Accuracy],
    )
    .unwrap();
    let h = m
        .fit(
            &(x.view(), y.view()),
            FitConfig::default().epochs(5).batch_size(32).verbosity(0),
        )
        .unwrap();
    let loss = h.metric("loss").unwrap();
    assert!(loss[4] < loss[0], "loss did not fall: {loss:?}");
}

#[test]
fn layer_normalization_round_trips_through_a_model_file() {
    let mut m = Sequential::<f32>::default().with_seed(5);
    m.add(Reshape::new([3, 2]).input_shape([6]));
    m.add(
        LayerNormalization::new()
            .axes([1])
            .epsilon(1e-5)
            .gamma_initializer(Initializer::RandomUniform {
                minval: 0.5,
                maxval: 1.5,
            })
            .beta_initializer(Initializer::Constant(0.25))
            .named("ln"),
    );
    m.add(LayerNormalization::new().center(false));
    m.add(Flatten::new());
    m.build().unwrap();
    let x = Array2::from_shape_fn((4, 6), |(i, j)| ((i * 5 + j * 3) % 13) as f32 / 13.0);
    dendrite_test_support::scratch::assert_round_trip(&mut m, &x, "nn-ln");
    // Keras writes `axis` as a list; one integer is read as well.
    let mut config = Layer::<f32>::config(&LayerNormalization::new()).unwrap();
    assert_eq!(config["axis"], serde_json::json!([-1]));
    config["axis"] = serde_json::json!(-1);
    assert_eq!(
        LayerNormalization::from_config(&config).unwrap(),
        LayerNormalization::new()
    );
    config["axis"] = serde_json::json!("last");
    assert!(LayerNormalization::from_config(&config).is_err());
}
