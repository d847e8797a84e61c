//! Data for training: labelled `u8` images, the MNIST IDX reader, synthetic digits, and
//! shuffled mini-batches.
//!
//! This module builds no graphs: it produces index slices and fills caller-owned `f32`/`f64`
//! buffers, which the training loop then feeds to a graph. It takes one thing from the graph
//! crate, the per-tensor limit ([`dendrite_graph::limits`]): whatever a file's header or a
//! function's argument asks for is held to it, and reserved fallibly, so an absurd size is a
//! [`DataError::TooLarge`], never an abort.
//!
//! Files are read within what they can hold: only regular files, at most their length, and
//! never more than their header can honestly claim (see [`read_idx_images`]).
//!
//! - [`Dataset`]: images and labels kept as `u8` (MNIST's training pixels take 47 MB, not the
//!   188 MB of an `f32` copy), cheap [`split`](Dataset::split)/[`take`](Dataset::take) views,
//!   and [`Dataset::write_batch`] to scale a batch into `[0, 1]` in a reusable buffer.
//! - [`load_mnist`] reads the four MNIST files (gzip or raw) from a directory, checking every
//!   header against the data before trusting it; [`mnist_dir_from_env`] reads
//!   [`MNIST_DIR_ENV`] (`DENDRITE_MNIST_DIR`). Byte-level parsers: [`parse_idx_images`],
//!   [`parse_idx_labels`].
//! - [`synthetic_digits`] / [`synthetic_mnist`]: procedurally drawn digits, **not MNIST**, for
//!   when the files are absent.
//! - [`EpochOrder`] and [`batches`]: a per-epoch permutation, reproducible from
//!   `(seed, epoch)`, cut into `&[usize]` batches.
//!
//! # Example
//!
//! ```
//! use dendrite_nn::data::{load_mnist, mnist_dir_from_env, synthetic_mnist, EpochOrder};
//!
//! let data = match mnist_dir_from_env() {
//!     Some(dir) => load_mnist(&dir)?,
//!     None => synthetic_mnist(0)?,
//! };
//! let (train, valid) = data.train.split(data.train.len() * 9 / 10);
//! let batch = 64;
//! let mut x = vec![0.0f32; batch * train.features()];
//! let mut y = vec![0.0f32; batch * train.classes()];
//! let mut order = EpochOrder::new(train.len(), 42)?;
//! for epoch in 0..2 {
//!     order.shuffle(epoch);
//!     for idx in order.batches(batch)? {
//!         let n = idx.len();
//!         train.write_batch_f32(idx, &mut x[..n * train.features()], &mut y[..n * train.classes()])?;
//!         // ... feed x and y to the model ...
//!     }
//! }
//! assert!(!valid.is_empty());
//! # Ok::<(), dendrite_nn::data::DataError>(())
//! ```

mod batches;
mod dataset;
mod error;
mod idx;
mod inflate;
pub(crate) mod limit;
mod mnist;
mod synthetic;

pub use batches::{batches, shuffled_indices, Batches, EpochOrder};
pub use dataset::{BatchFloat, Dataset};
pub use error::{DataError, IdxPart, IN_MEMORY};
pub use idx::{
    parse_idx_images, parse_idx_labels, read_idx_images, read_idx_labels, IdxImages,
    IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC,
};
pub use inflate::MAX_GZIP_RATIO;
pub use mnist::{
    load_mnist, mnist_dir_from_env, Mnist, MNIST_DIR_ENV, TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES,
    TRAIN_LABELS,
};
pub use synthetic::{synthetic_digits, synthetic_mnist, SYNTHETIC_TEST, SYNTHETIC_TRAIN};

/// Rows per MNIST image.
pub const MNIST_ROWS: usize = 28;
/// Columns per MNIST image.
pub const MNIST_COLS: usize = 28;
/// Pixels per MNIST image (`28 * 28`).
pub const MNIST_FEATURES: usize = MNIST_ROWS * MNIST_COLS;
/// Number of MNIST classes (the digits 0-9).
pub const MNIST_CLASSES: usize = 10;
