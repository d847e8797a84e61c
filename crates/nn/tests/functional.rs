//! The Functional API: hand-computed residual and merge values, shared layers, construction
//! errors, training with dropout and batch normalization inside, summaries and model files.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dendrite_nn::data::synthetic_digits;
use dendrite_nn::{
    Activation, Adam, BatchNormalization, Dense, Dropout, FitConfig, Functional, Initializer, Loss,
    Merge, Metric, Model, NnError, Sequential,
};
use ndarray::{array, Array2};

fn constant_dense(units: usize, value: f64) -> Dense {
    Dense::new(units)
        .kernel_initializer(Initializer::Constant(value))
        .bias_initializer(Initializer::Zeros)
}

/// x = [1, 3], h = Dense(2) with every weight 0.5 and no bias: h = [2, 2]; the residual sum
/// x + h = [3, 5]; the average (x + h) / 2 = [1.5, 2.5]; the product x * h = [2, 6]; the
/// concatenation [1, 3, 2, 2].
#[test]
fn merges_compute_what_keras_computes() {
    let x = array![[1.0_f32, 3.0]];
    let cases: [(Merge, Vec<f32>); 4] = [
        (Merge::Add, vec![3.0, 5.0]),
        (Merge::Average, vec![1.5, 2.5]),
        (Merge::Multiply, vec![2.0, 6.0]),
        (Merge::Concatenate { axis: -1 }, vec![1.0, 3.0, 2.0, 2.0]),
    ];
    for (merge, expected) in cases {
        let mut f = Functional::<f32>::new();
        let input = f.input([2]).unwrap();
        let h = f.apply(constant_dense(2, 0.5), input).unwrap();
        let y = f.merge(merge, &[input, h]).unwrap();
        let mut model = Model::new(f, input, y).unwrap();
        model.build().unwrap();
        let p = model.predict(&x.view(), 4).unwrap();
        assert_eq!(p.iter().copied().collect::<Vec<_>>(), expected, "{merge:?}");
    }
}

/// One Dense called on two branches: its weights are created once, counted once, and both
/// calls read them: with weights 1 and no bias, d(x) = [4, 4] and d(2x) = [8, 8], sum [12, 12].
#[test]
fn a_layer_called_twice_shares_its_weights() {
    let mut f = Functional::<f32>::new();
    let x = f.input([2]).unwrap();
    let shared = f.layer(constant_dense(2, 1.0));
    let doubled = f.add(&[x, x]).unwrap();
    let a = f.call(shared, x).unwrap();
    let b = f.call(shared, doubled).unwrap();
    let y = f.add(&[a, b]).unwrap();
    let mut model = Model::new(f, x, y).unwrap();
    assert_eq!(model.summary().unwrap().total_params(), 2 * 2 + 2);
    model.build().unwrap();
    assert_eq!(model.get_weights().unwrap().len(), 2);
    let p = model.predict(&array![[1.0_f32, 3.0]].view(), 4).unwrap();
    assert_eq!(p, array![[12.0_f32, 12.0]]);
    let table = model.summary().unwrap().to_string();
    assert!(table.contains("dense_1, dense_1"), "{table}");
}

#[test]
fn construction_errors_name_the_layers_and_shapes() {
    let mut f = Functional::<f32>::new();
    let x = f.input([2, 2]).unwrap();
    let err = f.apply(Dense::new(3).named("hidden"), x).unwrap_err();
    assert!(
        matches!(&err, NnError::LayerInput { layer, .. } if layer == "hidden"),
        "{err}"
    );
    let v = f.input([3]).unwrap();
    let flat = f.apply(dendrite_nn::Flatten::new(), x).unwrap();
    let err = f.add(&[flat, v]).unwrap_err();
    assert!(
        matches!(&err, NnError::MergeShapes { shapes, .. } if shapes == &vec![vec![4], vec![3]]),
        "{err}"
    );
    assert!(f.add(&[v]).is_err(), "one tensor is no merge");
    let mut other = Functional::<f32>::new();
    let foreign = other.input([3]).unwrap();
    assert!(matches!(
        f.add(&[v, foreign]),
        Err(NnError::ForeignTensor { .. })
    ));
    // The output does not depend on the input given, or depends on a second input.
    let h = f.apply(Dense::new(2), v).unwrap();
    let err = Model::new(f, x, h).unwrap_err();
    assert!(matches!(err, NnError::Disconnected { .. }), "{err}");
    let mut f = Functional::<f32>::new();
    let (a, b) = (f.input([3]).unwrap(), f.input([3]).unwrap());
    let s = f.add(&[a, b]).unwrap();
    let err = Model::new(f, a, s).unwrap_err();
    assert!(err.to_string().contains("input_2"), "{err}");
}

/// Two residual blocks with batch normalization and dropout inside: the training graph is
/// built (dropout active, statistics moving), predictions are deterministic, the loss falls,
/// and a saved model loads and predicts the same bits.
fn residual() -> Model {
    let mut f = Functional::new();
    let x = f.input([784]).unwrap();
    let mut h = f
        .apply(Dense::new(32).activation(Activation::Relu), x)
        .unwrap();
    for _ in 0..2 {
        let r = f.apply(Dense::new(32), h).unwrap();
        let r = f.apply(BatchNormalization::new(), r).unwrap();
        let r = f.apply(Activation::Relu, r).unwrap();
        let r = f.apply(Dropout::new(0.2), r).unwrap();
        h = f.add(&[h, r]).unwrap();
    }
    let y = f
        .apply(Dense::new(10).activation(Activation::Softmax), h)
        .unwrap();
    let mut model = Model::new(f, x, y).unwrap();
    model
        .compile(
            Adam::new(1e-3),
            Loss::SparseCategoricalCrossentropy,
            &[Metric::Accuracy],
        )
        .unwrap();
    model
}

#[test]
fn a_residual_model_trains_saves_and_loads() {
    let mut model = residual();
    let s = model.summary().unwrap();
    assert_eq!(s.non_trainable_params(), 2 * 64);
    let data = synthetic_digits(192, 4).unwrap();
    let config = FitConfig::default().epochs(3).batch_size(32).verbosity(0);
    let history = model.fit(&data, config).unwrap();
    assert!(history.loss[2] < history.loss[0], "{:?}", history.loss);
    let x = Array2::from_shape_fn((4, 784), |(i, j)| ((i * 7 + j) % 11) as f32 / 11.0);
    let p = model.predict(&x.view(), 2).unwrap();
    assert_eq!(p, model.predict(&x.view(), 4).unwrap());
    let dir = dendrite_test_support::scratch::Scratch::new("functional");
    let path = dir.file("residual.safetensors");
    model.save(&path).unwrap();
    let mut loaded = Model::<f32>::load(&path).unwrap();
    assert_eq!(loaded.predict(&x.view(), 4).unwrap(), p);
    assert_eq!(loaded.summary().unwrap(), model.summary().unwrap());
    // A Sequential file is not a Functional model.
    let mut seq = Sequential::new();
    seq.add(Dense::new(2).input_dim(3));
    seq.build().unwrap();
    let seq_path = dir.file("seq.safetensors");
    seq.save(&seq_path).unwrap();
    assert!(Model::<f32>::load(&seq_path).is_err());
}
