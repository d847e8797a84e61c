//! The listings of the book page "Exporting to ONNX" (`docs/src/onnx.md`): the Rust export,
//! compiled and run here, and the Python serving script `scripts/onnx_serve.py`, run with the
//! onnxruntime of `DENDRITE_ONNX_PYTHON` on the exported file. The page includes the regions
//! between `// ANCHOR: name` and `// ANCHOR_END: name`.

use crate::runtime::Runtime;
use std::path::Path;

// ANCHOR: export
use dendrite::graph::{onnx, Graph};
use dendrite::nn::data::synthetic_mnist;
use dendrite::nn::{Activation, Adam, Dense, FitConfig, Loss, Metric, NnError, Sequential};

/// Trains the reference model briefly and writes it as `model.onnx` in `dir`.
fn train_and_export(dir: &Path) -> Result<Sequential, NnError> {
    let mnist = synthetic_mnist(0)?;
    let mut model = Sequential::new();
    model.add(Dense::new(32).input_dim(784).activation(Activation::Relu));
    model.add(Dense::new(10).activation(Activation::Softmax));
    model.compile(
        Adam::default(),
        Loss::SparseCategoricalCrossentropy,
        &[Metric::Accuracy],
    )?;
    model.fit(
        &mnist.train.take(2048),
        FitConfig::default().epochs(1).verbosity(0),
    )?;
    model.export_onnx(dir.join("model.onnx"))?; // atomic: a complete file or none
    Ok(model)
}

/// Any inference graph exports the same way: name its inputs and outputs.
fn export_a_graph() -> Result<Vec<u8>, onnx::OnnxError> {
    let mut g = Graph::<f32>::new();
    let x = g.input("x", [None, Some(3)])?; // a dynamic batch: the symbol `batch` in ONNX
    let w = g.parameter("w", ndarray::array![[0.5_f32], [-1.0], [2.0]].into_dyn())?;
    let logits = g.matmul(x, w)?; // Gemm
    let y = g.sigmoid(logits)?; // Sigmoid
    onnx::export(&g, &[x], &[y])
}
// ANCHOR_END: export

// ANCHOR: serve_rust
/// Classifies `images` (row-major, `features` values per image) with the ONNX file at `model`,
/// in onnxruntime through the `ort` crate; `env` is made once per process, e.g. with
/// `ort::init_from(path_to_libonnxruntime)?.build()?`.
fn classify_with_ort(
    env: &ort::environment::Environment,
    model: &Path,
    images: Vec<f32>,
    features: usize,
) -> Result<Vec<usize>, Box<dyn std::error::Error>> {
    let mut session = ort::session::Session::builder(env)?.commit_from_file(model)?;
    let batch = images.len() / features; // any batch: the file's first axis is symbolic
    let input = ort::value::Tensor::from_array(([batch, features], images))?;
    let outputs = session.run(ort::inputs![input])?;
    let (shape, probabilities) = outputs[0].try_extract_tensor::<f32>()?;
    let classes = usize::try_from(shape[1])?;
    Ok(probabilities
        .chunks_exact(classes)
        .map(|row| (0..classes).fold(0, |best, k| if row[k] > row[best] { k } else { best }))
        .collect())
}
// ANCHOR_END: serve_rust

#[test]
fn the_book_exports_then_serves_with_onnxruntime() {
    assert!(export_a_graph().unwrap().len() > 100);
    let Some(rt) = Runtime::from_env("book onnx serving") else {
        return;
    };
    let dir = rt.scratch();
    let model = train_and_export(&dir).unwrap();
    let test = synthetic_mnist(1).unwrap().test.take(64);
    let indices: Vec<usize> = (0..test.len()).collect();
    let mut images = vec![0.0_f32; test.len() * test.features()];
    test.write_images(&indices, &mut images).unwrap();
    let raw: Vec<u8> = images.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(dir.join("images.f32"), raw).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/onnx_serve.py");
    let model_path = dir.join("model.onnx");
    let images_path = dir.join("images.f32");
    let printed = rt.python_ok(&[
        script.as_os_str(),
        model_path.as_os_str(),
        images_path.as_os_str(),
    ]);
    let served: Vec<usize> = printed
        .split_whitespace()
        .map(|c| c.parse().unwrap())
        .collect();
    let mut model = model;
    let ours = model.predict(&test, 64).unwrap();
    let classes: Vec<usize> = ours
        .rows()
        .into_iter()
        .map(|r| (0..r.len()).fold(0, |b, i| if r[i] > r[b] { i } else { b }))
        .collect();
    assert_eq!(served, classes);

    // The same file served from Rust: onnxruntime's shared library is the one the Python
    // package ships, loaded at run time (the `ort` crate's `load-dynamic`: nothing downloaded).
    let library = rt.onnxruntime_library();
    let env = ort::init_from(&library).unwrap().build().unwrap();
    let from_rust = classify_with_ort(&env, &model_path, images, test.features()).unwrap();
    assert_eq!(from_rust, classes);
    std::fs::remove_dir_all(&dir).ok();
}
