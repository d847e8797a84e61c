//! Random graphs from the autodiff crate's DAG strategy, every node checked against onnxruntime.
