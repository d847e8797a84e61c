//! Reading a checkpoint within what it can hold, in two stages: first the 8-byte length prefix
//! and the JSON header, which may be no longer than the entries of the model's tensors can be
//! (plus room for foreign metadata); then, once the header's names, dtypes and shapes fit the
//! model, the data, which must be exactly as long as the model's parameters. A file that lies
//! in its header, or is the checkpoint of another model, is refused before its data is read.

use super::{corrupt, read_failure};
use crate::error::{NnError, Result};
use crate::file_read::{has_more, open_regular, read_up_to};
use std::fs::File;
use std::io::Read;
use std::path::Path;

/// Room for a `__metadata__` table that other tools write into safetensors headers (PyTorch
/// writes `{"format":"pt"}`): far more than any of them uses.
pub(super) const METADATA_ALLOWANCE: u64 = 64 * 1024;

/// The longest JSON entry a tensor with a name of `name_len` bytes and `rank` dimensions can
/// have: `"name":{"dtype":"F32","shape":[..],"data_offsets":[a,b]},`, the name escaped (at
/// most 6 bytes per byte, `\u00XX`), some 60 bytes of keys and punctuation, and at most 21
/// bytes per number.
pub(super) fn max_entry_len(name_len: usize, rank: usize) -> u64 {
    let numbers = rank as u64 + 2;
    (name_len as u64)
        .saturating_mul(6)
        .saturating_add(64)
        .saturating_add(numbers.saturating_mul(21))
}

/// A tensor as the header describes it.
pub(super) struct Entry {
    /// The dtype as written (`F32`).
    pub dtype: String,
    /// The shape.
    pub shape: Vec<usize>,
}

/// The opened file, its length, the bytes read so far (prefix and header) and the header's
/// tensors (`__metadata__` left out).
pub(super) struct Header {
    pub file: File,
    pub len: u64,
    pub bytes: Vec<u8>,
    pub entries: Vec<(String, Entry)>,
}

/// Opens the regular file at `path` and reads its prefix and header, refusing a header longer
/// than `max_header` bytes before reading it.
pub(super) fn read_header(path: &Path, max_header: u64) -> Result<Header> {
    let (mut file, len) = open_regular(path, u64::MAX).map_err(|f| read_failure(path, f))?;
    let io = |source| NnError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut prefix = [0u8; 8];
    // Nothing is read past the length the file reports: a special file that reports 0 (as
    // under /proc) is caught by the probe for one more byte.
    if read_up_to(&mut (&mut file).take(len), &mut prefix).map_err(io)? < 8 {
        if has_more(&mut file).map_err(io)? {
            return Err(NnError::FileGrew {
                path: path.to_path_buf(),
                len,
            });
        }
        let reason = format!("the file has {len} bytes, fewer than the 8 of the header length");
        return Err(corrupt(path, reason));
    }
    let claimed = u64::from_le_bytes(prefix);
    if claimed > max_header {
        let reason = format!(
            "the header claims {claimed} bytes, more than the {max_header} that the entries of this model's tensors and {METADATA_ALLOWANCE} bytes of metadata can take"
        );
        return Err(corrupt(path, reason));
    }
    if claimed > len - 8 {
        let reason = format!(
            "the header claims {claimed} bytes but only {} follow (the file is truncated)",
            len - 8
        );
        return Err(corrupt(path, reason));
    }
    // `claimed` is at most `max_header`, which the caller keeps small.
    let mut bytes = prefix.to_vec();
    bytes.resize(8 + claimed as usize, 0);
    let got = read_up_to(&mut file, &mut bytes[8..]).map_err(io)?;
    if got as u64 != claimed {
        return Err(NnError::FileGrew {
            path: path.to_path_buf(),
            len,
        });
    }
    let entries = parse_entries(&bytes[8..]).ok_or_else(|| {
        corrupt(
            path,
            "the header is not the JSON table of tensors safetensors expects".to_owned(),
        )
    })?;
    Ok(Header {
        file,
        len,
        bytes,
        entries,
    })
}

/// The tensors of a safetensors header, or `None` if it is not the JSON table it should be.
fn parse_entries(header: &[u8]) -> Option<Vec<(String, Entry)>> {
    let table: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(header).ok()?;
    let mut entries = Vec::with_capacity(table.len());
    for (name, entry) in table {
        if name == "__metadata__" {
            continue;
        }
        let dtype = entry.get("dtype")?.as_str()?.to_owned();
        let shape = entry.get("shape")?.as_array()?;
        let shape = shape
            .iter()
            .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
            .collect::<Option<Vec<usize>>>()?;
        entries.push((name, Entry { dtype, shape }));
    }
    Some(entries)
}

/// Reads the rest of the file after `header`, which must make the file exactly `expected`
/// bytes long: a longer file is refused unread, a shorter one is read as it is (safetensors
/// then says where it is truncated).
pub(super) fn read_data(path: &Path, header: Header, expected: u64) -> Result<Vec<u8>> {
    let Header {
        mut file,
        len,
        mut bytes,
        ..
    } = header;
    if len > expected {
        return Err(NnError::FileTooLarge {
            path: path.to_path_buf(),
            len,
            limit: expected,
        });
    }
    let total = usize::try_from(len).map_err(|_| NnError::FileTooLarge {
        path: path.to_path_buf(),
        len,
        limit: expected,
    })?;
    bytes
        .try_reserve_exact(total.saturating_sub(bytes.len()))
        .map_err(|_| NnError::AllocationFailed {
            path: path.to_path_buf(),
            bytes: len,
        })?;
    let rest = len.saturating_sub(bytes.len() as u64);
    let io = |source| NnError::Io {
        path: path.to_path_buf(),
        source,
    };
    (&mut file).take(rest).read_to_end(&mut bytes).map_err(io)?;
    if has_more(&mut file).map_err(io)? {
        return Err(NnError::FileGrew {
            path: path.to_path_buf(),
            len,
        });
    }
    Ok(bytes)
}
