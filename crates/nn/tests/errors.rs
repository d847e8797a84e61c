//! Bad input gets a clear, typed error, and nothing is trained on it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dendrite_nn::data::{synthetic_digits, Dataset};
use dendrite_nn::{
    Activation, Adam, Data, Dense, Features, FitConfig, Loss, Metric, NnError, Result, Sequential,
    Targets,
};
use ndarray::{array, Array1, Array2};

fn classifier(classes: usize, features: usize) -> Sequential {
    let mut model = Sequential::new();
    model.add(
        Dense::new(4)
            .input_dim(features)
            .activation(Activation::Relu),
    );
    model.add(Dense::new(classes).activation(Activation::Softmax));
    model
        .compile(
            Adam::default(),
            Loss::SparseCategoricalCrossentropy,
            &[Metric::Accuracy],
        )
        .unwrap();
    model
}

fn quiet() -> FitConfig<'static> {
    FitConfig::default().verbosity(0)
}

#[test]
fn labels_out_of_range_name_the_label_and_sample() {
    let mut model = classifier(3, 2);
    let before = model.weights().unwrap();
    let x = Array2::<f32>::zeros((4, 2));
    let y = array![0.0_f32, 2.0, 3.0, 1.0];
    let err = model.fit(&(x.view(), y.view()), quiet()).unwrap_err();
    assert!(
        matches!(
            err,
            NnError::LabelOutOfRange {
                index: 2,
                classes: 3,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "label 3 at sample 2 is not a class index in 0..3"
    );
    // Nothing was trained.
    assert_eq!(model.weights().unwrap(), before);
    assert_eq!(model.steps_taken(), 0);

    let fractional = array![0.0_f32, 1.5, 0.0, 1.0];
    let err = model
        .fit(&(x.view(), fractional.view()), quiet())
        .unwrap_err();
    assert!(
        matches!(err, NnError::LabelOutOfRange { index: 1, .. }),
        "{err}"
    );
    let negative = array![0.0_f32, -1.0, 0.0, f32::NAN];
    assert!(matches!(
        model.evaluate(&(x.view(), negative.view()), 2),
        Err(NnError::LabelOutOfRange { index: 1, .. })
    ));

    // A dataset with 10 classes fed to a model with 3 outputs.
    let digits = synthetic_digits(50, 0).unwrap();
    let mut model = classifier(3, 784);
    let err = model.fit(&digits, quiet()).unwrap_err();
    match err {
        NnError::LabelOutOfRange {
            index,
            label,
            classes: 3,
        } => {
            assert_eq!(digits.label(index).map(f64::from), Some(label));
            assert!(label >= 3.0);
        }
        other => panic!("expected LabelOutOfRange, got {other}"),
    }
}

/// Data whose checks pass but whose labels are out of range: the one-hot in the graph is the
/// last line of defence, and its error still names the label.
struct Unchecked(Array2<f32>, Array1<f32>);

impl Features<f32> for Unchecked {
    fn len(&self) -> usize {
        self.0.nrows()
    }
    fn features(&self) -> usize {
        self.0.ncols()
    }
    fn write_features(&self, indices: &[usize], out: &mut [f32]) -> Result<()> {
        (self.0.view(), self.1.view()).write_features(indices, out)
    }
}

impl Data<f32> for Unchecked {
    fn check_targets(&self, _: Targets) -> Result<()> {
        Ok(())
    }
    fn write_targets(&self, indices: &[usize], targets: Targets, out: &mut [f32]) -> Result<()> {
        (self.0.view(), self.1.view()).write_targets(indices, targets, out)
    }
}

#[test]
fn labels_out_of_range_caught_in_the_graph_are_named_too() {
    let mut model = classifier(3, 2);
    let data = Unchecked(Array2::zeros((2, 2)), array![1.0, 7.0]);
    let err = model.fit(&data, quiet().shuffle(false)).unwrap_err();
    assert!(
        matches!(
            err,
            NnError::LabelOutOfRange {
                index: 1,
                classes: 3,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("label 7"));
}

#[test]
fn x_and_y_of_different_lengths() {
    let mut model = classifier(2, 2);
    let x = Array2::<f32>::zeros((5, 2));
    let y = Array1::<f32>::zeros(4);
    let err = model.fit(&(x.view(), y.view()), quiet()).unwrap_err();
    assert!(
        matches!(err, NnError::LengthMismatch { x: 5, y: 4 }),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "x has 5 samples but y has 4: they must have one target per sample"
    );
    let y2 = Array2::<f32>::zeros((6, 1));
    assert!(matches!(
        model.evaluate(&(x.view(), y2.view()), 8),
        Err(NnError::LengthMismatch { x: 5, y: 6 })
    ));
}

#[test]
fn wrong_feature_count() {
    let mut model = classifier(2, 3);
    let x = Array2::<f32>::zeros((4, 2));
    let y = Array1::<f32>::zeros(4);
    let err = model.fit(&(x.view(), y.view()), quiet()).unwrap_err();
    assert!(
        matches!(
            err,
            NnError::FeatureMismatch {
                expected: 3,
                actual: 2
            }
        ),
        "{err}"
    );
    assert!(matches!(
        model.predict(&x.view(), 4),
        Err(NnError::FeatureMismatch { .. })
    ));
    assert!(matches!(
        model.evaluate(&(x.view(), y.view()), 4),
        Err(NnError::FeatureMismatch { .. })
    ));
    let valid = Array2::<f32>::zeros((4, 3));
    let err = model
        .fit(
            &(valid.view(), y.view()),
            quiet().validation_data(&(x.view(), y.view())),
        )
        .unwrap_err();
    // An error in the validation data says so.
    match &err {
        NnError::InData { data, source } => {
            assert_eq!(*data, "validation");
            assert!(matches!(**source, NnError::FeatureMismatch { .. }), "{err}");
        }
        other => panic!("expected InData, got {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "in the validation data: the model takes 3 features per sample, but the data has 2"
    );
    assert_eq!(model.steps_taken(), 0);
}

#[test]
fn batch_size_zero_and_epochs_zero() {
    let mut model = classifier(2, 2);
    let x = Array2::<f32>::zeros((4, 2));
    let y = Array1::<f32>::zeros(4);
    let data = (x.view(), y.view());
    assert!(matches!(
        model.fit(&data, quiet().batch_size(0)),
        Err(NnError::ZeroBatchSize)
    ));
    assert!(matches!(
        model.fit(&data, quiet().epochs(0)),
        Err(NnError::ZeroEpochs)
    ));
    assert!(matches!(
        model.evaluate(&data, 0),
        Err(NnError::ZeroBatchSize)
    ));
    assert!(matches!(
        model.predict(&x.view(), 0),
        Err(NnError::ZeroBatchSize)
    ));
    assert_eq!(
        NnError::ZeroEpochs.to_string(),
        "epochs must be at least 1, got 0"
    );
}

#[test]
fn empty_datasets() {
    let mut model = classifier(2, 2);
    let x = Array2::<f32>::zeros((0, 2));
    let y = Array1::<f32>::zeros(0);
    let err = model.fit(&(x.view(), y.view()), quiet()).unwrap_err();
    assert!(
        matches!(err, NnError::EmptyDataset { what: "training" }),
        "{err}"
    );
    assert!(matches!(
        model.evaluate(&(x.view(), y.view()), 4),
        Err(NnError::EmptyDataset { what: "evaluation" })
    ));
    let empty = Dataset::new(Vec::new(), Vec::new(), 28, 28, 10).unwrap();
    let mut digits = classifier(10, 784);
    assert!(matches!(
        digits.fit(&empty, quiet()),
        Err(NnError::EmptyDataset { .. })
    ));
    let x1 = Array2::<f32>::zeros((4, 2));
    let y1 = Array1::<f32>::zeros(4);
    let err = model
        .fit(
            &(x1.view(), y1.view()),
            quiet().validation_data(&(x.view(), y.view())),
        )
        .unwrap_err();
    assert!(
        matches!(err, NnError::EmptyDataset { what: "validation" }),
        "{err}"
    );
    // Predicting nothing is fine: an empty matrix.
    assert_eq!(model.predict(&x.view(), 4).unwrap().dim(), (0, 2));
}

#[test]
fn validation_splits_that_leave_a_side_empty() {
    let mut model = classifier(2, 2);
    let x = Array2::<f32>::zeros((4, 2));
    let y = Array1::<f32>::zeros(4);
    let data = (x.view(), y.view());
    for split in [1.0, -0.1, 0.9, 1e-17, f64::NAN] {
        let err = model
            .fit(&data, quiet().validation_split(split))
            .unwrap_err();
        assert!(
            matches!(err, NnError::ValidationSplit { .. }),
            "{split}: {err}"
        );
    }
    assert!(model.fit(&data, quiet().validation_split(0.5)).is_ok());
}

#[test]
fn targets_of_the_wrong_width() {
    let mut model = Sequential::new();
    model.add(Dense::new(3).input_dim(2).activation(Activation::Softmax));
    model
        .compile(
            Adam::default(),
            Loss::CategoricalCrossentropy,
            &[Metric::Accuracy],
        )
        .unwrap();
    let x = Array2::<f32>::zeros((4, 2));
    let y = Array2::<f32>::zeros((4, 2));
    let err = model.fit(&(x.view(), y.view()), quiet()).unwrap_err();
    assert!(
        matches!(
            err,
            NnError::TargetMismatch {
                loss: "categorical_crossentropy",
                expected: 3,
                actual: 2
            }
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "categorical_crossentropy needs 3 target value(s) per sample, but the data have 2"
    );
    // Class indices given to a one-hot loss: the message names the loss and the fix.
    let labels = Array1::<f32>::zeros(4);
    let err = model.fit(&(x.view(), labels.view()), quiet()).unwrap_err();
    assert!(
        matches!(
            err,
            NnError::TargetMismatch {
                expected: 3,
                actual: 1,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "categorical_crossentropy needs 3 target value(s) per sample, but the data have 1: these look like class indices; use Loss::SparseCategoricalCrossentropy for them, or give one-hot rows as wide as the output"
    );
    // One-hot rows given to the sparse loss: the opposite advice.
    let mut sparse = classifier(3, 2);
    let one_hot = Array2::<f32>::zeros((4, 3));
    let err = sparse
        .fit(&(x.view(), one_hot.view()), quiet())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "sparse_categorical_crossentropy needs 1 target value(s) per sample, but the data have 3: these look like one-hot rows; use Loss::CategoricalCrossentropy for them, or give one class index per sample"
    );
    assert_eq!(sparse.steps_taken(), 0);
    // One-hot targets from a dataset must have as many classes as the model has outputs.
    let mut digits = Sequential::new();
    digits.add(Dense::new(5).input_dim(784).activation(Activation::Softmax));
    digits
        .compile(Adam::default(), Loss::CategoricalCrossentropy, &[])
        .unwrap();
    assert!(matches!(
        digits.fit(&synthetic_digits(10, 0).unwrap(), quiet()),
        Err(NnError::TargetMismatch {
            expected: 5,
            actual: 10,
            ..
        })
    ));
}

#[test]
fn models_that_cannot_be_built() {
    let mut empty = Sequential::new();
    assert!(matches!(empty.build(), Err(NnError::NoLayers)));
    assert!(matches!(empty.summary(), Err(NnError::NoLayers)));
    let mut no_input = Sequential::new();
    no_input.add(Dense::new(3));
    let err = no_input
        .compile(Adam::default(), Loss::MeanSquaredError, &[])
        .unwrap_err();
    assert!(
        matches!(err, NnError::UnknownInputShape { ref layer } if layer == "dense_1"),
        "{err}"
    );
    let mut zero = Sequential::new();
    zero.add(Dense::new(0).input_dim(3));
    assert!(matches!(zero.build(), Err(NnError::LayerInput { .. })));
    let mut twins = Sequential::new();
    twins
        .add(Dense::new(3).input_dim(2).named("a"))
        .add(Dense::new(3).named("a"));
    assert!(matches!(
        twins.build(),
        Err(NnError::DuplicateLayerName { .. })
    ));
    let mut bad_opt = Sequential::new();
    bad_opt.add(Dense::new(3).input_dim(2));
    let err = bad_opt
        .compile(Adam::new(-1.0), Loss::MeanSquaredError, &[])
        .unwrap_err();
    assert!(matches!(err, NnError::Hyperparameter { .. }), "{err}");
}

#[test]
fn methods_that_need_a_compiled_model() {
    let mut model = Sequential::new();
    model.add(Dense::new(2).input_dim(2));
    let x = Array2::<f32>::zeros((2, 2));
    let y = Array1::<f32>::zeros(2);
    assert!(matches!(
        model.fit(&(x.view(), y.view()), quiet()),
        Err(NnError::NotCompiled { method: "fit" })
    ));
    assert!(matches!(
        model.evaluate(&(x.view(), y.view()), 2),
        Err(NnError::NotCompiled { .. })
    ));
    // These need only a built model, and say so.
    assert!(matches!(
        model.predict(&x.view(), 2),
        Err(NnError::NotBuilt { method: "predict" })
    ));
    assert!(matches!(model.weights(), Err(NnError::NotBuilt { .. })));
    assert!(matches!(
        model.save_weights("/tmp/never.safetensors"),
        Err(NnError::NotBuilt { .. })
    ));
    let err = model
        .load_weights("/tmp/never.safetensors")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("I/O error") || err.contains("needs a built model"),
        "{err}"
    );
    assert_eq!(
        NnError::NotBuilt {
            method: "load_weights"
        }
        .to_string(),
        "`load_weights` needs a built model: call `build` (or `compile`) first"
    );
    // Predicting needs only a built model.
    model.build().unwrap();
    assert_eq!(model.predict(&x.view(), 2).unwrap().dim(), (2, 2));
    // Adding a layer discards the compiled state.
    model
        .compile(Adam::default(), Loss::MeanSquaredError, &[])
        .unwrap();
    model.add(Dense::new(1));
    assert!(!model.is_compiled());
    assert!(model.graph().is_none());
}
