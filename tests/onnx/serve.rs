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
    std::fs::remove_dir_all(&dir).ok();
}
