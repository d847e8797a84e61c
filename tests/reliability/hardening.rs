//! The model's side of hardening (issue 12): shape arithmetic that cannot overflow, layers too
//! large for memory, NaN and infinities in the data and the weights, configuration checked
//! where it is given, metrics that must fit the loss. One test per class of bad input; each row
//! of the book's table "Training data and configuration" names its test here.

use crate::common::{quiet, weight_bits};
use dendrite_graph::GraphError;
use dendrite_nn::{Activation, Adam, Dense, FitConfig, Loss, NnError, Schedule, Sequential, Sgd};
use ndarray::{Array1, Array2};
use proptest::prelude::*;
use std::error::Error;

type TestResult = Result<(), Box<dyn Error>>;

// ---------------------------------------------------------------------------------------------
// 1. Shape arithmetic never overflows.

#[test]
fn param_count_overflow() {
    let mut model = Sequential::new();
    model.add(Dense::new(usize::MAX).input_dim(2));
    let err = model.summary().unwrap_err();
    assert!(
        matches!(&err, NnError::ParamCountOverflow { layer, kind: "Dense", input } if layer == "dense_1" && input == &[2]),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "layer `dense_1` (Dense) on input shape [2]: its parameter count overflows usize"
    );
    assert!(matches!(
        model.build(),
        Err(NnError::ParamCountOverflow { .. })
    ));
    // Each layer fits, their sum does not: 1.5 · 2⁶³ + 2⁶² + 1 > usize::MAX.
    let mut wide = Sequential::new();
    wide.add(Dense::new(1 << 62).input_dim(2))
        .add(Dense::new(1));
    let err = wide.summary().unwrap_err();
    assert!(
        matches!(&err, NnError::TotalParamsOverflow { layer, params } if layer == "dense_2" && *params == (1 << 62) + 1),
        "{err:?}"
    );
}

/// A layer size that is small, zero, or hostile: near `usize::MAX`, or large enough that any
/// product with it is over the per-tensor limit.
fn hostile_size() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(0usize),
        1usize..=8,
        (31u32..64).prop_map(|k| 1usize << k),
        (0usize..4).prop_map(|k| usize::MAX - k),
        (1usize << 31)..=usize::MAX,
    ]
}

/// The model's parameter count in u128 (products of two sizes fit; their sums too), `None`
/// when a layer's count or the total exceeds `usize::MAX`.
fn expected_total(sizes: &[usize; 3]) -> Option<usize> {
    let [features, hidden, out] = sizes.map(|s| s as u128);
    let first = features.checked_mul(hidden)?.checked_add(hidden)?;
    let second = hidden.checked_mul(out)?.checked_add(out)?;
    let max = usize::MAX as u128;
    let total = first.checked_add(second)?;
    (first <= max && second <= max && total <= max).then_some(total as usize)
}

proptest! {
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(256)
    })]

    /// Dense/Sequential `summary` and `build` on hostile sizes: the exact count (computed in
    /// u128 here) or a typed error, never a panic or an abort; only small models allocate.
    #[test]
    fn hostile_layer_sizes(sizes in [hostile_size(), hostile_size(), hostile_size()]) {
        let [features, hidden, out] = sizes;
        let mut model = Sequential::new();
        model.add(Dense::new(hidden).input_dim(features)).add(Dense::new(out));
        let summary = model.summary();
        if sizes.contains(&0) {
            // A zero size is refused; an overflow in a layer before it may be found first.
            prop_assert!(matches!(summary, Err(NnError::LayerInput { .. } | NnError::ParamCountOverflow { .. })), "{:?}", summary);
        } else {
            match (expected_total(&sizes), summary) {
                (Some(total), Ok(s)) => prop_assert_eq!(s.total_params(), total),
                (None, Err(NnError::ParamCountOverflow { .. } | NnError::TotalParamsOverflow { .. })) => {}
                (want, got) => prop_assert!(false, "expected {:?}, got {:?}", want, got),
            }
        }
        let small = sizes.iter().all(|&s| (1..=8).contains(&s));
        match model.build() {
            Ok(()) => prop_assert!(small, "built {:?}", sizes),
            Err(NnError::LayerInput { .. } | NnError::ParamCountOverflow { .. }) => prop_assert!(!small),
            Err(NnError::Graph(GraphError::TensorTooLarge { op: "init", .. })) => prop_assert!(!small),
            Err(other) => prop_assert!(false, "unexpected {:?}", other),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 2. No allocation can abort the process.

const CHILD: &str = "DENDRITE_HUGE_LAYER_CHILD";

/// `Dense::new(1 << 20).input_dim(1 << 20)` asks for a 4 TiB kernel. Built in a child process
/// (this test binary, run again on this test alone), it must end normally with the error
/// rather than abort: an abort would kill the child with SIGABRT.
#[test]
fn huge_dense_layer_is_an_error_not_an_abort() -> TestResult {
    if std::env::var_os(CHILD).is_some() {
        let mut model = Sequential::new();
        model.add(Dense::new(1 << 20).input_dim(1 << 20));
        let err = model.build().unwrap_err();
        assert!(
            matches!(&err, NnError::Graph(GraphError::TensorTooLarge { node, .. }) if node == "dense_1"),
            "{err:?}"
        );
        println!("child error: {err}");
        return Ok(());
    }
    let out = std::process::Command::new(std::env::current_exe()?)
        .args([
            "--exact",
            "hardening::huge_dense_layer_is_an_error_not_an_abort",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "child failed: {:?}\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stdout.contains("1 passed"), "{stdout}");
    assert!(
        stdout.contains(
            "child error: init `dense_1`: a tensor of shape [1048576, 1048576] needs \
                         4398046511104 bytes, over the per-tensor limit"
        ),
        "{stdout}"
    );
    assert!(!stderr.contains("memory allocation"), "{stderr}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 4. NaN and infinities never pass silently into the weights.

pub fn relu_regressor() -> Sequential {
    let mut model = Sequential::new().with_seed(3);
    model.add(Dense::new(4).input_dim(3).activation(Activation::Relu));
    model.add(Dense::new(1));
    model
        .compile(Adam::default(), Loss::MeanSquaredError, &[])
        .unwrap();
    model
}

fn with_nan(at: (usize, usize)) -> (Array2<f32>, Array1<f32>) {
    let mut x = Array2::from_shape_fn((10, 3), |(i, j)| (i + j) as f32 / 10.0);
    x[at] = f32::NAN;
    (x, Array1::from_shape_fn(10, |i| i as f32 / 10.0))
}

#[test]
fn nan_feature_names_sample_and_feature() -> TestResult {
    let mut model = relu_regressor();
    let before = weight_bits(&model);
    let (x, y) = with_nan((3, 1));
    let err = model.fit(&(x.view(), y.view()), quiet()).unwrap_err();
    assert!(
        matches!(err, NnError::NonFiniteData { data: "training", part: "feature", sample: 3, index: 1, value } if value.is_nan()),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "the training data hold NaN at sample 3, feature 1: features and \
                                 targets must be finite (fix or drop the sample, or turn the \
                                 check off with `with_finite_check(false)`)"
    );
    assert_eq!((model.steps_taken(), weight_bits(&model)), (0, before));
    // In the held-out tail of a validation split, the error says validation.
    let (x, y) = with_nan((9, 2));
    let err = model
        .fit(&(x.view(), y.view()), quiet().validation_split(0.2))
        .unwrap_err();
    assert!(
        matches!(
            err,
            NnError::NonFiniteData {
                data: "validation",
                sample: 9,
                index: 2,
                ..
            }
        ),
        "{err:?}"
    );
    // In validation data given separately, and in evaluate and predict.
    let (clean, _) = with_nan((0, 0));
    let clean = clean.mapv(|v| if v.is_nan() { 0.0 } else { v });
    let (bad_x, bad_y) = with_nan((4, 0));
    let valid = (bad_x.view(), bad_y.view());
    let err = model
        .fit(&(clean.view(), y.view()), quiet().validation_data(&valid))
        .unwrap_err();
    assert!(
        matches!(
            err,
            NnError::NonFiniteData {
                data: "validation",
                sample: 4,
                index: 0,
                ..
            }
        ),
        "{err:?}"
    );
    let err = model.evaluate(&valid, 4).unwrap_err();
    assert!(
        matches!(
            err,
            NnError::NonFiniteData {
                data: "evaluation",
                ..
            }
        ),
        "{err:?}"
    );
    let err = model.predict(&bad_x.view(), 4).unwrap_err();
    assert!(
        matches!(
            err,
            NnError::NonFiniteData {
                data: "prediction",
                sample: 4,
                ..
            }
        ),
        "{err:?}"
    );
    // An infinite target.
    let mut bad_targets = y.clone();
    bad_targets[6] = f32::INFINITY;
    let err = model
        .fit(&(clean.view(), bad_targets.view()), quiet())
        .unwrap_err();
    assert!(
        matches!(
            err,
            NnError::NonFiniteData {
                part: "target",
                sample: 6,
                index: 0,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(model.steps_taken(), 0);
    Ok(())
}

#[test]
fn non_finite_parameter_stops_fit() -> TestResult {
    // A learning rate finite in f64 but infinite in f32: the loss of the first step is finite,
    // its update is not. The step is undone.
    let mut model = Sequential::new().with_seed(5);
    model.add(Dense::new(2).input_dim(3).activation(Activation::Relu));
    model.add(Dense::new(1));
    model.compile(Sgd::new(1e39), Loss::MeanSquaredError, &[])?;
    let before = weight_bits(&model);
    let x = Array2::from_shape_fn((8, 3), |(i, j)| (i * 3 + j) as f32 / 8.0 + 0.5);
    let y = Array1::from_shape_fn(8, |i| i as f32);
    let err = model
        .fit(&(x.view(), y.view()), quiet().epochs(2))
        .unwrap_err();
    assert!(
        matches!(&err, NnError::NonFiniteParameter { name, epoch: 1, step: 1, value, .. } if name.starts_with("dense_") && !value.is_finite()),
        "{err:?}"
    );
    assert!(err.to_string().contains(
        "training stopped and the weights and optimizer state are those after the last finite step"
    ));
    assert_eq!(model.steps_taken(), 0);
    assert_eq!(weight_bits(&model), before);
    // Opting out of the data check: a NaN feature through ReLU still stops fit.
    let mut unchecked = std::mem::take(&mut relu_regressor()).with_finite_check(false);
    let before = weight_bits(&unchecked);
    let (x, y) = with_nan((0, 0));
    let err = unchecked
        .fit(&(x.view(), y.view()), quiet().shuffle(false).batch_size(1))
        .unwrap_err();
    assert!(
        matches!(
            err,
            NnError::NonFiniteLoss { step: 1, .. } | NnError::NonFiniteParameter { step: 1, .. }
        ),
        "{err:?}"
    );
    assert_eq!(weight_bits(&unchecked), before);
    Ok(())
}

#[test]
fn learning_rate_schedule_that_overflows() -> TestResult {
    // Zero gradients (zero inputs, no bias, zero targets) keep the weights; the rate 1, 1e300,
    // then ∞ stops the third step before it is taken.
    let mut model = Sequential::<f64>::default();
    model.add(Dense::new(1).input_dim(1).use_bias(false));
    let schedule = Schedule::Exponential {
        initial: 1.0,
        rate: 1e300,
        steps: 1,
        staircase: false,
    };
    model.compile(Sgd::new(schedule), Loss::MeanSquaredError, &[])?;
    let (x, y) = (Array2::<f64>::zeros((4, 1)), Array1::<f64>::zeros(4));
    let err = model
        .fit(
            &(x.view(), y.view()),
            FitConfig::default()
                .verbosity(0)
                .batch_size(1)
                .shuffle(false),
        )
        .unwrap_err();
    assert!(
        matches!(err, NnError::LearningRate { optimizer: "sgd", epoch: 1, step: 3, value } if value.is_infinite()),
        "{err:?}"
    );
    assert_eq!(model.steps_taken(), 2);
    Ok(())
}

#[test]
fn init_bounds_must_be_finite() {
    use dendrite_nn::Init;
    for (low, high) in [(f64::NAN, 1.0), (0.0, f64::INFINITY), (1.0, -1.0)] {
        let err = Init::new(0).uniform::<f32>(&[3], low, high).unwrap_err();
        assert!(
            matches!(err, NnError::Hyperparameter { owner: "init", .. }),
            "[{low}, {high}): {err:?}"
        );
    }
    // Glorot's limit stays finite for any shape, zero-sized ones included.
    let w = Init::new(0).glorot_uniform::<f32>(&[0, 3]).unwrap();
    assert_eq!(w.len(), 0);
}
