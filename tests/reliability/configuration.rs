//! Issue 12, sections 5 and 7: configuration is validated where it is given (early stopping,
//! learning rates and schedules, every other hyperparameter, the validation split), metrics
//! must fit the loss, binary cross-entropy targets must lie in [0, 1], and errors in validation
//! data say so. Rows of the book's table "Training data and configuration".

use crate::common::{classifier, quiet};
use dendrite_nn::{
    Activation, Adam, AdamW, Dense, EarlyStopping, FitConfig, Loss, Metric, Monitor, NnError,
    Optimizer, RmsProp, Schedule, Sequential, Sgd,
};
use ndarray::{array, Array1, Array2};
use std::error::Error;

type TestResult = Result<(), Box<dyn Error>>;

fn relu_regressor() -> Sequential {
    crate::hardening::relu_regressor()
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
        "metric sparse_categorical_accuracy does not fit loss categorical_crossentropy with 10 \
         output(s)"
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
        let err = compile(10, loss.clone(), metric.clone()).unwrap_err();
        assert!(
            matches!(err, NnError::MetricMismatch { .. }),
            "{loss:?} {metric:?}: {err:?}"
        );
    }
    // A categorical loss on one output: the loss is always 0.
    for loss in [
        Loss::CategoricalCrossentropy,
        Loss::SparseCategoricalCrossentropy,
    ] {
        let mut one = Sequential::new();
        one.add(Dense::new(1).input_dim(2).activation(Activation::Sigmoid));
        let err = one.compile(Adam::default(), loss, &[]).unwrap_err();
        assert!(
            matches!(err, NnError::LossOutput { width: 1, .. }),
            "{err:?}"
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
        assert!(
            compile(units, loss.clone(), metric.clone()).is_ok(),
            "{loss:?} {metric:?}"
        );
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
        "binary_crossentropy needs targets in [0, 1], but the training data hold 2 at sample 2, \
         target 0"
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
    // Categorical cross-entropy targets too: one-hot or soft rows, within [0, 1].
    let mut categorical = Sequential::new();
    categorical.add(Dense::new(2).input_dim(2).activation(Activation::Softmax));
    categorical.compile(Adam::default(), Loss::CategoricalCrossentropy, &[])?;
    let rows = array![[1.0_f32, 0.0], [0.0, 1.0], [0.5, 0.5], [-1.0, 2.0]];
    let err = categorical
        .fit(&(x.view(), rows.view()), quiet())
        .unwrap_err();
    assert!(
        matches!(
            err,
            NnError::TargetOutOfRange {
                loss: "categorical_crossentropy",
                sample: 3,
                index: 0,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(categorical.steps_taken(), 0);
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
