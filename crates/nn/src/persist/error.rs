//! What can go wrong saving or loading a whole-model file.

use std::path::PathBuf;

/// A part of a model's configuration that could not be read: where in the JSON, and why.
///
/// Layer factories registered in a [`LayerRegistry`](crate::LayerRegistry) return it for a
/// configuration they cannot rebuild a layer from.
///
/// ```
/// let err = dendrite_nn::ConfigError::new("units", "must be a positive integer");
/// assert_eq!(err.to_string(), "`units`: must be a positive integer");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{at}`: {reason}")]
pub struct ConfigError {
    /// Where in the configuration (`layers[0].config.units`).
    pub at: String,
    /// What is wrong there.
    pub reason: String,
}

impl ConfigError {
    /// An error at `at` (a field name or path) saying `reason`.
    pub fn new(at: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError {
            at: at.into(),
            reason: reason.into(),
        }
    }

    /// The same error one level further out: `units` inside `layers[0].config`.
    pub(crate) fn within(mut self, outer: &str) -> Self {
        self.at = if self.at.is_empty() {
            outer.to_owned()
        } else {
            format!("{outer}.{}", self.at)
        };
        self
    }
}

/// Why a whole-model file could not be written or read (inside
/// [`NnError::ModelFile`](crate::NnError::ModelFile)). A refused load builds nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelFileError {
    /// Part of the model cannot be described in the file: a custom loss, metric, initializer,
    /// optimizer, or a layer type without a configuration.
    #[error("cannot save the model: the {what} `{name}` cannot be written to a model file ({reason}); save_weights still saves its weights")]
    NotSerializable {
        /// `"layer"`, `"loss"`, `"metric"`, `"optimizer"`.
        what: &'static str,
        /// Its name.
        name: String,
        /// Why.
        reason: String,
    },
    /// The file is a safetensors file but not a model file (no model configuration in it).
    #[error("{path}: not a model file: {reason}")]
    NotAModelFile {
        /// The file.
        path: PathBuf,
        /// What is missing.
        reason: String,
    },
    /// The file was written by a version of the format this one cannot read.
    #[error("{path}: model file format version {found}, but this build reads version {supported}")]
    Version {
        /// The file.
        path: PathBuf,
        /// The version in the file.
        found: u64,
        /// The version this build writes and reads.
        supported: u64,
    },
    /// The file's element type is not the model's.
    #[error("{path}: the model file holds {actual} values, but the model is {expected}")]
    Dtype {
        /// The file.
        path: PathBuf,
        /// The model's element type.
        expected: &'static str,
        /// The file's.
        actual: String,
    },
    /// The configuration names a layer type that is not registered.
    #[error("{path}: layer {index} is of type `{kind}`, which is not registered (known: {known}); register it in a LayerRegistry and load with Sequential::load_with")]
    UnknownLayer {
        /// The file.
        path: PathBuf,
        /// The layer's position.
        index: usize,
        /// Its type.
        kind: String,
        /// The registered types.
        known: String,
    },
    /// The configuration names an optimizer this build does not know.
    #[error("{path}: unknown optimizer `{name}` (known: sgd, adam, adamw, rmsprop)")]
    UnknownOptimizer {
        /// The file.
        path: PathBuf,
        /// Its name.
        name: String,
    },
    /// A value in the configuration is missing or not what it should be.
    #[error("{path}: bad model configuration at {source}")]
    Config {
        /// The file.
        path: PathBuf,
        /// Where and why.
        source: ConfigError,
    },
    /// The optimizer state in the file does not fit the optimizer of the configuration.
    #[error(
        "{path}: optimizer state `{name}` has {actual} values, but the optimizer keeps {expected}"
    )]
    OptimizerState {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// The length the rebuilt optimizer keeps.
        expected: usize,
        /// The length in the file.
        actual: usize,
    },
}
