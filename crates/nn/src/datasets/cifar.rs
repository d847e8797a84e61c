//! CIFAR-10, binary version: [`load_cifar10`] reads `cifar-10-binary.tar.gz` (or its
//! extracted batches) into `(N, 32, 32, 3)` `u8` images and labels; [`cifar10`] and
//! [`cifar10_with`] find or fetch it as [`mnist`](super::mnist()) does.
//!
//! Each batch file is a run of 3073-byte records: one label byte (0-9), then the 1024 red,
//! the 1024 green and the 1024 blue pixels of a 32x32 image, each plane row-major. The
//! images are turned to height x width x channel order, as Keras gives them.

use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use ndarray::{Array1, Array4};

use super::config::FetchConfig;
use super::error::DatasetError;
use super::fetch::fetch;
use super::mnist::Origin;
use super::source::{Source, CIFAR10_ARCHIVE, CIFAR10_DIR_ENV};
use crate::data::limit::{check_bytes, limit, read_failure, try_vec};
use crate::data::DataError;
use crate::file_read::open_regular;

/// Side of a CIFAR-10 image, in pixels.
pub const CIFAR10_SIDE: usize = 32;
/// Bytes of one record: a label and `32 * 32 * 3` pixels.
const RECORD: usize = 1 + CIFAR10_SIDE * CIFAR10_SIDE * 3;
/// Pixels of one colour plane.
const PLANE: usize = CIFAR10_SIDE * CIFAR10_SIDE;

/// The class names of CIFAR-10, by label.
pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// The batch files: five of training data, then the test batch.
const MEMBERS: [&str; 6] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
    "test_batch.bin",
];

/// Images and labels of one CIFAR-10 split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CifarSplit {
    /// `(N, 32, 32, 3)`: image, row, column, channel (red, green, blue).
    pub images: Array4<u8>,
    /// `N` labels, each below 10 (see [`CIFAR10_CLASSES`]).
    pub labels: Array1<u8>,
}

/// CIFAR-10: 50 000 training and 10 000 test images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cifar10 {
    /// The five training batches, in order.
    pub train: CifarSplit,
    /// The test batch.
    pub test: CifarSplit,
}

/// CIFAR-10, like `keras.datasets.cifar10.load_data()`: from the directory named by
/// `DENDRITE_CIFAR10_DIR` ([`CIFAR10_DIR_ENV`]) if set, else from the cache, else downloaded
/// from [`Source::cifar10`] (170 MB) and checked against its SHA-256.
///
/// # Errors
///
/// As [`cifar10_with`].
///
/// # Example
///
/// ```no_run
/// let cifar = dendrite_nn::datasets::cifar10()?;
/// assert_eq!(cifar.train.images.shape(), &[50_000, 32, 32, 3]);
/// # Ok::<(), dendrite_nn::datasets::DatasetError>(())
/// ```
pub fn cifar10() -> Result<Cifar10, DatasetError> {
    let dir = std::env::var_os(CIFAR10_DIR_ENV).filter(|v| !v.is_empty());
    let config = FetchConfig::from_env().local_dir(dir.map(PathBuf::from));
    Ok(cifar10_with(&Source::cifar10(), &config)?.0)
}

/// CIFAR-10 from `source` as `config` says, and where it came from: `config.local_dir`
/// alone if set (read with [`load_cifar10`]), else the cache, else the mirrors (see
/// [`fetch`]). `source` must hold one file, the archive.
///
/// # Errors
///
/// An error of [`fetch`], or of [`load_cifar10`] for the local directory or the archive.
pub fn cifar10_with(
    source: &Source,
    config: &FetchConfig,
) -> Result<(Cifar10, Origin), DatasetError> {
    if let Some(dir) = &config.local_dir {
        return Ok((load_cifar10(dir)?, Origin::LocalDir(dir.clone())));
    }
    let found = fetch(source, config)?;
    let archive = source.files.first().map(|f| f.name.as_str());
    let data = load_cifar10(&found.dir().join(archive.unwrap_or(CIFAR10_ARCHIVE)))?;
    Ok((data, found.into()))
}

/// Reads CIFAR-10 from `path`: the binary archive [`CIFAR10_ARCHIVE`] itself, a directory
/// holding it, or a directory holding the extracted batch files (`data_batch_1.bin` to
/// `data_batch_5.bin` and `test_batch.bin`, as in the archive's `cifar-10-batches-bin`).
///
/// Any whole number of records per batch is accepted (the real batches hold 10 000 each);
/// every label is checked, and what is allocated is held to the per-tensor limit
/// ([`dendrite_graph::limits`]).
///
/// # Errors
///
/// [`DatasetError::MissingMember`], [`DatasetError::DuplicateMember`],
/// [`DatasetError::BadMember`], [`DatasetError::BadLabel`], [`DatasetError::Archive`] for a
/// corrupt archive, and [`DatasetError::Data`] for a path that cannot be read (see
/// [`DataError`]).
///
/// # Example
///
/// ```no_run
/// use dendrite_nn::datasets::{load_cifar10, CIFAR10_CLASSES};
///
/// let cifar = load_cifar10("downloads/cifar-10-binary.tar.gz".as_ref())?;
/// let first = cifar.test.labels[0] as usize;
/// println!("the first test image is a {}", CIFAR10_CLASSES[first]);
/// # Ok::<(), dendrite_nn::datasets::DatasetError>(())
/// ```
pub fn load_cifar10(path: &Path) -> Result<Cifar10, DatasetError> {
    let batches = if path.is_dir() {
        let archive = path.join(CIFAR10_ARCHIVE);
        if archive.exists() {
            read_archive(&archive)?
        } else {
            read_batch_files(path)?
        }
    } else {
        read_archive(path)?
    };
    let [b1, b2, b3, b4, b5, test] = batches;
    Ok(Cifar10 {
        train: split(path, &[b1, b2, b3, b4, b5])?,
        test: split(path, &[test])?,
    })
}

/// One batch file's name and bytes.
type Batch = (&'static str, Vec<u8>);

/// The largest archive or batch file read: the per-tensor limit, plus room for the rest of
/// the archive (its other members and tar headers).
fn max_file_len() -> u64 {
    limit().saturating_add(64 << 20)
}

fn data_error(path: &Path, failure: crate::file_read::ReadFailure) -> DatasetError {
    DatasetError::Data(read_failure(path, failure))
}

/// Checks a batch's length, from its tar header or its metadata, before reading it.
fn check_member(path: &Path, member: &str, len: u64) -> Result<usize, DatasetError> {
    let limit = limit();
    let whole = len > 0 && len.is_multiple_of(RECORD as u64) && len <= limit;
    match usize::try_from(len) {
        Ok(n) if whole => Ok(n),
        _ => Err(DatasetError::BadMember {
            path: path.to_path_buf(),
            member: member.to_owned(),
            len,
            limit,
        }),
    }
}

/// Reads exactly `len` bytes of `r` into a fallibly reserved buffer.
fn read_exact_vec(path: &Path, r: &mut impl Read, len: usize) -> Result<Vec<u8>, DatasetError> {
    let mut bytes = try_vec(path, "a CIFAR-10 batch", len)?;
    let archive_error = |source| DatasetError::Archive {
        path: path.to_path_buf(),
        source,
    };
    r.take(len as u64)
        .read_to_end(&mut bytes)
        .map_err(archive_error)?;
    if bytes.len() != len {
        return Err(archive_error(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("a batch ends after {} of {len} bytes", bytes.len()),
        )));
    }
    Ok(bytes)
}

/// The six batches of a gzip-compressed tar archive, found by file name wherever they are
/// in it; other members are skipped.
fn read_archive(path: &Path) -> Result<[Batch; 6], DatasetError> {
    let (file, len) = open_regular(path, max_file_len()).map_err(|f| data_error(path, f))?;
    let archive_error = |source| DatasetError::Archive {
        path: path.to_path_buf(),
        source,
    };
    let mut archive = tar::Archive::new(MultiGzDecoder::new(file.take(len)));
    let mut found: [Option<Vec<u8>>; 6] = Default::default();
    for entry in archive.entries().map_err(archive_error)? {
        let mut entry = entry.map_err(archive_error)?;
        let name = entry.path().map_err(archive_error)?;
        let name = name.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let Some(slot) = MEMBERS.iter().position(|m| *m == name) else {
            continue;
        };
        let member = MEMBERS.get(slot).copied().unwrap_or("");
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let len = check_member(path, member, entry.size())?;
        let bytes = read_exact_vec(path, &mut entry, len)?;
        if let Some(place) = found.get_mut(slot)
            && place.replace(bytes).is_some()
        {
            return Err(DatasetError::DuplicateMember {
                path: path.to_path_buf(),
                member: member.to_owned(),
            });
        }
    }
    complete(path, found)
}

/// The six batch files of a directory.
fn read_batch_files(dir: &Path) -> Result<[Batch; 6], DatasetError> {
    let mut found: [Option<Vec<u8>>; 6] = Default::default();
    for (member, place) in MEMBERS.iter().zip(found.iter_mut()) {
        let path = dir.join(member);
        if !path.exists() {
            continue;
        }
        let (file, len) = open_regular(&path, max_file_len()).map_err(|f| data_error(&path, f))?;
        let len = check_member(dir, member, len)?;
        *place = Some(read_exact_vec(&path, &mut &file, len)?);
    }
    complete(dir, found)
}

/// The batches, if none is missing.
fn complete(path: &Path, found: [Option<Vec<u8>>; 6]) -> Result<[Batch; 6], DatasetError> {
    let mut batches: [Batch; 6] = Default::default();
    for ((member, bytes), batch) in MEMBERS.iter().zip(found).zip(batches.iter_mut()) {
        let bytes = bytes.ok_or_else(|| DatasetError::MissingMember {
            path: path.to_path_buf(),
            member: (*member).to_owned(),
        })?;
        *batch = (member, bytes);
    }
    Ok(batches)
}

/// The records of `batches`, in order, as one split: labels checked, pixels turned from
/// planes (channel, row, column) to (row, column, channel).
fn split(path: &Path, batches: &[Batch]) -> Result<CifarSplit, DatasetError> {
    let count: usize = batches.iter().map(|(_, bytes)| bytes.len() / RECORD).sum();
    let pixels = (count as u64).checked_mul((RECORD - 1) as u64);
    let n_pixels = check_bytes(path, "the CIFAR-10 images", pixels)?;
    let mut images = try_vec(path, "the CIFAR-10 images", n_pixels)?;
    let mut labels = try_vec(path, "the CIFAR-10 labels", count)?;
    for (member, bytes) in batches {
        for (index, record) in bytes.chunks_exact(RECORD).enumerate() {
            let (&label, planes) = record.split_first().unwrap_or((&0, &[]));
            if usize::from(label) >= CIFAR10_CLASSES.len() {
                return Err(DatasetError::BadLabel {
                    path: path.to_path_buf(),
                    member: (*member).to_owned(),
                    index,
                    value: label,
                });
            }
            labels.push(label);
            let plane = |c: usize| planes.get(c * PLANE..(c + 1) * PLANE).unwrap_or(&[]);
            let (red, green, blue) = (plane(0), plane(1), plane(2));
            for ((&r, &g), &b) in red.iter().zip(green).zip(blue) {
                images.extend_from_slice(&[r, g, b]);
            }
        }
    }
    let side = CIFAR10_SIDE;
    let images = Array4::from_shape_vec((count, side, side, 3), images).map_err(|_| {
        DatasetError::Data(DataError::BadShape {
            pixels: n_pixels,
            rows: side,
            cols: side * 3,
            classes: CIFAR10_CLASSES.len(),
        })
    })?;
    Ok(CifarSplit {
        images,
        labels: Array1::from_vec(labels),
    })
}
