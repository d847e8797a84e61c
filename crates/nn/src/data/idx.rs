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
//! cannot inflate to more than [`MAX_GZIP_RATIO`](super::MAX_GZIP_RATIO) times its length, so a header claiming more
//! is refused before decompressing a byte. Gzip input is recognised by its magic bytes
//! `1f 8b` (not by the file name) and is decompressed with a read limit of the claimed size
//! plus one byte, which tells "exact", "truncated" and "inflates past the claim" apart without
//! ever inflating more.

use std::io::{self, Read};
use std::path::Path;

use super::dataset::check_labels;
use super::error::{DataError, IdxPart, IN_MEMORY};
use super::inflate::decode_gzip;
use super::limit::{check_bytes, open_idx_file, try_vec};
use super::MNIST_CLASSES;
use crate::file_read::{has_more, read_up_to};

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

/// Decodes an IDX file (raw or gzip) of `len` bytes, read from `r`, into its header and
/// payload.
fn decode(
    path: &Path,
    r: &mut impl Read,
    len: u64,
    kind: Kind,
) -> Result<(Header, Vec<u8>), DataError> {
    let mut buf = [0u8; 16];
    let head = buf.get_mut(..kind.header_len()).unwrap_or(&mut []);
    let n = read_up_to(r, head).map_err(|source| io_error(path, source))?;
    let head = head.get(..n).unwrap_or(&[]);
    if head.starts_with(&GZIP_MAGIC) {
        decode_gzip(path, &mut head.chain(r), len, kind)
    } else {
        decode_raw(path, head, r, len, kind)
    }
}

fn io_error(path: &Path, source: io::Error) -> DataError {
    DataError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A raw file: its length must be exactly what the header claims (checked before anything is
/// read past the header, and before the limit, so that a short file says how short), and the
/// payload must fit the per-tensor limit. Only the payload is allocated.
fn decode_raw(
    path: &Path,
    head: &[u8],
    r: &mut impl Read,
    len: u64,
    kind: Kind,
) -> Result<(Header, Vec<u8>), DataError> {
    let header = parse_header(path, head, kind)?;
    let present = len.saturating_sub(kind.header_len() as u64);
    check_payload_len(path, kind, &header, present)?;
    let n = check_bytes(path, "the IDX payload", Some(header.payload))?;
    let mut payload = try_vec(path, "the IDX payload", n)?;
    r.take(header.payload)
        .read_to_end(&mut payload)
        .map_err(|source| io_error(path, source))?;
    // Still exact, unless the file shrank while being read.
    check_payload_len(path, kind, &header, payload.len() as u64)?;
    Ok((header, payload))
}

/// Decodes the IDX file at `path`, reading at most its length, and refuses a file that holds
/// more than that ([`DataError::FileGrew`]).
fn decode_file(path: &Path, kind: Kind) -> Result<(Header, Vec<u8>), DataError> {
    let (file, len) = open_idx_file(path)?;
    let mut r = (&file).take(len);
    let result = decode(path, &mut r, len, kind);
    // All `len` bytes were consumed: one more means the metadata understated the file.
    if r.limit() == 0 && has_more(&mut &file).map_err(|source| io_error(path, source))? {
        return Err(DataError::FileGrew {
            path: path.to_path_buf(),
            len,
        });
    }
    result
}

/// Decodes IDX bytes held in memory.
fn decode_bytes(bytes: &[u8], kind: Kind) -> Result<(Header, Vec<u8>), DataError> {
    let mut r = bytes;
    decode(Path::new(IN_MEMORY), &mut r, bytes.len() as u64, kind)
}

fn to_usize(v: u32) -> usize {
    // u32 fits in usize on every platform Rust supports with std (16-bit targets have no std).
    usize::try_from(v).unwrap_or(usize::MAX)
}

fn images_from(decoded: (Header, Vec<u8>)) -> IdxImages {
    let (header, pixels) = decoded;
    IdxImages {
        count: to_usize(header.count),
        rows: to_usize(header.rows),
        cols: to_usize(header.cols),
        pixels,
    }
}

fn labels_from(path: &Path, decoded: (Header, Vec<u8>)) -> Result<Vec<u8>, DataError> {
    let (_, labels) = decoded;
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
/// [`MAX_GZIP_RATIO`](super::MAX_GZIP_RATIO) times the compressed length, [`DataError::GzipTrailing`] if the stream
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
    Ok(images_from(decode_bytes(bytes, Kind::Images)?))
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
    labels_from(Path::new(IN_MEMORY), decode_bytes(bytes, Kind::Labels)?)
}

/// Reads an IDX image file, raw or gzip-compressed (detected by content, not by name).
///
/// # Errors
///
/// [`DataError::NotAFile`] unless `path` is a regular file (`/dev/zero`, a FIFO or a
/// directory is refused without reading it), [`DataError::FileTooLarge`] for a file longer
/// than any IDX file within the per-tensor limit, [`DataError::FileGrew`] for one holding more
/// than its length, [`DataError::Io`] if it cannot be read; otherwise as
/// [`parse_idx_images`], with the file's path in the error. At most the file's length is read,
/// and only the payload is allocated: a raw file's length is checked against its header before
/// the payload is read, and a gzip file is decompressed as it is read.
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
    Ok(images_from(decode_file(path, Kind::Images)?))
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
    labels_from(path, decode_file(path, Kind::Labels)?)
}
