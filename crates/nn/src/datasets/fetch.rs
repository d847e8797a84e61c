//! Finding a dataset's files: in the cache (checked against their hash), else on the mirrors.

use std::path::{Path, PathBuf};

use super::config::FetchConfig;
use super::error::{Attempt, DatasetError, FetchFailure};
use super::http::{download, sha256_of};
use super::source::{RemoteFile, Source};
use crate::file_read::{open_regular, ReadFailure};

/// Where [`fetch`] found a dataset's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// All were in the cache already, with the right hashes.
    Cached(PathBuf),
    /// At least one was downloaded into the cache.
    Downloaded(PathBuf),
}

impl Found {
    /// The cache folder holding the files.
    pub fn dir(&self) -> &Path {
        match self {
            Found::Cached(dir) | Found::Downloaded(dir) => dir,
        }
    }
}

/// Makes sure every file of `source` is in the cache with its known size and SHA-256, and
/// returns the cache folder (`<cache_dir>/<source.name>`) that holds them.
///
/// Each file is looked for in the cache first; a cached file of the wrong size or hash is
/// treated as absent. A missing file is downloaded, if
/// [`download`](FetchConfig::download) allows, from each mirror in turn until one serves
/// the right bytes: at most the file's size is read (a longer `Content-Length` is refused
/// before reading), the bytes are hashed as they arrive, and they reach the cache atomically
/// and only if the hash matches. The cache is never left holding a partial or wrong file.
/// [`FetchConfig::local_dir`] plays no part here (the dataset loaders handle it).
///
/// This is the general loader: give it a [`Source`] of your own files and read them with
/// [`read_idx_images`](crate::data::read_idx_images) or any reader.
///
/// # Errors
///
/// [`DatasetError::NoCacheDir`] without a cache directory; [`DatasetError::Unavailable`]
/// naming the first file that could not be had, every place looked at and why each failed;
/// [`DatasetError::Cache`] if the cache cannot be written.
///
/// # Example
///
/// ```no_run
/// use dendrite_nn::data::read_idx_labels;
/// use dendrite_nn::datasets::{fetch, FetchConfig, Source};
///
/// let found = fetch(&Source::mnist(), &FetchConfig::from_env())?;
/// let labels = read_idx_labels(&found.dir().join("t10k-labels-idx1-ubyte.gz"))?;
/// assert_eq!(labels.len(), 10_000);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn fetch(source: &Source, config: &FetchConfig) -> Result<Found, DatasetError> {
    let dir = config
        .cache_folder(&source.name)
        .ok_or_else(|| DatasetError::NoCacheDir {
            dataset: source.name.clone(),
        })?;
    let mut downloaded = false;
    for file in &source.files {
        let path = dir.join(&file.name);
        let cached = match check_cached(&path, file) {
            Ok(()) => continue,
            Err(why) => Attempt {
                location: path.display().to_string(),
                failure: why,
            },
        };
        download_file(source, file, config, &dir, cached)?;
        downloaded = true;
    }
    Ok(if downloaded {
        Found::Downloaded(dir)
    } else {
        Found::Cached(dir)
    })
}

/// Whether the cached file at `path` is `file`: its size first (cheap), then its hash.
fn check_cached(path: &Path, file: &RemoteFile) -> Result<(), FetchFailure> {
    let stale = |len, actual| FetchFailure::Stale {
        len,
        actual,
        expected_len: file.size,
        expected: file.sha256.clone(),
    };
    let (handle, len) = match open_regular(path, file.size) {
        Ok(opened) => opened,
        Err(ReadFailure::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(FetchFailure::Missing)
        }
        Err(ReadFailure::Io(source)) => return Err(FetchFailure::Unreadable { source }),
        Err(ReadFailure::NotRegular { kind }) => {
            let why = format!("{kind}, not a regular file");
            return Err(FetchFailure::Unreadable {
                source: std::io::Error::other(why),
            });
        }
        Err(ReadFailure::TooLong { len, .. }) => return Err(stale(len, String::new())),
    };
    if len != file.size {
        return Err(stale(len, String::new()));
    }
    let (read, actual) = sha256_of(&mut std::io::Read::take(&handle, len))
        .map_err(|source| FetchFailure::Unreadable { source })?;
    if read != file.size || !actual.eq_ignore_ascii_case(&file.sha256) {
        return Err(stale(read, actual));
    }
    Ok(())
}

/// Downloads `file` into `dir` from the first mirror that serves it whole and right;
/// `cached` is why the cache did not have it.
fn download_file(
    source: &Source,
    file: &RemoteFile,
    config: &FetchConfig,
    dir: &Path,
    cached: Attempt,
) -> Result<(), DatasetError> {
    let mut attempts = vec![cached];
    if !config.download {
        attempts.push(Attempt {
            location: "download".to_owned(),
            failure: FetchFailure::DownloadOff,
        });
        return Err(unavailable(source, file, dir, attempts));
    }
    std::fs::create_dir_all(dir).map_err(|e| DatasetError::Cache {
        path: dir.to_path_buf(),
        source: e,
    })?;
    let dest = dir.join(&file.name);
    for mirror in &source.mirrors {
        let url = Source::url(mirror, file);
        match download(&url, file, config, &dest)? {
            Ok(()) => return Ok(()),
            Err(failure) => attempts.push(Attempt {
                location: url,
                failure,
            }),
        }
    }
    Err(unavailable(source, file, dir, attempts))
}

fn unavailable(
    source: &Source,
    file: &RemoteFile,
    dir: &Path,
    attempts: Vec<Attempt>,
) -> DatasetError {
    let local = match &source.dir_env {
        Some(var) => format!("set {var} to a directory holding the files, "),
        None => String::new(),
    };
    DatasetError::Unavailable {
        dataset: source.name.clone(),
        file: file.name.clone(),
        attempts,
        hint: format!(
            "{local}copy them into {}, or allow downloading (FetchConfig::download)",
            dir.display()
        ),
    }
}
