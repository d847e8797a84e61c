//! Whole-model files: one safetensors file holding the weights and the optimizer state as
//! tensors, and in its metadata (key `dendrite.model`) a versioned JSON configuration of the
//! model: its layers, the optimizer, loss and metrics, the step count and training position.

use super::{corrupt, dtype_of, write_atomic};
use crate::error::{NnError, Result};
use crate::float::Float;
use crate::model::Sequential;
use crate::persist::json::{loss_to_json, metric_to_json};
use crate::persist::{ConfigError, ModelFileError};
use safetensors::tensor::TensorView;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

/// The metadata key holding the model's configuration.
pub(super) const CONFIG_KEY: &str = "dendrite.model";
/// The `format` field of the configuration.
pub(super) const FORMAT: &str = "dendrite.model";
/// The version of the configuration this build writes and reads.
pub(crate) const VERSION: u64 = 1;
/// The longest header a model file may have: its configuration (a few kilobytes for the
/// models this crate builds) and the tensors' entries. A header claiming more is refused
/// before it is read.
pub(super) const MAX_HEADER_BYTES: u64 = 16 * 1024 * 1024;

/// A tensor to write: its name, shape and little-endian bytes.
type NamedTensor = (String, Vec<usize>, Vec<u8>);

/// The name of buffer `j` of the optimizer's state for the parameter named `param`.
pub(super) fn state_name(param: &str, j: usize) -> String {
    format!("optimizer/{param}/{j}")
}

fn not_serializable(what: &'static str, name: &str, err: ConfigError) -> NnError {
    ModelFileError::NotSerializable {
        what,
        name: name.to_owned(),
        reason: err.to_string(),
    }
    .into()
}

pub(super) fn bad_config(path: &Path, source: ConfigError) -> NnError {
    ModelFileError::Config {
        path: path.to_path_buf(),
        source,
    }
    .into()
}

impl<F: Float> Sequential<F> {
    /// Saves the whole model to one file, atomically (see [`write_atomic`]): its
    /// architecture (every layer's configuration), its weights and, once compiled, the
    /// optimizer (configuration, state and step count), the loss and metrics and the training
    /// position ([`epochs_trained`](Sequential::epochs_trained) and
    /// [`shuffle_seed`](Sequential::shuffle_seed)). [`Sequential::load`] rebuilds a model that
    /// predicts the same bits and, trained on, takes the same steps.
    ///
    /// The file is safetensors: the weights under their parameter names (`dense_1/kernel`),
    /// the optimizer state as `optimizer/<parameter>/<n>`, and the configuration as versioned
    /// JSON in the metadata under `dendrite.model`; other safetensors tools open it as it is.
    ///
    /// It takes `&mut self` only because the optimizer lends its state through
    /// [`Optimizer::visit_state`](crate::Optimizer::visit_state); nothing is changed.
    ///
    /// # Errors
    /// [`NnError::NotBuilt`] before the model is built; [`ModelFileError::NotSerializable`]
    /// for a part that is code rather than data: a custom loss, metric or initializer, an
    /// optimizer or a layer type that does not describe itself ([`Layer::config`](crate::Layer::config),
    /// [`Optimizer::config`](crate::Optimizer::config)); [`NnError::Io`].
    ///
    /// ```
    /// use dendrite_nn::{Activation, Adam, Dense, Loss, Sequential};
    /// let path = std::env::temp_dir().join(format!("dendrite-doc-model-{}.safetensors", std::process::id()));
    /// let mut model = Sequential::new().with_seed(3);
    /// model.add(Dense::new(4).input_dim(2).activation(Activation::Relu)).add(Dense::new(1));
    /// model.compile(Adam::new(0.01), Loss::MeanSquaredError, &[])?;
    /// model.save(&path)?;
    /// let loaded = Sequential::<f32>::load(&path)?;
    /// assert_eq!(loaded.weights()?, model.weights()?);
    /// assert_eq!(loaded.layer_names(), ["dense_1", "dense_2"]);
    /// # std::fs::remove_file(&path).ok();
    /// # Ok::<(), dendrite_nn::NnError>(())
    /// ```
    pub fn save(&mut self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let config = self.model_config()?.to_string();
        let tensors = self.model_tensors()?;
        let mut views = Vec::with_capacity(tensors.len());
        for (name, shape, bytes) in &tensors {
            let view = TensorView::new(dtype_of::<F>(), shape.clone(), bytes)
                .map_err(|e| corrupt(path, e.to_string()))?;
            views.push((name.as_str(), view));
        }
        let metadata = HashMap::from([(CONFIG_KEY.to_owned(), config)]);
        let bytes = safetensors::serialize(views, &Some(metadata))
            .map_err(|e| corrupt(path, e.to_string()))?;
        write_atomic(path, |f| f.write_all(&bytes))
    }

    /// The model's configuration as the file records it.
    fn model_config(&self) -> Result<Value> {
        self.parameter_nodes("save")?;
        let mut layers = Vec::new();
        for (name, auto, layer) in self.named_layers() {
            let config = layer
                .config()
                .map_err(|e| not_serializable("layer", name, e))?;
            layers
                .push(json!({"name": name, "auto": auto, "kind": layer.kind(), "config": config}));
        }
        let training = match self.training_state() {
            None => Value::Null,
            Some(t) => {
                let optimizer = t.optimizer.config();
                let optimizer =
                    optimizer.map_err(|e| not_serializable("optimizer", t.optimizer.name(), e))?;
                let loss =
                    loss_to_json(t.loss).map_err(|e| not_serializable("loss", t.loss.name(), e))?;
                let metrics = t.metrics.iter().map(|m| {
                    metric_to_json(m).map_err(|e| not_serializable("metric", m.name(), e))
                });
                json!({
                    "optimizer": optimizer,
                    "loss": loss,
                    "metrics": metrics.collect::<Result<Vec<_>>>()?,
                    "step": t.step,
                    "epoch": t.epoch,
                    "shuffle_seed": t.shuffle_seed,
                })
            }
        };
        Ok(json!({
            "format": FORMAT,
            "version": VERSION,
            "dtype": F::NAME,
            "name": self.name(),
            "seed": self.seed(),
            "finite_check": self.finite_check(),
            "layers": layers,
            "training": training,
        }))
    }

    /// The tensors of the file: every parameter, then every buffer of optimizer state, each as
    /// `(name, shape, little-endian bytes)`.
    fn model_tensors(&mut self) -> Result<Vec<NamedTensor>> {
        let (graph, params) = self.parameter_nodes("save")?;
        let mut tensors = Vec::new();
        let mut names = Vec::with_capacity(params.len());
        for &p in params {
            let value = graph.value(p)?;
            let mut bytes = Vec::with_capacity(value.len().saturating_mul(F::BYTES));
            value.iter().for_each(|&v| v.write_le(&mut bytes));
            names.push(graph.name(p)?.to_owned());
            tensors.push((graph.name(p)?.to_owned(), value.shape().to_vec(), bytes));
        }
        if self.is_compiled() {
            self.visit_optimizer_state(|k, j, state| {
                let mut bytes = Vec::with_capacity(state.len().saturating_mul(F::BYTES));
                state.iter().for_each(|&v| v.write_le(&mut bytes));
                let param = names.get(k).map_or("", String::as_str);
                tensors.push((state_name(param, j), vec![state.len()], bytes));
            })?;
        }
        Ok(tensors)
    }
}
