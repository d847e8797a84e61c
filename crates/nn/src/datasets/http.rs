//! Downloading one file from one URL into the cache: bounded by the file's known size, hashed
//! as it streams, written atomically, refused whole on any mismatch.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::config::FetchConfig;
use super::error::{DatasetError, FetchFailure};
use super::source::RemoteFile;
use crate::error::NnError;
use crate::write_atomic;

/// The HTTP client: the configured timeouts, HTTP errors as errors, no transparent
/// decompression (the files are stored exactly as served, so that their hash can be checked).
fn agent(config: &FetchConfig) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_connect(Some(config.connect_timeout))
        .timeout_resolve(Some(config.connect_timeout))
        .timeout_per_read(Some(config.read_timeout))
        .timeout_recv_response(Some(config.read_timeout))
        .http_status_as_error(true)
        .user_agent(concat!("dendrite/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

/// An error of the HTTP client as a failure; `received` is how much of the body had arrived.
fn classify(
    error: ureq::Error,
    config: &FetchConfig,
    received: u64,
    expected: u64,
) -> FetchFailure {
    match error {
        ureq::Error::StatusCode(status) => FetchFailure::Status { status },
        ureq::Error::Timeout(what) => {
            let after = match what {
                ureq::Timeout::Connect | ureq::Timeout::Resolve => config.connect_timeout,
                _ => config.read_timeout,
            };
            FetchFailure::Timeout {
                what: what.to_string(),
                after,
            }
        }
        ureq::Error::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            FetchFailure::Truncated { received, expected }
        }
        source => FetchFailure::Transport { source },
    }
}

/// Streams at most `file.size + 1` bytes of `body` into `out`, hashing them; the outcome is a
/// failure unless exactly `file.size` bytes with the right SHA-256 arrived.
fn stream(
    body: &mut impl Read,
    out: &mut impl Write,
    file: &RemoteFile,
    config: &FetchConfig,
) -> Result<Result<(), FetchFailure>, io::Error> {
    let mut hasher = Sha256::new();
    let mut received = 0u64;
    let mut chunk = vec![0u8; 64 << 10];
    let mut body = body.take(file.size.saturating_add(1));
    loop {
        let n = match body.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let error = ureq::Error::from(e);
                return Ok(Err(classify(error, config, received, file.size)));
            }
        };
        let got = chunk.get(..n).unwrap_or(&[]);
        hasher.update(got);
        out.write_all(got)?;
        received += n as u64;
    }
    Ok(check(received, &hex(&hasher.finalize()), file))
}

/// Whether `received` bytes hashing to `actual` are `file`.
fn check(received: u64, actual: &str, file: &RemoteFile) -> Result<(), FetchFailure> {
    let expected = file.size;
    if received > expected {
        Err(FetchFailure::TooLong { expected })
    } else if received < expected {
        Err(FetchFailure::Truncated { received, expected })
    } else if !actual.eq_ignore_ascii_case(&file.sha256) {
        Err(FetchFailure::ChecksumMismatch {
            actual: actual.to_owned(),
            expected: file.sha256.clone(),
        })
    } else {
        Ok(())
    }
}

/// Lower-case hexadecimal.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Downloads `file` from `url` into `dest`, atomically: `dest` is written only if the whole
/// file arrived with the right size and hash, and is left as it was otherwise.
///
/// The outer error is the cache's (the file could not be written); the inner one is the
/// mirror's, for the caller to record and move on to the next mirror.
pub(crate) fn download(
    url: &str,
    file: &RemoteFile,
    config: &FetchConfig,
    dest: &Path,
) -> Result<Result<(), FetchFailure>, DatasetError> {
    let mut response = match agent(config).get(url).call() {
        Ok(response) => response,
        Err(error) => return Ok(Err(classify(error, config, 0, file.size))),
    };
    if let Some(announced) = response.body().content_length()
        && announced != file.size
    {
        return Ok(Err(FetchFailure::WrongLength {
            announced,
            expected: file.size,
        }));
    }
    let mut body = response.body_mut().as_reader();
    // The mirror's failure is kept aside: to `write_atomic` it is only a reason to discard
    // the temporary file.
    let mut failure = None;
    let written = write_atomic(dest, |out: &mut File| {
        match stream(&mut body, out, file, config)? {
            Ok(()) => Ok(()),
            Err(why) => {
                failure = Some(why);
                Err(io::Error::other("download refused"))
            }
        }
    });
    match (written, failure) {
        (_, Some(why)) => Ok(Err(why)),
        (Ok(()), None) => Ok(Ok(())),
        (Err(NnError::Io { path, source }), None) => Err(DatasetError::Cache { path, source }),
        (Err(other), None) => Err(DatasetError::Cache {
            path: dest.to_path_buf(),
            source: io::Error::other(other.to_string()),
        }),
    }
}

/// The SHA-256 of everything `r` yields, and its length.
pub(crate) fn sha256_of(r: &mut impl Read) -> io::Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let len = io::copy(r, &mut hasher)?;
    Ok((len, hex(&hasher.finalize())))
}
