#![doc = "Keras-like neural networks on top of Dendrite graphs (temporary lib.rs: data module only)."]
#![deny(missing_docs)]

pub mod data;
