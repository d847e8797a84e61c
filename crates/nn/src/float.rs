//! The element types a model can train in.

use crate::data::BatchFloat;
use dendrite_graph::{Element, Graph};

pub(crate) mod sealed {
    use dendrite_graph::Graph;

    /// Seals [`Float`](super::Float), and lets code generic over it reach the concrete graph
    /// type: a user's loss or metric has one generic method, which cannot sit behind a `dyn`,
    /// so it is stored as an `f32` and an `f64` instance and [`Sealed::pick`] calls the one of
    /// the model's type.
    pub trait Sealed: dendrite_graph::Element {
        /// Calls `on_f32` or `on_f64` with the graph, whichever `Self` is.
        fn pick<R>(
            g: &mut Graph<Self>,
            on_f32: impl FnOnce(&mut Graph<f32>) -> R,
            on_f64: impl FnOnce(&mut Graph<f64>) -> R,
        ) -> R;
    }
    impl Sealed for f32 {
        fn pick<R>(
            g: &mut Graph<f32>,
            on_f32: impl FnOnce(&mut Graph<f32>) -> R,
            _: impl FnOnce(&mut Graph<f64>) -> R,
        ) -> R {
            on_f32(g)
        }
    }
    impl Sealed for f64 {
        fn pick<R>(
            g: &mut Graph<f64>,
            _: impl FnOnce(&mut Graph<f32>) -> R,
            on_f64: impl FnOnce(&mut Graph<f64>) -> R,
        ) -> R {
            on_f64(g)
        }
    }
}

/// Calls `on_f32` or `on_f64` with `g`, whichever element type `F` is.
pub(crate) fn pick<F: Float, R>(
    g: &mut Graph<F>,
    on_f32: impl FnOnce(&mut Graph<f32>) -> R,
    on_f64: impl FnOnce(&mut Graph<f64>) -> R,
) -> R {
    <F as sealed::Sealed>::pick(g, on_f32, on_f64)
}

/// A floating-point type for models: `f32` (the default, as in Keras) or `f64` (for checks).
///
/// It joins what the graph needs ([`Element`]), what the data module writes batches in
/// ([`BatchFloat`]) and the little-endian byte form used by checkpoints. The trait is sealed.
///
/// ```
/// use dendrite_nn::Float;
/// let mut bytes = Vec::new();
/// 1.5_f32.write_le(&mut bytes);
/// assert_eq!(bytes.len(), <f32 as Float>::BYTES);
/// assert_eq!(<f32 as Float>::read_le(&bytes), Some(1.5));
/// ```
pub trait Float: Element + BatchFloat + sealed::Sealed {
    /// Size of one element in bytes.
    const BYTES: usize;
    /// The largest integer up to which every integer is exact in this type (2^24 for `f32`,
    /// 2^53 for `f64`): how many training steps can be numbered exactly.
    const MAX_EXACT_INTEGER: u64;
    /// Appends the little-endian bytes of `self` to `out`.
    fn write_le(self, out: &mut Vec<u8>);
    /// Reads one element from the first [`Float::BYTES`] bytes of `bytes`, little-endian;
    /// `None` when there are fewer.
    fn read_le(bytes: &[u8]) -> Option<Self>;
}

impl Float for f32 {
    const BYTES: usize = 4;
    const MAX_EXACT_INTEGER: u64 = 1 << f32::MANTISSA_DIGITS;
    fn write_le(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn read_le(bytes: &[u8]) -> Option<Self> {
        let b: [u8; 4] = bytes.get(..4)?.try_into().ok()?;
        Some(f32::from_le_bytes(b))
    }
}

impl Float for f64 {
    const BYTES: usize = 8;
    const MAX_EXACT_INTEGER: u64 = 1 << f64::MANTISSA_DIGITS;
    fn write_le(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn read_le(bytes: &[u8]) -> Option<Self> {
        let b: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
        Some(f64::from_le_bytes(b))
    }
}
