//! The error type of the data module.

use std::io;
use std::path::PathBuf;

/// The path recorded in errors from the in-memory parsers
/// ([`parse_idx_images`](super::parse_idx_images), [`parse_idx_labels`](super::parse_idx_labels))
/// and from [`Dataset::new`](super::Dataset::new), which have no file to name.
pub const IN_MEMORY: &str = "<memory>";

/// Which part of an IDX file a [`DataError::Truncated`] refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdxPart {
    /// The magic number and the dimension sizes.
    Header,
    /// The items after the header.
    Payload,
}

impl std::fmt::Display for IdxPart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            IdxPart::Header => "header",
            IdxPart::Payload => "payload",
        })
    }
}

/// Everything that can go wrong while loading, parsing or batching data.
///
/// Every variant that comes from a file names that file in `path` (or [`IN_MEMORY`] for bytes
/// parsed from memory), and carries the numbers involved as structured fields.
///
/// # Example
///
/// ```
/// use dendrite_nn::data::{parse_idx_labels, DataError};
///
/// let err = parse_idx_labels(&[0, 0, 8, 3, 0, 0, 0, 0]).err();
/// assert!(matches!(
///     err,
///     Some(DataError::BadMagic { expected: 0x0801, found: 0x0803, .. })
/// ));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// A sample shape whose number of values is not the dataset's values per sample.
    #[error("sample shape {shape:?} holds a different number of values than the {features} per sample of the dataset")]
    SampleShape {
        /// The shape asked for.
        shape: Vec<usize>,
        /// The dataset's values per sample.
        features: usize,
    },

    /// The data directory does not exist (or is not a directory).
    #[error("data directory {} does not exist or is not a directory (it must hold the four MNIST IDX files, e.g. train-images-idx3-ubyte.gz)", path.display())]
    MissingDir {
        /// The directory that was looked for.
        path: PathBuf,
    },

    /// A required file is absent from an existing directory.
    #[error("missing file {name} (or {name}.gz) in {}", dir.display())]
    MissingFile {
        /// The directory that was searched.
        dir: PathBuf,
        /// The file name, without the optional `.gz` suffix.
        name: String,
    },

    /// Reading a file failed.
    #[error("{}: I/O error: {source}", path.display())]
    Io {
        /// The file being read.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// The path names something other than a regular file (a directory, a device such as
    /// `/dev/zero`, a FIFO, a socket). Only regular files are read, because only their length
    /// bounds what reading them can return.
    #[error("{}: {kind}, not a regular file: data are read only from regular files, whose length bounds what is read", path.display())]
    NotAFile {
        /// The path given.
        path: PathBuf,
        /// What it is instead, in words (`"a character device"`, `"a directory"`, ...).
        kind: &'static str,
    },

    /// The file is longer than any IDX file whose payload fits the per-tensor limit
    /// ([`dendrite_graph::limits::max_tensor_bytes`]); it is refused before being read.
    #[error("{}: the file holds {len} bytes, more than the {limit} bytes an IDX file within the per-tensor limit can take", path.display())]
    FileTooLarge {
        /// The file.
        path: PathBuf,
        /// Its length, from its metadata.
        len: u64,
        /// The most an IDX file may hold.
        limit: u64,
    },

    /// The file holds more bytes than its metadata gave: it grew while being read, or it is a
    /// special file (such as those under `/proc`) whose length says nothing. Reading stopped
    /// one byte past `len`.
    #[error("{}: the file holds more than the {len} bytes its metadata gives (it grew while being read, or it is a special file); reading stopped there", path.display())]
    FileGrew {
        /// The file.
        path: PathBuf,
        /// The length its metadata gave.
        len: u64,
    },

    /// What a header (or an argument) asks for exceeds the per-tensor limit
    /// ([`dendrite_graph::limits::max_tensor_bytes`]), or its size overflows `u64`.
    #[error("{}: {what} would take {} bytes, more than the per-tensor limit of {limit} bytes (dendrite_graph::limits::set_max_tensor_bytes raises it)", path.display(), show_bytes(*bytes))]
    TooLarge {
        /// The file (or [`IN_MEMORY`] for parsed bytes and generated data).
        path: PathBuf,
        /// What was to be allocated (`"the IDX payload"`, `"the synthetic images"`, ...).
        what: &'static str,
        /// Its size in bytes, `None` when that overflows `u64`.
        bytes: Option<u64>,
        /// The limit in force.
        limit: u64,
    },

    /// The allocator refused a buffer within the limit.
    #[error("{}: could not allocate {bytes} bytes for {what}", path.display())]
    AllocationFailed {
        /// The file (or [`IN_MEMORY`]).
        path: PathBuf,
        /// What the buffer was for.
        what: &'static str,
        /// The bytes asked for.
        bytes: u64,
    },

    /// A gzip-compressed IDX file whose header claims more bytes than its compressed length
    /// can inflate to at [`MAX_GZIP_RATIO`](super::MAX_GZIP_RATIO): refused before
    /// decompressing anything (a "gzip bomb" or a lying header).
    #[error("{}: the IDX header claims {claimed} bytes, but {compressed} bytes of gzip cannot inflate to more than {} (at most {ratio}:1)", path.display(), compressed.saturating_mul(*ratio))]
    ImplausibleClaim {
        /// The file (or [`IN_MEMORY`]).
        path: PathBuf,
        /// Header and payload bytes the header claims.
        claimed: u64,
        /// Length of the gzip data.
        compressed: u64,
        /// The largest expansion accepted, [`MAX_GZIP_RATIO`](super::MAX_GZIP_RATIO).
        ratio: u64,
    },

    /// A gzip stream that inflates past the size its IDX header claims. Decompression stops
    /// one byte past the claim, so how much more the stream holds is not known.
    #[error("{}: the gzip stream inflates past the {expected} bytes the IDX header describes (decompression stopped there)", path.display())]
    GzipTrailing {
        /// The file (or [`IN_MEMORY`]).
        path: PathBuf,
        /// Header and payload bytes the header describes.
        expected: u64,
    },

    /// The training and test images of an MNIST directory differ in size.
    #[error("{} holds images of {train_rows}x{train_cols} but {} holds images of {test_rows}x{test_cols}: training and test images must have one size", train_path.display(), test_path.display())]
    ImageSizeMismatch {
        /// The training image file.
        train_path: PathBuf,
        /// Rows of a training image.
        train_rows: usize,
        /// Columns of a training image.
        train_cols: usize,
        /// The test image file.
        test_path: PathBuf,
        /// Rows of a test image.
        test_rows: usize,
        /// Columns of a test image.
        test_cols: usize,
    },

    /// The gzip stream ends before its end marker and checksum.
    #[error("{}: truncated gzip stream: {source}", path.display())]
    GzipTruncated {
        /// The file being decompressed.
        path: PathBuf,
        /// The decoder's error.
        #[source]
        source: io::Error,
    },

    /// The gzip stream is malformed (bad deflate data, bad header, checksum mismatch).
    #[error("{}: corrupt gzip stream: {source}", path.display())]
    GzipCorrupt {
        /// The file being decompressed.
        path: PathBuf,
        /// The decoder's error.
        #[source]
        source: io::Error,
    },

    /// The IDX magic number is not the one expected for this kind of file.
    #[error("{}: wrong IDX magic number: expected {expected:#010x}, found {found:#010x}", path.display())]
    BadMagic {
        /// The file being parsed.
        path: PathBuf,
        /// `0x00000803` for images, `0x00000801` for labels.
        expected: u32,
        /// The first four bytes of the (decompressed) file, big-endian.
        found: u32,
    },

    /// An image file declares zero rows or zero columns.
    #[error("{}: image dimensions must be nonzero, found {rows} rows and {cols} columns", path.display())]
    BadDimensions {
        /// The file being parsed.
        path: PathBuf,
        /// Declared rows per image.
        rows: u32,
        /// Declared columns per image.
        cols: u32,
    },

    /// The file holds fewer bytes than its header claims.
    #[error("{}: truncated IDX {part}: expected {expected} bytes, found {actual}", path.display())]
    Truncated {
        /// The file being parsed.
        path: PathBuf,
        /// Whether the header itself or the items after it are cut short.
        part: IdxPart,
        /// Total (decompressed) bytes the header implies, saturating at `u64::MAX`.
        expected: u64,
        /// Total (decompressed) bytes present.
        actual: u64,
    },

    /// The file holds more bytes than its header claims.
    #[error("{}: trailing data: {extra} bytes past the {expected} bytes the IDX header describes", path.display())]
    TrailingBytes {
        /// The file being parsed.
        path: PathBuf,
        /// Total (decompressed) bytes the header implies.
        expected: u64,
        /// Bytes beyond `expected`.
        extra: u64,
    },

    /// A label is not smaller than the number of classes.
    #[error("{}: label {value} at index {index} is out of range (must be < {classes})", path.display())]
    LabelOutOfRange {
        /// The label file (or [`IN_MEMORY`]).
        path: PathBuf,
        /// Position of the label (0-based item index).
        index: usize,
        /// The offending value.
        value: u8,
        /// The number of classes.
        classes: usize,
    },

    /// An image file and its label file disagree on the number of items.
    #[error("{} holds {images} images but {} holds {labels} labels", images_path.display(), labels_path.display())]
    CountMismatch {
        /// The image file (or [`IN_MEMORY`]).
        images_path: PathBuf,
        /// Number of images.
        images: usize,
        /// The label file (or [`IN_MEMORY`]).
        labels_path: PathBuf,
        /// Number of labels.
        labels: usize,
    },

    /// A dataset was built with a zero dimension, zero classes, or pixels that do not fill
    /// whole images.
    #[error(
        "invalid dataset shape: {pixels} pixels for images of {rows}x{cols} and {classes} classes"
    )]
    BadShape {
        /// Length of the pixel buffer.
        pixels: usize,
        /// Rows per image.
        rows: usize,
        /// Columns per image.
        cols: usize,
        /// Number of classes.
        classes: usize,
    },

    /// A batch size of zero was requested.
    #[error("batch size must be at least 1, got 0")]
    ZeroBatchSize,

    /// An output buffer has the wrong length for the batch.
    #[error("{buffer} buffer has length {actual}, expected {expected}")]
    BufferSize {
        /// `"images"` or `"labels"`.
        buffer: &'static str,
        /// The length the batch needs.
        expected: usize,
        /// The length given.
        actual: usize,
    },

    /// A sample index is outside the dataset.
    #[error("sample index {index} out of range for a dataset of {len} samples")]
    IndexOutOfRange {
        /// The offending index.
        index: usize,
        /// The dataset length.
        len: usize,
    },
}

/// `bytes` for a message: the number, or "more than u64::MAX" when it overflowed.
fn show_bytes(bytes: Option<u64>) -> String {
    match bytes {
        Some(b) => b.to_string(),
        None => format!("more than {}", u64::MAX),
    }
}
