//! Readers for the IDX format of MNIST, raw or gzip-compressed.
//!
//! An IDX file is a big-endian header, `00 00 08 NDIM` (magic; `08` means `u8` items) followed
//! by `NDIM` 32-bit sizes, then the items. Images are `0x00000803` (count, rows, cols), labels
//! `0x00000801` (count).
//!
//! Files are read within what they can hold. Only regular files are read, and at most their
//! length (`/dev/zero` is refused, not read). The size a header claims is computed with checked
//! arithmetic and held to the per-tensor limit ([`dendrite_graph::limits`]) and to what the
//! data can honestly hold *before* anything is allocated from it: a raw file must be exactly
//! header plus payload long, so a 20-byte file claiming 10^9 images fails at once; a gzip file
//! cannot inflate to more than [`MAX_GZIP_RATIO`] times its length, so a header claiming more
//! is refused before decompressing a byte. Gzip input is recognised by its magic bytes
//! `1f 8b` (not by the file name) and is decompressed with a read limit of the claimed size
//! plus one byte, which tells "exact", "truncated" and "inflates past the claim" apart without
//! ever inflating more.

use std::borrow::Cow;
use std::path::Path;

use super::dataset::check_labels;
use super::error::{DataError, IdxPart, IN_MEMORY};
use super::inflate::decode_gzip;
use super::limit::{check_bytes, read_idx_file, try_vec};
use super::MNIST_CLASSES;

/// Magic number of an IDX file of `u8` images: three dimensions (count, rows, cols).
pub const IDX_IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of `u8` labels: one dimension (count).
pub const IDX_LABELS_MAGIC: u32 = 0x0000_0801;

/// The two bytes every gzip stream starts with.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The images of one IDX image file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxImages {
    /// Number of images.
    pub count: usize,
    /// Rows per image.
    pub rows: usize,
    /// Columns per image.
    pub cols: usize,
    /// `count * rows * cols` pixels, row-major, image after image.
    pub pixels: Vec<u8>,
}

/// What kind of IDX file is expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Images,
    Labels,
}

impl Kind {
    fn magic(self) -> u32 {
        match self {
            Kind::Images => IDX_IMAGES_MAGIC,
            Kind::Labels => IDX_LABELS_MAGIC,
        }
    }

    /// Bytes of header: magic plus one `u32` per dimension.
    pub(crate) fn header_len(self) -> usize {
        match self {
            Kind::Images => 16,
            Kind::Labels => 8,
        }
    }
}

/// A validated header: the dimension sizes and the payload length they imply.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Header {
    count: u32,
    rows: u32,
    cols: u32,
    /// `count * rows * cols` (labels: `count`), computed without overflow.
    pub(crate) payload: u64,
}

impl Header {
    /// Header plus payload bytes: the whole (decompressed) file the header describes.
    pub(crate) fn total(&self, kind: Kind) -> u64 {
        (kind.header_len() as u64).saturating_add(self.payload)
    }
}

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    if let Some(src) = bytes.get(at..at + 4) {
        word.copy_from_slice(src);
    }
    u32::from_be_bytes(word)
}

/// Parses and checks a header from the first bytes of the (decompressed) data; `head` may be
/// shorter than a header, which is then reported as truncated. A payload whose size overflows
/// `u64` is [`DataError::TooLarge`].
pub(crate) fn parse_header(path: &Path, head: &[u8], kind: Kind) -> Result<Header, DataError> {
    let header_len = kind.header_len();
    let truncated = || DataError::Truncated {
        path: path.to_path_buf(),
        part: IdxPart::Header,
        expected: header_len as u64,
        actual: head.len() as u64,
    };
    if head.len() < 4 {
        return Err(truncated());
    }
    let found = be_u32(head, 0);
    if found != kind.magic() {
        return Err(DataError::BadMagic {
            path: path.to_path_buf(),
            expected: kind.magic(),
            found,
        });
    }
    if head.len() < header_len {
        return Err(truncated());
    }
    let count = be_u32(head, 4);
    let (rows, cols) = match kind {
        Kind::Images => (be_u32(head, 8), be_u32(head, 12)),
        Kind::Labels => (1, 1),
    };
    if rows == 0 || cols == 0 {
        return Err(DataError::BadDimensions {
            path: path.to_path_buf(),
            rows,
            cols,
        });
    }
    let payload = u64::from(count)
        .checked_mul(u64::from(rows))
        .and_then(|n| n.checked_mul(u64::from(cols)))
        .ok_or_else(|| DataError::TooLarge {
            path: path.to_path_buf(),
            what: "the IDX payload",
            bytes: None,
            limit: super::limit::limit(),
        })?;
    Ok(Header {
        count,
        rows,
        cols,
        payload,
    })
}

/// Compares the payload length present with the one the header claims.
pub(crate) fn check_payload_len(
    path: &Path,
    kind: Kind,
    header: &Header,
    actual: u64,
) -> Result<(), DataError> {
    let head = kind.header_len() as u64;
    let expected = header.total(kind);
    let actual = head.saturating_add(actual);
    if actual < expected {
        Err(DataError::Truncated {
            path: path.to_path_buf(),
            part: IdxPart::Payload,
            expected,
            actual,
        })
    } else if actual > expected {
        Err(DataError::TrailingBytes {
            path: path.to_path_buf(),
            expected,
            extra: actual - expected,
        })
    } else {
        Ok(())
    }
}

/// Decodes an IDX file (raw or gzip) into its header and payload.
fn decode(path: &Path, bytes: Cow<'_, [u8]>, kind: Kind) -> Result<(Header, Vec<u8>), DataError> {
    if bytes.starts_with(&GZIP_MAGIC) {
        decode_gzip(path, &bytes, kind)
    } else {
        decode_raw(path, bytes, kind)
    }
}

/// A raw file: the length must be exactly what the header claims (checked before the limit,
/// so that a short file says how short), and the payload must fit the per-tensor limit.
fn decode_raw(
    path: &Path,
    bytes: Cow<'_, [u8]>,
    kind: Kind,
) -> Result<(Header, Vec<u8>), DataError> {
    let header = parse_header(path, &bytes, kind)?;
    let header_len = kind.header_len();
    let present = bytes.len().saturating_sub(header_len) as u64;
    check_payload_len(path, kind, &header, present)?;
    let len = check_bytes(path, "the IDX payload", Some(header.payload))?;
    let payload = match bytes {
        // Reuse the file's buffer: shift the payload to the front instead of copying it.
        Cow::Owned(mut v) => {
            v.drain(..header_len);
            v
        }
        Cow::Borrowed(b) => {
            let mut v = try_vec(path, "the IDX payload", len)?;
            v.extend_from_slice(b.get(header_len..).unwrap_or(&[]));
            v
        }
    };
    Ok((header, payload))
}

fn to_usize(v: u32) -> usize {
    // u32 fits in usize on every platform Rust supports with std (16-bit targets have no std).
    usize::try_from(v).unwrap_or(usize::MAX)
}

fn images_from(path: &Path, bytes: Cow<'_, [u8]>) -> Result<IdxImages, DataError> {
    let (header, pixels) = decode(path, bytes, Kind::Images)?;
    Ok(IdxImages {
        count: to_usize(header.count),
        rows: to_usize(header.rows),
        cols: to_usize(header.cols),
        pixels,
    })
}

fn labels_from(path: &Path, bytes: Cow<'_, [u8]>) -> Result<Vec<u8>, DataError> {
    let (_, labels) = decode(path, bytes, Kind::Labels)?;
    check_labels(&labels, MNIST_CLASSES, path)?;
    Ok(labels)
}

/// Parses an IDX image file held in memory, raw or gzip-compressed (detected by the gzip
/// magic bytes `1f 8b`).
///
/// # Errors
///
/// [`DataError::BadMagic`] unless the magic is `0x00000803`; [`DataError::BadDimensions`] for
/// zero rows or columns; [`DataError::Truncated`] / [`DataError::TrailingBytes`] unless the
/// payload is exactly `count * rows * cols` bytes; [`DataError::TooLarge`] if that size
/// overflows or exceeds the per-tensor limit ([`dendrite_graph::limits::max_tensor_bytes`]).
/// For gzip input: [`DataError::ImplausibleClaim`] if the header claims more than
/// [`MAX_GZIP_RATIO`] times the compressed length, [`DataError::GzipTrailing`] if the stream
/// inflates past the claim (decompression stops there), [`DataError::GzipTruncated`] /
/// [`DataError::GzipCorrupt`] for a bad stream. Errors name the path [`IN_MEMORY`].
///
/// # Example
///
/// ```
/// use dendrite_nn::data::parse_idx_images;
///
/// // Two 1x3 images.
/// let bytes = [0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6];
/// let images = parse_idx_images(&bytes)?;
/// assert_eq!((images.count, images.rows, images.cols), (2, 1, 3));
/// assert_eq!(images.pixels, [1, 2, 3, 4, 5, 6]);
/// # Ok::<(), dendrite_nn::data::DataError>(())
/// ```
pub fn parse_idx_images(bytes: &[u8]) -> Result<IdxImages, DataError> {
    images_from(Path::new(IN_MEMORY), Cow::Borrowed(bytes))
}

/// Parses an IDX label file held in memory, raw or gzip-compressed, and checks that every
/// label is a digit (`< 10`).
///
/// # Errors
///
/// As [`parse_idx_images`] (magic `0x00000801`), plus [`DataError::LabelOutOfRange`] naming the
/// first label `>= 10` and its position.
///
/// # Example
///
/// ```
/// use dendrite_nn::data::parse_idx_labels;
///
/// let labels = parse_idx_labels(&[0, 0, 8, 1, 0, 0, 0, 3, 5, 0, 9])?;
/// assert_eq!(labels, [5, 0, 9]);
/// # Ok::<(), dendrite_nn::data::DataError>(())
/// ```
pub fn parse_idx_labels(bytes: &[u8]) -> Result<Vec<u8>, DataError> {
    labels_from(Path::new(IN_MEMORY), Cow::Borrowed(bytes))
}

/// Reads an IDX image file, raw or gzip-compressed (detected by content, not by name).
///
/// # Errors
///
/// [`DataError::NotAFile`] unless `path` is a regular file (`/dev/zero`, a FIFO or a
/// directory is refused without reading it), [`DataError::FileTooLarge`] for a file longer
/// than any IDX file within the per-tensor limit, [`DataError::FileGrew`] for one holding more
/// than its length, [`DataError::Io`] if it cannot be read; otherwise as
/// [`parse_idx_images`], with the file's path in the error. At most the file's length is read
/// and reserved.
///
/// # Example
///
/// ```no_run
/// use dendrite_nn::data::{read_idx_images, DataError};
/// use std::path::Path;
///
/// let images = read_idx_images(Path::new("mnist/t10k-images-idx3-ubyte.gz"))?;
/// assert_eq!(images.pixels.len(), images.count * 784);
/// // A device is refused, not read until memory runs out.
/// let err = read_idx_images(Path::new("/dev/zero"));
/// assert!(matches!(err, Err(DataError::NotAFile { .. })));
/// # Ok::<(), DataError>(())
/// ```
pub fn read_idx_images(path: &Path) -> Result<IdxImages, DataError> {
    images_from(path, Cow::Owned(read_idx_file(path)?))
}

/// Reads an IDX label file, raw or gzip-compressed, and checks that every label is `< 10`.
///
/// # Errors
///
/// As [`read_idx_images`], then as [`parse_idx_labels`], with the file's path in the error.
///
/// # Example
///
/// ```no_run
/// use dendrite_nn::data::read_idx_labels;
/// use std::path::Path;
///
/// let labels = read_idx_labels(Path::new("mnist/t10k-labels-idx1-ubyte.gz"))?;
/// assert!(labels.iter().all(|&l| l < 10));
/// # Ok::<(), dendrite_nn::data::DataError>(())
/// ```
pub fn read_idx_labels(path: &Path) -> Result<Vec<u8>, DataError> {
    labels_from(path, Cow::Owned(read_idx_file(path)?))
}
