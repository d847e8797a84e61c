//! The model's side of hardening (issue 12): shape arithmetic that cannot overflow, layers too
//! large for memory, NaN and infinities in the data and the weights, configuration checked
//! where it is given, metrics that must fit the loss. One test per class of bad input; each row
//! of the book's table "Training data and configuration" names its test here.

use crate::common::{classifier, quiet, weight_bits};
use dendrite_graph::GraphError;
use dendrite_nn::{
    Activation, Adam, AdamW, Dense, EarlyStopping, FitConfig, Loss, Metric, Monitor, NnError,
    Optimizer, RmsProp, Schedule, Sequential, Sgd,
};
use ndarray::{array, Array1, Array2};
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
    #![proptest_config(ProptestConfig::with_cases(256))]

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
        stdout.contains("child error: init `dense_1`: a tensor of shape [1048576, 1048576] needs 4398046511104 bytes, over the per-tensor limit"),
        "{stdout}"
    );
    assert!(!stderr.contains("memory allocation"), "{stderr}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 4. NaN and infinities never pass silently into the weights.

fn relu_regressor() -> Sequential {
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
    assert_eq!(err.to_string(), "the training data hold NaN at sample 3, feature 1: features and targets must be finite (fix or drop the sample, or turn the check off with `with_finite_check(false)`)");
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
        matches!(&err, NnError::NonFiniteParameter { name, epoch: 1, step: 1, value } if name.starts_with("dense_") && !value.is_finite()),
        "{err:?}"
    );
    assert!(err
        .to_string()
        .contains("training stopped and the weights are those after the last finite step"));
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

// ---------------------------------------------------------------------------------------------
// 5. Configuration is validated where it is given.

fn regression_data() -> (Array2<f32>, Array1<f32>) {
    (
        Array2::from_shape_fn((8, 3), |(i, j)| (i + j) as f32 / 8.0),
        Array1::from_shape_fn(8, |i| i as f32 / 8.0),
    )
}

#[test]
fn early_stopping_min_delta_nan() -> TestResult {
    let (x, y) = regression_data();
    for delta in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let mut model = relu_regressor();
        let stop = EarlyStopping::new(Monitor::Loss).min_delta(delta);
        let err = model
            .fit(
                &(x.view(), y.view()),
                quiet().epochs(5).early_stopping(stop),
            )
            .unwrap_err();
        assert!(
            matches!(
                err,
                NnError::Hyperparameter {
                    owner: "early stopping",
                    name: "min_delta",
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(model.steps_taken(), 0);
    }
    let mut model = relu_regressor();
    let stop = EarlyStopping::new(Monitor::Loss).min_delta(f64::NAN);
    let err = model
        .fit(&(x.view(), y.view()), quiet().early_stopping(stop))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "early stopping: min_delta = NaN is invalid: must be finite"
    );
    Ok(())
}

fn compile_error(optimizer: impl Optimizer<f32> + 'static) -> NnError {
    let mut model = Sequential::new();
    model.add(Dense::new(1).input_dim(2));
    model
        .compile(optimizer, Loss::MeanSquaredError, &[])
        .unwrap_err()
}

#[test]
fn bad_learning_rates_for_every_optimizer() {
    for lr in [f64::NAN, -1e-3, f64::INFINITY, f64::NEG_INFINITY] {
        let errors = [
            compile_error(Sgd::new(lr)),
            compile_error(Sgd::new(lr).momentum(0.9)),
            compile_error(Adam::new(lr)),
            compile_error(AdamW::new(lr)),
            compile_error(RmsProp::new(lr)),
        ];
        for err in errors {
            assert!(
                matches!(
                    err,
                    NnError::Hyperparameter {
                        name: "learning_rate",
                        ..
                    }
                ),
                "lr {lr}: {err:?}"
            );
        }
    }
    let err = compile_error(Adam::new(f64::NAN));
    assert_eq!(
        err.to_string(),
        "learning-rate schedule: learning_rate = NaN is invalid: must be finite and >= 0"
    );
}

#[test]
fn schedules_with_zero_steps() {
    let schedules = [
        Schedule::Step {
            initial: 0.1,
            factor: 0.5,
            every: 0,
        },
        Schedule::Exponential {
            initial: 0.1,
            rate: 0.5,
            steps: 0,
            staircase: true,
        },
        Schedule::Cosine {
            initial: 0.1,
            steps: 0,
            alpha: 0.0,
        },
    ];
    for s in schedules {
        let err = compile_error(Adam::new(s));
        assert!(
            matches!(
                err,
                NnError::Hyperparameter {
                    name: "every" | "steps",
                    ..
                }
            ),
            "{s:?}: {err:?}"
        );
    }
}

#[test]
fn other_hyperparameters_out_of_range() {
    let nan = f64::NAN;
    let cases: Vec<(NnError, &str)> = vec![
        (compile_error(Adam::new(1e-3).betas(nan, 0.999)), "beta1"),
        (compile_error(Adam::new(1e-3).betas(0.9, 1.0)), "beta2"),
        (compile_error(Adam::new(1e-3).epsilon(0.0)), "epsilon"),
        (compile_error(Adam::new(1e-3).epsilon(nan)), "epsilon"),
        (
            compile_error(AdamW::new(1e-3).weight_decay(nan)),
            "weight_decay",
        ),
        (
            compile_error(AdamW::new(1e-3).weight_decay(-1.0)),
            "weight_decay",
        ),
        (compile_error(Sgd::new(0.1).momentum(nan)), "momentum"),
        (compile_error(Sgd::new(0.1).momentum(1.0)), "momentum"),
        (compile_error(RmsProp::new(0.1).rho(nan)), "rho"),
        (compile_error(RmsProp::new(0.1).momentum(-0.1)), "momentum"),
        (
            compile_error(RmsProp::new(0.1).epsilon(f64::INFINITY)),
            "epsilon",
        ),
        (
            compile_error(Sgd::new(Schedule::Step {
                initial: 0.1,
                factor: nan,
                every: 1,
            })),
            "factor",
        ),
        (
            compile_error(Sgd::new(Schedule::Cosine {
                initial: 0.1,
                steps: 10,
                alpha: nan,
            })),
            "alpha",
        ),
    ];
    for (err, field) in cases {
        assert!(
            matches!(&err, NnError::Hyperparameter { name, .. } if *name == field),
            "{field}: {err:?}"
        );
    }
}

#[test]
fn validation_split_outside_unit_interval() -> TestResult {
    let (x, y) = regression_data();
    for split in [-0.1, 1.0, 1.5, f64::NAN, f64::INFINITY] {
        let mut model = relu_regressor();
        let err = model
            .fit(&(x.view(), y.view()), quiet().validation_split(split))
            .unwrap_err();
        assert!(
            matches!(
                err,
                NnError::ValidationSplit {
                    samples: 8,
                    reason: "it must lie in [0, 1)",
                    ..
                }
            ),
            "{split}: {err:?}"
        );
        assert_eq!(model.steps_taken(), 0);
    }
    Ok(())
}

#[test]
fn metric_that_does_not_fit_the_loss() {
    let compile = |units: usize, loss: Loss, metric: Metric| {
        let mut model = Sequential::new();
        model.add(
            Dense::new(units)
                .input_dim(2)
                .activation(Activation::Softmax),
        );
        model.compile(Adam::default(), loss, &[metric])
    };
    let err = compile(
        10,
        Loss::CategoricalCrossentropy,
        Metric::SparseCategoricalAccuracy,
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            NnError::MetricMismatch {
                metric: "sparse_categorical_accuracy",
                loss: "categorical_crossentropy",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().starts_with(
        "metric sparse_categorical_accuracy does not fit loss categorical_crossentropy with 10 output(s)"
    ));
    let refused = [
        (
            Loss::SparseCategoricalCrossentropy,
            Metric::CategoricalAccuracy,
        ),
        (Loss::SparseCategoricalCrossentropy, Metric::BinaryAccuracy),
        (Loss::CategoricalCrossentropy, Metric::BinaryAccuracy),
        (Loss::MeanSquaredError, Metric::SparseCategoricalAccuracy),
        (Loss::BinaryCrossentropy, Metric::SparseCategoricalAccuracy),
    ];
    for (loss, metric) in refused {
        let err = compile(10, loss, metric).unwrap_err();
        assert!(
            matches!(err, NnError::MetricMismatch { .. }),
            "{loss:?} {metric:?}: {err:?}"
        );
    }
    // One output: an argmax is always 0.
    let err = compile(1, Loss::MeanSquaredError, Metric::CategoricalAccuracy).unwrap_err();
    assert!(
        matches!(err, NnError::MetricMismatch { width: 1, .. }),
        "{err:?}"
    );
    // What fits is accepted.
    for (units, loss, metric) in [
        (
            10,
            Loss::CategoricalCrossentropy,
            Metric::CategoricalAccuracy,
        ),
        (
            10,
            Loss::SparseCategoricalCrossentropy,
            Metric::SparseCategoricalAccuracy,
        ),
        (1, Loss::BinaryCrossentropy, Metric::BinaryAccuracy),
        (3, Loss::MeanSquaredError, Metric::BinaryAccuracy),
        (10, Loss::CategoricalCrossentropy, Metric::Accuracy),
    ] {
        assert!(compile(units, loss, metric).is_ok(), "{loss:?} {metric:?}");
    }
}

#[test]
fn binary_crossentropy_target_outside_unit_interval() -> TestResult {
    let mut model = Sequential::new();
    model.add(Dense::new(1).input_dim(2).activation(Activation::Sigmoid));
    model.compile(
        Adam::default(),
        Loss::BinaryCrossentropy,
        &[Metric::Accuracy],
    )?;
    let x = Array2::<f32>::zeros((4, 2));
    let y = array![0.0_f32, 1.0, 2.0, 0.5];
    let err = model.fit(&(x.view(), y.view()), quiet()).unwrap_err();
    assert!(
        matches!(err, NnError::TargetOutOfRange { loss: "binary_crossentropy", data: "training", sample: 2, index: 0, value, .. } if value == 2.0),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "binary_crossentropy needs targets in [0, 1], but the training data hold 2 at sample 2, target 0"
    );
    let negative = array![[0.0_f32], [-0.5], [1.0], [1.0]];
    let err = model.evaluate(&(x.view(), negative.view()), 2).unwrap_err();
    assert!(
        matches!(
            err,
            NnError::TargetOutOfRange {
                data: "evaluation",
                sample: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(model.steps_taken(), 0);
    // Labels 0 and 1 are fine.
    let ok = array![0.0_f32, 1.0, 1.0, 0.0];
    model.fit(&(x.view(), ok.view()), quiet())?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 7. Messages say exactly what is wrong.

#[test]
fn validation_data_errors_say_validation() -> TestResult {
    let mut model = classifier(0, 3, 4, 3);
    let (x, y) = (Array2::<f32>::zeros((6, 3)), Array1::<f32>::zeros(6));
    let bad_labels = array![0.0_f32, 5.0];
    let valid_x = Array2::<f32>::zeros((2, 3));
    let valid = (valid_x.view(), bad_labels.view());
    let err = model
        .fit(&(x.view(), y.view()), quiet().validation_data(&valid))
        .unwrap_err();
    assert!(
        matches!(&err, NnError::InData { data: "validation", source } if matches!(**source, NnError::LabelOutOfRange { index: 1, .. })),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "in the validation data: label 5 at sample 1 is not a class index in 0..3"
    );
    let err = model
        .fit(
            &(x.view(), y.view()),
            FitConfig::default().verbosity(0).epochs(1),
        )
        .map(|_| ());
    assert!(err.is_ok());
    Ok(())
}
