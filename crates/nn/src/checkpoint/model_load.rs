//! Loading a whole-model file: header first (bounded), then the configuration, then a new
//! model built and compiled from it, whose tensors the header must list exactly; only then
//! the data. A refused file leaves nothing behind: the model is returned only when complete.

use super::header::{read_data, read_header, Entry};
use super::model_file::{bad_config, state_name, CONFIG_KEY, FORMAT, MAX_HEADER_BYTES, VERSION};
use super::{corrupt, corrupt_reason, dtype_of, refuse_non_finite};
use crate::error::{NnError, Result};
use crate::float::Float;
use crate::model::Sequential;
use crate::optim::optimizer_from_json;
use crate::persist::json::{
    bool_field, field, loss_from_json, metric_from_json, str_field, u64_field, usize_field,
};
use crate::persist::{ConfigError, LayerRegistry, ModelFileError};
use safetensors::SafeTensors;
use serde_json::Value;
use std::path::Path;

/// A tensor the rebuilt model expects: its name, shape, and where its values go.
struct Expected {
    name: String,
    shape: Vec<usize>,
    slot: Slot,
}

#[derive(Clone, Copy)]
enum Slot {
    /// Parameter `k`.
    Weight(usize),
    /// Buffer `j` of the optimizer state of parameter `k`.
    State(usize, usize),
}

impl<F: Float> Sequential<F> {
    /// Loads a model saved by [`Sequential::save`], with the built-in layer types (see
    /// [`Sequential::load_with`] for layers of your own).
    ///
    /// # Errors
    /// As [`Sequential::load_with`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        Self::load_with(path, &LayerRegistry::default())
    }

    /// Loads a model saved by [`Sequential::save`], rebuilding its layers with the factories
    /// of `registry`: the same layers, names and seed, the saved weights, and (when it was
    /// compiled) the same optimizer with its state and step count, loss, metrics and training
    /// position, so that `fit` with [`initial_epoch`](crate::FitConfig::initial_epoch) set to
    /// [`epochs_trained`](Sequential::epochs_trained) continues bit for bit.
    ///
    /// The file is read within what it can hold: a regular file, a header of at most 16 MiB
    /// read first, its configuration parsed and the model rebuilt from it, the header's
    /// tensors checked against that model (names, dtype, shapes, none missing, none extra),
    /// and only then the data, which must end where the file does. Every value must be finite.
    ///
    /// # Errors
    /// [`ModelFileError::NotAModelFile`] (a weights-only checkpoint, say),
    /// [`ModelFileError::Version`], [`ModelFileError::Dtype`],
    /// [`ModelFileError::UnknownLayer`], [`ModelFileError::UnknownOptimizer`],
    /// [`ModelFileError::Config`], [`ModelFileError::OptimizerState`]; the errors of
    /// [`Sequential::load_weights`] for the file and its tensors; the errors of `build` and
    /// `compile` for a configuration they refuse.
    ///
    /// ```
    /// use dendrite_nn::{ModelFileError, NnError, Sequential};
    /// let err = Sequential::<f32>::load("/nonexistent/model.safetensors").err();
    /// assert!(matches!(err, Some(NnError::Io { .. })));
    /// ```
    pub fn load_with(path: impl AsRef<Path>, registry: &LayerRegistry<F>) -> Result<Self> {
        let path = path.as_ref();
        let header = read_header(path, MAX_HEADER_BYTES)?;
        let config = config_of(path, header.bytes.get(8..).unwrap_or_default())?;
        let mut model = rebuild(path, &config, registry)?;
        let expected = model.expected_tensors()?;
        let data = check_entries::<F>(path, &header.entries, &expected)?;
        let total = (header.bytes.len() as u64).saturating_add(data);
        let bytes = read_data(path, header, total)?;
        let file = SafeTensors::deserialize(&bytes)
            .map_err(|e| corrupt(path, corrupt_reason(&bytes, &e)))?;
        model.assign(path, &file, &expected)?;
        if let Some(training) = config.get("training").filter(|t| !t.is_null()) {
            let position = (|| {
                let step = u64_field(training, "step")?;
                let epoch = usize_field(training, "epoch")?;
                Ok::<_, ConfigError>((step, epoch, u64_field(training, "shuffle_seed")?))
            })();
            let (step, epoch, seed) =
                position.map_err(|e| bad_config(path, e.within("training")))?;
            model.restore_position(step, epoch, seed);
        }
        Ok(model)
    }

    /// The tensors a file of this (built, maybe compiled) model must hold.
    fn expected_tensors(&mut self) -> Result<Vec<Expected>> {
        let (graph, params) = self.parameter_nodes("load")?;
        let mut expected = Vec::with_capacity(params.len());
        for (k, &p) in params.iter().enumerate() {
            expected.push(Expected {
                name: graph.name(p)?.to_owned(),
                shape: graph.value(p)?.shape().to_vec(),
                slot: Slot::Weight(k),
            });
        }
        let names: Vec<String> = expected.iter().map(|e| e.name.clone()).collect();
        if self.is_compiled() {
            self.visit_optimizer_state(|k, j, state| {
                expected.push(Expected {
                    name: state_name(names.get(k).map_or("", String::as_str), j),
                    shape: vec![state.len()],
                    slot: Slot::State(k, j),
                });
            })?;
        }
        Ok(expected)
    }

    /// Writes the file's tensors into the model (all of them checked finite first).
    fn assign(&mut self, path: &Path, file: &SafeTensors<'_>, expected: &[Expected]) -> Result<()> {
        let mut views = Vec::with_capacity(expected.len());
        for e in expected {
            let view = file.tensor(&e.name).map_err(|_| NnError::MissingTensor {
                path: path.to_path_buf(),
                name: e.name.clone(),
            })?;
            refuse_non_finite::<F>(path, &e.name, &view)?;
            views.push(view);
        }
        let read = |bytes: &[u8], into: &mut dyn Iterator<Item = &mut F>| {
            for (w, chunk) in into.zip(bytes.chunks_exact(F::BYTES)) {
                if let Some(v) = F::read_le(chunk) {
                    *w = v;
                }
            }
        };
        let (graph, params) = self.parameter_nodes_mut("load")?;
        for (e, view) in expected.iter().zip(&views) {
            if let Slot::Weight(k) = e.slot {
                let p = *params.get(k).ok_or(NnError::NotBuilt { method: "load" })?;
                read(view.data(), &mut graph.parameter_mut(p)?.iter_mut());
            }
        }
        if self.is_compiled() {
            self.visit_optimizer_state(|k, j, state| {
                let found = expected
                    .iter()
                    .zip(&views)
                    .find(|(e, _)| matches!(e.slot, Slot::State(a, b) if a == k && b == j));
                if let Some((_, view)) = found {
                    read(view.data(), &mut state.iter_mut());
                }
            })?;
        }
        Ok(())
    }
}

/// The configuration in the header's metadata, checked for format, version.
fn config_of(path: &Path, header: &[u8]) -> Result<Value> {
    let not_model = |reason: &str| ModelFileError::NotAModelFile {
        path: path.to_path_buf(),
        reason: reason.to_owned(),
    };
    let table: Value = serde_json::from_slice(header)
        .map_err(|_| corrupt(path, "the header is not JSON".to_owned()))?;
    let text = table
        .get("__metadata__")
        .and_then(|m| m.get(CONFIG_KEY))
        .and_then(Value::as_str)
        .ok_or_else(|| not_model("its metadata has no `dendrite.model` configuration (a weights checkpoint? use load_weights)"))?;
    let config: Value = serde_json::from_str(text)
        .map_err(|e| not_model(&format!("the configuration is not JSON ({e})")))?;
    if config.get("format").and_then(Value::as_str) != Some(FORMAT) {
        return Err(not_model("the configuration's `format` is not `dendrite.model`").into());
    }
    let version = u64_field(&config, "version").map_err(|e| bad_config(path, e))?;
    if version != VERSION {
        return Err(ModelFileError::Version {
            path: path.to_path_buf(),
            found: version,
            supported: VERSION,
        }
        .into());
    }
    Ok(config)
}

/// A model built (and compiled, when the file says so) from `config`.
fn rebuild<F: Float>(
    path: &Path,
    config: &Value,
    registry: &LayerRegistry<F>,
) -> Result<Sequential<F>> {
    let bad = |e: ConfigError| bad_config(path, e);
    let dtype = str_field(config, "dtype").map_err(bad)?;
    if dtype != F::NAME {
        return Err(ModelFileError::Dtype {
            path: path.to_path_buf(),
            expected: F::NAME,
            actual: dtype.to_owned(),
        }
        .into());
    }
    let mut model = Sequential::<F>::default()
        .named(str_field(config, "name").map_err(bad)?)
        .with_seed(u64_field(config, "seed").map_err(bad)?)
        .with_finite_check(bool_field(config, "finite_check").map_err(bad)?);
    let layers = field(config, "layers").map_err(bad)?.as_array();
    let layers = layers.ok_or_else(|| bad(ConfigError::new("layers", "must be a list")))?;
    for (index, layer) in layers.iter().enumerate() {
        let at = format!("layers[{index}]");
        let name = str_field(layer, "name").map_err(|e| bad(e.within(&at)))?;
        let auto = bool_field(layer, "auto").map_err(|e| bad(e.within(&at)))?;
        let kind = str_field(layer, "kind").map_err(|e| bad(e.within(&at)))?;
        let settings = field(layer, "config").map_err(|e| bad(e.within(&at)))?;
        let built =
            registry
                .rebuild(kind, settings)
                .ok_or_else(|| ModelFileError::UnknownLayer {
                    path: path.to_path_buf(),
                    index,
                    kind: kind.to_owned(),
                    known: registry.kinds().join(", "),
                })?;
        let built = built.map_err(|e| bad(e.within(&format!("{at}.config"))))?;
        model.push_named(name.to_owned(), auto, built);
    }
    model.build()?;
    if let Some(training) = config.get("training").filter(|t| !t.is_null()) {
        compile_from(path, &mut model, training)?;
    }
    Ok(model)
}

/// Compiles `model` with the optimizer, loss and metrics `training` describes.
fn compile_from<F: Float>(path: &Path, model: &mut Sequential<F>, training: &Value) -> Result<()> {
    let bad = |e: ConfigError| bad_config(path, e.within("training"));
    let optimizer = field(training, "optimizer").map_err(bad)?;
    let optimizer = optimizer_from_json::<F>(optimizer).map_err(|e| bad(e.within("optimizer")))?;
    let optimizer = optimizer.ok_or_else(|| ModelFileError::UnknownOptimizer {
        path: path.to_path_buf(),
        name: training["optimizer"]["name"]
            .as_str()
            .unwrap_or("")
            .to_owned(),
    })?;
    let loss =
        loss_from_json(field(training, "loss").map_err(bad)?).map_err(|e| bad(e.within("loss")))?;
    let metrics = field(training, "metrics").map_err(bad)?.as_array();
    let metrics = metrics.ok_or_else(|| bad(ConfigError::new("metrics", "must be a list")))?;
    let metrics = metrics
        .iter()
        .enumerate()
        .map(|(i, m)| metric_from_json(m).map_err(|e| bad(e.within(&format!("metrics[{i}]")))))
        .collect::<Result<Vec<_>>>()?;
    model.compile(optimizer, loss, &metrics)
}

/// Checks the header's tensors against what the model expects (same set, dtype, shapes);
/// returns the bytes of data they take.
fn check_entries<F: Float>(
    path: &Path,
    entries: &[(String, Entry)],
    expected: &[Expected],
) -> Result<u64> {
    let dtype = format!("{:?}", dtype_of::<F>());
    let mut data = 0u64;
    for e in expected {
        let entry = entries
            .iter()
            .find(|(n, _)| *n == e.name)
            .map(|(_, entry)| entry);
        let entry = entry.ok_or_else(|| NnError::MissingTensor {
            path: path.to_path_buf(),
            name: e.name.clone(),
        })?;
        if entry.dtype != dtype {
            return Err(NnError::TensorDtype {
                path: path.to_path_buf(),
                name: e.name.clone(),
                expected: F::NAME,
                actual: entry.dtype.to_lowercase(),
            });
        }
        if entry.shape != e.shape {
            return Err(match e.slot {
                Slot::State(..) => ModelFileError::OptimizerState {
                    path: path.to_path_buf(),
                    name: e.name.clone(),
                    expected: e.shape.iter().product(),
                    actual: entry.shape.iter().product(),
                }
                .into(),
                Slot::Weight(_) => NnError::TensorShape {
                    path: path.to_path_buf(),
                    name: e.name.clone(),
                    expected: e.shape.clone(),
                    actual: entry.shape.clone(),
                },
            });
        }
        let len = e
            .shape
            .iter()
            .try_fold(F::BYTES as u64, |n, &d| n.checked_mul(d as u64));
        data = data.saturating_add(len.unwrap_or(u64::MAX));
    }
    if let Some((name, _)) = entries
        .iter()
        .find(|(n, _)| !expected.iter().any(|e| e.name == *n))
    {
        return Err(NnError::UnexpectedTensor {
            path: path.to_path_buf(),
            name: name.clone(),
        });
    }
    Ok(data)
}
