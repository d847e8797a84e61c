//! ONNX export verified by the real engine: exported models pass `onnx.checker` and
//! onnxruntime's outputs equal Dendrite's (1e-5 relative, f32) at batch sizes 1, 7 and 128.
//!
//! - `onnx/primitives.rs`: one graph using every exportable primitive, every node an output;
//!   every primitive that cannot be exported refused with its name;
//! - `onnx/random_dags.rs`: random graphs from the autodiff crate's DAG strategy;
//! - `onnx/models.rs`: the reference MLP (784-32-10) and an MNIST model trained briefly, whose
//!   test-set predictions onnxruntime must reproduce; `Sequential::export_onnx` writes atomically;
//! - `onnx/serve.rs`: the book's listings (the Rust export and the Python serving script).
//!
//! onnxruntime is reached through Python (`scripts/onnx_check.py`): set `DENDRITE_ONNX_PYTHON`
//! to a Python with `onnx` and `onnxruntime` (`.ci/run` creates a venv and sets it). Without it
//! the tests that need the engine say they are skipped; under CI they fail instead.
//!
//! Run with `cargo test --release --test onnx`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "onnx/models.rs"]
mod models;
#[path = "onnx/primitives.rs"]
mod primitives;
#[path = "onnx/random_dags.rs"]
mod random_dags;
#[path = "onnx/runtime.rs"]
mod runtime;
#[path = "onnx/serve.rs"]
mod serve;
