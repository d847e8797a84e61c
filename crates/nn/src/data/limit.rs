//! The bounds the data module reads and allocates within: the per-tensor limit of
//! [`dendrite_graph::limits`], fallible reservations, and bounded file reads.

use std::fs::File;
use std::path::Path;

use super::error::DataError;
use crate::file_read::{open_regular, ReadFailure};

/// The per-tensor limit, in bytes.
pub(crate) fn limit() -> u64 {
    u64::try_from(dendrite_graph::limits::max_tensor_bytes()).unwrap_or(u64::MAX)
}

/// `bytes` if it is known and within [`limit`], else [`DataError::TooLarge`] naming `what`.
pub(crate) fn check_bytes(
    path: &Path,
    what: &'static str,
    bytes: Option<u64>,
) -> Result<usize, DataError> {
    let limit = limit();
    match bytes.filter(|&b| b <= limit).map(usize::try_from) {
        Some(Ok(b)) => Ok(b),
        _ => Err(DataError::TooLarge {
            path: path.to_path_buf(),
            what,
            bytes,
            limit,
        }),
    }
}

/// An empty vector with room for `len` items, reserved fallibly.
pub(crate) fn try_vec<T>(path: &Path, what: &'static str, len: usize) -> Result<Vec<T>, DataError> {
    let mut v = Vec::new();
    v.try_reserve_exact(len)
        .map_err(|_| DataError::AllocationFailed {
            path: path.to_path_buf(),
            what,
            bytes: (len as u64).saturating_mul(std::mem::size_of::<T>() as u64),
        })?;
    Ok(v)
}

/// The longest IDX file read: a header, a payload at the per-tensor limit, and room for what
/// gzip adds to incompressible data (5 bytes per 64 KiB stored block, a header, a trailer and
/// optional fields: `limit / 1024 + 64 KiB` covers it with a wide margin).
fn max_file_len() -> u64 {
    let limit = limit();
    limit.saturating_add(limit / 1024).saturating_add(64 << 10)
}

/// The IDX file at `path`, opened, and its length, if it is a regular file no longer than
/// [`max_file_len`].
pub(crate) fn open_idx_file(path: &Path) -> Result<(File, u64), DataError> {
    open_regular(path, max_file_len()).map_err(|failure| read_failure(path, failure))
}

/// A [`ReadFailure`] as the error naming `path`.
pub(crate) fn read_failure(path: &Path, failure: ReadFailure) -> DataError {
    let path = path.to_path_buf();
    match failure {
        ReadFailure::Io(source) => DataError::Io { path, source },
        ReadFailure::NotRegular { kind } => DataError::NotAFile { path, kind },
        ReadFailure::TooLong { len, limit } => DataError::FileTooLarge { path, len, limit },
    }
}
