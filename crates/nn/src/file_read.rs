//! Opening and reading a file within what it can hold: the one way the crate reads a file.
//!
//! `std::fs::read` trusts the file to end: on `/dev/zero`, a FIFO or a file under `/proc` it
//! reads until memory runs out. [`open_regular`] instead refuses anything but a regular file,
//! *before* opening it (opening a FIFO for reading would block until a writer comes) and again
//! on the opened handle, and refuses a file longer than the caller's bound (what its format can
//! honestly need). Readers then read at most the file's length, and refuse a file that holds
//! more than its metadata says (one that grew while being read, or a special file that reports
//! length 0) by probing for one byte past it ([`has_more`]), into buffers reserved fallibly
//! (`try_reserve_exact`).
//!
//! Callers turn a [`ReadFailure`] into their own error type, with the path.

use std::fs::{File, FileType, Metadata};
use std::io::{self, Read};
use std::path::Path;

/// Why [`open_regular`] refused or failed.
#[derive(Debug)]
pub(crate) enum ReadFailure {
    /// Opening or reading failed.
    Io(io::Error),
    /// The path names a directory, a device, a FIFO or a socket.
    NotRegular { kind: &'static str },
    /// The file is longer than the bound.
    TooLong { len: u64, limit: u64 },
}

/// What kind of non-regular file `ty` is, in words.
fn kind_of(ty: FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ty.is_char_device() {
            return "a character device";
        }
        if ty.is_block_device() {
            return "a block device";
        }
        if ty.is_fifo() {
            return "a FIFO";
        }
        if ty.is_socket() {
            return "a socket";
        }
    }
    if ty.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

fn regular(meta: &Metadata) -> Result<u64, ReadFailure> {
    if meta.is_file() {
        Ok(meta.len())
    } else {
        Err(ReadFailure::NotRegular {
            kind: kind_of(meta.file_type()),
        })
    }
}

/// Reads until `buf` is full or the stream ends; returns the number of bytes read.
pub(crate) fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while let Some(rest) = buf.get_mut(filled..).filter(|rest| !rest.is_empty()) {
        match r.read(rest) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Whether `r` has at least one more byte.
pub(crate) fn has_more(r: &mut impl Read) -> io::Result<bool> {
    let mut probe = [0u8; 1];
    loop {
        match r.read(&mut probe) {
            Ok(n) => return Ok(n > 0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The regular file at `path`, opened, and its length, if that is at most `limit`.
pub(crate) fn open_regular(path: &Path, limit: u64) -> Result<(File, u64), ReadFailure> {
    // Symlinks are followed; the target must be a regular file.
    regular(&std::fs::metadata(path).map_err(ReadFailure::Io)?)?;
    let file = File::open(path).map_err(ReadFailure::Io)?;
    let len = regular(&file.metadata().map_err(ReadFailure::Io)?)?;
    if len > limit {
        return Err(ReadFailure::TooLong { len, limit });
    }
    Ok((file, len))
}
