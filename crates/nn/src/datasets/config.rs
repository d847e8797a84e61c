//! Where datasets are looked for and how they are downloaded: [`FetchConfig`].

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Environment variable naming Dendrite's home directory; datasets are cached in its
/// `datasets` folder. Unset, the platform cache directory is used.
pub const HOME_ENV: &str = "DENDRITE_HOME";

/// How long connecting to a mirror, and each read from it, may take by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Where datasets are looked for, whether they may be downloaded, and how long a mirror may
/// take. Every function of [`datasets`](super) that touches the disk or the network takes
/// one, so that nothing depends on process-wide state unless asked for
/// ([`FetchConfig::from_env`]).
///
/// - `local_dir`: a directory that already holds the dataset. When set it is the only place
///   looked at, and an error in it is reported, not worked around.
/// - `cache_dir`: where downloaded files are kept, one folder per dataset
///   (`<cache_dir>/mnist/`). Files found there are checked against their SHA-256 before use.
/// - `download`: whether files missing from the cache may be downloaded.
/// - `connect_timeout`, `read_timeout`: how long connecting to a mirror, and each read from
///   it, may take (a stalled server fails the download after `read_timeout`, and the next
///   mirror is tried).
///
/// # Example
///
/// ```
/// use dendrite_nn::datasets::FetchConfig;
/// use std::time::Duration;
///
/// // Everything explicit: no environment variable is read.
/// let config = FetchConfig::new("/tmp/my-cache").download(false).read_timeout(Duration::from_secs(5));
/// assert!(!config.download);
/// // The defaults: $DENDRITE_HOME/datasets, else the platform cache directory; downloading on.
/// let config = FetchConfig::from_env();
/// assert!(config.download);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchConfig {
    /// A directory that already holds the dataset; when set, nothing else is looked at.
    pub local_dir: Option<PathBuf>,
    /// The cache directory, `None` when the platform has none and none was given.
    pub cache_dir: Option<PathBuf>,
    /// Whether files missing from the cache may be downloaded.
    pub download: bool,
    /// How long connecting to a mirror may take.
    pub connect_timeout: Duration,
    /// How long each read from a mirror may wait for data.
    pub read_timeout: Duration,
}

impl FetchConfig {
    /// A configuration caching in `cache_dir`, downloading allowed, with the default timeouts
    /// ([`DEFAULT_TIMEOUT`]). No environment variable is read.
    pub fn new(cache_dir: impl Into<PathBuf>) -> Self {
        FetchConfig {
            local_dir: None,
            cache_dir: Some(cache_dir.into()),
            download: true,
            connect_timeout: DEFAULT_TIMEOUT,
            read_timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The default configuration: cache in `$DENDRITE_HOME/datasets` ([`HOME_ENV`]) if set,
    /// else in the platform cache directory (`$XDG_CACHE_HOME/dendrite/datasets` or
    /// `~/.cache/dendrite/datasets` on Linux, `~/Library/Caches/dendrite/datasets` on macOS,
    /// `%LOCALAPPDATA%\dendrite\datasets` on Windows); downloading allowed; no local
    /// directory (the dataset functions read their own variable, such as
    /// `DENDRITE_MNIST_DIR`).
    pub fn from_env() -> Self {
        FetchConfig {
            cache_dir: default_cache_dir(),
            ..FetchConfig::new(PathBuf::new())
        }
    }

    /// The same configuration with `dir` as the local directory (`None` clears it).
    pub fn local_dir(mut self, dir: Option<impl Into<PathBuf>>) -> Self {
        self.local_dir = dir.map(Into::into);
        self
    }

    /// The same configuration, downloading allowed or not.
    pub fn download(mut self, download: bool) -> Self {
        self.download = download;
        self
    }

    /// The same configuration with both timeouts set to `timeout`.
    pub fn timeout(self, timeout: Duration) -> Self {
        self.connect_timeout(timeout).read_timeout(timeout)
    }

    /// The same configuration with `timeout` for connecting.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The same configuration with `timeout` for each read.
    pub fn read_timeout(mut self, timeout: Duration) -> Self {
        self.read_timeout = timeout;
        self
    }

    /// The cache folder of the dataset `name`, if there is a cache directory.
    pub(crate) fn cache_folder(&self, name: &str) -> Option<PathBuf> {
        self.cache_dir.as_deref().map(|dir| dir.join(name))
    }
}

/// `$DENDRITE_HOME/datasets`, else the platform cache directory's `dendrite/datasets`.
fn default_cache_dir() -> Option<PathBuf> {
    let home = std::env::var_os(HOME_ENV).filter(|v| !v.is_empty());
    match home {
        Some(home) => Some(Path::new(&home).join("datasets")),
        None => dirs::cache_dir().map(|dir| dir.join("dendrite").join("datasets")),
    }
}
