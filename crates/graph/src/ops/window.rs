//! Sliding windows over the two spatial axes of an NHWC image: the geometry that
//! convolution ([`conv`](super::conv)) and pooling ([`pool`](super::pool)) share.
//!
//! Along one spatial axis of length `n`, a window of `k` taps spaced `d` apart (the dilation)
//! spans `k_eff = (k - 1) d + 1` elements and moves `s` (the stride) at a time. The two
//! paddings are those of Keras and TensorFlow:
//!
//! - `valid`: no padding; `out = ⌊(n - k_eff) / s⌋ + 1`, refused when `n < k_eff`.
//! - `same`: `out = ⌈n / s⌉`, padded with `total = max((out - 1) s + k_eff - n, 0)` zeros,
//!   `⌊total / 2⌋` before and the rest (the extra one, when `total` is odd) after.
//!
//! Output position `o` then reads input positions `o s + t d - before` for taps `t`, the ones
//! outside `0..n` being padding. Every size is checked arithmetic: a hostile size gives a typed
//! error, never an overflow.

use crate::error::{GraphError, Result};
use crate::shape::{Dim, Shape};

/// How a window treats the image border (Keras' `padding="valid"` / `"same"`).
///
/// ```
/// use dendrite_graph::ops::Padding;
/// assert_ne!(Padding::Valid, Padding::Same);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Padding {
    /// No padding: windows lie inside the image.
    Valid,
    /// Zero padding so that `out = ⌈n / stride⌉`; the odd one out goes after (bottom/right).
    Same,
}

/// One spatial axis of a window: its output length and the padding before the first element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Axis1 {
    /// Input length.
    pub n: usize,
    /// Taps.
    pub k: usize,
    /// Stride.
    pub s: usize,
    /// Dilation.
    pub d: usize,
    /// Output length.
    pub out: usize,
    /// Padding before position 0.
    pub before: usize,
}

impl Axis1 {
    /// The axis of `k` taps (stride `s`, dilation `d`) over `n` elements, or why there is none.
    pub(crate) fn new(
        n: usize,
        k: usize,
        s: usize,
        d: usize,
        padding: Padding,
    ) -> std::result::Result<Self, String> {
        if n == 0 || k == 0 || s == 0 || d == 0 {
            return Err(format!(
                "input length {n}, window {k}, stride {s} and dilation {d} must all be at least 1"
            ));
        }
        let span = (k - 1)
            .checked_mul(d)
            .and_then(|v| v.checked_add(1))
            .ok_or_else(|| format!("window {k} with dilation {d} overflows"))?;
        let (out, before) = match padding {
            Padding::Valid => {
                if n < span {
                    return Err(format!(
                        "window spans {span} elements, more than the input's {n}"
                    ));
                }
                ((n - span) / s + 1, 0)
            }
            Padding::Same => {
                let out = n.div_ceil(s);
                let needed = (out - 1)
                    .checked_mul(s)
                    .and_then(|v| v.checked_add(span))
                    .ok_or_else(|| format!("padding for window span {span} overflows"))?;
                (out, needed.saturating_sub(n) / 2)
            }
        };
        Ok(Axis1 {
            n,
            k,
            s,
            d,
            out,
            before,
        })
    }

    /// The first input position of output `o`'s window when the window reads `k` consecutive
    /// positions all inside the input (no dilation, no padding), else `None`.
    #[inline]
    pub(crate) fn inside(&self, o: usize) -> Option<usize> {
        let first = self.source(o, 0)?;
        (self.d == 1 && first + self.k <= self.n).then_some(first)
    }

    /// The input position read by output `o` at tap `t`, or `None` where it is padding.
    #[inline]
    pub(crate) fn source(&self, o: usize, t: usize) -> Option<usize> {
        (o * self.s + t * self.d)
            .checked_sub(self.before)
            .filter(|&i| i < self.n)
    }
}

/// A spatial size `[h, w]` read from dimensions 1 and 2 of an NHWC shape, which must be fixed.
pub(crate) fn fixed_hw(op: &'static str, node: &str, shape: &Shape) -> Result<[usize; 2]> {
    match shape.dims() {
        [_, Dim::Fixed(h), Dim::Fixed(w), _] => Ok([*h, *w]),
        _ => Err(GraphError::InvalidShape {
            op,
            node: node.to_owned(),
            reason:
                "expects an NHWC image [batch, height, width, channels] with known height and width"
                    .into(),
            shape: shape.clone(),
        }),
    }
}

/// The fixed size of dimension `axis`, or an error naming `what`.
pub(crate) fn fixed_dim(
    op: &'static str,
    node: &str,
    shape: &Shape,
    axis: usize,
    what: &str,
) -> Result<usize> {
    match shape.dims().get(axis) {
        Some(Dim::Fixed(v)) if shape.rank() == 4 => Ok(*v),
        _ => Err(GraphError::InvalidShape {
            op,
            node: node.to_owned(),
            reason: format!("expects rank 4 with a known {what} (dimension {axis})"),
            shape: shape.clone(),
        }),
    }
}

/// The two spatial axes of a window, or an [`GraphError::InvalidShape`] naming the op, the node
/// and the image's shape.
#[allow(clippy::too_many_arguments)]
pub(crate) fn axes2(
    op: &'static str,
    node: &str,
    image: &Shape,
    hw: [usize; 2],
    k: [usize; 2],
    strides: [usize; 2],
    dilation: [usize; 2],
    padding: Padding,
) -> Result<[Axis1; 2]> {
    let axis = |i: usize| {
        Axis1::new(hw[i], k[i], strides[i], dilation[i], padding).map_err(|reason| {
            GraphError::InvalidShape {
                op,
                node: node.to_owned(),
                reason: format!("{} axis: {reason}", ["height", "width"][i]),
                shape: image.clone(),
            }
        })
    };
    Ok([axis(0)?, axis(1)?])
}
