//! Checkpoints: a model's weights as a safetensors file, which PyTorch, JAX and candle tools
//! open as they are.

use crate::error::{NnError, Result};
use crate::file_read::{read_regular, ReadFailure};
use crate::float::Float;
use crate::model::Sequential;
use dendrite_graph::{Graph, NodeId};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Numbers the temporary files of [`write_atomic`] within this process.
static TMP_SERIAL: AtomicU64 = AtomicU64::new(0);

/// The longest file name, in bytes, that the file systems written to accept (`NAME_MAX` on
/// Linux and the BSDs; Windows and macOS allow 255 UTF-16 units or UTF-8 bytes, which 255
/// bytes never exceed).
const NAME_MAX: usize = 255;

/// The largest header safetensors accepts (its `MAX_HEADER_SIZE`).
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// Says in words what is wrong with a file safetensors refused. The length prefix is checked
/// here first, because a truncated file is the common case and deserves the numbers.
fn corrupt_reason(bytes: &[u8], err: &safetensors::SafeTensorError) -> String {
    use safetensors::SafeTensorError as E;
    let len = bytes.len() as u64;
    let Some(prefix) = bytes.first_chunk::<8>() else {
        return format!("the file has {len} bytes, fewer than the 8 of the header length");
    };
    let header = u64::from_le_bytes(*prefix);
    if header > MAX_HEADER_BYTES {
        return format!("the header length {header} exceeds the limit of {MAX_HEADER_BYTES} bytes");
    }
    if header > len - 8 {
        return format!(
            "the header claims {header} bytes but only {} follow (the file is truncated)",
            len - 8
        );
    }
    match err {
        E::InvalidHeader => "the header is not UTF-8 text".to_owned(),
        E::InvalidHeaderStart | E::InvalidHeaderDeserialization | E::JsonError(_) => {
            "the header is not the JSON table of tensors safetensors expects".to_owned()
        }
        E::MetadataIncompleteBuffer => format!(
            "the tensors' data offsets do not end where the file does ({} bytes of data after the header): the file is truncated or has trailing bytes",
            len - 8 - header
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

/// Writes a file atomically: `write` fills a temporary file beside `path` (same directory, so
/// the final rename cannot cross file systems), which is flushed, synced and renamed over
/// `path`. If `write` or any step fails, the temporary file is removed and `path` is left as
/// it was. The temporary name, `.{name}.tmp-{pid}-{serial}`, cuts `name` short so that it
/// stays within `NAME_MAX` (255 bytes) for any legal destination name.
///
/// # Errors
/// [`NnError::Io`] naming `path`.
///
/// ```
/// use std::io::Write;
/// let dir = std::env::temp_dir().join(format!("dendrite-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).map_err(|e| dendrite_nn::NnError::Io { path: dir.clone(), source: e })?;
/// let path = dir.join("note.txt");
/// dendrite_nn::write_atomic(&path, |f| f.write_all(b"first"))?;
/// // A write that fails half-way leaves the old content in place.
/// let failed = dendrite_nn::write_atomic(&path, |f| {
///     f.write_all(b"sec")?;
///     Err(std::io::Error::new(std::io::ErrorKind::Other, "disk full"))
/// });
/// assert!(failed.is_err());
/// assert_eq!(std::fs::read(&path).ok(), Some(b"first".to_vec()));
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), dendrite_nn::NnError>(())
/// ```
pub fn write_atomic(path: &Path, write: impl FnOnce(&mut File) -> io::Result<()>) -> Result<()> {
    let io_err = |source| NnError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path.file_name().ok_or_else(|| {
        io_err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a checkpoint path must name a file",
        ))
    })?;
    let tmp = dir.join(temp_name(
        file_name,
        TMP_SERIAL.fetch_add(1, Ordering::Relaxed),
    ));
    let result = (|| {
        let mut file = File::create(&tmp)?;
        write(&mut file)?;
        file.flush()?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)?;
        // Make the rename itself durable where the platform allows syncing a directory.
        if let Ok(d) = File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io_err)
}

/// The name of the temporary file [`write_atomic`] writes beside `file_name`:
/// `.{file_name}.tmp-{pid}-{serial}`, unique per process *and* per call (so two threads saving
/// to one path at once each write their own file and the last rename wins with a complete
/// one), with `file_name` cut short so that the whole stays within [`NAME_MAX`] bytes: any
/// name legal for the destination gives a legal temporary name.
fn temp_name(file_name: &OsStr, serial: u64) -> OsString {
    let suffix = format!(".tmp-{}-{serial}", std::process::id());
    let room = NAME_MAX.saturating_sub(1 + suffix.len());
    let mut name = OsString::from(".");
    name.push(prefix_within(file_name, room));
    name.push(suffix);
    name
}

/// The longest prefix of `name` of at most `max` bytes, cut at a character boundary when the
/// name is UTF-8 (file systems such as APFS require valid UTF-8 names).
fn prefix_within(name: &OsStr, max: usize) -> OsString {
    if let Some(text) = name.to_str() {
        let end = text
            .char_indices()
            .map(|(i, c)| i + c.len_utf8())
            .take_while(|&end| end <= max)
            .last()
            .unwrap_or(0);
        return OsString::from(text.get(..end).unwrap_or(""));
    }
    raw_prefix_within(name, max)
}

/// A name that is not UTF-8 is a byte string on Unix: cut it at `max` bytes.
#[cfg(unix)]
fn raw_prefix_within(name: &OsStr, max: usize) -> OsString {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let bytes = name.as_bytes();
    OsString::from_vec(bytes.get(..max).unwrap_or(bytes).to_vec())
}

/// Elsewhere a name that is not UTF-8 is cut after its lossy conversion.
#[cfg(not(unix))]
fn raw_prefix_within(name: &OsStr, max: usize) -> OsString {
    let text = name.to_string_lossy().into_owned();
    prefix_within(OsStr::new(&text), max)
}

/// The most bytes a checkpoint of these parameters can honestly hold: the 8-byte length
/// prefix, a header of at most [`MAX_HEADER_BYTES`] and the parameters' data.
fn max_checkpoint_len<F: Float>(graph: &Graph<F>, params: &[NodeId]) -> Result<u64> {
    let mut data = 0u64;
    for &p in params {
        let bytes = (graph.value(p)?.len() as u64).saturating_mul(F::BYTES as u64);
        data = data.saturating_add(bytes);
    }
    Ok(data.saturating_add(8).saturating_add(MAX_HEADER_BYTES))
}

/// The bytes of the checkpoint at `path`, read within `limit` and the file's length.
fn read_checkpoint(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let path_buf = path.to_path_buf();
    read_regular(path, limit).map_err(|failure| match failure {
        ReadFailure::Io(source) => NnError::Io {
            path: path_buf,
            source,
        },
        ReadFailure::NotRegular { kind } => NnError::NotAFile {
            path: path_buf,
            kind,
        },
        ReadFailure::TooLong { len, limit } => NnError::FileTooLarge {
            path: path_buf,
            len,
            limit,
        },
        ReadFailure::Allocation { bytes } => NnError::AllocationFailed {
            path: path_buf,
            bytes,
        },
        ReadFailure::Grew { len } => NnError::FileGrew {
            path: path_buf,
            len,
        },
    })
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
    /// can be (the 8-byte prefix, a header of at most 100 MB and the parameters' bytes), and
    /// at most its length is reserved and read.
    ///
    /// # Errors
    /// [`NnError::NotBuilt`] before the model is built (checked first); [`NnError::NotAFile`],
    /// [`NnError::FileTooLarge`], [`NnError::FileGrew`], [`NnError::AllocationFailed`],
    /// [`NnError::Io`], [`NnError::CorruptCheckpoint`], [`NnError::MissingTensor`],
    /// [`NnError::UnexpectedTensor`], [`NnError::TensorShape`], [`NnError::TensorDtype`].
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
        let bytes = read_checkpoint(path, max_checkpoint_len(graph, params)?)?;
        // safetensors checks the header length against the file, and every tensor's offsets
        // against its shape, its dtype and the data present, before anything is read; tensors
        // are then views into `bytes`: nothing is allocated from sizes the file claims.
        let file = SafeTensors::deserialize(&bytes).map_err(|e| NnError::CorruptCheckpoint {
            path: path.to_path_buf(),
            reason: corrupt_reason(&bytes, &e),
        })?;
        let (graph, params) = self.parameter_nodes_mut("load_weights")?;
        // Check everything first, so that a bad file changes nothing.
        let tensors = matching_tensors(path, &file, graph, params)?;
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

/// The tensors of `file` for `params`, in order, once every name, dtype and shape matches and
/// the file holds no tensor the model lacks.
fn matching_tensors<'a, F: Float>(
    path: &Path,
    file: &SafeTensors<'a>,
    graph: &Graph<F>,
    params: &[NodeId],
) -> Result<Vec<TensorView<'a>>> {
    let mut tensors = Vec::with_capacity(params.len());
    for &p in params {
        let name = graph.name(p)?.to_owned();
        let tensor = file.tensor(&name).map_err(|_| NnError::MissingTensor {
            path: path.to_path_buf(),
            name: name.clone(),
        })?;
        if tensor.dtype() != dtype_of::<F>() {
            return Err(NnError::TensorDtype {
                path: path.to_path_buf(),
                name,
                expected: F::NAME,
                actual: format!("{:?}", tensor.dtype()).to_lowercase(),
            });
        }
        let expected = graph.value(p)?.shape().to_vec();
        if tensor.shape() != expected.as_slice() {
            return Err(NnError::TensorShape {
                path: path.to_path_buf(),
                name,
                expected,
                actual: tensor.shape().to_vec(),
            });
        }
        tensors.push(tensor);
    }
    if let Some(name) = file.names().into_iter().find(|&name| {
        !params
            .iter()
            .any(|&p| graph.name(p).ok() == Some(name.as_str()))
    }) {
        return Err(NnError::UnexpectedTensor {
            path: path.to_path_buf(),
            name: name.clone(),
        });
    }
    Ok(tensors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names_stay_within_name_max() {
        for name in ["w".repeat(255), "é".repeat(127), "a".to_owned()] {
            let tmp = temp_name(OsStr::new(&name), u64::MAX);
            let tmp = tmp.to_str().map(str::to_owned).unwrap_or_default();
            assert!(tmp.len() <= NAME_MAX, "{} bytes", tmp.len());
            assert!(tmp.starts_with('.') && tmp.contains(".tmp-"), "{tmp}");
        }
        let short = temp_name(OsStr::new("w.safetensors"), 7);
        assert_eq!(
            short,
            OsString::from(format!(".w.safetensors.tmp-{}-7", std::process::id()))
        );
    }
}
