//! Training data as the model sees it: samples addressed by index, written batch by batch into
//! buffers the model owns and reuses.

use crate::data::Dataset;
use crate::error::{NnError, Result};
use crate::float::Float;
use ndarray::{ArrayBase, Data as Storage, Ix1, Ix2};

/// What a loss needs as targets, per sample.
///
/// ```
/// use dendrite_nn::Targets;
/// assert_eq!(Targets::ClassIndices { classes: 10 }.width(), 1);
/// assert_eq!(Targets::Values { width: 3 }.width(), 3);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Targets {
    /// One class index in `0..classes`, written as a float (sparse categorical losses).
    ClassIndices {
        /// The number of classes.
        classes: usize,
    },
    /// `width` values (one-hot rows, regression targets, binary labels).
    Values {
        /// Values per sample.
        width: usize,
    },
}

impl Targets {
    /// Values written per sample.
    ///
    /// ```
    /// assert_eq!(dendrite_nn::Targets::Values { width: 10 }.width(), 10);
    /// ```
    pub fn width(self) -> usize {
        match self {
            Targets::ClassIndices { .. } => 1,
            Targets::Values { width } => width,
        }
    }
}

/// Inputs addressed by sample index.
///
/// ```
/// use dendrite_nn::Features;
/// let x = ndarray::array![[1.0_f32, 2.0], [3.0, 4.0]];
/// let mut out = [0.0_f32; 2];
/// x.view().write_features(&[1], &mut out)?;
/// assert_eq!(out, [3.0, 4.0]);
/// assert_eq!(Features::<f32>::features(&x), 2);
/// # Ok::<(), dendrite_nn::NnError>(())
/// ```
pub trait Features<F: Float> {
    /// Number of samples.
    fn len(&self) -> usize;
    /// Whether there are no samples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Values per sample.
    fn features(&self) -> usize;
    /// The shape of one sample (without the batch axis) when the data know it, as a
    /// [`Dataset`](crate::data::Dataset) does (`[28, 28, 1]`); a model then refuses data whose
    /// shape is not its input shape. `None` (the default, for a plain matrix) means only
    /// [`features`](Features::features) values per sample, which feed any model input with
    /// that many values (row-major).
    fn sample_shape(&self) -> Option<Vec<usize>> {
        None
    }
    /// Writes the samples `indices` row after row into `out` (`indices.len() * features()`
    /// values). Must not allocate: it runs on every training step.
    ///
    /// # Errors
    /// A buffer of the wrong length or an index out of range.
    fn write_features(&self, indices: &[usize], out: &mut [F]) -> Result<()>;

    /// The first feature that is NaN or infinite, as `(sample, feature, value)`, or `None`.
    /// `fit`, `evaluate` and `predict` call it once per dataset, before any step. The default
    /// reads the samples through [`Features::write_features`], [`SCAN_CHUNK`] at a time; ndarray
    /// inputs scan their elements directly, and the `u8` [`Dataset`] answers `None` at once.
    ///
    /// # Errors
    /// Those of [`Features::write_features`]; a scan buffer too large to allocate.
    ///
    /// ```
    /// use dendrite_nn::Features;
    /// let x = ndarray::array![[0.0_f32, 1.0], [f32::NAN, 2.0]];
    /// assert_eq!(x.first_non_finite()?.map(|(s, f, _)| (s, f)), Some((1, 0)));
    /// # Ok::<(), dendrite_nn::NnError>(())
    /// ```
    fn first_non_finite(&self) -> Result<Option<(usize, usize, f64)>> {
        scan(
            self.len(),
            self.features(),
            |idx, out| self.write_features(idx, out),
            |v| !v.is_finite(),
        )
    }
}

/// Samples a default scan ([`Features::first_non_finite`], [`Data::first_target_outside`])
/// reads at a time.
pub const SCAN_CHUNK: usize = 256;

/// Reads `len` samples of `width` values through `write`, [`SCAN_CHUNK`] at a time, and
/// returns the first value for which `bad` holds, as `(sample, position, value)`.
fn scan<F: Float>(
    len: usize,
    width: usize,
    mut write: impl FnMut(&[usize], &mut [F]) -> Result<()>,
    bad: impl Fn(f64) -> bool,
) -> Result<Option<(usize, usize, f64)>> {
    if len == 0 || width == 0 {
        return Ok(None);
    }
    let chunk = SCAN_CHUNK.min(len);
    let dims = [chunk, width];
    let n = dendrite_graph::limits::check_size::<F>("scan", "data", &dims)?;
    let mut buffer = Vec::new();
    buffer
        .try_reserve_exact(n)
        .map_err(|_| dendrite_graph::GraphError::AllocationFailed {
            op: "scan",
            node: "data".into(),
            bytes: n.saturating_mul(std::mem::size_of::<F>()),
        })?;
    buffer.resize(n, F::zero());
    let mut indices = Vec::with_capacity(chunk);
    let mut start = 0;
    while start < len {
        let end = (start + chunk).min(len);
        indices.clear();
        indices.extend(start..end);
        let out = &mut buffer[..(end - start) * width];
        write(&indices, out)?;
        if let Some(at) = out.iter().position(|v| bad(v.as_f64())) {
            return Ok(Some((start + at / width, at % width, out[at].as_f64())));
        }
        start = end;
    }
    Ok(None)
}

/// The first element of `x` for which `bad` holds, as `(row, column, value)`.
fn first_in_rows<F: Float, S: Storage<Elem = F>>(
    x: &ArrayBase<S, Ix2>,
    bad: impl Fn(f64) -> bool,
) -> Option<(usize, usize, f64)> {
    let cols = x.ncols().max(1);
    if let Some(flat) = x.as_slice() {
        let at = flat.iter().position(|v| bad(v.as_f64()))?;
        return Some((at / cols, at % cols, flat[at].as_f64()));
    }
    x.indexed_iter()
        .find(|(_, v)| bad(v.as_f64()))
        .map(|((i, j), v)| (i, j, v.as_f64()))
}

/// Whether `v` is not a finite number in `[low, high]`.
fn outside(low: f64, high: f64) -> impl Fn(f64) -> bool {
    move |v: f64| !(v.is_finite() && v >= low && v <= high)
}

/// Inputs with targets: what `fit` and `evaluate` take.
///
/// ```
/// use dendrite_nn::{Data, Targets};
/// let x = ndarray::array![[0.0_f32, 1.0], [1.0, 1.0]];
/// let y = ndarray::array![1.0_f32, 0.0];
/// let data = (x.view(), y.view());
/// data.check_targets(Targets::ClassIndices { classes: 2 })?;
/// assert!(data.check_targets(Targets::ClassIndices { classes: 1 }).is_err());
/// # Ok::<(), dendrite_nn::NnError>(())
/// ```
///
/// [`Features`] gives the inputs (for `predict`), [`Data`] adds the targets (for `fit` and
/// `evaluate`). Both are implemented for
///
/// - the data module's `u8` [`Dataset`] (pixels are scaled to `[0, 1]` per batch, so the images
///   stay `u8` in memory),
/// - ndarray matrices `x` (`ArrayView2`, `Array2`, ...) and pairs `(x, y)` with `y` a vector
///   (one target per sample: a class index or a value) or a matrix (one row per sample).
pub trait Data<F: Float>: Features<F> {
    /// Checks, once before training, that every target fits `targets`: as many targets as
    /// samples, the right width, class indices that are integers in range.
    ///
    /// # Errors
    /// [`NnError::LengthMismatch`], [`NnError::TargetMismatch`], [`NnError::LabelOutOfRange`].
    fn check_targets(&self, targets: Targets) -> Result<()>;
    /// Writes the targets of `indices` into `out` (`indices.len() * targets.width()` values).
    /// Must not allocate.
    ///
    /// # Errors
    /// A buffer of the wrong length, an index out of range, targets that do not fit.
    fn write_targets(&self, indices: &[usize], targets: Targets, out: &mut [F]) -> Result<()>;

    /// The first target, written as `targets` says, that is NaN, infinite or outside
    /// `[low, high]`, as `(sample, position, value)`, or `None`. Called once per dataset before
    /// any step: with infinite bounds it checks that targets are finite, with `[0, 1]` that they
    /// fit binary cross-entropy. The default reads them through [`Data::write_targets`].
    ///
    /// # Errors
    /// Those of [`Data::write_targets`].
    ///
    /// ```
    /// use dendrite_nn::{Data, Targets};
    /// let (x, y) = (ndarray::array![[0.0_f32], [1.0]], ndarray::array![0.5_f32, 2.0]);
    /// let found = (x.view(), y.view()).first_target_outside(Targets::Values { width: 1 }, 0.0, 1.0)?;
    /// assert_eq!(found, Some((1, 0, 2.0)));
    /// # Ok::<(), dendrite_nn::NnError>(())
    /// ```
    fn first_target_outside(
        &self,
        targets: Targets,
        low: f64,
        high: f64,
    ) -> Result<Option<(usize, usize, f64)>> {
        scan(
            self.len(),
            targets.width(),
            |idx, out| self.write_targets(idx, targets, out),
            outside(low, high),
        )
    }
}

fn buffer_error(expected: usize, actual: usize, buffer: &'static str) -> NnError {
    NnError::Data(crate::data::DataError::BufferSize {
        buffer,
        expected,
        actual,
    })
}

pub(crate) fn index_error(index: usize, len: usize) -> NnError {
    NnError::Data(crate::data::DataError::IndexOutOfRange { index, len })
}

pub(crate) fn check_len(
    indices: &[usize],
    per_sample: usize,
    out: usize,
    buffer: &'static str,
) -> Result<()> {
    let expected = indices.len().saturating_mul(per_sample);
    if expected == out {
        Ok(())
    } else {
        Err(buffer_error(expected, out, buffer))
    }
}

/// The first target that is not a class index in `0..classes`.
pub(crate) fn check_class_indices<F: Float>(
    values: impl Iterator<Item = F>,
    classes: usize,
) -> Result<()> {
    for (index, v) in values.enumerate() {
        let label = v.as_f64();
        if !(label >= 0.0 && label < classes as f64 && label.fract() == 0.0) {
            return Err(NnError::LabelOutOfRange {
                index,
                label,
                classes,
            });
        }
    }
    Ok(())
}

impl<F: Float> Features<F> for Dataset {
    fn len(&self) -> usize {
        Dataset::len(self)
    }
    fn features(&self) -> usize {
        Dataset::features(self)
    }
    fn sample_shape(&self) -> Option<Vec<usize>> {
        Some(Dataset::sample_shape(self).to_vec())
    }
    /// [`Dataset::write_images`]: `pixel / 255`, into `[0, 1]`.
    fn write_features(&self, indices: &[usize], out: &mut [F]) -> Result<()> {
        Ok(self.write_images(indices, out)?)
    }
    /// Pixels are bytes: always finite.
    fn first_non_finite(&self) -> Result<Option<(usize, usize, f64)>> {
        Ok(None)
    }
}

impl<F: Float> Data<F> for Dataset {
    fn check_targets(&self, targets: Targets) -> Result<()> {
        match targets {
            Targets::ClassIndices { classes } => {
                if self.classes() > classes
                    && let Some((index, &label)) = self
                        .labels()
                        .iter()
                        .enumerate()
                        .find(|&(_, &l)| usize::from(l) >= classes)
                {
                    return Err(NnError::LabelOutOfRange {
                        index,
                        label: f64::from(label),
                        classes,
                    });
                }
                Ok(())
            }
            Targets::Values { width } if width == self.classes() => Ok(()),
            Targets::Values { width } => Err(NnError::TargetMismatch {
                loss: "the loss",
                expected: width,
                actual: self.classes(),
            }),
        }
    }

    fn write_targets(&self, indices: &[usize], targets: Targets, out: &mut [F]) -> Result<()> {
        match targets {
            Targets::ClassIndices { .. } => Ok(self.write_class_indices(indices, out)?),
            Targets::Values { width } if width == self.classes() => {
                Ok(self.write_one_hot(indices, out)?)
            }
            Targets::Values { width } => Err(NnError::TargetMismatch {
                loss: "the loss",
                expected: width,
                actual: self.classes(),
            }),
        }
    }
}

fn write_rows<F: Float, S: Storage<Elem = F>>(
    x: &ArrayBase<S, Ix2>,
    indices: &[usize],
    out: &mut [F],
) -> Result<()> {
    let (n, f) = x.dim();
    check_len(indices, f, out.len(), "features")?;
    if f == 0 {
        return Ok(());
    }
    for (&i, dst) in indices.iter().zip(out.chunks_exact_mut(f)) {
        if i >= n {
            return Err(index_error(i, n));
        }
        let row = x.row(i);
        match row.as_slice() {
            Some(src) => dst.copy_from_slice(src),
            None => {
                for (d, &s) in dst.iter_mut().zip(row.iter()) {
                    *d = s;
                }
            }
        }
    }
    Ok(())
}

impl<F: Float, S: Storage<Elem = F>> Features<F> for ArrayBase<S, Ix2> {
    fn len(&self) -> usize {
        self.nrows()
    }
    fn features(&self) -> usize {
        self.ncols()
    }
    fn write_features(&self, indices: &[usize], out: &mut [F]) -> Result<()> {
        write_rows(self, indices, out)
    }
    fn first_non_finite(&self) -> Result<Option<(usize, usize, f64)>> {
        Ok(first_in_rows(self, |v| !v.is_finite()))
    }
}

impl<F: Float, S: Storage<Elem = F>, T> Features<F> for (ArrayBase<S, Ix2>, T) {
    fn len(&self) -> usize {
        self.0.nrows()
    }
    fn features(&self) -> usize {
        self.0.ncols()
    }
    fn write_features(&self, indices: &[usize], out: &mut [F]) -> Result<()> {
        write_rows(&self.0, indices, out)
    }
    fn first_non_finite(&self) -> Result<Option<(usize, usize, f64)>> {
        Ok(first_in_rows(&self.0, |v| !v.is_finite()))
    }
}

/// `y` a vector: one target per sample, a class index or a single value.
impl<F: Float, S: Storage<Elem = F>, T: Storage<Elem = F>> Data<F>
    for (ArrayBase<S, Ix2>, ArrayBase<T, Ix1>)
{
    fn check_targets(&self, targets: Targets) -> Result<()> {
        let (x, y) = (self.0.nrows(), self.1.len());
        if x != y {
            return Err(NnError::LengthMismatch { x, y });
        }
        match targets {
            Targets::ClassIndices { classes } => {
                check_class_indices(self.1.iter().copied(), classes)
            }
            Targets::Values { width: 1 } => Ok(()),
            Targets::Values { width } => Err(NnError::TargetMismatch {
                loss: "the loss",
                expected: width,
                actual: 1,
            }),
        }
    }

    fn write_targets(&self, indices: &[usize], targets: Targets, out: &mut [F]) -> Result<()> {
        if targets.width() != 1 {
            return Err(NnError::TargetMismatch {
                loss: "the loss",
                expected: targets.width(),
                actual: 1,
            });
        }
        check_len(indices, 1, out.len(), "targets")?;
        let y = &self.1;
        for (&i, dst) in indices.iter().zip(out.iter_mut()) {
            *dst = *y.get(i).ok_or_else(|| index_error(i, y.len()))?;
        }
        Ok(())
    }

    fn first_target_outside(
        &self,
        _targets: Targets,
        low: f64,
        high: f64,
    ) -> Result<Option<(usize, usize, f64)>> {
        let bad = outside(low, high);
        Ok(self
            .1
            .iter()
            .position(|v| bad(v.as_f64()))
            .map(|i| (i, 0, self.1[i].as_f64())))
    }
}

/// `y` a matrix: one row of targets per sample (one-hot rows, several outputs).
impl<F: Float, S: Storage<Elem = F>, T: Storage<Elem = F>> Data<F>
    for (ArrayBase<S, Ix2>, ArrayBase<T, Ix2>)
{
    fn check_targets(&self, targets: Targets) -> Result<()> {
        let (x, y) = (self.0.nrows(), self.1.nrows());
        if x != y {
            return Err(NnError::LengthMismatch { x, y });
        }
        let actual = self.1.ncols();
        match targets {
            Targets::ClassIndices { classes } if actual == 1 => {
                check_class_indices(self.1.iter().copied(), classes)
            }
            Targets::Values { width } if width == actual => Ok(()),
            _ => Err(NnError::TargetMismatch {
                loss: "the loss",
                expected: targets.width(),
                actual,
            }),
        }
    }

    fn write_targets(&self, indices: &[usize], targets: Targets, out: &mut [F]) -> Result<()> {
        if targets.width() != self.1.ncols() {
            return Err(NnError::TargetMismatch {
                loss: "the loss",
                expected: targets.width(),
                actual: self.1.ncols(),
            });
        }
        write_rows(&self.1, indices, out)
    }

    fn first_target_outside(
        &self,
        _targets: Targets,
        low: f64,
        high: f64,
    ) -> Result<Option<(usize, usize, f64)>> {
        Ok(first_in_rows(&self.1, outside(low, high)))
    }
}
