//! Readers for the IDX format of MNIST, raw or gzip-compressed.
//!
//! An IDX file is a big-endian header, `00 00 08 NDIM` (magic; `08` means `u8` items) followed
//! by `NDIM` 32-bit sizes, then the items. Images are `0x00000803` (count, rows, cols), labels
//! `0x00000801` (count).
//!
//! Every size is checked against what the file actually holds *before* anything is allocated
//! from it: a 20-byte file whose header claims 10^9 images fails at once, without reserving
//! 784 GB. Gzip input is recognised by its magic bytes `1f 8b` (not by the file name) and is
//! decompressed with a read limit of the size the header claims plus one byte, which is enough
//! to tell "exact", "truncated" and "trailing bytes" apart.

use std::borrow::Cow;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use super::dataset::check_labels;
use super::error::{DataError, IdxPart, IN_MEMORY};
use super::MNIST_CLASSES;

/// Magic number of an IDX file of `u8` images: three dimensions (count, rows, cols).
pub const IDX_IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of `u8` labels: one dimension (count).
pub const IDX_LABELS_MAGIC: u32 = 0x0000_0801;

/// The two bytes every gzip stream starts with.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// Deflate cannot expand data by more than about 1032:1, so a compressed input of `n` bytes
/// decompresses to at most this many times `n` (plus the small header allowance below).
const DEFLATE_MAX_RATIO: u64 = 1032;
/// The most we reserve up front for a decompressed payload, whatever the headers say. Larger
/// payloads are still read; the vector simply grows as data actually arrives.
const MAX_PREALLOC: u64 = 64 << 20;

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
enum Kind {
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
    fn header_len(self) -> usize {
        match self {
            Kind::Images => 16,
            Kind::Labels => 8,
        }
    }
}

/// A validated header: the dimension sizes and the payload length they imply.
#[derive(Debug, Clone, Copy)]
struct Header {
    count: u32,
    rows: u32,
    cols: u32,
    /// `count * rows * cols` (labels: `count`), saturating at `u64::MAX`.
    payload: u64,
}

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    if let Some(src) = bytes.get(at..at + 4) {
        word.copy_from_slice(src);
    }
    u32::from_be_bytes(word)
}

/// Parses and checks a header from the first bytes of the (decompressed) data; `head` may be
/// shorter than a header, which is then reported as truncated.
fn parse_header(path: &Path, head: &[u8], kind: Kind) -> Result<Header, DataError> {
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
        .saturating_mul(u64::from(rows))
        .saturating_mul(u64::from(cols));
    Ok(Header {
        count,
        rows,
        cols,
        payload,
    })
}

/// Compares the payload length present with the one the header claims.
fn check_payload_len(
    path: &Path,
    kind: Kind,
    header: &Header,
    actual: u64,
) -> Result<(), DataError> {
    let head = kind.header_len() as u64;
    let expected = head.saturating_add(header.payload);
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

fn decode_raw(
    path: &Path,
    bytes: Cow<'_, [u8]>,
    kind: Kind,
) -> Result<(Header, Vec<u8>), DataError> {
    let header = parse_header(path, &bytes, kind)?;
    let header_len = kind.header_len();
    let present = bytes.len().saturating_sub(header_len) as u64;
    check_payload_len(path, kind, &header, present)?;
    let payload = match bytes {
        // Reuse the file's buffer: shift the payload to the front instead of copying it.
        Cow::Owned(mut v) => {
            v.drain(..header_len);
            v
        }
        Cow::Borrowed(b) => b.get(header_len..).unwrap_or(&[]).to_vec(),
    };
    Ok((header, payload))
}

fn gzip_error(path: &Path, source: io::Error) -> DataError {
    let path = path.to_path_buf();
    if source.kind() == io::ErrorKind::UnexpectedEof {
        DataError::GzipTruncated { path, source }
    } else {
        DataError::GzipCorrupt { path, source }
    }
}

/// Reads until `buf` is full or the stream ends; returns the number of bytes read.
fn read_up_to(path: &Path, r: &mut impl Read, buf: &mut [u8]) -> Result<usize, DataError> {
    let mut filled = 0;
    while let Some(rest) = buf.get_mut(filled..) {
        if rest.is_empty() {
            break;
        }
        match r.read(rest) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(gzip_error(path, e)),
        }
    }
    Ok(filled)
}

/// The uncompressed size recorded in the last four bytes of a gzip stream (modulo 2^32). Only
/// a hint: it is checked against nothing, and used only to size the first allocation.
fn gzip_size_hint(gz: &[u8]) -> u64 {
    let n = gz.len();
    let mut word = [0u8; 4];
    if let Some(src) = gz.get(n.saturating_sub(4)..) {
        if src.len() == 4 {
            word.copy_from_slice(src);
        }
    }
    u64::from(u32::from_le_bytes(word))
}

fn decode_gzip(path: &Path, gz: &[u8], kind: Kind) -> Result<(Header, Vec<u8>), DataError> {
    let mut dec = MultiGzDecoder::new(gz);
    let header_len = kind.header_len();
    let mut head = [0u8; 16];
    let head = head.get_mut(..header_len).unwrap_or(&mut []);
    // Magic first, so that a file of the wrong kind reports its magic, not a short header.
    let got = read_up_to(path, &mut dec, head.get_mut(..4).unwrap_or(&mut []))?;
    let got = if got == 4 {
        4 + read_up_to(path, &mut dec, head.get_mut(4..).unwrap_or(&mut []))?
    } else {
        got
    };
    let header = parse_header(path, head.get(..got).unwrap_or(&[]), kind)?;

    // Never reserve more than the data can actually hold: bounded by the header's claim, the
    // gzip size field, the deflate expansion limit and a fixed cap. Past that the vector grows
    // only as decompressed bytes really arrive.
    let reserve = header
        .payload
        .min(gzip_size_hint(gz).saturating_sub(header_len as u64))
        .min((gz.len() as u64).saturating_mul(DEFLATE_MAX_RATIO))
        .min(MAX_PREALLOC);
    let mut payload = Vec::with_capacity(usize::try_from(reserve).unwrap_or(0));
    // One byte past the claim tells trailing data apart from an exact fit.
    let limit = header.payload.saturating_add(1);
    (&mut dec)
        .take(limit)
        .read_to_end(&mut payload)
        .map_err(|e| gzip_error(path, e))?;
    let mut present = payload.len() as u64;
    if present > header.payload {
        // Count the rest without keeping it.
        let rest = io::copy(&mut dec, &mut io::sink()).map_err(|e| gzip_error(path, e))?;
        present = present.saturating_add(rest);
    }
    check_payload_len(path, kind, &header, present)?;
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

fn read_file(path: &Path) -> Result<Vec<u8>, DataError> {
    std::fs::read(path).map_err(|source| DataError::Io {
        path: PathBuf::from(path),
        source,
    })
}

/// Parses an IDX image file held in memory, raw or gzip-compressed (detected by the gzip
/// magic bytes `1f 8b`).
///
/// # Errors
///
/// [`DataError::BadMagic`] unless the magic is `0x00000803`; [`DataError::BadDimensions`] for
/// zero rows or columns; [`DataError::Truncated`] / [`DataError::TrailingBytes`] unless the
/// payload is exactly `count * rows * cols` bytes; [`DataError::GzipTruncated`] /
/// [`DataError::GzipCorrupt`] for a bad gzip stream. Errors name the path [`IN_MEMORY`].
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
/// [`DataError::Io`] if the file cannot be read, otherwise as [`parse_idx_images`], with the
/// file's path in the error.
///
/// # Example
///
/// ```no_run
/// use dendrite_nn::data::read_idx_images;
/// use std::path::Path;
///
/// let images = read_idx_images(Path::new("mnist/t10k-images-idx3-ubyte.gz"))?;
/// assert_eq!(images.pixels.len(), images.count * 784);
/// # Ok::<(), dendrite_nn::data::DataError>(())
/// ```
pub fn read_idx_images(path: &Path) -> Result<IdxImages, DataError> {
    images_from(path, Cow::Owned(read_file(path)?))
}

/// Reads an IDX label file, raw or gzip-compressed, and checks that every label is `< 10`.
///
/// # Errors
///
/// [`DataError::Io`] if the file cannot be read, otherwise as [`parse_idx_labels`], with the
/// file's path in the error.
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
    labels_from(path, Cow::Owned(read_file(path)?))
}
