//! The element types a graph can compute with.

use std::fmt::{Debug, Display};

/// A floating-point element type: `f32` for training, `f64` for gradient checks.
///
/// Everything a kernel needs (arithmetic, `exp`, `ln`, matrix products through ndarray) comes
/// from the supertraits; this trait only adds lossless-enough conversions to and from `f64`,
/// which is how scalars stored in ops (an exponent, a constant) reach the kernels.
///
/// ```
/// use dendrite_graph::Element;
/// assert_eq!(<f32 as Element>::of(0.5), 0.5_f32);
/// assert_eq!(2.0_f64.as_f64(), 2.0);
/// assert_eq!(<f64 as Element>::NAME, "f64");
/// ```
pub trait Element:
    num_traits::Float
    + ndarray::LinalgScalar
    + ndarray::ScalarOperand
    + Debug
    + Display
    + Default
    + Send
    + Sync
    + std::iter::Sum
    + 'static
{
    /// The type's name as written in Rust (`"f32"`, `"f64"`).
    const NAME: &'static str;
    /// Converts from `f64`, rounding to the nearest representable value.
    fn of(value: f64) -> Self;
    /// Converts to `f64` (exact for both `f32` and `f64`).
    fn as_f64(self) -> f64;
    /// The slice as `f32`s when `Self` is `f32`, else `None`: lets a kernel written for `f32`
    /// (the matrix product's AVX2 path) take generic data without a cast.
    ///
    /// ```
    /// use dendrite_graph::Element;
    /// assert!(<f32 as Element>::as_f32_slice(&[1.0_f32]).is_some());
    /// assert!(<f64 as Element>::as_f32_slice(&[1.0_f64]).is_none());
    /// ```
    fn as_f32_slice(values: &[Self]) -> Option<&[f32]> {
        let _ = values;
        None
    }
    /// The mutable counterpart of [`Element::as_f32_slice`].
    ///
    /// ```
    /// use dendrite_graph::Element;
    /// let mut v = [1.0_f32];
    /// assert!(<f32 as Element>::as_f32_slice_mut(&mut v).is_some());
    /// ```
    fn as_f32_slice_mut(values: &mut [Self]) -> Option<&mut [f32]> {
        let _ = values;
        None
    }
}

impl Element for f32 {
    const NAME: &'static str = "f32";
    fn as_f32_slice(values: &[Self]) -> Option<&[f32]> {
        Some(values)
    }
    fn as_f32_slice_mut(values: &mut [Self]) -> Option<&mut [f32]> {
        Some(values)
    }
    #[inline]
    fn of(value: f64) -> Self {
        value as f32
    }
    #[inline]
    fn as_f64(self) -> f64 {
        f64::from(self)
    }
}

impl Element for f64 {
    const NAME: &'static str = "f64";
    #[inline]
    fn of(value: f64) -> Self {
        value
    }
    #[inline]
    fn as_f64(self) -> f64 {
        self
    }
}
