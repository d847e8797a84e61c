//! Data for models of several inputs or outputs: [`Inputs`] writes each sample as its inputs'
//! values in turn, [`MultiData`] adds its outputs' targets in turn, without copying the
//! arrays.

use crate::error::{NnError, Result};
use crate::float::Float;
use crate::input::{check_class_indices, check_len, index_error, Data, Features, Targets};
use ndarray::{ArrayViewD, Axis};

/// The inputs of a model of several inputs, one array per input (`[samples, ..shape]`), in
/// the order of [`Model::new`](super::Model::new)'s inputs. Each sample is written as the
/// inputs' values in turn, each flattened row-major: what such a model takes.
///
/// ```
/// use dendrite_nn::{Features, Inputs};
/// let a = ndarray::array![[1.0_f32, 2.0], [3.0, 4.0]];
/// let b = ndarray::array![5.0_f32, 6.0];
/// let inputs = Inputs::new(vec![a.view().into_dyn(), b.view().into_dyn()])?;
/// let mut row = [0.0_f32; 3];
/// inputs.write_features(&[1], &mut row)?;
/// assert_eq!(row, [3.0, 4.0, 6.0]);
/// # Ok::<(), dendrite_nn::NnError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Inputs<'a, F: Float> {
    parts: Vec<ArrayViewD<'a, F>>,
    widths: Vec<usize>,
    len: usize,
}

impl<'a, F: Float> Inputs<'a, F> {
    /// The inputs `parts`, each with its samples along the first axis.
    ///
    /// # Errors
    /// [`NnError::LengthMismatch`] when the parts do not hold as many samples each (or there
    /// are none); [`NnError::FeatureMismatch`] when a sample's size overflows.
    pub fn new(parts: Vec<ArrayViewD<'a, F>>) -> Result<Self> {
        let (len, widths) = sizes(&parts)?;
        Ok(Inputs { parts, widths, len })
    }
}

/// The common sample count of `parts` and each part's values per sample.
fn sizes<F: Float>(parts: &[ArrayViewD<'_, F>]) -> Result<(usize, Vec<usize>)> {
    let len = parts
        .first()
        .map_or(0, |p| p.shape().first().copied().unwrap_or(0));
    let mut widths = Vec::with_capacity(parts.len());
    for p in parts {
        let (&n, sample) = p
            .shape()
            .split_first()
            .ok_or(NnError::LengthMismatch { x: len, y: 0 })?;
        if n != len {
            return Err(NnError::LengthMismatch { x: len, y: n });
        }
        let width = crate::model::checked_product(sample).ok_or(NnError::FeatureMismatch {
            expected: usize::MAX,
            actual: usize::MAX,
        })?;
        widths.push(width);
    }
    if parts.is_empty() {
        return Err(NnError::LengthMismatch { x: 0, y: 0 });
    }
    Ok((len, widths))
}

/// Writes samples `indices` of `parts` into `out`, each sample the parts' values in turn.
/// Allocates nothing (views and copies only).
fn write_parts<F: Float>(
    parts: &[ArrayViewD<'_, F>],
    widths: &[usize],
    indices: &[usize],
    out: &mut [F],
    buffer: &'static str,
) -> Result<()> {
    let per_sample: usize = widths.iter().sum();
    check_len(indices, per_sample, out.len(), buffer)?;
    if per_sample == 0 {
        return Ok(());
    }
    for (&i, row) in indices.iter().zip(out.chunks_exact_mut(per_sample)) {
        let mut at = 0;
        for (part, &w) in parts.iter().zip(widths) {
            let n = part.len_of(Axis(0));
            if i >= n {
                return Err(index_error(i, n));
            }
            let sample = part.index_axis(Axis(0), i);
            let dst = &mut row[at..at + w];
            match sample.as_slice() {
                Some(src) => dst.copy_from_slice(src),
                None => dst.iter_mut().zip(sample.iter()).for_each(|(d, &s)| *d = s),
            }
            at += w;
        }
    }
    Ok(())
}

impl<F: Float> Features<F> for Inputs<'_, F> {
    fn len(&self) -> usize {
        self.len
    }
    fn features(&self) -> usize {
        self.widths.iter().sum()
    }
    fn write_features(&self, indices: &[usize], out: &mut [F]) -> Result<()> {
        write_parts(&self.parts, &self.widths, indices, out, "features")
    }
}

/// Inputs and targets of a model of several inputs or outputs: the [`Inputs`], and one target
/// array per output in the order of [`Model::new`](super::Model::new)'s outputs (`[samples]`
/// class indices or values, or `[samples, ..]` values per output value), written in turn.
///
/// ```
/// use dendrite_nn::{Data, MultiData, Targets};
/// let x = ndarray::array![[0.0_f32, 1.0], [1.0, 0.0]];
/// let class = ndarray::array![2.0_f32, 0.0];
/// let value = ndarray::array![[0.5_f32], [1.5]];
/// let data = MultiData::new(vec![x.view().into_dyn()], vec![class.view().into_dyn(), value.view().into_dyn()])?;
/// let mut targets = [0.0_f32; 2];
/// data.write_targets(&[1], Targets::Values { width: 2 }, &mut targets)?;
/// assert_eq!(targets, [0.0, 1.5]);
/// # Ok::<(), dendrite_nn::NnError>(())
/// ```
#[derive(Debug, Clone)]
pub struct MultiData<'a, F: Float> {
    inputs: Inputs<'a, F>,
    targets: Vec<ArrayViewD<'a, F>>,
    widths: Vec<usize>,
}

impl<'a, F: Float> MultiData<'a, F> {
    /// The inputs and each output's targets.
    ///
    /// # Errors
    /// [`NnError::LengthMismatch`] when the arrays do not all hold as many samples.
    pub fn new(inputs: Vec<ArrayViewD<'a, F>>, targets: Vec<ArrayViewD<'a, F>>) -> Result<Self> {
        let inputs = Inputs::new(inputs)?;
        let (len, widths) = sizes(&targets)?;
        if len != inputs.len {
            return Err(NnError::LengthMismatch {
                x: inputs.len,
                y: len,
            });
        }
        Ok(MultiData {
            inputs,
            targets,
            widths,
        })
    }
}

impl<F: Float> Features<F> for MultiData<'_, F> {
    fn len(&self) -> usize {
        self.inputs.len
    }
    fn features(&self) -> usize {
        self.inputs.features()
    }
    fn write_features(&self, indices: &[usize], out: &mut [F]) -> Result<()> {
        self.inputs.write_features(indices, out)
    }
}

impl<F: Float> Data<F> for MultiData<'_, F> {
    /// The targets' values per sample, all outputs together, must be what the loss reads (a
    /// model's [`Loss::Outputs`](crate::Loss::Outputs) checks each output's part when it fits).
    fn check_targets(&self, targets: Targets) -> Result<()> {
        let actual: usize = self.widths.iter().sum();
        match targets {
            Targets::ClassIndices { classes } if actual == 1 => {
                check_class_indices(self.targets[0].iter().copied(), classes)
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
        let actual: usize = self.widths.iter().sum();
        if targets.width() != actual {
            return Err(NnError::TargetMismatch {
                loss: "the loss",
                expected: targets.width(),
                actual,
            });
        }
        write_parts(&self.targets, &self.widths, indices, out, "targets")
    }
}
