//! The Conv2D layer: hand-computed values, the keras.io convnet's summary (34,826 parameters),
//! gradients through the layer checked in f64, training (the same bits at any thread count,
//! dropout included), and model files.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dendrite_graph::ops::Padding;
use dendrite_nn::data::synthetic_digits;
use dendrite_nn::{
    Activation, Adam, Conv2D, Dense, Dropout, FitConfig, Flatten, Initializer, Layer, Loss,
    MaxPooling2D, Metric, Reshape, Sequential,
};
use ndarray::Array2;

/// Image rows [1 2 3], [4 5 6], [7 8 9], a 2x2 kernel of ones and a bias of 0.5: each output
/// is its window's sum plus 0.5: 1+2+4+5+0.5 = 12.5, then 16.5, 24.5, 28.5.
#[test]
fn a_kernel_of_ones_sums_each_window() {
    let mut m = Sequential::<f64>::default();
    m.add(Reshape::new([3, 3, 1]).input_shape([9]));
    m.add(
        Conv2D::new(1, [2, 2])
            .kernel_initializer(Initializer::Ones)
            .bias_initializer(Initializer::Constant(0.5)),
    );
    m.add(Flatten::new());
    m.build().unwrap();
    let x = Array2::from_shape_fn((1, 9), |(_, j)| (j + 1) as f64);
    let p = m.predict(&x.view(), 1).unwrap();
    assert_eq!(p.as_slice().unwrap(), &[12.5, 16.5, 24.5, 28.5]);
}

/// Two filters over two channels, `same` padding: filter 0 reads channel 0 only, filter 1
/// channel 1 only (a 1x1 kernel), so the output is the input with the channels kept.
#[test]
fn a_one_by_one_identity_kernel_keeps_the_channels() {
    let mut m = Sequential::<f64>::default();
    m.add(Reshape::new([2, 2, 2]).input_shape([8]));
    m.add(
        Conv2D::new(2, [1, 1])
            .padding(Padding::Same)
            .use_bias(false),
    );
    m.add(Flatten::new());
    m.build().unwrap();
    let identity = ndarray::arr2(&[[1.0, 0.0], [0.0, 1.0]])
        .into_shape_with_order((1, 1, 2, 2))
        .unwrap()
        .into_dyn();
    let mut weights = m.get_weights().unwrap();
    weights[0] = identity;
    m.set_weights(&weights).unwrap();
    let x = Array2::from_shape_fn((3, 8), |(i, j)| (i * 8 + j) as f64 * 0.25);
    assert_eq!(m.predict(&x.view(), 2).unwrap(), x);
}

fn keras_convnet() -> Sequential {
    dendrite_test_support::reference::keras_convnet_layers(1)
}

/// keras.io's "Simple MNIST convnet" (without its Dropout, which has no parameters): Keras'
/// summary gives 320 + 18,496 + 16,010 = 34,826 parameters and these shapes.
#[test]
fn the_keras_convnet_summary_matches_keras() {
    let s = keras_convnet().summary().unwrap();
    assert_eq!(s.total_params(), 34_826);
    let text = s.to_string();
    for shape in [
        "(None, 26, 26, 32)",
        "(None, 13, 13, 32)",
        "(None, 11, 11, 64)",
        "(None, 5, 5, 64)",
        "(None, 1600)",
        "(None, 10)",
    ] {
        assert!(text.contains(shape), "{shape} missing from\n{text}");
    }
    assert!(text.contains("18,496") || text.contains("18496"), "{text}");
}

#[test]
fn bad_images_are_refused() {
    let conv = Conv2D::new(4, [3, 3]);
    assert!(Layer::<f32>::output_shape(&conv, &[784]).is_err());
    assert!(Layer::<f32>::output_shape(&conv, &[2, 2, 1]).is_err());
    assert!(
        Layer::<f32>::output_shape(&Conv2D::new(4, [3, 3]).strides([0, 1]), &[8, 8, 1]).is_err()
    );
    assert_eq!(
        Layer::<f32>::param_count(&Conv2D::new(usize::MAX, [3, 3]), &[8, 8, 2]),
        None
    );
    let mut m = Sequential::<f32>::default();
    m.add(Conv2D::new(4, [5, 5]).input_shape([3, 3, 1]));
    m.add(Flatten::new());
    assert!(m.build().is_err());
}

/// Gradients of `sum(y²)` through a strided, dilated and a `same` Conv2D, with respect to the
/// input, against central differences in f64.
#[test]
fn gradients_through_the_layer_pass_the_checker() {
    use dendrite_autodiff::check::{check_gradients, CheckConfig};
    use dendrite_graph::Graph;
    use dendrite_nn::Init;
    let layers = [
        Conv2D::new(3, [2, 2]).activation(Activation::Tanh),
        Conv2D::new(2, [2, 2]).strides([2, 1]).dilation([1, 2]),
        Conv2D::new(2, [3, 3])
            .padding(Padding::Same)
            .bias_initializer(Initializer::Constant(0.1)),
    ];
    for mut layer in layers {
        let mut g = Graph::<f64>::new();
        let x = g.input("x", [2, 5, 5, 2]).unwrap();
        let y = layer
            .build(&mut g, x, &[5, 5, 2], &mut Init::new(7))
            .unwrap();
        let sq = g.square(y.output).unwrap();
        let loss = g.sum_all(sq).unwrap();
        let values = ndarray::Array4::from_shape_fn((2, 5, 5, 2), |(n, i, j, c)| {
            let k = (((n * 5 + i) * 5 + j) * 2 + c) as f64;
            (0.37 * k).sin()
        })
        .into_dyn();
        let report = check_gradients(
            &mut g,
            loss,
            &[x],
            &[("x", values.view())],
            &CheckConfig::default(),
        )
        .unwrap();
        assert!(report.passed(), "{layer:?}: {report}");
    }
}

/// The convnet learns the synthetic digits: the training loss falls over three epochs.
#[test]
fn the_convnet_trains() {
    let data = synthetic_digits(256, 5)
        .unwrap()
        .with_sample_shape([28, 28, 1])
        .unwrap();
    let mut m = keras_convnet();
    m.compile(
        Adam::new(1e-3),
        Loss::SparseCategoricalCrossentropy,
        &[Metric::Accuracy],
    )
    .unwrap();
    let h = m
        .fit(
            &data,
            FitConfig::default().epochs(3).batch_size(32).verbosity(0),
        )
        .unwrap();
    let loss = h.metric("loss").unwrap();
    assert!(loss[2] < loss[0], "loss did not fall: {loss:?}");
}

/// The keras.io convnet with its Dropout, trained for two epochs with one thread and with
/// two (the second writes batches ahead), ends with the same weights, bit for bit.
#[test]
fn the_convnet_with_dropout_gives_the_same_bits_at_any_thread_count() {
    let data = synthetic_digits(192, 3)
        .unwrap()
        .with_sample_shape([28, 28, 1])
        .unwrap();
    let train = |threads: usize| {
        let mut m = keras_convnet_with_dropout();
        m.compile(
            Adam::new(1e-3),
            Loss::SparseCategoricalCrossentropy,
            &[Metric::Accuracy],
        )
        .unwrap();
        let config = FitConfig::default()
            .epochs(2)
            .batch_size(64)
            .seed(5)
            .verbosity(0)
            .threads(threads);
        let h = m.fit(&data, config).unwrap();
        let weights = m.get_weights().unwrap();
        let bits: Vec<u32> = weights.iter().flatten().map(|v| v.to_bits()).collect();
        (bits, h.loss)
    };
    let (one, loss_one) = train(1);
    let (two, loss_two) = train(2);
    assert_eq!(loss_one, loss_two);
    assert!(one == two, "the weights differ between 1 and 2 threads");
}

fn keras_convnet_with_dropout() -> Sequential {
    let mut m = Sequential::new().with_seed(2);
    m.add(
        Conv2D::new(32, [3, 3])
            .activation(Activation::Relu)
            .input_shape([28, 28, 1]),
    );
    m.add(MaxPooling2D::new([2, 2]));
    m.add(Conv2D::new(64, [3, 3]).activation(Activation::Relu));
    m.add(MaxPooling2D::new([2, 2]));
    m.add(Flatten::new());
    m.add(Dropout::new(0.5));
    m.add(Dense::new(10).activation(Activation::Softmax));
    m
}

#[test]
fn conv2d_round_trips_through_a_model_file() {
    let dir = std::env::temp_dir().join(format!("dendrite-nn-conv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("m.dendrite");
    let mut m = Sequential::<f32>::default().with_seed(5);
    m.add(
        Conv2D::new(3, [2, 2])
            .strides([1, 2])
            .dilation([2, 1])
            .padding(Padding::Same)
            .activation(Activation::Relu)
            .input_shape([6, 6, 2])
            .named("c"),
    );
    m.add(Flatten::new());
    m.add(Dense::new(3).activation(Activation::Softmax));
    m.build().unwrap();
    m.save(&path).unwrap();
    let mut loaded = Sequential::<f32>::load(&path).unwrap();
    assert_eq!(loaded.layer_names(), m.layer_names());
    let x = Array2::from_shape_fn((4, 72), |(i, j)| ((i * 5 + j * 3) % 13) as f32 / 13.0);
    assert_eq!(
        loaded.predict(&x.view(), 4).unwrap(),
        m.predict(&x.view(), 4).unwrap()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
