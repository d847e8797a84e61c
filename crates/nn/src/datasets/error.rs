//! The errors of the datasets module.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use crate::data::DataError;

/// Why one place (a cache file or a mirror's URL) did not give a file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchFailure {
    /// The file is not in the cache.
    #[error("not there")]
    Missing,
    /// A file is in the cache but is not the right one (its size or hash differs).
    #[error("present but wrong ({len} bytes, SHA-256 {actual}; expected {expected_len} bytes, SHA-256 {expected})")]
    Stale {
        /// Its length.
        len: u64,
        /// Its SHA-256 (empty when the length alone ruled it out).
        actual: String,
        /// The length expected.
        expected_len: u64,
        /// The SHA-256 expected.
        expected: String,
    },
    /// The cached file could not be read.
    #[error("unreadable: {source}")]
    Unreadable {
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Downloading is turned off ([`FetchConfig::download`](super::FetchConfig::download)).
    #[error("off")]
    DownloadOff,
    /// The server answered with an HTTP error status.
    #[error("HTTP status {status}")]
    Status {
        /// The status code.
        status: u16,
    },
    /// Connecting, or waiting for data, took longer than the configured timeout.
    #[error("no answer within {} s ({what})", after.as_secs_f64())]
    Timeout {
        /// What timed out (`"connect"`, `"read"`, ...).
        what: String,
        /// The timeout in force.
        after: Duration,
    },
    /// The server's `Content-Length` is not the file's known size: refused before reading
    /// the body.
    #[error("the server announces {announced} bytes, but the file has {expected}")]
    WrongLength {
        /// The `Content-Length` sent.
        announced: u64,
        /// The file's known size.
        expected: u64,
    },
    /// The body goes on past the file's known size (reading stopped one byte past it).
    #[error("the body is longer than the file's {expected} bytes")]
    TooLong {
        /// The file's known size.
        expected: u64,
    },
    /// The connection closed before the whole file arrived.
    #[error("truncated: {received} of {expected} bytes arrived")]
    Truncated {
        /// Bytes received.
        received: u64,
        /// The file's known size.
        expected: u64,
    },
    /// The file arrived whole but its SHA-256 is not the known one: refused, and the cache
    /// left as it was.
    #[error("SHA-256 mismatch: got {actual}, expected {expected}")]
    ChecksumMismatch {
        /// The SHA-256 of what arrived.
        actual: String,
        /// The known SHA-256.
        expected: String,
    },
    /// Any other failure of the HTTP client (name resolution, refused connection, TLS,
    /// malformed response).
    #[error("{source}")]
    Transport {
        /// The HTTP client's error.
        #[source]
        source: ureq::Error,
    },
}

/// One place looked at for a file, and why it did not give it.
#[derive(Debug)]
pub struct Attempt {
    /// A cache path, a URL, or `download` (for [`FetchFailure::DownloadOff`]).
    pub location: String,
    /// Why it failed.
    pub failure: FetchFailure,
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.failure)
    }
}

/// The attempts as one line: `a: why; b: why`.
fn show_attempts(attempts: &[Attempt]) -> String {
    let parts: Vec<String> = attempts.iter().map(Attempt::to_string).collect();
    parts.join("; ")
}

/// Everything that can go wrong while finding, downloading or reading a dataset.
///
/// # Example
///
/// ```
/// use dendrite_nn::datasets::{fetch, DatasetError, FetchConfig, Source};
///
/// // An empty cache and downloading off: the error says where it looked.
/// let cache = std::env::temp_dir().join(format!("dendrite-doc-empty-{}", std::process::id()));
/// let err = fetch(&Source::mnist(), &FetchConfig::new(&cache).download(false)).err();
/// assert!(matches!(err, Some(DatasetError::Unavailable { .. })));
/// let line = err.map(|e| e.to_string()).unwrap_or_default();
/// assert!(line.contains("DENDRITE_MNIST_DIR") && line.contains("download: off"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DatasetError {
    /// A file could be found neither in the cache nor on any mirror.
    #[error(
        "{dataset} not found: {file} was looked for in {}; to provide it, {hint}",
        show_attempts(attempts)
    )]
    Unavailable {
        /// The dataset (`mnist`).
        dataset: String,
        /// The file that could not be had.
        file: String,
        /// Every place looked at, in order, and why each failed.
        attempts: Vec<Attempt>,
        /// How to provide the files, in words.
        hint: String,
    },
    /// There is no cache directory: the platform has none and none was given.
    #[error("{dataset}: no cache directory (set DENDRITE_HOME, or give one in FetchConfig::new)")]
    NoCacheDir {
        /// The dataset.
        dataset: String,
    },
    /// Creating the cache directory or writing a file into it failed; the cache is left as
    /// it was.
    #[error("{}: cannot write to the cache: {source}", path.display())]
    Cache {
        /// The path written.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The files are there but reading them failed (see [`DataError`]).
    #[error(transparent)]
    Data(#[from] DataError),
    /// The CIFAR-10 archive could not be read as a gzip-compressed tar file.
    #[error("{}: cannot read the archive: {source}", path.display())]
    Archive {
        /// The archive.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A CIFAR-10 batch file is absent.
    #[error("{}: no {member} (a CIFAR-10 binary archive holds data_batch_1.bin to data_batch_5.bin and test_batch.bin)", path.display())]
    MissingMember {
        /// The archive or directory.
        path: PathBuf,
        /// The batch file's name.
        member: String,
    },
    /// A CIFAR-10 batch appears twice in the archive.
    #[error("{}: {member} appears twice", path.display())]
    DuplicateMember {
        /// The archive.
        path: PathBuf,
        /// The batch file's name.
        member: String,
    },
    /// A CIFAR-10 batch is not a whole, nonzero number of 3073-byte records, or is larger
    /// than the per-tensor limit allows.
    #[error("{}: {member} holds {len} bytes, not a whole nonzero number of 3073-byte records within {limit} bytes", path.display())]
    BadMember {
        /// The archive or directory.
        path: PathBuf,
        /// The batch file's name.
        member: String,
        /// Its length.
        len: u64,
        /// The most accepted.
        limit: u64,
    },
    /// A CIFAR-10 label is not below 10.
    #[error("{}: {member}: label {value} of record {index} is out of range (must be < 10)", path.display())]
    BadLabel {
        /// The archive or directory.
        path: PathBuf,
        /// The batch file's name.
        member: String,
        /// The record (0-based).
        index: usize,
        /// The label found.
        value: u8,
    },
}
