//! MNIST, found or fetched: [`mnist`], [`mnist_with`] and [`mnist_or_synthetic`].

use std::fmt;
use std::path::PathBuf;

use super::config::FetchConfig;
use super::error::DatasetError;
use super::fetch::{fetch, Found};
use super::source::Source;
use crate::data::{load_mnist, mnist_dir_from_env, synthetic_mnist, Mnist};

/// Where a dataset came from: the line a program prints so that its user knows what it
/// trained on.
#[derive(Debug)]
pub enum Origin {
    /// The local directory ([`FetchConfig::local_dir`], e.g. from `DENDRITE_MNIST_DIR`).
    LocalDir(PathBuf),
    /// The cache, without the network.
    Cached(PathBuf),
    /// Downloaded into the cache just now.
    Downloaded(PathBuf),
    /// Not found: the built-in synthetic digits instead, and why.
    Synthetic(Box<DatasetError>),
}

impl From<Found> for Origin {
    fn from(found: Found) -> Self {
        match found {
            Found::Cached(dir) => Origin::Cached(dir),
            Found::Downloaded(dir) => Origin::Downloaded(dir),
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::LocalDir(dir) => write!(f, "from {}", dir.display()),
            Origin::Cached(dir) => write!(f, "from the cache {}", dir.display()),
            Origin::Downloaded(dir) => write!(f, "downloaded into the cache {}", dir.display()),
            Origin::Synthetic(why) => write!(
                f,
                "{why}; falling back to the built-in SYNTHETIC digits (not MNIST)"
            ),
        }
    }
}

/// MNIST, like `keras.datasets.mnist.load_data()`: from the directory named by
/// `DENDRITE_MNIST_DIR` if set, else from the cache (`$DENDRITE_HOME/datasets/mnist`, else the
/// platform cache directory), else downloaded into the cache from [`Source::mnist`]'s
/// mirrors, each file checked against its SHA-256.
///
/// [`mnist_with`] takes the configuration explicitly; [`mnist_or_synthetic`] falls back to
/// the synthetic digits when the files cannot be had.
///
/// # Errors
///
/// As [`mnist_with`].
///
/// # Example
///
/// ```no_run
/// let mnist = dendrite_nn::datasets::mnist()?;
/// assert_eq!((mnist.train.len(), mnist.test.len()), (60_000, 10_000));
/// # Ok::<(), dendrite_nn::datasets::DatasetError>(())
/// ```
pub fn mnist() -> Result<Mnist, DatasetError> {
    let config = FetchConfig::from_env().local_dir(mnist_dir_from_env());
    Ok(mnist_with(&Source::mnist(), &config)?.0)
}

/// MNIST from `source` as `config` says, and where it came from: `config.local_dir` alone if
/// set (read with [`load_mnist`]), else the cache, else the mirrors (see [`fetch`]).
///
/// # Errors
///
/// An error of [`load_mnist`] for the local directory or the fetched files
/// ([`DatasetError::Data`]), or of [`fetch`] ([`DatasetError::Unavailable`] says where it
/// looked).
///
/// # Example
///
/// ```no_run
/// use dendrite_nn::datasets::{mnist_with, FetchConfig, Source};
///
/// let config = FetchConfig::new("data/cache").timeout(std::time::Duration::from_secs(10));
/// let (mnist, origin) = mnist_with(&Source::mnist(), &config)?;
/// println!("MNIST {origin}: {} training images", mnist.train.len());
/// # Ok::<(), dendrite_nn::datasets::DatasetError>(())
/// ```
pub fn mnist_with(source: &Source, config: &FetchConfig) -> Result<(Mnist, Origin), DatasetError> {
    if let Some(dir) = &config.local_dir {
        return Ok((load_mnist(dir)?, Origin::LocalDir(dir.clone())));
    }
    let found = fetch(source, config)?;
    let data = load_mnist(found.dir())?;
    Ok((data, found.into()))
}

/// MNIST as [`mnist_with`] finds it, or, if it cannot be had
/// ([`DatasetError::Unavailable`], [`DatasetError::NoCacheDir`]), the built-in synthetic
/// digits of [`synthetic_mnist`]`(seed)` with [`Origin::Synthetic`] saying why. Print the
/// origin: its one line says where it looked, how to provide the files, and that it fell
/// back.
///
/// # Errors
///
/// Errors other than the data's absence are not hidden: a corrupt file in the local
/// directory or the cache, or a cache that cannot be written.
///
/// # Example
///
/// ```
/// use dendrite_nn::datasets::{mnist_or_synthetic, FetchConfig, Origin, Source};
///
/// // Offline, with an empty cache: the synthetic digits, and a line that says so.
/// let cache = std::env::temp_dir().join(format!("dendrite-doc-offline-{}", std::process::id()));
/// let config = FetchConfig::new(&cache).download(false);
/// let (data, origin) = mnist_or_synthetic(&Source::mnist(), &config, 0)?;
/// assert!(matches!(origin, Origin::Synthetic(_)));
/// println!("data: {origin}");
/// assert_eq!(data.train.features(), 784);
/// # Ok::<(), dendrite_nn::datasets::DatasetError>(())
/// ```
pub fn mnist_or_synthetic(
    source: &Source,
    config: &FetchConfig,
    seed: u64,
) -> Result<(Mnist, Origin), DatasetError> {
    match mnist_with(source, config) {
        Err(why @ (DatasetError::Unavailable { .. } | DatasetError::NoCacheDir { .. })) => {
            Ok((synthetic_mnist(seed)?, Origin::Synthetic(Box::new(why))))
        }
        other => other,
    }
}
