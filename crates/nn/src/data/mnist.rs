//! Loading the MNIST files from a directory, and where to find that directory.

use std::path::{Path, PathBuf};

use super::dataset::Dataset;
use super::error::DataError;
use super::idx::{read_idx_images, read_idx_labels};
use super::MNIST_CLASSES;

/// Environment variable naming the directory that holds the four MNIST files.
pub const MNIST_DIR_ENV: &str = "DENDRITE_MNIST_DIR";

/// File name (without `.gz`) of the 60 000 training images.
pub const TRAIN_IMAGES: &str = "train-images-idx3-ubyte";
/// File name (without `.gz`) of the 60 000 training labels.
pub const TRAIN_LABELS: &str = "train-labels-idx1-ubyte";
/// File name (without `.gz`) of the 10 000 test images.
pub const TEST_IMAGES: &str = "t10k-images-idx3-ubyte";
/// File name (without `.gz`) of the 10 000 test labels.
pub const TEST_LABELS: &str = "t10k-labels-idx1-ubyte";

/// A training set and a test set, as MNIST ships them (or as
/// [`synthetic_mnist`](super::synthetic_mnist) imitates them).
#[derive(Debug, Clone)]
pub struct Mnist {
    /// The training set (60 000 samples for MNIST).
    pub train: Dataset,
    /// The test set (10 000 samples for MNIST).
    pub test: Dataset,
}

/// The directory named by the environment variable [`MNIST_DIR_ENV`], if it is set and not
/// empty. Whether it exists is left to [`load_mnist`] to report.
///
/// # Example
///
/// ```
/// use dendrite_nn::data::{load_mnist, mnist_dir_from_env, synthetic_mnist, Mnist};
///
/// let data: Mnist = match mnist_dir_from_env() {
///     Some(dir) => load_mnist(&dir)?,
///     None => synthetic_mnist(0)?,
/// };
/// assert_eq!(data.train.features(), 784);
/// # Ok::<(), dendrite_nn::data::DataError>(())
/// ```
pub fn mnist_dir_from_env() -> Option<PathBuf> {
    std::env::var_os(MNIST_DIR_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// `dir/name.gz` if it exists, else `dir/name`, else [`DataError::MissingFile`]. A name that
/// exists but is not a regular file (a directory, a link to `/dev/zero`) is returned, for the
/// reader to refuse with [`DataError::NotAFile`].
fn find_file(dir: &Path, name: &str) -> Result<PathBuf, DataError> {
    [format!("{name}.gz"), name.to_owned()]
        .into_iter()
        .map(|file| dir.join(file))
        .find(|p| p.exists())
        .ok_or_else(|| DataError::MissingFile {
            dir: dir.to_path_buf(),
            name: name.to_owned(),
        })
}

fn load_split(dir: &Path, images: &str, labels: &str) -> Result<Dataset, DataError> {
    let images_path = find_file(dir, images)?;
    let labels_path = find_file(dir, labels)?;
    let images = read_idx_images(&images_path)?;
    let labels = read_idx_labels(&labels_path)?;
    if images.count != labels.len() {
        return Err(DataError::CountMismatch {
            images_path,
            images: images.count,
            labels_path,
            labels: labels.len(),
        });
    }
    Dataset::from_parts(
        images.pixels,
        labels,
        images.rows,
        images.cols,
        MNIST_CLASSES,
        &images_path,
        &labels_path,
    )
}

/// Loads MNIST from `dir`: [`TRAIN_IMAGES`], [`TRAIN_LABELS`], [`TEST_IMAGES`] and
/// [`TEST_LABELS`], each either gzip-compressed with a `.gz` suffix (preferred when both
/// exist) or raw without it. Compression is detected from the content.
///
/// All four files are checked (see [`read_idx_images`] and [`read_idx_labels`]), each image
/// file must hold as many items as its label file, and the training and test images must be
/// of one size. The training pixels take 47 MB as `u8`.
///
/// # Errors
///
/// [`DataError::MissingDir`] if `dir` is not a directory, [`DataError::MissingFile`] naming the
/// first file not found, [`DataError::CountMismatch`] if images and labels disagree,
/// [`DataError::ImageSizeMismatch`] if training and test images differ in rows or columns,
/// and any error of [`read_idx_images`] / [`read_idx_labels`] (which read each file within
/// its length and what its header can honestly claim).
///
/// # Example
///
/// ```
/// use dendrite_nn::data::{load_mnist, mnist_dir_from_env};
///
/// if let Some(dir) = mnist_dir_from_env() {
///     let mnist = load_mnist(&dir)?;
///     assert_eq!((mnist.train.len(), mnist.test.len()), (60_000, 10_000));
/// }
/// # Ok::<(), dendrite_nn::data::DataError>(())
/// ```
pub fn load_mnist(dir: &Path) -> Result<Mnist, DataError> {
    if !dir.is_dir() {
        return Err(DataError::MissingDir {
            path: dir.to_path_buf(),
        });
    }
    // Check all four names up front, so a missing test file is reported before the training
    // set is decompressed.
    for name in [TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS] {
        find_file(dir, name)?;
    }
    let train = load_split(dir, TRAIN_IMAGES, TRAIN_LABELS)?;
    let test = load_split(dir, TEST_IMAGES, TEST_LABELS)?;
    if (train.rows(), train.cols()) != (test.rows(), test.cols()) {
        return Err(DataError::ImageSizeMismatch {
            train_path: find_file(dir, TRAIN_IMAGES)?,
            train_rows: train.rows(),
            train_cols: train.cols(),
            test_path: find_file(dir, TEST_IMAGES)?,
            test_rows: test.rows(),
            test_cols: test.cols(),
        });
    }
    Ok(Mnist { train, test })
}
