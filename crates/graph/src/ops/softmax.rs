//! `log_softmax` and `logsumexp` along one axis: composites made primitives because numerics
//! demand it.
//!
//! ## log_softmax
//!
//! `y_i = x_i - log Σ_j e^{x_j}`, computed as `y_i = (x_i - m) - log Σ_j e^{x_j - m}` with
//! `m = max_j x_j`, so the exponentials never overflow and the largest term is exactly 1.
//! Built from primitives this takes seven nodes forward and a dozen backward, every one a pass
//! over the logits; as one kernel it is one pass each way, and it is the cross-entropy's inner
//! loop in every classifier.
//!
//! Shape rule: the output has the operand's shape; `axis` must be in range.
//!
//! Derivative: with `p = softmax(x) = e^y`, `∂y_i/∂x_k = δ_ik - p_k`, so
//! `x_bar_k = ȳ_k - p_k Σ_i ȳ_i`. Written with `exp(y)` (a node of the graph), the rule is
//! itself differentiable, which gives second-order derivatives.
//!
//! A lane that is entirely `-inf` has no maximum to shift by and gives NaN, as
//! `x - logsumexp(x)` does.
//!
//! ## logsumexp
//!
//! `y = log Σ_j e^{x_j}` along an axis (kept as size 1), computed as `m + log Σ_j e^{x_j - m}`
//! with `m` the lane's maximum. Built from primitives, a lane of all `-inf` gives
//! `-inf - (-inf) = NaN` at the shift, and a lane holding `+inf` gives `inf - inf = NaN`; the
//! kernel returns the limits instead: `-inf` for a lane of all `-inf` (and for an empty lane,
//! the log of an empty sum), `+inf` for a lane holding `+inf`, NaN for a lane holding NaN.
//!
//! Derivative: `∂y/∂x_k = e^{x_k - y} = softmax(x)_k`, so `x_bar = ȳ e^{x - y}`. For a lane of
//! all `-inf`, `x - y` is NaN again; the rule shifts by `y` only where `y` is finite (by 0
//! elsewhere), which makes the gradient of such a lane `e^{-inf} = 0`, as the limit says; a
//! lane holding `+inf` gets the limit of the softmax, `[x = +inf] / #[x = +inf]`.
//! Over several axes, `logsumexp` is one primitive per axis: `lse_{a,b}(x) = lse_a(lse_b(x))`.

use crate::error::Result;
use crate::ops::reduce::max_keep_nan;
use crate::ops::{check_arity, check_axis, CompareOp, OperandGrads};
use crate::shape::{Dim, Shape};
use crate::{Element, Graph, NodeId, Op};
use ndarray::{ArrayView1, ArrayViewD, ArrayViewMutD, Axis, Zip};
use smallvec::smallvec;

family! {
    /// Softmax-family kernels along one axis.
    ///
    /// ```
    /// use dendrite_graph::ops::SoftmaxOp;
    /// assert_eq!(SoftmaxOp::NAMES, &["log_softmax", "logsumexp"]);
    /// ```
    #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    pub enum SoftmaxOp {
        /// `x - logsumexp(x)` along an axis.
        LogSoftmax(usize) => "log_softmax",
        /// `log Σ e^x` along an axis, kept as size 1.
        LogSumExp(usize) => "logsumexp",
    }
}

pub(crate) fn infer(op: &SoftmaxOp, node: &str, operands: &[&Shape]) -> Result<Shape> {
    check_arity(op.name(), node, operands, 1)?;
    let x = operands[0];
    match *op {
        SoftmaxOp::LogSoftmax(axis) => {
            check_axis(op.name(), node, axis, x.rank())?;
            Ok(x.clone())
        }
        SoftmaxOp::LogSumExp(axis) => {
            check_axis(op.name(), node, axis, x.rank())?;
            let mut out = x.clone();
            out.dims_mut()[axis] = Dim::Fixed(1);
            Ok(out)
        }
    }
}

/// `log Σ e^x` of one lane, with the limits where the shift by the maximum is undefined.
fn lane_logsumexp<F: Element>(x: ArrayView1<'_, F>) -> F {
    let m = lane_max(x.iter());
    if m.is_nan() || m.is_infinite() {
        // NaN, a lane holding +inf (the sum is infinite), or all -inf (the sum is 0).
        return m;
    }
    let sum = x
        .iter()
        .fold(F::zero(), |s, &v| s + crate::vexp::exp(v - m));
    m + sum.ln()
}

/// `y = (x - m) - ln Σ e^(x - m)` for one lane.
#[inline]
fn lane<F: Element>(x: &[F], y: &mut [F]) {
    let m = lane_max(x);
    let mut sum = F::zero();
    for (t, &v) in y.iter_mut().zip(x) {
        *t = v - m;
        sum = sum + crate::vexp::exp(*t);
    }
    let log_sum = sum.ln();
    y.iter_mut().for_each(|t| *t = *t - log_sum);
}

/// The lane's maximum; NaN if the lane holds one (so the NaN reaches every output).
fn lane_max<'a, F: Element>(x: impl IntoIterator<Item = &'a F>) -> F {
    x.into_iter()
        .fold(F::neg_infinity(), |m, &v| max_keep_nan(m, v))
}

/// All lanes of a contiguous last axis at once: `y = e^(x - max)` over the whole buffer in one
/// vectorized pass (lanes of 10 logits are too short to vectorize one at a time), then per
/// lane the sum and `y = x - max - ln Σ`. Same floats as [`lane`], which sums the same
/// exponentials in the same order.
fn lanes_contiguous<F: Element>(xs: &[F], ys: &mut [F], width: usize) {
    for (xl, yl) in xs.chunks_exact(width).zip(ys.chunks_exact_mut(width)) {
        let m = lane_max(xl);
        yl.iter_mut().zip(xl).for_each(|(t, &v)| *t = v - m);
    }
    crate::vexp::exp_in_place(ys);
    for (xl, yl) in xs.chunks_exact(width).zip(ys.chunks_exact_mut(width)) {
        let m = lane_max(xl);
        let sum = yl.iter().fold(F::zero(), |s, &e| s + e);
        let log_sum = sum.ln();
        yl.iter_mut()
            .zip(xl)
            .for_each(|(t, &v)| *t = (v - m) - log_sum);
    }
}

pub(crate) fn forward<F: Element>(
    op: &SoftmaxOp,
    x: &ArrayViewD<'_, F>,
    mut out: ArrayViewMutD<'_, F>,
) -> Result<()> {
    match *op {
        SoftmaxOp::LogSoftmax(axis) => log_softmax(axis, x, out),
        SoftmaxOp::LogSumExp(axis) => {
            Zip::from(out.lanes_mut(Axis(axis)))
                .and(x.lanes(Axis(axis)))
                .for_each(|mut y, x| y.fill(lane_logsumexp(x)));
        }
    }
    Ok(())
}

fn log_softmax<F: Element>(axis: usize, x: &ArrayViewD<'_, F>, mut out: ArrayViewMutD<'_, F>) {
    let width = x.shape()[axis];
    // Fast path: the last axis of contiguous data, lane after lane.
    if axis + 1 == x.ndim()
        && width > 0
        && let (Some(xs), Some(ys)) = (x.as_slice(), out.as_slice_mut())
    {
        lanes_contiguous(xs, ys, width);
        return;
    }
    let mut xbuf: smallvec::SmallVec<[F; 16]> = smallvec![F::zero(); width];
    let mut ybuf: smallvec::SmallVec<[F; 16]> = smallvec![F::zero(); width];
    Zip::from(out.lanes_mut(Axis(axis)))
        .and(x.lanes(Axis(axis)))
        .for_each(|mut yl, xl| {
            xbuf.iter_mut().zip(xl.iter()).for_each(|(t, &v)| *t = v);
            lane(&xbuf, &mut ybuf);
            yl.iter_mut().zip(ybuf.iter()).for_each(|(t, &v)| *t = v);
        });
}

// ANCHOR: log_softmax_vjp
pub(crate) fn vjp<F: Element>(
    g: &mut Graph<F>,
    op: &SoftmaxOp,
    x: NodeId,
    y: NodeId,
    y_bar: NodeId,
) -> Result<OperandGrads> {
    let x_bar = match *op {
        // x̄ = ȳ - softmax(x) · Σ ȳ, with softmax(x) = e^y
        SoftmaxOp::LogSoftmax(axis) => {
            let p = g.exp(y)?;
            let total = g.sum_keep_dims(y_bar, &[axis])?;
            let spread = g.mul(p, total)?;
            g.sub(y_bar, spread)?
        }
        // x̄ = ȳ e^(x - y), shifting by y only where it is finite (a lane of all -inf gets
        // e^-inf = 0); a lane holding +inf gets the limit, shared by its +inf elements.
        SoftmaxOp::LogSumExp(axis) => {
            let (zero, infinity) = (g.scalar(0.0), g.scalar(f64::INFINITY));
            let magnitude = g.abs(y)?;
            let finite = g.compare(CompareOp::Lt, magnitude, infinity)?;
            let shift = g.select(finite, y, zero)?;
            let centred = g.sub(x, shift)?;
            let p_finite = g.exp(centred)?;
            let is_top = g.compare(CompareOp::Eq, x, y)?;
            let count = g.sum_keep_dims(is_top, &[axis])?;
            let p_top = g.div(is_top, count)?;
            let unbounded = g.compare(CompareOp::Eq, y, infinity)?;
            let p = g.select(unbounded, p_top, p_finite)?;
            g.mul(y_bar, p)?
        }
    };
    Ok(smallvec![Some(x_bar)])
}
// ANCHOR_END: log_softmax_vjp

impl<F: Element> Graph<F> {
    /// `log_softmax(x)_i = x_i - log Σ_j e^{x_j}` along `axis`, as one numerically stable
    /// kernel (the maximum is subtracted first, so logits of 1e4 stay finite).
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// let logits = g.input("logits", [None, Some(10)])?;
    /// let log_p = g.log_softmax(logits, 1)?;
    /// assert_eq!(g.shape(log_p)?.to_string(), "[?, 10]");
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn log_softmax(&mut self, x: NodeId, axis: usize) -> Result<NodeId> {
        self.add_op(Op::Softmax(SoftmaxOp::LogSoftmax(axis)), &[x])
    }

    /// `logsumexp(x) = log Σ e^x` over `axes`, one stable kernel per axis: a lane of all
    /// `-inf` gives `-inf` (gradient 0) and a lane holding `+inf` gives `+inf`, where the
    /// shifted composite gives NaN.
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// # let x = g.input("x", [3, 4])?;
    /// let lse = g.logsumexp(x, &[1], false)?;
    /// assert_eq!(g.shape(lse)?.to_string(), "[3]");
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn logsumexp(&mut self, x: NodeId, axes: &[usize], keep_dims: bool) -> Result<NodeId> {
        self.atomically(|g| {
            let axes = crate::ops::normalize_axes(axes);
            let mut kept = x;
            for &axis in &axes {
                kept = g.add_op(Op::Softmax(SoftmaxOp::LogSumExp(axis)), &[kept])?;
            }
            if keep_dims {
                Ok(kept)
            } else {
                // Summing over size-1 axes drops them, whatever the dynamic dimensions.
                g.sum(kept, &axes)
            }
        })
    }
}
