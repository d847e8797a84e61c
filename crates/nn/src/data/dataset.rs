//! [`Dataset`]: labelled `u8` images, written into float batches on demand.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::error::{DataError, IN_MEMORY};

/// A float type that batches can be written in: `f32` or `f64`.
///
/// Implement it for another float type to use that type with [`Dataset::write_batch`].
pub trait BatchFloat: Copy {
    /// Zero (the "off" entry of a one-hot row).
    const ZERO: Self;
    /// One (the "on" entry of a one-hot row).
    const ONE: Self;
    /// `v / 255`, the pixel value scaled into `[0, 1]`.
    fn from_pixel(v: u8) -> Self;
    /// `v` converted exactly (class indices are small).
    fn from_class(v: u8) -> Self;
    /// Writes [`BatchFloat::from_pixel`] of every byte of `pixels` into `out`, pairing them up
    /// to the shorter of the two. Override it only with a faster loop giving the same values:
    /// [`Dataset::write_images`] writes every batch through it.
    fn from_pixels(pixels: &[u8], out: &mut [Self]) {
        for (d, &p) in out.iter_mut().zip(pixels) {
            *d = Self::from_pixel(p);
        }
    }
}

impl BatchFloat for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    fn from_pixel(v: u8) -> Self {
        f32::from(v) / 255.0
    }
    fn from_class(v: u8) -> Self {
        f32::from(v)
    }
    fn from_pixels(pixels: &[u8], out: &mut [Self]) {
        pixels_f32(pixels, out);
    }
}

impl BatchFloat for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    fn from_pixel(v: u8) -> Self {
        f64::from(v) / 255.0
    }
    fn from_class(v: u8) -> Self {
        f64::from(v)
    }
}

/// `p / 255` for every byte, exactly as [`BatchFloat::from_pixel`] computes it, through
/// [`convert`] compiled for the best instruction set this CPU has.
fn pixels_f32(pixels: &[u8], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if dendrite_graph::cpu::has_avx2_fma() {
        // SAFETY: the CPU supports AVX2 and FMA, the features `convert_avx2` is compiled for;
        // the function itself is safe code.
        #[allow(unsafe_code)]
        unsafe {
            convert_avx2(pixels, out);
        }
        return;
    }
    convert::<false>(pixels, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn convert_avx2(pixels: &[u8], out: &mut [f32]) {
    convert::<true>(pixels, out);
}

/// `p / 255` for every byte, with a division, or with `FMA` a multiplication made exact.
///
/// Multiplying by a rounded `1/255` alone is *not* exact: it differs from the division in the
/// last bit for 126 of the 256 byte values. One correction step with fused multiply-adds makes
/// it exact, `q = p r`, then `q + (p - 255 q) r` with `r = 1/255` rounded: the classic
/// refinement of a quotient, which for each of the 256 possible inputs gives the correctly
/// rounded `p / 255` (checked for all of them by `pixels_are_exact_quotients` below), so both
/// builds write the same floats. With AVX2 it is faster than dividing eight at a time
/// (measured on the book's performance page, `docs/src/performance.md`).
#[inline(always)]
fn convert<const FMA: bool>(pixels: &[u8], out: &mut [f32]) {
    const INV: f32 = 1.0 / 255.0;
    for (d, &p) in out.iter_mut().zip(pixels) {
        let x = f32::from(p);
        *d = if FMA {
            let q = x * INV;
            (-q).mul_add(255.0, x).mul_add(INV, q)
        } else {
            x / 255.0
        };
    }
}

/// Labelled images kept as `u8`: `len` images of `rows x cols` pixels, row-major, and one label
/// in `0..classes` per image.
///
/// The bytes are shared (`Arc`), so [`Dataset::split`], [`Dataset::take`] and `clone` are O(1)
/// views that copy nothing. Floats exist only in the batch buffers the caller hands to
/// [`Dataset::write_batch`], so the 47 MB of MNIST training pixels never become 188 MB of `f32`.
///
/// # Example
///
/// ```
/// use dendrite_nn::data::Dataset;
///
/// // Two 1x2 images with labels 0 and 1.
/// let ds = Dataset::new(vec![0, 255, 51, 102], vec![0, 1], 1, 2, 2)?;
/// let mut x = [0.0f32; 2];
/// let mut y = [0.0f32; 2];
/// ds.write_batch(&[1], &mut x, &mut y)?;
/// assert_eq!(x, [0.2, 0.4]);
/// assert_eq!(y, [0.0, 1.0]);
/// # Ok::<(), dendrite_nn::data::DataError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Dataset {
    images: Arc<Vec<u8>>,
    labels: Arc<Vec<u8>>,
    /// First visible sample in the shared buffers.
    start: usize,
    /// Number of visible samples.
    len: usize,
    rows: usize,
    cols: usize,
    classes: usize,
    /// The shape a sample is fed in: `[rows * cols]` unless
    /// [`with_sample_shape`](Dataset::with_sample_shape) chose another (shared: views copy
    /// no shape).
    sample: Arc<[usize]>,
}

impl Dataset {
    /// Builds a dataset from row-major pixels (`labels.len() * rows * cols` bytes) and labels.
    ///
    /// # Errors
    ///
    /// [`DataError::BadShape`] if `rows`, `cols` or `classes` is zero, `classes > 256`, or the
    /// pixel count is not a whole number of images; [`DataError::CountMismatch`] if the number
    /// of images differs from the number of labels; [`DataError::LabelOutOfRange`] for a label
    /// `>= classes`.
    ///
    /// # Example
    ///
    /// ```
    /// use dendrite_nn::data::Dataset;
    ///
    /// let ds = Dataset::new(vec![0; 3 * 4], vec![0, 1, 2], 2, 2, 3)?;
    /// assert_eq!((ds.len(), ds.features(), ds.classes()), (3, 4, 3));
    /// # Ok::<(), dendrite_nn::data::DataError>(())
    /// ```
    pub fn new(
        images: Vec<u8>,
        labels: Vec<u8>,
        rows: usize,
        cols: usize,
        classes: usize,
    ) -> Result<Self, DataError> {
        let memory = Path::new(IN_MEMORY);
        Self::from_parts(images, labels, rows, cols, classes, memory, memory)
    }

    /// [`Dataset::new`] with the file names to put in errors.
    pub(crate) fn from_parts(
        images: Vec<u8>,
        labels: Vec<u8>,
        rows: usize,
        cols: usize,
        classes: usize,
        images_path: &Path,
        labels_path: &Path,
    ) -> Result<Self, DataError> {
        let bad_shape = || DataError::BadShape {
            pixels: images.len(),
            rows,
            cols,
            classes,
        };
        let features = rows.checked_mul(cols).ok_or_else(bad_shape)?;
        if features == 0 || classes == 0 || classes > 256 {
            return Err(bad_shape());
        }
        let count = images.len() / features;
        if count * features != images.len() {
            return Err(bad_shape());
        }
        if count != labels.len() {
            return Err(DataError::CountMismatch {
                images_path: images_path.to_path_buf(),
                images: count,
                labels_path: labels_path.to_path_buf(),
                labels: labels.len(),
            });
        }
        check_labels(&labels, classes, labels_path)?;
        Ok(Self {
            images: Arc::new(images),
            labels: Arc::new(labels),
            start: 0,
            len: count,
            rows,
            cols,
            classes,
            sample: Arc::from([features]),
        })
    }

    /// A dataset from parts the caller has built consistent (the synthetic generator):
    /// `images.len() == labels.len() * rows * cols`, labels `< classes`. Not re-checked.
    pub(crate) fn from_generated(
        images: Vec<u8>,
        labels: Vec<u8>,
        rows: usize,
        cols: usize,
        classes: usize,
    ) -> Self {
        let len = labels.len();
        let sample = Arc::from([rows * cols]);
        Self {
            images: Arc::new(images),
            labels: Arc::new(labels),
            start: 0,
            len,
            rows,
            cols,
            classes,
            sample,
        }
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the dataset has no samples.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Pixels per image (`rows * cols`, 784 for MNIST).
    pub fn features(&self) -> usize {
        self.rows * self.cols
    }

    /// The shape one sample is fed to a model in (without the batch axis): `[784]` for MNIST
    /// as loaded, `[28, 28, 1]` after [`with_sample_shape`](Dataset::with_sample_shape).
    ///
    /// ```
    /// use dendrite_nn::data::Dataset;
    /// let ds = Dataset::new(vec![0; 2 * 6], vec![0, 1], 2, 3, 2)?;
    /// assert_eq!(ds.sample_shape(), &[6]);
    /// # Ok::<(), dendrite_nn::data::DataError>(())
    /// ```
    pub fn sample_shape(&self) -> &[usize] {
        &self.sample
    }

    /// The same samples (nothing copied: the pixels stay shared `u8`, converted per batch) fed
    /// in shape `shape`, row-major: `[28, 28, 1]` gives MNIST to a convnet (height, width,
    /// channels, Keras' `channels_last`).
    ///
    /// # Errors
    /// [`DataError::SampleShape`] when `shape` does not hold exactly
    /// [`features`](Dataset::features) values, or has a zero axis.
    ///
    /// ```
    /// use dendrite_nn::data::Dataset;
    /// let ds = Dataset::new(vec![0; 2 * 6], vec![0, 1], 2, 3, 2)?.with_sample_shape([2, 3, 1])?;
    /// assert_eq!(ds.sample_shape(), &[2, 3, 1]);
    /// assert!(ds.clone().with_sample_shape([4]).is_err());
    /// # Ok::<(), dendrite_nn::data::DataError>(())
    /// ```
    pub fn with_sample_shape(mut self, shape: impl Into<Vec<usize>>) -> Result<Self, DataError> {
        let shape = shape.into();
        let count = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        if shape.is_empty() || shape.contains(&0) || count != Some(self.features()) {
            return Err(DataError::SampleShape {
                shape,
                features: self.features(),
            });
        }
        self.sample = Arc::from(shape);
        Ok(self)
    }

    /// Rows per image (28 for MNIST).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns per image (28 for MNIST).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Number of classes (10 for MNIST); labels lie in `0..classes`.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// All pixels of this view, row-major, `len() * features()` bytes.
    pub fn images(&self) -> &[u8] {
        let f = self.features();
        self.images
            .get(self.start * f..(self.start + self.len) * f)
            .unwrap_or(&[])
    }

    /// All labels of this view, `len()` bytes.
    pub fn labels(&self) -> &[u8] {
        self.labels.get(self.sample_range()).unwrap_or(&[])
    }

    /// The pixels of sample `i`, or `None` if `i >= len()`.
    ///
    /// # Example
    ///
    /// ```
    /// use dendrite_nn::data::synthetic_digits;
    ///
    /// let ds = synthetic_digits(3, 7)?;
    /// assert_eq!(ds.image(2).map(<[u8]>::len), Some(784));
    /// assert!(ds.image(3).is_none());
    /// # Ok::<(), dendrite_nn::data::DataError>(())
    /// ```
    pub fn image(&self, i: usize) -> Option<&[u8]> {
        if i >= self.len {
            return None;
        }
        let f = self.features();
        let at = (self.start + i) * f;
        self.images.get(at..at + f)
    }

    /// The label of sample `i`, or `None` if `i >= len()`.
    pub fn label(&self, i: usize) -> Option<u8> {
        if i >= self.len {
            return None;
        }
        self.labels.get(self.start + i).copied()
    }

    /// How many samples carry each label: a vector of `classes()` counts.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes];
        for &l in self.labels() {
            if let Some(c) = counts.get_mut(usize::from(l)) {
                *c += 1;
            }
        }
        counts
    }

    /// Splits into the first `at` samples and the rest, e.g. a training set and a validation
    /// set. Both halves share the bytes of `self` (nothing is copied). `at` is clamped to
    /// `len()`, as [`Iterator::take`] does.
    ///
    /// # Example
    ///
    /// ```
    /// use dendrite_nn::data::synthetic_digits;
    ///
    /// let (train, valid) = synthetic_digits(100, 1)?.split(90);
    /// assert_eq!((train.len(), valid.len()), (90, 10));
    /// # Ok::<(), dendrite_nn::data::DataError>(())
    /// ```
    pub fn split(&self, at: usize) -> (Dataset, Dataset) {
        let at = at.min(self.len);
        let head = self.view(self.start, at);
        let tail = self.view(self.start + at, self.len - at);
        (head, tail)
    }

    /// The first `n` samples (all of them if `n >= len()`), sharing the bytes of `self`.
    ///
    /// # Example
    ///
    /// ```
    /// use dendrite_nn::data::synthetic_digits;
    ///
    /// let small = synthetic_digits(50, 1)?.take(20);
    /// assert_eq!(small.len(), 20);
    /// # Ok::<(), dendrite_nn::data::DataError>(())
    /// ```
    pub fn take(&self, n: usize) -> Dataset {
        self.view(self.start, n.min(self.len))
    }

    fn view(&self, start: usize, len: usize) -> Dataset {
        Dataset {
            start,
            len,
            ..self.clone()
        }
    }

    fn sample_range(&self) -> Range<usize> {
        self.start..self.start + self.len
    }

    /// Checks every index and both buffer lengths before anything is written.
    fn check_batch(
        &self,
        indices: &[usize],
        buffer: &'static str,
        per_sample: usize,
        actual: usize,
    ) -> Result<(), DataError> {
        let expected = indices.len().saturating_mul(per_sample);
        if actual != expected {
            return Err(DataError::BufferSize {
                buffer,
                expected,
                actual,
            });
        }
        match indices.iter().find(|&&i| i >= self.len) {
            Some(&index) => Err(DataError::IndexOutOfRange {
                index,
                len: self.len,
            }),
            None => Ok(()),
        }
    }

    /// Writes the images of `indices`, scaled by `1/255` into `[0, 1]`, row after row into
    /// `out` (`indices.len() * features()` values). Nothing is allocated.
    ///
    /// # Errors
    ///
    /// [`DataError::BufferSize`] if `out` has the wrong length, [`DataError::IndexOutOfRange`]
    /// for an index `>= len()`. Both are checked before `out` is touched.
    pub fn write_images<T: BatchFloat>(
        &self,
        indices: &[usize],
        out: &mut [T],
    ) -> Result<(), DataError> {
        let f = self.features();
        self.check_batch(indices, "images", f, out.len())?;
        // A shuffled batch reads its images from all over the 47 MB of MNIST, mostly from main
        // memory. Touching one byte per cache line of every image first (the first and last
        // byte and every 64th between) lets the loads of all the images overlap instead of
        // being waited for one image at a time; the conversion then reads from cache. What is
        // left is those loads: about 7 of the 9 µs a batch of 32 takes on MNIST. (Prefetching
        // the next batch instead, whole or image by image while converting this one, measured
        // no faster: the loads cost the same wherever they are issued.)
        let mut touched = 0u8;
        for &i in indices {
            let pixels = self.image(i).unwrap_or(&[]);
            for &b in pixels.iter().step_by(64).chain(pixels.last()) {
                touched ^= b;
            }
        }
        std::hint::black_box(touched);
        for (&i, row) in indices.iter().zip(out.chunks_exact_mut(f)) {
            T::from_pixels(self.image(i).unwrap_or(&[]), row);
        }
        Ok(())
    }

    /// Writes the labels of `indices` as one-hot rows into `out`
    /// (`indices.len() * classes()` values). Nothing is allocated.
    ///
    /// # Errors
    ///
    /// As [`Dataset::write_images`].
    pub fn write_one_hot<T: BatchFloat>(
        &self,
        indices: &[usize],
        out: &mut [T],
    ) -> Result<(), DataError> {
        let c = self.classes;
        self.check_batch(indices, "labels", c, out.len())?;
        for (&i, row) in indices.iter().zip(out.chunks_exact_mut(c)) {
            let hot = self.label(i).map_or(usize::MAX, usize::from);
            for (k, dst) in row.iter_mut().enumerate() {
                *dst = if k == hot { T::ONE } else { T::ZERO };
            }
        }
        Ok(())
    }

    /// Writes the labels of `indices` as class numbers (`0.0, 1.0, ...`) into `out`
    /// (`indices.len()` values), for losses that take class indices rather than one-hot rows.
    ///
    /// # Errors
    ///
    /// As [`Dataset::write_images`].
    pub fn write_class_indices<T: BatchFloat>(
        &self,
        indices: &[usize],
        out: &mut [T],
    ) -> Result<(), DataError> {
        self.check_batch(indices, "labels", 1, out.len())?;
        for (&i, dst) in indices.iter().zip(out.iter_mut()) {
            *dst = T::from_class(self.label(i).unwrap_or(0));
        }
        Ok(())
    }

    /// Writes a batch: the images of `indices` scaled into `[0, 1]` into `out_x`
    /// (`indices.len() * features()` values) and their one-hot labels into `out_y`
    /// (`indices.len() * classes()` values). Reuse the same two buffers for every batch; for a
    /// last, shorter batch pass the front of them (`&mut x[..n * features]`).
    ///
    /// # Errors
    ///
    /// [`DataError::BufferSize`] if a buffer has the wrong length,
    /// [`DataError::IndexOutOfRange`] for an index `>= len()`; both buffers are checked before
    /// either is written.
    ///
    /// # Example
    ///
    /// ```
    /// use dendrite_nn::data::{synthetic_digits, EpochOrder};
    ///
    /// let ds = synthetic_digits(100, 3)?;
    /// let batch = 32;
    /// let mut x = vec![0.0f64; batch * ds.features()];
    /// let mut y = vec![0.0f64; batch * ds.classes()];
    /// let mut order = EpochOrder::new(ds.len(), 42)?;
    /// order.shuffle(0);
    /// for idx in order.batches(batch)? {
    ///     let (bx, by) = (&mut x[..idx.len() * ds.features()], &mut y[..idx.len() * ds.classes()]);
    ///     ds.write_batch(idx, bx, by)?;
    ///     assert!(bx.iter().all(|&p| (0.0..=1.0).contains(&p)));
    /// }
    /// # Ok::<(), dendrite_nn::data::DataError>(())
    /// ```
    pub fn write_batch<T: BatchFloat>(
        &self,
        indices: &[usize],
        out_x: &mut [T],
        out_y: &mut [T],
    ) -> Result<(), DataError> {
        self.check_batch(indices, "labels", self.classes, out_y.len())?;
        self.write_images(indices, out_x)?;
        self.write_one_hot(indices, out_y)
    }

    /// [`Dataset::write_batch`] for `f32`.
    ///
    /// # Errors
    ///
    /// As [`Dataset::write_batch`].
    pub fn write_batch_f32(
        &self,
        indices: &[usize],
        out_x: &mut [f32],
        out_y: &mut [f32],
    ) -> Result<(), DataError> {
        self.write_batch(indices, out_x, out_y)
    }
}

/// The first label `>= classes`, as an error naming `path`.
pub(crate) fn check_labels(labels: &[u8], classes: usize, path: &Path) -> Result<(), DataError> {
    match labels
        .iter()
        .enumerate()
        .find(|&(_, &v)| usize::from(v) >= classes)
    {
        Some((index, &value)) => Err(DataError::LabelOutOfRange {
            path: PathBuf::from(path),
            index,
            value,
            classes,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast pixel loops give `p / 255` exactly, for every byte value, in both builds.
    #[test]
    fn pixels_are_exact_quotients() {
        let bytes: Vec<u8> = (0..=u8::MAX).collect();
        let want: Vec<f32> = bytes.iter().map(|&p| f32::from(p) / 255.0).collect();
        for body in [convert::<false>, convert::<true>, pixels_f32] {
            let mut got = vec![0.0f32; 256];
            body(&bytes, &mut got);
            let same = got
                .iter()
                .zip(&want)
                .all(|(g, w)| g.to_bits() == w.to_bits());
            assert!(same, "{got:?}");
        }
        let mut got = vec![0.0f64; 256];
        f64::from_pixels(&bytes, &mut got);
        assert!(got
            .iter()
            .zip(&bytes)
            .all(|(&g, &p)| g == f64::from(p) / 255.0));
    }
}
