//! Writing a file atomically: into a temporary file beside it, synced and renamed over it.

use crate::error::{NnError, Result};
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
