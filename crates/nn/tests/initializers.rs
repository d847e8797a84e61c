//! Initializers (statistics, determinism, orthogonality), regularizers (gradients, the
//! training loss) and gradient clipping.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dendrite_autodiff::{assert_gradients, check_second_order, CheckConfig};
use dendrite_graph::Graph;
use dendrite_nn::{
    Adam, Clipping, Dense, FitConfig, Init, InitFn, Initializer, Loss, NnError, Optimizer,
    Regularizer, RmsProp, Sequential, Sgd,
};
use ndarray::{Array2, ArrayD, Ix2};
use proptest::prelude::*;

fn stats(w: &ArrayD<f64>) -> (f64, f64, f64) {
    let n = w.len() as f64;
    let mean = w.sum() / n;
    let var = w.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    let max = w.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
    (mean, var, max)
}

#[test]
fn variance_scaling_initializers_have_keras_variances_and_bounds() {
    let shape = [400, 300];
    let (fan_in, fan_avg) = (400.0_f64, 350.0_f64);
    // (initializer, expected variance, bound on |w|: the uniform limit, or 2σ truncation)
    let cases = [
        (
            Initializer::GlorotUniform,
            1.0 / fan_avg,
            (3.0 / fan_avg).sqrt(),
        ),
        (
            Initializer::GlorotNormal,
            1.0 / fan_avg,
            2.0 * (1.0 / fan_avg).sqrt() / 0.879_625_661,
        ),
        (Initializer::HeUniform, 2.0 / fan_in, (6.0 / fan_in).sqrt()),
        (
            Initializer::HeNormal,
            2.0 / fan_in,
            2.0 * (2.0 / fan_in).sqrt() / 0.879_625_661,
        ),
        (
            Initializer::LecunUniform,
            1.0 / fan_in,
            (3.0 / fan_in).sqrt(),
        ),
        (
            Initializer::LecunNormal,
            1.0 / fan_in,
            2.0 * (1.0 / fan_in).sqrt() / 0.879_625_661,
        ),
    ];
    for (init, variance, bound) in cases {
        let w = Init::new(11).initialize::<f64>(&init, &shape).unwrap();
        let (mean, var, max) = stats(&w);
        // 120,000 draws: the sample variance is within 1.5% of the truth with room to spare
        // (its relative standard error is about 0.4% for these distributions).
        assert!(
            (var / variance - 1.0).abs() < 0.015,
            "{init:?}: variance {var} vs {variance}"
        );
        assert!(
            mean.abs() < 4.0 * (variance / w.len() as f64).sqrt(),
            "{init:?}: mean {mean}"
        );
        assert!(
            max <= bound * (1.0 + 1e-12),
            "{init:?}: {max} beyond {bound}"
        );
        assert!(max > 0.9 * bound, "{init:?}: {max} never nears {bound}");
    }
}

#[test]
fn initializers_are_deterministic_and_per_layer() {
    for init in [
        Initializer::HeNormal,
        Initializer::Orthogonal { gain: 2.0 },
        Initializer::LecunUniform,
    ] {
        let a = Init::for_layer(5, 2)
            .initialize::<f32>(&init, &[6, 4])
            .unwrap();
        let b = Init::for_layer(5, 2)
            .initialize::<f32>(&init, &[6, 4])
            .unwrap();
        let c = Init::for_layer(5, 3)
            .initialize::<f32>(&init, &[6, 4])
            .unwrap();
        assert_eq!(a, b, "{init:?}");
        assert_ne!(a, c, "{init:?}");
        // f32 is the f64 draw rounded.
        let d = Init::for_layer(5, 2)
            .initialize::<f64>(&init, &[6, 4])
            .unwrap();
        assert_eq!(a, d.mapv(|v| v as f32), "{init:?}");
    }
}

#[test]
fn orthogonal_is_orthonormal_tall_and_wide() {
    for (rows, cols) in [(20, 7), (7, 20), (9, 9)] {
        let w = Init::new(1)
            .initialize::<f64>(&Initializer::Orthogonal { gain: 1.0 }, &[rows, cols])
            .unwrap()
            .into_dimensionality::<Ix2>()
            .unwrap();
        let gram = if rows >= cols {
            w.t().dot(&w)
        } else {
            w.dot(&w.t())
        };
        let eye = Array2::<f64>::eye(rows.min(cols));
        let err = (&gram - &eye).iter().fold(0.0_f64, |m, d| m.max(d.abs()));
        assert!(err < 1e-12, "{rows}x{cols}: |WᵀW - I| = {err}");
    }
    let scaled = Init::new(1)
        .initialize::<f64>(&Initializer::Orthogonal { gain: 3.0 }, &[5, 5])
        .unwrap()
        .into_dimensionality::<Ix2>()
        .unwrap();
    let gram = scaled.t().dot(&scaled);
    assert!((gram[[2, 2]] - 9.0).abs() < 1e-11 && gram[[0, 1]].abs() < 1e-11);
    let err = Init::new(0)
        .initialize::<f32>(&Initializer::Orthogonal { gain: 1.0 }, &[4])
        .unwrap_err();
    assert!(matches!(err, NnError::LayerInput { .. }), "{err}");
}

#[derive(Debug)]
struct Ramp;

impl InitFn for Ramp {
    fn fill(&self, _init: &mut Init, _shape: &[usize], values: &mut [f64]) -> Result<(), NnError> {
        for (i, v) in values.iter_mut().enumerate() {
            *v = i as f64 * 0.5;
        }
        Ok(())
    }
}

#[derive(Debug)]
struct Broken;

impl InitFn for Broken {
    fn fill(&self, _init: &mut Init, _shape: &[usize], values: &mut [f64]) -> Result<(), NnError> {
        values[3] = f64::INFINITY;
        Ok(())
    }
}

#[test]
fn constant_and_custom_initializers_reach_the_layer() {
    let mut model = Sequential::new();
    model.add(
        Dense::new(3)
            .input_dim(2)
            .kernel_initializer(Initializer::custom(Ramp))
            .bias_initializer(Initializer::Constant(-1.5)),
    );
    model.build().unwrap();
    let w = model.get_weights().unwrap();
    assert_eq!(
        w[0].iter().copied().collect::<Vec<f32>>(),
        [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    );
    assert!(w[1].iter().all(|&b| b == -1.5));

    let mut broken = Sequential::new();
    broken.add(
        Dense::new(3)
            .input_dim(2)
            .kernel_initializer(Initializer::custom(Broken)),
    );
    let err = broken.build().unwrap_err();
    assert!(
        matches!(&err, NnError::NonFiniteWeight { name, index: 3, .. } if name == "dense_1"),
        "{err}"
    );
}

fn away_from_zero() -> impl Strategy<Value = Vec<f64>> {
    proptest::collection::vec(prop_oneof![-3.0..-0.05_f64, 0.05..3.0_f64], 1..12)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    /// d/dw (l1 Σ|w| + l2 Σw²) = l1 sign(w) + 2 l2 w (away from the kink of |w| at 0); second
    /// order: the Hessian is 2 l2 I.
    #[test]
    fn regularizer_gradients_match_central_differences(
        w in away_from_zero(),
        l1 in 0.0..2.0_f64,
        l2 in 0.0..2.0_f64,
    ) {
        for r in [Regularizer::l1(l1), Regularizer::l2(l2), Regularizer::l1_l2(l1, l2)] {
            let mut g = Graph::<f64>::new();
            let p = g.parameter("w", ndarray::Array1::from(w.clone()).into_dyn()).unwrap();
            let penalty = r.penalty(&mut g, p).unwrap();
            assert_gradients(&mut g, penalty, &[p], &[], &CheckConfig::default()).unwrap();
            let report = check_second_order(&mut g, penalty, &[p], &[], &CheckConfig::default()).unwrap();
            prop_assert!(report.passed(), "{report}");
        }
    }
}

#[test]
fn l2_penalty_by_hand() {
    // w = (1, -2, 3): 0.1 Σ w² = 1.4, gradient 0.2 w = (0.2, -0.4, 0.6).
    let mut g = Graph::<f64>::new();
    let p = g
        .parameter("w", ndarray::arr1(&[1.0, -2.0, 3.0]).into_dyn())
        .unwrap();
    let penalty = Regularizer::l2(0.1).penalty(&mut g, p).unwrap();
    let grad = dendrite_autodiff::grad(&mut g, penalty, &[p]).unwrap();
    let mut plan = dendrite_graph::compile(&g, &[penalty, grad[0]]).unwrap();
    let out = plan.run(&g, &[]).unwrap();
    assert!((out.scalar(0).unwrap() - 1.4).abs() < 1e-12);
    let dw: Vec<f64> = out.get(1).unwrap().iter().copied().collect();
    for (a, b) in dw.iter().zip([0.2, -0.4, 0.6]) {
        assert!((a - b).abs() < 1e-12);
    }
    assert!(Regularizer::l1(-1.0).penalty(&mut g, p).is_err());
}

fn data() -> (Array2<f32>, Array2<f32>) {
    let x = Array2::from_shape_fn((48, 4), |(i, j)| ((i * 5 + j * 7) % 13) as f32 / 13.0 - 0.5);
    let y = Array2::from_shape_fn((48, 1), |(i, _)| x[[i, 0]] - 2.0 * x[[i, 3]]);
    (x, y)
}

fn model(regularized: bool) -> Sequential {
    let mut model = Sequential::new().with_seed(4);
    let mut layer = Dense::new(5).input_dim(4);
    if regularized {
        layer = layer
            .kernel_regularizer(Regularizer::l2(0.01))
            .bias_regularizer(Regularizer::l1(0.02));
    }
    model.add(layer).add(Dense::new(1));
    model
}

#[test]
fn the_penalty_is_part_of_the_loss_and_reported_on_its_own() {
    let (x, y) = data();
    let data = (x.view(), y.view());
    let mut plain = model(false);
    plain
        .compile(Sgd::new(0.1), Loss::MeanSquaredError, &[])
        .unwrap();
    let mut reg = model(true);
    reg.compile(Sgd::new(0.1), Loss::MeanSquaredError, &[])
        .unwrap();
    // Same initial weights: the evaluated loss differs by exactly the penalty.
    let (a, b) = (
        plain.evaluate(&data, 48).unwrap(),
        reg.evaluate(&data, 48).unwrap(),
    );
    let w = reg.get_weights().unwrap();
    let expected = 0.01 * w[0].iter().map(|v| f64::from(v * v)).sum::<f64>()
        + 0.02 * w[1].iter().map(|v| f64::from(v.abs())).sum::<f64>();
    let penalty = b.regularization.unwrap();
    assert!((penalty - expected).abs() < 1e-6, "{penalty} vs {expected}");
    assert!((b.loss - a.loss - penalty).abs() < 1e-6);
    assert_eq!(a.regularization, None);
    // Training minimizes the sum: the penalty shrinks the kernel.
    let config = || {
        FitConfig::default()
            .epochs(20)
            .batch_size(48)
            .verbosity(0)
            .threads(1)
    };
    let h = reg.fit(&data, config()).unwrap();
    plain.fit(&data, config()).unwrap();
    assert_eq!(h.regularization.len(), 20);
    assert!(h.regularization[19] < h.regularization[0]);
    let norm = |m: &Sequential| {
        m.get_weights().unwrap()[0]
            .iter()
            .map(|v| v * v)
            .sum::<f32>()
    };
    assert!(norm(&reg) < norm(&plain));
}

#[test]
fn clipping_follows_keras() {
    let grads = || vec![vec![3.0_f64, 4.0], vec![0.0, 12.0]];
    let mut g = grads();
    Clipping::norm(100.0).apply(&mut g);
    assert_eq!(g, grads(), "within the norm: untouched");
    let mut g = grads();
    Clipping::global_norm(13.0).apply(&mut g);
    assert_eq!(g, grads());
    let mut g = grads();
    Clipping::global_norm(1.0).apply(&mut g);
    let n: f64 = g.iter().flatten().map(|v| v * v).sum::<f64>().sqrt();
    assert!((n - 1.0).abs() < 1e-12);
    assert!(
        (g[0][0] / g[1][1] - 3.0 / 12.0).abs() < 1e-12,
        "direction kept"
    );
    let mut g = vec![vec![f64::NAN, 1.0]];
    Clipping::value(0.5).apply(&mut g);
    assert!(g[0][0].is_nan() && g[0][1] == 0.5, "a NaN stays visible");
}

#[test]
fn clipping_settings_are_validated() {
    for (opt, name) in [
        (Adam::<f32>::default().clipnorm(0.0).validate(), "clipnorm"),
        (
            Sgd::<f32>::new(0.1).clipvalue(f64::NAN).validate(),
            "clipvalue",
        ),
        (
            RmsProp::<f32>::default()
                .clipnorm(1.0)
                .global_clipnorm(1.0)
                .validate(),
            "global_clipnorm",
        ),
    ] {
        assert!(
            matches!(opt, Err(NnError::Hyperparameter { name: n, .. }) if n == name),
            "{opt:?}"
        );
    }
    assert!(dendrite_nn::AdamW::<f32>::default()
        .global_clipnorm(1.0)
        .validate()
        .is_ok());
}

#[test]
fn fit_clips_gradients_before_the_update() {
    let (x, y) = data();
    let data = (x.view(), y.view());
    let config = || {
        FitConfig::default()
            .epochs(2)
            .batch_size(16)
            .verbosity(0)
            .threads(1)
    };
    let run = |opt: Sgd<f32>| {
        let mut m = model(false);
        m.compile(opt, Loss::MeanSquaredError, &[]).unwrap();
        m.fit(&data, config()).unwrap();
        m.get_weights().unwrap()
    };
    let plain = run(Sgd::new(0.1));
    assert_eq!(
        run(Sgd::new(0.1).clipnorm(1e6)),
        plain,
        "a loose clip changes nothing"
    );
    assert_ne!(run(Sgd::new(0.1).clipvalue(1e-4)), plain);
    // With a tiny global norm every step moves the weights by exactly lr · c in total.
    let mut m = model(false);
    m.build().unwrap();
    let before = m.get_weights().unwrap();
    m.compile(
        Sgd::new(0.1).global_clipnorm(1e-3),
        Loss::MeanSquaredError,
        &[],
    )
    .unwrap();
    m.fit(&data, config().epochs(1).batch_size(48)).unwrap();
    let moved: f64 = m
        .get_weights()
        .unwrap()
        .iter()
        .zip(&before)
        .flat_map(|(a, b)| a.iter().zip(b).map(|(a, b)| f64::from(a - b).powi(2)))
        .sum::<f64>()
        .sqrt();
    assert!((moved - 1e-4).abs() < 1e-7, "moved {moved}");
}
