//! Whole-model files: the configuration of every part of a model as JSON
//! ([`json`]), the layer types a file can be loaded with ([`LayerRegistry`]), and the errors
//! of saving and loading ([`ModelFileError`]). The file itself is written and read by
//! `checkpoint::model_file`.

mod error;
pub(crate) mod json;
mod registry;

pub use error::{ConfigError, ModelFileError};
pub use registry::{LayerFactory, LayerRegistry};
