//! Folds over axes: `sum`, `max`, `min`, `prod`.
//!
//! Shape rule: the reduced axes (sorted, distinct, in range) are removed, or kept with size 1
//! when `keep_dims` is set. Reducing over no axes is the identity; reducing an empty axis gives
//! the identity element (0 for sum, `-inf` for max, `+inf` for min, 1 for prod).
//!
//! Derivatives, with `ŷ` the cotangent re-expanded to the operand's rank:
//! - `sum`: `x_bar = broadcast(ŷ)`; every element contributes with weight 1.
//! - `max` / `min`: `x_bar = ŷ · [x = y] / #[x = y]`. At a tie the gradient is split evenly
//!   among the extreme elements (a subgradient, and the choice that makes `max(x, x)` behave
//!   like `x`).
//! - `prod`: `x_bar_i = ŷ · Π_{j≠i} x_j`. The product of the others is `y / x_i` only when no
//!   element is 0. With exactly one zero, at position `k`, every other element's product of
//!   others contains it and is 0, while `x_bar_k = ŷ · Π_{j≠k} x_j` is the product of the
//!   non-zero elements; with two zeros or more every product of others is 0. The rule builds
//!   the cases from the product of the non-zero elements, so it never divides by 0, and
//!   writes the zero values as products of the zero elements themselves, so that its own
//!   derivative (second order) is right with one or two zeros too.
//!
//! `max` and `min` propagate NaN: a lane holding one gives NaN (Python's `max` would not).

use crate::error::Result;
use crate::ops::{check_arity, check_axes, normalize_axes, Axes, CompareOp, OperandGrads};
use crate::shape::{Dim, Shape};
use crate::{Element, Graph, NodeId, Op};
use ndarray::{ArrayViewD, ArrayViewMutD, IxDyn};
use smallvec::{smallvec, SmallVec};

family! {
    /// How a reduction combines elements.
    ///
    /// ```
    /// use dendrite_graph::ReduceOp;
    /// assert_eq!(ReduceOp::Max.name(), "max");
    /// assert_eq!(ReduceOp::NAMES, &["sum", "max", "min", "prod"]);
    /// ```
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub unit enum ReduceOp {
        /// Sum of the elements.
        Sum => "sum",
        /// Largest element (NaN if any is NaN).
        Max => "max",
        /// Smallest element (NaN if any is NaN).
        Min => "min",
        /// Product of the elements.
        Prod => "prod",
    }
}

/// Shape of a reduction's result with the reduced axes kept as 1.
fn keep_dims_shape(x: &Shape, axes: &[usize]) -> Shape {
    Shape::new(
        x.dims()
            .iter()
            .enumerate()
            .map(|(i, &d)| if axes.contains(&i) { Dim::Fixed(1) } else { d }),
    )
}

pub(crate) fn infer(
    op: ReduceOp,
    axes: &[usize],
    keep_dims: bool,
    node: &str,
    operands: &[&Shape],
) -> Result<Shape> {
    check_arity(op.name(), node, operands, 1)?;
    let x = operands[0];
    check_axes(op.name(), node, axes, x.rank())?;
    if keep_dims {
        Ok(keep_dims_shape(x, axes))
    } else {
        Ok(Shape::new(
            x.dims()
                .iter()
                .enumerate()
                .filter(|(i, _)| !axes.contains(i))
                .map(|(_, &d)| d),
        ))
    }
}

/// Folds `x` into `out`, which has `x`'s rank with size 1 on every reduced axis and is in
/// standard layout (it is a plan buffer). `out` is overwritten, starting from `init`.
pub(crate) fn reduce_into<F: Element>(
    x: &ArrayViewD<'_, F>,
    mut out: ArrayViewMutD<'_, F>,
    init: F,
    f: impl Fn(F, F) -> F,
) {
    out.fill(init);
    let reduced: SmallVec<[bool; 4]> = (0..x.ndim())
        .map(|i| out.shape()[i] != x.shape()[i])
        .collect();
    let n_reduced = reduced.iter().filter(|&&r| r).count();
    let suffix = reduced.iter().rev().take_while(|&&r| r).count() == n_reduced;
    let prefix = reduced.iter().take_while(|&&r| r).count() == n_reduced;
    if let (Some(xs), Some(os)) = (x.as_slice(), out.as_slice_mut()) {
        if os.is_empty() {
            return;
        }
        // Contiguous fast paths: reduced axes form a suffix (each run of `chunk` elements folds
        // into one output) or a prefix (each row folds elementwise into the whole output).
        if suffix {
            let chunk = xs.len() / os.len();
            if chunk > 0 {
                for (o, run) in os.iter_mut().zip(xs.chunks_exact(chunk)) {
                    *o = run.iter().fold(*o, |acc, &v| f(acc, v));
                }
            }
            return;
        }
        if prefix {
            fold_rows(xs, os, &f);
            return;
        }
    }
    reduce_general(x, &mut out, &reduced, &f);
}

/// Output columns a prefix reduction keeps in registers while it walks the rows.
const COLUMNS: usize = 32;

/// `os[j] = f(os[j], row[j])` for every row of `xs` in order (a prefix reduction, such as a
/// bias gradient summed over the batch and the pixels). Folding row after row straight into
/// `os` would store each output and load it back one row later, a chain through memory that
/// costs several cycles per row; instead [`COLUMNS`] outputs at a time are held in a local
/// array across all rows. Each output still folds its values in row order: the same bits.
fn fold_rows<F: Element>(xs: &[F], os: &mut [F], f: &impl Fn(F, F) -> F) {
    let width = os.len();
    for (block, outputs) in os.chunks_mut(COLUMNS).enumerate() {
        let columns = block * COLUMNS..block * COLUMNS + outputs.len();
        let rows = xs.chunks_exact(width).map(|row| &row[columns.clone()]);
        match <&mut [F; COLUMNS]>::try_from(&mut *outputs) {
            Ok(outputs) => {
                let mut acc = *outputs;
                for row in rows {
                    if let Ok(row) = <&[F; COLUMNS]>::try_from(row) {
                        for (a, &v) in acc.iter_mut().zip(row) {
                            *a = f(*a, v);
                        }
                    }
                }
                *outputs = acc;
            }
            Err(_) => {
                for row in rows {
                    outputs
                        .iter_mut()
                        .zip(row)
                        .for_each(|(o, &v)| *o = f(*o, v));
                }
            }
        }
    }
}

/// Walks `x` once in logical order, moving an output offset like an odometer (stride 0 on
/// reduced axes). Handles any layout of `x` and any pattern of axes.
fn reduce_general<F: Element>(
    x: &ArrayViewD<'_, F>,
    out: &mut ArrayViewMutD<'_, F>,
    reduced: &[bool],
    f: &impl Fn(F, F) -> F,
) {
    let rank = x.ndim();
    let mut out_strides: SmallVec<[usize; 4]> = smallvec![0; rank];
    let mut stride = 1;
    for i in (0..rank).rev() {
        out_strides[i] = if reduced[i] { 0 } else { stride };
        stride *= out.shape()[i];
    }
    let shape: SmallVec<[usize; 4]> = x.shape().into();
    let Some(os) = out.as_slice_mut() else {
        return;
    };
    let mut index: SmallVec<[usize; 4]> = smallvec![0; rank];
    let mut offset = 0;
    for &v in x.iter() {
        os[offset] = f(os[offset], v);
        for ax in (0..rank).rev() {
            index[ax] += 1;
            offset += out_strides[ax];
            if index[ax] < shape[ax] {
                break;
            }
            offset -= out_strides[ax] * shape[ax];
            index[ax] = 0;
        }
    }
}

#[inline]
pub(crate) fn max_keep_nan<F: Element>(acc: F, v: F) -> F {
    if v > acc || v.is_nan() {
        v
    } else {
        acc
    }
}

#[inline]
fn min_keep_nan<F: Element>(acc: F, v: F) -> F {
    if v < acc || v.is_nan() {
        v
    } else {
        acc
    }
}

pub(crate) fn forward<F: Element>(
    op: ReduceOp,
    axes: &[usize],
    x: &ArrayViewD<'_, F>,
    mut out: ArrayViewMutD<'_, F>,
) -> Result<()> {
    let keep: SmallVec<[usize; 4]> = x
        .shape()
        .iter()
        .enumerate()
        .map(|(i, &n)| if axes.contains(&i) { 1 } else { n })
        .collect();
    if let Ok(view) = out.view_mut().into_shape_with_order(IxDyn(&keep)) {
        match op {
            ReduceOp::Sum => reduce_into(x, view, F::zero(), |a, v| a + v),
            ReduceOp::Max => reduce_into(x, view, F::neg_infinity(), max_keep_nan),
            ReduceOp::Min => reduce_into(x, view, F::infinity(), min_keep_nan),
            ReduceOp::Prod => reduce_into(x, view, F::one(), |a, v| a * v),
        }
    }
    Ok(())
}

// ANCHOR: reduce_vjp
pub(crate) fn vjp<F: Element>(
    g: &mut Graph<F>,
    op: ReduceOp,
    axes: &[usize],
    keep_dims: bool,
    x: NodeId,
    y: NodeId,
    y_bar: NodeId,
) -> Result<OperandGrads> {
    let (y_keep, y_bar_keep) = if keep_dims {
        (y, y_bar)
    } else {
        (g.expand_dims(y, axes)?, g.expand_dims(y_bar, axes)?)
    };
    let x_bar = match op {
        ReduceOp::Sum => g.broadcast_like(y_bar_keep, x)?,
        ReduceOp::Max | ReduceOp::Min => {
            let is_extreme = g.equal(x, y_keep)?;
            let count = g.sum_keep_dims(is_extreme, axes)?;
            let share = g.div(is_extreme, count)?;
            g.mul(share, y_bar_keep)?
        }
        ReduceOp::Prod => {
            let others = product_of_others(g, x, axes)?;
            g.mul(others, y_bar_keep)?
        }
    };
    Ok(smallvec![Some(x_bar)])
}

/// `Π_{j≠i} x_j` over `axes` for every element `i`, without dividing by 0 (see the module doc).
/// `p` is the product of the non-zero elements, `nz` the number of zeros in each lane and `s`
/// the sum of the zero elements: 0 in value, but its derivative picks out the zeros, which
/// keeps the rule's own derivative (the Hessian) right where one or two elements are 0.
fn product_of_others<F: Element>(g: &mut Graph<F>, x: NodeId, axes: &[usize]) -> Result<NodeId> {
    let (zero, one, two) = (g.scalar(0.0), g.scalar(1.0), g.scalar(2.0));
    let is_zero = g.compare(CompareOp::Eq, x, zero)?;
    let x_safe = g.select(is_zero, one, x)?;
    let p = g.reduce(ReduceOp::Prod, x_safe, axes, true)?;
    let nz = g.sum_keep_dims(is_zero, axes)?;
    let zeros_only = g.mul(x, is_zero)?;
    let s = g.sum_keep_dims(zeros_only, axes)?;
    // No zero: y / x_i, computed as p / x_i.
    let p_over_x = g.div(p, x_safe)?;
    // One zero: p at the zero; elsewhere s p / x_i (0, with the zero's own derivative).
    let at_other = g.mul(s, p_over_x)?;
    // Two zeros: at each, p times the other zero, s - x_i; elsewhere 0 to second order.
    let other_zero = g.sub(s, x)?;
    let at_zero_of_two = g.mul(p, other_zero)?;
    let (has_one, has_two) = (
        g.compare(CompareOp::Eq, nz, one)?,
        g.compare(CompareOp::Eq, nz, two)?,
    );
    let at_zero_of_more = g.select(has_two, at_zero_of_two, zero)?;
    let at_zero = g.select(has_one, p, at_zero_of_more)?;
    let elsewhere = g.select(has_one, at_other, zero)?;
    let with_zeros = g.select(is_zero, at_zero, elsewhere)?;
    let has_none = g.compare(CompareOp::Eq, nz, zero)?;
    g.select(has_none, p_over_x, with_zeros)
}
// ANCHOR_END: reduce_vjp

impl<F: Element> Graph<F> {
    /// Reduces `x` over `axes` (any order; repeats are an error).
    ///
    /// ```
    /// use dendrite_graph::ReduceOp;
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// let x = g.input("x", [2, 3, 4])?;
    /// let s = g.reduce(ReduceOp::Sum, x, &[2, 0], false)?;
    /// assert_eq!(g.shape(s)?.to_string(), "[3]");
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn reduce(
        &mut self,
        op: ReduceOp,
        x: NodeId,
        axes: &[usize],
        keep_dims: bool,
    ) -> Result<NodeId> {
        let axes = normalize_axes(axes);
        self.add_op(
            Op::Reduce {
                op,
                axes,
                keep_dims,
            },
            &[x],
        )
    }

    /// Sum over `axes`, dropping them.
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// let x = g.input("x", [2, 3])?;
    /// let rows = g.sum(x, &[1])?;
    /// assert_eq!(g.shape(rows)?.to_string(), "[2]");
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn sum(&mut self, x: NodeId, axes: &[usize]) -> Result<NodeId> {
        self.reduce(ReduceOp::Sum, x, axes, false)
    }

    /// Sum over `axes`, keeping them as size 1.
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// let x = g.input("x", [2, 3])?;
    /// let rows = g.sum_keep_dims(x, &[1])?;
    /// assert_eq!(g.shape(rows)?.to_string(), "[2, 1]");
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn sum_keep_dims(&mut self, x: NodeId, axes: &[usize]) -> Result<NodeId> {
        self.reduce(ReduceOp::Sum, x, axes, true)
    }

    /// Sum of every element, as a scalar.
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// let x = g.input("x", [2, 3])?;
    /// let total = g.sum_all(x)?;
    /// assert_eq!(g.shape(total)?.rank(), 0);
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn sum_all(&mut self, x: NodeId) -> Result<NodeId> {
        let axes: Axes = (0..self.shape(x)?.rank()).collect();
        self.sum(x, &axes)
    }

    /// Maximum over `axes`; ties share the gradient evenly.
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// let x = g.input("x", [2, 3])?;
    /// let m = g.max(x, &[1], true)?;
    /// assert_eq!(g.shape(m)?.to_string(), "[2, 1]");
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn max(&mut self, x: NodeId, axes: &[usize], keep_dims: bool) -> Result<NodeId> {
        self.reduce(ReduceOp::Max, x, axes, keep_dims)
    }

    /// Minimum over `axes`; ties share the gradient evenly.
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// let x = g.input("x", [2, 3])?;
    /// let m = g.min(x, &[1], false)?;
    /// assert_eq!(g.shape(m)?.to_string(), "[2]");
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn min(&mut self, x: NodeId, axes: &[usize], keep_dims: bool) -> Result<NodeId> {
        self.reduce(ReduceOp::Min, x, axes, keep_dims)
    }

    /// Product over `axes`. Its gradient is the product of the other elements, exact where
    /// some are 0.
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// let x = g.input("x", [2, 3])?;
    /// let p = g.prod(x, &[0, 1], false)?;
    /// assert_eq!(g.shape(p)?.rank(), 0);
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn prod(&mut self, x: NodeId, axes: &[usize], keep_dims: bool) -> Result<NodeId> {
        self.reduce(ReduceOp::Prod, x, axes, keep_dims)
    }
}
