//! Decompressing a gzip-compressed IDX file within what its header can honestly claim.
//!
//! Before a byte is inflated, the header's claim is checked against the most the compressed
//! bytes can expand to ([`MAX_GZIP_RATIO`]) and against the per-tensor limit; inflation then
//! stops one byte past the claim (`Read::take`), so a stream that holds more is refused having
//! produced at most the claim plus one byte, and the buffer grows only as bytes arrive.

use std::io::{self, Read};
use std::path::Path;

use flate2::read::MultiGzDecoder;

use super::error::DataError;
use super::idx::{check_payload_len, parse_header, Header, Kind};
use super::limit::{check_bytes, try_vec};
use crate::file_read;

/// The largest expansion accepted from gzip data: decompressed bytes per compressed byte.
///
/// Deflate cannot do better than about 1032:1 (a maximal match of 258 bytes coded in under 2
/// bits); gzip's header and trailer only lower the ratio. An IDX header claiming more than
/// `MAX_GZIP_RATIO` times the compressed length therefore lies, and is refused
/// ([`DataError::ImplausibleClaim`]) before anything is decompressed.
///
/// ```
/// use dendrite_nn::data::{parse_idx_labels, DataError, MAX_GZIP_RATIO};
/// use std::io::Write;
///
/// // 4e9 labels claimed, one present, in a gzip stream of a few dozen bytes.
/// let mut raw = vec![0, 0, 8, 1];
/// raw.extend_from_slice(&4_000_000_000u32.to_be_bytes());
/// raw.push(7);
/// let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
/// gz.write_all(&raw).map_err(|e| DataError::Io { path: "raw".into(), source: e })?;
/// let gz = gz.finish().map_err(|e| DataError::Io { path: "gz".into(), source: e })?;
/// let err = parse_idx_labels(&gz).err();
/// assert!(matches!(err, Some(DataError::ImplausibleClaim { ratio: MAX_GZIP_RATIO, .. })));
/// # Ok::<(), DataError>(())
/// ```
pub const MAX_GZIP_RATIO: u64 = 1032;

/// The most reserved up front for a decompressed payload; past it the buffer grows only as
/// decompressed bytes really arrive.
const MAX_PREALLOC: u64 = 64 << 20;

pub(crate) fn gzip_error(path: &Path, source: io::Error) -> DataError {
    let path = path.to_path_buf();
    if source.kind() == io::ErrorKind::UnexpectedEof {
        DataError::GzipTruncated { path, source }
    } else {
        DataError::GzipCorrupt { path, source }
    }
}

/// Reads until `buf` is full or the stream ends, as a gzip error naming `path`.
fn read_up_to(path: &Path, r: &mut impl Read, buf: &mut [u8]) -> Result<usize, DataError> {
    file_read::read_up_to(r, buf).map_err(|e| gzip_error(path, e))
}

/// Reads and parses the header from the start of the decompressed stream.
fn read_header(path: &Path, dec: &mut impl Read, kind: Kind) -> Result<Header, DataError> {
    let header_len = kind.header_len();
    let mut head = [0u8; 16];
    let head = head.get_mut(..header_len).unwrap_or(&mut []);
    // Magic first, so that a file of the wrong kind reports its magic, not a short header.
    let got = read_up_to(path, dec, head.get_mut(..4).unwrap_or(&mut []))?;
    let got = if got == 4 {
        4 + read_up_to(path, dec, head.get_mut(4..).unwrap_or(&mut []))?
    } else {
        got
    };
    parse_header(path, head.get(..got).unwrap_or(&[]), kind)
}

/// Makes room in `out` for `n` more bytes, fallibly, doubling its capacity but never past
/// `max` bytes in all.
fn grow(path: &Path, out: &mut Vec<u8>, n: usize, max: usize) -> Result<(), DataError> {
    let need = out.len().saturating_add(n);
    if need <= out.capacity() {
        return Ok(());
    }
    let target = out.capacity().saturating_mul(2).min(max).max(need);
    out.try_reserve_exact(target - out.len())
        .map_err(|_| DataError::AllocationFailed {
            path: path.to_path_buf(),
            what: "the IDX payload",
            bytes: target as u64,
        })
}

/// Appends at most `max` bytes of `r` to `out`, growing it fallibly as bytes arrive.
fn inflate_into(
    path: &Path,
    r: &mut impl Read,
    out: &mut Vec<u8>,
    max: u64,
) -> Result<(), DataError> {
    let mut chunk = [0u8; 32 << 10];
    let cap = usize::try_from(max).unwrap_or(usize::MAX);
    let mut r = r.take(max);
    loop {
        let n = read_up_to(path, &mut r, &mut chunk)?;
        let Some(got) = chunk.get(..n).filter(|got| !got.is_empty()) else {
            return Ok(());
        };
        grow(path, out, n, cap)?;
        out.extend_from_slice(got);
    }
}

/// Refuses a claim that `compressed` bytes of gzip cannot inflate to, or that exceeds the
/// per-tensor limit; returns the payload length.
fn check_claim(
    path: &Path,
    kind: Kind,
    header: &Header,
    compressed: u64,
) -> Result<usize, DataError> {
    let claimed = header.total(kind);
    if claimed > compressed.saturating_mul(MAX_GZIP_RATIO) {
        return Err(DataError::ImplausibleClaim {
            path: path.to_path_buf(),
            claimed,
            compressed,
            ratio: MAX_GZIP_RATIO,
        });
    }
    check_bytes(path, "the IDX payload", Some(header.payload))
}

/// Decodes a gzip-compressed IDX file of `compressed` bytes read from `r`: header, claim
/// checks, then at most the claimed payload plus one byte. The compressed bytes are streamed,
/// not held.
pub(crate) fn decode_gzip(
    path: &Path,
    r: &mut impl Read,
    compressed: u64,
    kind: Kind,
) -> Result<(Header, Vec<u8>), DataError> {
    let mut dec = MultiGzDecoder::new(r);
    let header = read_header(path, &mut dec, kind)?;
    let len = check_claim(path, kind, &header, compressed)?;
    // The first reservation: the claim, but no more than a few times the compressed length
    // (MNIST compresses about 5:1) nor a fixed cap; past it the buffer grows as bytes come.
    let guess = compressed.saturating_mul(8).min(MAX_PREALLOC);
    let reserve = usize::try_from(guess).unwrap_or(0).min(len);
    let mut payload = try_vec(path, "the IDX payload", reserve)?;
    // One byte past the claim tells a stream that inflates further apart from an exact fit.
    inflate_into(
        path,
        &mut dec,
        &mut payload,
        header.payload.saturating_add(1),
    )?;
    let present = payload.len() as u64;
    if present > header.payload {
        return Err(DataError::GzipTrailing {
            path: path.to_path_buf(),
            expected: header.total(kind),
        });
    }
    check_payload_len(path, kind, &header, present)?;
    Ok((header, payload))
}
