//! Models: the reference MLP and keras.io's convnet (with its Dropout, which the exported
//! inference graph leaves out) at several batch sizes, and an MNIST model trained briefly whose
//! test-set predictions onnxruntime reproduces from the exported file.

use crate::runtime::{assert_close, values, Runtime};
use dendrite::nn::data::{load_mnist, mnist_dir_from_env, synthetic_mnist, Dataset};
use dendrite::nn::{
    Activation, Adam, Conv2D, Dense, Dropout, FitConfig, Flatten, Loss, MaxPooling2D, Metric,
    NnError, Sequential,
};
use ndarray::{Array2, ArrayD, Axis};

/// The Keras reference model: Dense 32 relu on 784 inputs, Dense 10 softmax.
fn reference_mlp(seed: u64) -> Sequential {
    dendrite_test_support::reference::reference_layers(seed)
}

#[test]
fn reference_mlp_matches_onnxruntime_at_batch_1_7_128() {
    let Some(rt) = Runtime::from_env("reference_mlp") else {
        return;
    };
    let mut model = reference_mlp(3);
    model.build().unwrap();
    let bytes = model.to_onnx().unwrap();
    let inputs: Vec<ArrayD<f32>> = [1usize, 7, 128]
        .iter()
        .map(|&n| values(&[n, 784], n as u64, 0.0, 1.0))
        .collect();
    let runs: Vec<_> = inputs.iter().map(|x| vec![("inputs", x.view())]).collect();
    let theirs = rt.run(&bytes, &runs);
    for (x, out) in inputs.iter().zip(&theirs) {
        let x2 = x.view().into_dimensionality().unwrap();
        let ours = model.predict(&x2, 32).unwrap();
        let what = format!("reference MLP, batch {}", x.shape()[0]);
        assert_close(&what, ours.view().into_dyn(), out[0].1.view(), 1e-5, 1e-6);
    }
}

/// keras.io's "Simple MNIST convnet", Dropout included.
fn keras_convnet(seed: u64) -> Sequential {
    let mut m = Sequential::new().with_seed(seed);
    m.add(
        Conv2D::new(32, [3, 3])
            .input_shape([28, 28, 1])
            .activation(Activation::Relu),
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
fn keras_convnet_matches_onnxruntime_at_batch_1_7_128() {
    let Some(rt) = Runtime::from_env("keras_convnet") else {
        return;
    };
    let mut model = keras_convnet(4);
    model.build().unwrap();
    let bytes = model.to_onnx().unwrap();
    let inputs: Vec<ArrayD<f32>> = [1usize, 7, 128]
        .iter()
        .map(|&n| values(&[n, 28, 28, 1], n as u64, 0.0, 1.0))
        .collect();
    let runs: Vec<_> = inputs.iter().map(|x| vec![("inputs", x.view())]).collect();
    let theirs = rt.run(&bytes, &runs);
    for (x, out) in inputs.iter().zip(&theirs) {
        let n = x.shape()[0];
        let flat = x.to_shape((n, 784)).unwrap();
        let ours = model.predict(&flat.view(), 32).unwrap();
        let what = format!("keras convnet, batch {n}");
        assert_close(&what, ours.view().into_dyn(), out[0].1.view(), 1e-5, 1e-6);
    }
}

/// The MNIST directory's data, or the synthetic digits when there is none.
fn mnist() -> (Dataset, Dataset) {
    let data = match mnist_dir_from_env() {
        Some(dir) => load_mnist(&dir).unwrap(),
        None => {
            eprintln!(
                "mnist round trip: no MNIST directory (DENDRITE_MNIST_DIR), using synthetic digits"
            );
            synthetic_mnist(0).unwrap()
        }
    };
    (data.train, data.test)
}

/// The images of a dataset as the `[n, 784]` floats the model is fed.
fn images(data: &Dataset) -> Array2<f32> {
    let indices: Vec<usize> = (0..data.len()).collect();
    let mut out = vec![0.0_f32; data.len() * data.features()];
    data.write_images(&indices, &mut out).unwrap();
    Array2::from_shape_vec((data.len(), data.features()), out).unwrap()
}

fn argmax(row: ndarray::ArrayView1<'_, f32>) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

#[test]
fn mnist_model_trained_then_exported_predicts_the_same_test_set_in_onnxruntime() {
    let Some(rt) = Runtime::from_env("mnist_round_trip") else {
        return;
    };
    let (train, test) = mnist();
    let mut model = reference_mlp(0);
    model
        .compile(
            Adam::default(),
            Loss::SparseCategoricalCrossentropy,
            &[Metric::Accuracy],
        )
        .unwrap();
    let config = FitConfig::default().epochs(1).batch_size(32).verbosity(0);
    model.fit(&train.take(6000), config).unwrap();
    let dir = rt.scratch();
    let path = dir.join("mnist.onnx");
    model.export_onnx(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let x = images(&test);
    let theirs = rt.run(&bytes, &[vec![("inputs", x.view().into_dyn())]]);
    let ours = model.predict(&test, 256).unwrap();
    let onnx = theirs[0][0]
        .1
        .view()
        .into_dimensionality::<ndarray::Ix2>()
        .unwrap();
    assert_close(
        "MNIST test set",
        ours.view().into_dyn(),
        onnx.into_dyn(),
        1e-5,
        1e-6,
    );
    let mut correct = 0;
    for (i, (a, b)) in ours
        .axis_iter(Axis(0))
        .zip(onnx.axis_iter(Axis(0)))
        .enumerate()
    {
        assert_eq!(
            argmax(a),
            argmax(b),
            "test sample {i}: predicted classes differ"
        );
        correct += usize::from(test.label(i) == Some(argmax(a) as u8));
    }
    eprintln!(
        "mnist round trip: {} test samples, same classes in onnxruntime; accuracy {:.4}",
        test.len(),
        correct as f64 / test.len() as f64
    );
    assert!(
        correct * 10 > test.len() * 7,
        "the briefly trained model should beat 70%"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn export_onnx_needs_a_built_model_and_a_writable_path() {
    let model = reference_mlp(0);
    assert!(matches!(
        model.to_onnx(),
        Err(NnError::NotBuilt { method: "to_onnx" })
    ));
    let mut model = reference_mlp(0);
    model.build().unwrap();
    let dir = std::env::temp_dir().join(format!("dendrite-onnx-atomic-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model.onnx");
    std::fs::write(&path, b"old").unwrap();
    let missing = dir.join("no such dir").join("model.onnx");
    assert!(matches!(
        model.export_onnx(&missing),
        Err(NnError::Io { .. })
    ));
    model.export_onnx(&path).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), model.to_onnx().unwrap());
    let leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
    std::fs::remove_dir_all(&dir).ok();
}

/// A Functional model of two inputs (one an image) and two outputs (a softmax and a linear
/// head), exported in its packed form: one input row (the inputs' values in turn) and one
/// output row (the outputs' values in turn) per sample.
#[test]
fn a_functional_model_of_two_inputs_and_outputs_matches_onnxruntime() {
    use dendrite::nn::{Functional, Model};
    let Some(rt) = Runtime::from_env("functional_multi") else {
        return;
    };
    let mut f = Functional::<f32>::new();
    let image = f.input([4, 4, 1]).unwrap();
    let extra = f.input([3]).unwrap();
    let flat = f.apply(Flatten::new(), image).unwrap();
    let joined = f.concatenate(&[flat, extra], -1).unwrap();
    let h = f
        .apply(Dense::new(8).activation(Activation::Tanh), joined)
        .unwrap();
    let class = f
        .apply(Dense::new(3).activation(Activation::Softmax), h)
        .unwrap();
    let value = f.apply(Dense::new(2), extra).unwrap();
    let mut model = Model::new(f, [image, extra], [class, value])
        .unwrap()
        .with_seed(2);
    model.build().unwrap();
    let bytes = model.sequential().to_onnx().unwrap();
    let inputs: Vec<ArrayD<f32>> = [1usize, 7]
        .iter()
        .map(|&n| values(&[n, 19], n as u64, -1.0, 1.0))
        .collect();
    let runs: Vec<_> = inputs.iter().map(|x| vec![("inputs", x.view())]).collect();
    let theirs = rt.run(&bytes, &runs);
    for (x, out) in inputs.iter().zip(&theirs) {
        let n = x.shape()[0];
        let flat = x.to_shape((n, 19)).unwrap();
        let ours = model.predict(&flat.view(), 32).unwrap();
        assert_eq!(ours.ncols(), 5);
        let what = format!("functional two in, two out, batch {n}");
        assert_close(&what, ours.view().into_dyn(), out[0].1.view(), 1e-5, 1e-6);
    }
}
