//! Datasets found on disk or fetched and cached, like `keras.datasets`: [`mnist()`] and
//! [`cifar10()`], and [`fetch`] for files of your own.
//!
//! A dataset is looked for, in order:
//!
//! 1. in a local directory, if one is given ([`FetchConfig::local_dir`]; [`mnist()`] reads
//!    it from `DENDRITE_MNIST_DIR`, [`cifar10()`] from `DENDRITE_CIFAR10_DIR`). When given it
//!    is the only place looked at;
//! 2. in the cache, `$DENDRITE_HOME/datasets/<name>/` ([`HOME_ENV`]), else the platform
//!    cache directory (`~/.cache/dendrite/datasets/<name>/` on Linux). Each cached file is
//!    checked against its known size and SHA-256 before use;
//! 3. on the mirrors of its [`Source`], in order, if [`FetchConfig::download`] allows. At
//!    most the file's known size is read, a stalled mirror times out
//!    ([`FetchConfig::read_timeout`]), and the file reaches the cache atomically
//!    ([`write_atomic`](crate::write_atomic)) and only if its SHA-256 is the known one.
//!
//! When the files cannot be had, [`DatasetError::Unavailable`] says in one line where it
//! looked, why each place failed, and how to provide the files; [`mnist_or_synthetic`] then
//! falls back to the built-in synthetic digits and its [`Origin`] says so.
//!
//! Every function that reads the environment has a twin that takes a [`FetchConfig`]
//! ([`mnist_with`], [`cifar10_with`], [`fetch`]), so that tests and programs can say exactly
//! where to look.
//!
//! # Example
//!
//! ```no_run
//! use dendrite_nn::datasets::{self, FetchConfig, Source};
//!
//! // The environment decides: DENDRITE_MNIST_DIR, the cache, then the network.
//! let mnist = datasets::mnist()?;
//! // Or offline, with a fallback, the line to print saying what happened.
//! let config = FetchConfig::from_env().download(false);
//! let (data, origin) = datasets::mnist_or_synthetic(&Source::mnist(), &config, 0)?;
//! println!("data: {origin}");
//! # Ok::<(), datasets::DatasetError>(())
//! ```

mod cifar;
mod config;
mod error;
mod fetch;
mod http;
mod mnist;
mod source;

pub use cifar::{
    cifar10, cifar10_with, load_cifar10, Cifar10, CifarSplit, CIFAR10_CLASSES, CIFAR10_SIDE,
};
pub use config::{FetchConfig, DEFAULT_TIMEOUT, HOME_ENV};
pub use error::{Attempt, DatasetError, FetchFailure};
pub use fetch::{fetch, Found};
pub use mnist::{mnist, mnist_or_synthetic, mnist_with, Origin};
pub use source::{
    RemoteFile, Source, CIFAR10_ARCHIVE, CIFAR10_DIR_ENV, CIFAR10_MIRRORS, MNIST_MIRRORS,
};
