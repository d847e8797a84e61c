//! Samples of any shape: a model declares its input by a sample shape (`[28, 28, 1]`), a
//! dataset carries one (the pixels stay `u8`, converted per batch), mismatches are refused,
//! and `Flatten` / `Reshape` round-trip through model files.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dendrite_nn::data::{synthetic_digits, DataError, Dataset};
use dendrite_nn::{
    Activation, Adam, Dense, FitConfig, Flatten, Initializer, Loss, Metric, NnError, Reshape,
    Sequential,
};
use ndarray::Array2;

fn images() -> Dataset {
    synthetic_digits(64, 3)
        .unwrap()
        .with_sample_shape([28, 28, 1])
        .unwrap()
}

fn convnet_shaped() -> Sequential {
    flatten_model(&[28, 28, 1])
}

fn flatten_model(input: &[usize]) -> Sequential {
    let mut m = Sequential::new().with_seed(4);
    m.add(Flatten::new().input_shape(input.to_vec()));
    m.add(Dense::new(16).activation(Activation::Relu));
    m.add(Dense::new(10).activation(Activation::Softmax));
    m
}

/// Flatten then Dense with a kernel of ones and a bias of 0.5: each output is the sum of the
/// sample's values plus 0.5 (hand-computed: 1 + 2 + ... + 6 + 0.5 = 21.5 for the first sample).
#[test]
fn flatten_feeds_a_dense_layer_the_row_major_values() {
    let mut m = Sequential::<f64>::default();
    m.add(Reshape::new([2, 3]).input_shape([6]));
    m.add(Flatten::new());
    m.add(
        Dense::new(1)
            .kernel_initializer(Initializer::Ones)
            .bias_initializer(Initializer::Constant(0.5)),
    );
    m.build().unwrap();
    let x = Array2::from_shape_fn((2, 6), |(i, j)| (i * 6 + j + 1) as f64);
    let p = m.predict(&x.view(), 8).unwrap();
    assert_eq!(p.as_slice().unwrap(), &[21.5, 57.5]);
}

#[test]
fn summary_shows_sample_shapes_and_counts() {
    let s = convnet_shaped().summary().unwrap();
    assert_eq!(s.total_params(), 784 * 16 + 16 + 16 * 10 + 10);
    let text = s.to_string();
    assert!(text.contains("Flatten"), "{text}");
    assert!(text.contains("(None, 784)"), "{text}");
    let mut r = Sequential::<f32>::default();
    r.add(Reshape::new([26, 26, 32]).input_shape([26 * 26 * 32]));
    let text = r.summary().unwrap().to_string();
    assert!(text.contains("(None, 26, 26, 32)"), "{text}");
}

/// A dataset in `[28, 28, 1]` trains a model declared on `[28, 28, 1]` exactly as the flat
/// dataset trains the same model: the shape changes the view, not the values.
#[test]
fn an_image_shaped_dataset_trains_like_the_flat_one() {
    let fit = |data: &Dataset, input: &[usize]| {
        let mut m = flatten_model(input);
        m.compile(
            Adam::new(1e-3),
            Loss::SparseCategoricalCrossentropy,
            &[Metric::Accuracy],
        )
        .unwrap();
        let config = FitConfig::default().epochs(2).batch_size(16).verbosity(0);
        let h = m.fit(data, config).unwrap();
        (h.metric("loss").unwrap().to_vec(), m.weights().unwrap())
    };
    let shaped = fit(&images(), &[28, 28, 1]);
    let flat_data = synthetic_digits(64, 3).unwrap();
    let flat = fit(&flat_data, &[784]);
    assert_eq!(shaped, flat);
    let err = {
        let mut m = convnet_shaped();
        m.compile(Adam::new(1e-3), Loss::SparseCategoricalCrossentropy, &[])
            .unwrap();
        m.fit(&flat_data, FitConfig::default().epochs(1).verbosity(0))
            .unwrap_err()
    };
    assert!(
        matches!(&err, NnError::SampleShapeMismatch { expected, actual }
            if expected == &[28, 28, 1] && actual == &[784]),
        "{err}"
    );
    // A plain matrix has no sample shape: it feeds any input with as many values.
    let x = Array2::from_shape_fn((64, 784), |(i, j)| {
        f32::from(flat_data.images()[i * 784 + j]) / 255.0
    });
    let mut m = convnet_shaped();
    m.build().unwrap();
    assert_eq!(m.predict(&x.view(), 16).unwrap().dim(), (64, 10));
    assert!(shaped.0.iter().all(|l| l.is_finite()));
    assert!(shaped.0[1] < shaped.0[0], "{:?}", shaped.0);
}

#[test]
fn a_sample_shape_must_hold_the_dataset_values() {
    let ds = synthetic_digits(10, 1).unwrap();
    for bad in [vec![28, 28, 2], vec![], vec![0, 784]] {
        assert!(matches!(
            ds.clone().with_sample_shape(bad),
            Err(DataError::SampleShape { features: 784, .. })
        ));
    }
    assert_eq!(ds.sample_shape(), &[784]);
    let view = ds.with_sample_shape([28, 28]).unwrap().take(3);
    assert_eq!(view.sample_shape(), &[28, 28]);
}

#[test]
fn a_model_input_with_a_zero_axis_is_refused() {
    let mut m = Sequential::<f32>::default();
    m.add(Flatten::new().input_shape([28, 0]));
    m.add(Dense::new(2));
    assert!(matches!(m.build(), Err(NnError::LayerInput { .. })));
}

#[test]
fn flatten_and_reshape_round_trip_through_a_model_file() {
    let dir = std::env::temp_dir().join(format!("dendrite-nn-image-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("m.dendrite");
    let mut m = Sequential::<f32>::default().with_seed(2);
    m.add(Reshape::new([4, 4, 1]).input_shape([16]).named("img"));
    m.add(Flatten::new());
    m.add(Dense::new(3).activation(Activation::Softmax));
    m.build().unwrap();
    m.save(&path).unwrap();
    let mut loaded = Sequential::<f32>::load(&path).unwrap();
    assert_eq!(loaded.layer_names(), m.layer_names());
    let x = Array2::from_shape_fn((5, 16), |(i, j)| ((i + j) % 7) as f32 / 7.0);
    assert_eq!(
        loaded.predict(&x.view(), 4).unwrap(),
        m.predict(&x.view(), 4).unwrap()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
