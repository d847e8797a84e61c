//! What a dataset is made of (files with their sizes and SHA-256) and where it can be
//! downloaded from (mirrors), plus the known sources of MNIST and CIFAR-10.

/// One file of a dataset: its name (the last part of its URL, and its name in the cache), its
/// exact size in bytes and its SHA-256.
///
/// The size bounds the download (a longer `Content-Length` is refused before a byte of the
/// body is read, and reading stops one byte past it); the hash decides whether a downloaded or
/// cached file is the right one.
///
/// ```
/// use dendrite_nn::datasets::RemoteFile;
///
/// let file = RemoteFile::new("t10k-labels-idx1-ubyte.gz", 4_542, "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6");
/// assert_eq!(file.size, 4_542);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    /// File name, appended to each mirror's base URL and used as the name in the cache.
    pub name: String,
    /// Exact length in bytes.
    pub size: u64,
    /// SHA-256 of the file, as 64 hexadecimal digits (either case).
    pub sha256: String,
}

impl RemoteFile {
    /// A file named `name` of `size` bytes whose SHA-256 is `sha256` (hexadecimal).
    pub fn new(name: impl Into<String>, size: u64, sha256: impl Into<String>) -> Self {
        RemoteFile {
            name: name.into(),
            size,
            sha256: sha256.into(),
        }
    }
}

/// A dataset as a set of files and the mirrors that serve them: what
/// [`fetch`](super::fetch) looks for in the cache and downloads.
///
/// `name` is the folder of the cache the files go to; each mirror is a base URL that the file
/// name is appended to, tried in order until one serves a file of the right size and hash.
///
/// ```
/// use dendrite_nn::datasets::{RemoteFile, Source};
///
/// // Point the MNIST source at a mirror of your own, keeping the known files and hashes.
/// let source = Source::mnist().with_mirrors(["https://example.org/mnist/"]);
/// assert_eq!(source.files.len(), 4);
/// // Or describe a dataset of your own.
/// let mine = Source::new("tiny", ["http://127.0.0.1:8000/"], [RemoteFile::new("a.gz", 20, "00".repeat(32))]);
/// assert_eq!(mine.name, "tiny");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// Name of the dataset, and of its folder in the cache (`mnist`, `cifar-10`).
    pub name: String,
    /// Base URLs, tried in order; each ends with `/` (one is added if missing).
    pub mirrors: Vec<String>,
    /// The files that make up the dataset.
    pub files: Vec<RemoteFile>,
    /// The environment variable that names a local directory holding the files, if the
    /// dataset has one (`DENDRITE_MNIST_DIR`); named in the message when the data cannot be
    /// found.
    pub dir_env: Option<String>,
}

/// The MNIST mirrors: the one TensorFlow uses, then the one PyTorch uses (Yann LeCun's own
/// page now refuses most downloads).
pub const MNIST_MIRRORS: [&str; 2] = [
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
];

/// The CIFAR-10 mirror: the dataset authors' page at the University of Toronto.
pub const CIFAR10_MIRRORS: [&str; 1] = ["https://www.cs.toronto.edu/~kriz/"];

/// The binary version of CIFAR-10, one gzip-compressed tar archive.
pub const CIFAR10_ARCHIVE: &str = "cifar-10-binary.tar.gz";

/// Environment variable naming a directory that holds CIFAR-10 (the archive
/// [`CIFAR10_ARCHIVE`] or its extracted `.bin` files).
pub const CIFAR10_DIR_ENV: &str = "DENDRITE_CIFAR10_DIR";

impl Source {
    /// A source named `name` served by `mirrors`, made of `files`.
    pub fn new(
        name: impl Into<String>,
        mirrors: impl IntoIterator<Item = impl Into<String>>,
        files: impl IntoIterator<Item = RemoteFile>,
    ) -> Self {
        Source {
            name: name.into(),
            mirrors: mirrors.into_iter().map(Into::into).collect(),
            files: files.into_iter().collect(),
            dir_env: None,
        }
    }

    /// The same files from other mirrors.
    pub fn with_mirrors(mut self, mirrors: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.mirrors = mirrors.into_iter().map(Into::into).collect();
        self
    }

    /// MNIST: the four original gzip IDX files, with the sizes and SHA-256 sums that
    /// TensorFlow and PyTorch publish for them, from [`MNIST_MIRRORS`].
    pub fn mnist() -> Self {
        let files = [
            (
                "train-images-idx3-ubyte.gz",
                9_912_422,
                "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            ),
            (
                "train-labels-idx1-ubyte.gz",
                28_881,
                "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            ),
            (
                "t10k-images-idx3-ubyte.gz",
                1_648_877,
                "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            ),
            (
                "t10k-labels-idx1-ubyte.gz",
                4_542,
                "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
            ),
        ];
        let mut source = Source::new(
            "mnist",
            MNIST_MIRRORS,
            files.map(|(name, size, sha)| RemoteFile::new(name, size, sha)),
        );
        source.dir_env = Some(crate::data::MNIST_DIR_ENV.to_owned());
        source
    }

    /// CIFAR-10, binary version: [`CIFAR10_ARCHIVE`] (170 052 171 bytes) from
    /// [`CIFAR10_MIRRORS`].
    pub fn cifar10() -> Self {
        let archive = RemoteFile::new(
            CIFAR10_ARCHIVE,
            170_052_171,
            "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
        );
        let mut source = Source::new("cifar-10", CIFAR10_MIRRORS, [archive]);
        source.dir_env = Some(CIFAR10_DIR_ENV.to_owned());
        source
    }

    /// The URL of `file` on `mirror`.
    pub(crate) fn url(mirror: &str, file: &RemoteFile) -> String {
        if mirror.ends_with('/') {
            format!("{mirror}{}", file.name)
        } else {
            format!("{mirror}/{}", file.name)
        }
    }
}
