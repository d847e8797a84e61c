//! A scratch directory for a test's files, removed when the test ends (passing or not).

use std::path::{Path, PathBuf};

/// A fresh directory under the system's temporary one, named after the test and the process
/// (so parallel test binaries do not collide), removed on drop.
///
/// ```
/// let dir = dendrite_test_support::scratch::Scratch::new("doc");
/// std::fs::write(dir.file("a.txt"), b"x").unwrap();
/// assert!(dir.file("a.txt").exists());
/// ```
#[derive(Debug)]
pub struct Scratch(PathBuf);

impl Scratch {
    /// Creates `dendrite-<name>-<pid>` in the temporary directory, emptied first.
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("dendrite-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// `file` inside the directory.
    pub fn file(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Saves `model` as a whole-model file in a scratch directory, loads it back, and checks that
/// the loaded model has the same layers and predicts the same bits on `x`.
pub fn assert_round_trip<F: dendrite_nn::Float>(
    model: &mut dendrite_nn::Sequential<F>,
    x: &ndarray::Array2<F>,
    name: &str,
) -> dendrite_nn::Sequential<F> {
    let dir = Scratch::new(name);
    let path = dir.file("model.dendrite");
    model.save(&path).unwrap();
    let mut loaded = dendrite_nn::Sequential::<F>::load(&path).unwrap();
    assert_eq!(loaded.layer_names(), model.layer_names());
    let n = x.nrows().max(1);
    assert_eq!(
        loaded.predict(&x.view(), n).unwrap(),
        model.predict(&x.view(), n).unwrap()
    );
    loaded
}
