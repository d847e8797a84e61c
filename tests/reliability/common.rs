//! Helpers shared by the reliability tests: scratch directories, hand-built IDX files, small
//! models, bit patterns, and the largest single allocation (the tracker itself lives in
//! `dendrite_test_support::alloc`, shared with the nn crate's data tests).

use dendrite_nn::data::{TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS};
use dendrite_nn::{Activation, Adam, Dense, FitConfig, Loss, Metric, Sequential};
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------------------------
// Scratch directories (no tempfile crate: a unique name under the system's temp directory).

/// A fresh directory, removed again when dropped.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "dendrite-reliability-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `bytes` to `name` inside the directory and returns the file's path.
    pub fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// The names of the files in the directory, sorted.
    pub fn listing(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------------------------
// Hand-built IDX files (the format is described in `dendrite_nn::data`).

pub use dendrite_test_support::idx::{gzip, idx_images, idx_labels};

/// Four 28x28 images with labels 0..4, as the MNIST example needs them.
pub fn digit_images() -> Vec<u8> {
    let pixels: Vec<u8> = (0..4 * 784).map(|i| (i % 251) as u8).collect();
    idx_images(4, 28, 28, &pixels)
}

pub fn digit_labels() -> Vec<u8> {
    idx_labels(4, &[0, 1, 2, 3])
}

/// Writes the four MNIST files (gzip-compressed, valid) into `dir`.
pub fn write_mnist(dir: &Scratch) {
    for (name, bytes) in [
        (TRAIN_IMAGES, digit_images()),
        (TRAIN_LABELS, digit_labels()),
        (TEST_IMAGES, digit_images()),
        (TEST_LABELS, digit_labels()),
    ] {
        dir.write(&format!("{name}.gz"), &gzip(&bytes));
    }
}

// ---------------------------------------------------------------------------------------------
// Small models.

/// `features` inputs, a hidden ReLU layer of `hidden` units, a softmax over `classes`, and an
/// optional third layer.
pub fn classifier(seed: u64, features: usize, hidden: usize, classes: usize) -> Sequential {
    let mut model = Sequential::new().with_seed(seed);
    model.add(
        Dense::new(hidden)
            .input_dim(features)
            .activation(Activation::Relu),
    );
    model.add(Dense::new(classes).activation(Activation::Softmax));
    model
        .compile(
            Adam::default(),
            Loss::SparseCategoricalCrossentropy,
            &[Metric::Accuracy],
        )
        .unwrap();
    model
}

pub fn quiet() -> FitConfig<'static> {
    FitConfig::default().verbosity(0)
}

/// The weights as bit patterns, so that comparisons are exact (NaN included).
pub fn weight_bits(model: &Sequential) -> Vec<(String, Vec<u32>)> {
    model
        .weights()
        .unwrap()
        .into_iter()
        .map(|(name, w)| (name, w.iter().map(|v| v.to_bits()).collect()))
        .collect()
}

pub fn f64_bits(values: &[f64]) -> Vec<u64> {
    values.iter().map(|v| v.to_bits()).collect()
}

// ---------------------------------------------------------------------------------------------
// The largest single allocation made by the current thread (the tracker shared with the nn
// crate's data tests), and what a file of a given length justifies.

pub use dendrite_test_support::alloc::largest_allocation;

/// The largest single allocation a reader may make for a file of `len` bytes: the file itself,
/// or for gzip (a name ending in `.gz`) what deflate can expand it to (at most 1032:1) plus the
/// decoder's fixed state (about 43 KB for its 32 KB window and tables); plus bookkeeping.
pub fn justified(name: &str, len: usize) -> usize {
    const BOOKKEEPING: usize = 4 << 10;
    const INFLATE_STATE: usize = 64 << 10;
    if name.ends_with(".gz") {
        1032 * len + INFLATE_STATE + BOOKKEEPING
    } else {
        len + BOOKKEEPING
    }
}
