//! `log_softmax` along one axis: the one composite that is a primitive, because numerics
//! demand it.
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

use crate::error::Result;
use crate::ops::{check_arity, check_axis, Op, OperandGrads};
use crate::shape::Shape;
use crate::{Element, Graph, NodeId};
use ndarray::{ArrayViewD, ArrayViewMutD, Axis, Zip};
use smallvec::smallvec;

pub(crate) fn infer(op: &Op, node: &str, operands: &[&Shape]) -> Result<Shape> {
    check_arity(op, node, operands, 1)?;
    if let Op::LogSoftmax(axis) = op {
        check_axis(op, node, *axis, operands[0].rank())?;
    }
    Ok(operands[0].clone())
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
fn lane_max<F: Element>(x: &[F]) -> F {
    x.iter().fold(
        F::neg_infinity(),
        |m, &v| if v > m || v.is_nan() { v } else { m },
    )
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
    op: &Op,
    inputs: &[ArrayViewD<'_, F>],
    mut out: ArrayViewMutD<'_, F>,
) -> Result<()> {
    let Op::LogSoftmax(axis) = *op else {
        return Ok(());
    };
    let x = &inputs[0];
    let width = x.shape()[axis];
    // Fast path: the last axis of contiguous data, lane after lane.
    if axis + 1 == x.ndim() && width > 0 {
        if let (Some(xs), Some(ys)) = (x.as_slice(), out.as_slice_mut()) {
            lanes_contiguous(xs, ys, width);
            return Ok(());
        }
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
    Ok(())
}

// ANCHOR: log_softmax_vjp
pub(crate) fn vjp<F: Element>(
    g: &mut Graph<F>,
    op: &Op,
    y: NodeId,
    y_bar: NodeId,
) -> Result<OperandGrads> {
    let Op::LogSoftmax(axis) = *op else {
        return Ok(smallvec![None]);
    };
    // x̄ = ȳ - softmax(x) · Σ ȳ, with softmax(x) = e^y
    let p = g.exp(y)?;
    let total = g.sum_keep_dims(y_bar, &[axis])?;
    let spread = g.mul(p, total)?;
    Ok(smallvec![Some(g.sub(y_bar, spread)?)])
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
        self.push(Op::LogSoftmax(axis), &[x])
    }
}
