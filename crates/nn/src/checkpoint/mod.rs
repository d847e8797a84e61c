//! Checkpoints: a model's weights as a safetensors file, which PyTorch, JAX and candle tools
//! open as they are.

mod atomic;
mod header;
mod model_file;
mod model_load;

pub use atomic::write_atomic;

use crate::error::{NnError, Result};
use crate::file_read::ReadFailure;
use crate::float::Float;
use crate::model::Sequential;
use dendrite_graph::{Graph, NodeId};
use header::{max_entry_len, read_data, read_header, Entry, METADATA_ALLOWANCE};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use std::io::Write;
use std::path::Path;

/// The largest header safetensors accepts (its `MAX_HEADER_SIZE`).
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// Says in words what is wrong with a file safetensors refused.
fn corrupt_reason(bytes: &[u8], err: &safetensors::SafeTensorError) -> String {
    use safetensors::SafeTensorError as E;
    // `read_header` has already refused a short file, a header over the limit and a header
    // longer than the file, with the numbers; what is left is safetensors' own checks.
    let header = bytes
        .first_chunk::<8>()
        .map_or(0, |p| u64::from_le_bytes(*p));
    let data = (bytes.len() as u64)
        .saturating_sub(8)
        .saturating_sub(header);
    match err {
        E::InvalidHeader => "the header is not UTF-8 text".to_owned(),
        E::InvalidHeaderStart | E::InvalidHeaderDeserialization | E::JsonError(_) => {
            "the header is not the JSON table of tensors safetensors expects".to_owned()
        }
        E::MetadataIncompleteBuffer => format!(
            "the tensors' data offsets do not end where the file does ({data} bytes of data after the header): the file is truncated or has trailing bytes"
        ),
        E::InvalidOffset(name) => {
            format!("tensor `{name}` has data offsets that do not follow the previous tensor")
        }
        E::TensorInvalidInfo => {
            "a tensor's byte range does not match its shape and dtype".to_owned()
        }
        E::ValidationOverflow => "a tensor's shape overflows when multiplied out".to_owned(),
        other => format!("{other:?}"),
    }
}

/// The longest header a checkpoint of these parameters can honestly have (their entries, the
/// metadata allowance and the padding to 8 bytes), and the bytes of their data.
fn checkpoint_bounds<F: Float>(graph: &Graph<F>, params: &[NodeId]) -> Result<(u64, u64)> {
    let mut header = METADATA_ALLOWANCE.saturating_add(8);
    let mut data = 0u64;
    for &p in params {
        let value = graph.value(p)?;
        let entry = max_entry_len(graph.name(p)?.len(), value.ndim());
        header = header.saturating_add(entry);
        data = data.saturating_add((value.len() as u64).saturating_mul(F::BYTES as u64));
    }
    Ok((header.min(MAX_HEADER_BYTES), data))
}

/// `NnError::CorruptCheckpoint` for `path`.
fn corrupt(path: &Path, reason: String) -> NnError {
    NnError::CorruptCheckpoint {
        path: path.to_path_buf(),
        reason,
    }
}

/// A refused or failed read of `path` as an [`NnError`].
fn read_failure(path: &Path, failure: ReadFailure) -> NnError {
    let path = path.to_path_buf();
    match failure {
        ReadFailure::Io(source) => NnError::Io { path, source },
        ReadFailure::NotRegular { kind } => NnError::NotAFile { path, kind },
        ReadFailure::TooLong { len, limit } => NnError::FileTooLarge { path, len, limit },
    }
}

fn dtype_of<F: Float>() -> Dtype {
    if F::BYTES == 8 {
        Dtype::F64
    } else {
        Dtype::F32
    }
}

impl<F: Float> Sequential<F> {
    /// Saves the weights to `path` as safetensors, atomically (see [`write_atomic`]).
    ///
    /// # Errors
    /// [`NnError::NotBuilt`] before the model is built; [`NnError::Io`].
    ///
    /// ```
    /// use dendrite_nn::{Dense, Sequential};
    /// let path = std::env::temp_dir().join(format!("dendrite-doc-save-{}.safetensors", std::process::id()));
    /// let mut model = Sequential::new();
    /// model.add(Dense::new(2).input_dim(3));
    /// model.build()?;
    /// model.save_weights(&path)?;
    /// let mut copy = Sequential::new().with_seed(99);
    /// copy.add(Dense::new(2).input_dim(3));
    /// copy.build()?;
    /// copy.load_weights(&path)?;
    /// assert_eq!(copy.weights()?, model.weights()?);
    /// # std::fs::remove_file(&path).ok();
    /// # Ok::<(), dendrite_nn::NnError>(())
    /// ```
    ///
    /// Tensors are named after the parameter nodes (`dense_1/kernel`, `dense_1/bias`), stored
    /// row-major and little-endian in the model's element type (`F32` or `F64`).
    ///
    /// Writing is atomic ([`write_atomic`]): the bytes go to a temporary file in the same
    /// directory, which is flushed, synced to disk and then renamed over the target, so a crash or
    /// an error mid-write leaves any previous checkpoint intact. Loading checks everything (names,
    /// element types, shapes, no tensor missing and none extra) before it changes a single weight.
    pub fn save_weights(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let (graph, params) = self.parameter_nodes("save_weights")?;
        let mut named = Vec::with_capacity(params.len());
        for &p in params {
            let value = graph.value(p)?;
            let mut bytes = Vec::with_capacity(value.len() * F::BYTES);
            for &v in value.iter() {
                v.write_le(&mut bytes);
            }
            named.push((graph.name(p)?.to_owned(), value.shape().to_vec(), bytes));
        }
        let mut views = Vec::with_capacity(named.len());
        for (name, shape, bytes) in &named {
            let view = TensorView::new(dtype_of::<F>(), shape.clone(), bytes).map_err(|e| {
                NnError::CorruptCheckpoint {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                }
            })?;
            views.push((name.as_str(), view));
        }
        let bytes =
            safetensors::serialize(views, &None).map_err(|e| NnError::CorruptCheckpoint {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        write_atomic(path, |f| f.write_all(&bytes))
    }

    /// Loads weights saved by [`Sequential::save_weights`] into this (built) model. The file
    /// must hold exactly the model's parameters, by name, with the same shapes and element
    /// type; nothing changes unless all of them fit.
    ///
    /// The file is read within what it can hold: it must be a regular file (`/dev/zero`, a FIFO
    /// or a directory is refused without being read), no longer than a checkpoint of this model
    /// can be (the 8-byte prefix, a header as long as these tensors' entries can be plus 64 KiB
    /// of metadata, and the parameters' bytes), and at most its length is reserved and read.
    ///
    /// # Errors
    /// [`NnError::NotBuilt`] before the model is built (checked first); [`NnError::NotAFile`],
    /// [`NnError::FileTooLarge`], [`NnError::FileGrew`], [`NnError::AllocationFailed`],
    /// [`NnError::Io`], [`NnError::CorruptCheckpoint`], [`NnError::MissingTensor`],
    /// [`NnError::UnexpectedTensor`], [`NnError::TensorShape`], [`NnError::TensorDtype`],
    /// [`NnError::NonFiniteCheckpoint`] (a NaN or infinite value: nothing is loaded).
    ///
    /// ```
    /// use dendrite_nn::{Dense, NnError, Sequential};
    /// let mut model = Sequential::new();
    /// model.add(Dense::new(2).input_dim(3));
    /// model.build()?;
    /// let err = model.load_weights("/nonexistent/weights.safetensors").err();
    /// assert!(matches!(err, Some(NnError::Io { .. })));
    /// # #[cfg(unix)]
    /// assert!(matches!(model.load_weights("/dev/zero"), Err(NnError::NotAFile { .. })));
    /// # Ok::<(), NnError>(())
    /// ```
    pub fn load_weights(&mut self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let (graph, params) = self.parameter_nodes("load_weights")?;
        let (max_header, data) = checkpoint_bounds(graph, params)?;
        let header = read_header(path, max_header)?;
        // The header's names, dtypes and shapes must be the model's before any data is read.
        check_entries(path, &header.entries, graph, params)?;
        let expected = 8u64
            .saturating_add(header.bytes.len() as u64 - 8)
            .saturating_add(data);
        let bytes = read_data(path, header, expected)?;
        // safetensors checks every tensor's offsets against its shape, its dtype and the data
        // present; tensors are then views into `bytes`.
        let file = SafeTensors::deserialize(&bytes)
            .map_err(|e| corrupt(path, corrupt_reason(&bytes, &e)))?;
        let (graph, params) = self.parameter_nodes_mut("load_weights")?;
        let mut tensors = Vec::with_capacity(params.len());
        for &p in params.iter() {
            let name = graph.name(p)?;
            let tensor = file.tensor(name).map_err(|_| NnError::MissingTensor {
                path: path.to_path_buf(),
                name: name.to_owned(),
            })?;
            refuse_non_finite::<F>(path, name, &tensor)?;
            tensors.push(tensor);
        }
        // Everything fits and is finite: only now does a weight change.
        for (&p, tensor) in params.iter().zip(&tensors) {
            let mut param = graph.parameter_mut(p)?;
            for (w, chunk) in param.iter_mut().zip(tensor.data().chunks_exact(F::BYTES)) {
                if let Some(v) = F::read_le(chunk) {
                    *w = v;
                }
            }
        }
        Ok(())
    }
}

/// `Err(NonFiniteCheckpoint)` naming the first NaN or infinite value of `tensor`: a checkpoint
/// never loads a weight that training would refuse to produce.
fn refuse_non_finite<F: Float>(path: &Path, name: &str, tensor: &TensorView<'_>) -> Result<()> {
    let values = tensor.data().chunks_exact(F::BYTES).map(F::read_le);
    for (index, value) in values.enumerate() {
        let value = value.map_or(f64::NAN, |v| v.as_f64());
        if !value.is_finite() {
            return Err(NnError::NonFiniteCheckpoint {
                path: path.to_path_buf(),
                name: name.to_owned(),
                index,
                value,
            });
        }
    }
    Ok(())
}

/// Checks that the header's tensors are exactly the model's parameters, by name, with the
/// model's dtype and shapes.
fn check_entries<F: Float>(
    path: &Path,
    entries: &[(String, Entry)],
    graph: &Graph<F>,
    params: &[NodeId],
) -> Result<()> {
    let expected_dtype = format!("{:?}", dtype_of::<F>());
    for &p in params {
        let name = graph.name(p)?;
        let entry = entries.iter().find(|(n, _)| n == name).map(|(_, e)| e);
        let entry = entry.ok_or_else(|| NnError::MissingTensor {
            path: path.to_path_buf(),
            name: name.to_owned(),
        })?;
        if entry.dtype != expected_dtype {
            return Err(NnError::TensorDtype {
                path: path.to_path_buf(),
                name: name.to_owned(),
                expected: F::NAME,
                actual: entry.dtype.to_lowercase(),
            });
        }
        let expected = graph.value(p)?.shape().to_vec();
        if entry.shape != expected {
            return Err(NnError::TensorShape {
                path: path.to_path_buf(),
                name: name.to_owned(),
                expected,
                actual: entry.shape.clone(),
            });
        }
    }
    if let Some((name, _)) = entries.iter().find(|(name, _)| {
        !params
            .iter()
            .any(|&p| graph.name(p).ok() == Some(name.as_str()))
    }) {
        return Err(NnError::UnexpectedTensor {
            path: path.to_path_buf(),
            name: name.clone(),
        });
    }
    Ok(())
}
