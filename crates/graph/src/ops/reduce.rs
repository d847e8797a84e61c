//! Reductions over axes: `sum`, `max`; and two non-differentiable relatives, `dim_size` and
//! `argmax`.
//!
//! Shape rule: the reduced axes (sorted, distinct, in range) are removed, or kept with size 1
//! when `keep_dims` is set. Reducing over no axes is the identity; reducing an empty axis gives
//! the identity element (0 for sum, `-inf` for max).
//!
//! Derivatives, with `ŷ` the cotangent re-expanded to the operand's rank:
//! - `sum`: `x_bar = broadcast(ŷ)`; every element contributes with weight 1.
//! - `max`: `x_bar = ŷ · [x = max] / #[x = max]`. At a tie the gradient is split evenly among
//!   the maximal elements (a subgradient, and the choice that makes `max(x, x)` behave like `x`).
//! - `dim_size` and `argmax` are piecewise constant: no gradient flows through them.
//!
//! `argmax` returns the index of the first maximum as a float; a NaN counts as the maximum
//! (as in NumPy), so a poisoned row is visible rather than silently mapped to some class.

use crate::error::{GraphError, Result};
use crate::ops::{check_arity, check_axes, check_axis, normalize_axes, Axes, Op, OperandGrads};
use crate::shape::{Dim, Shape};
use crate::{Element, Graph, NodeId};
use ndarray::{ArrayViewD, ArrayViewMutD, Axis, IxDyn};
use smallvec::{smallvec, SmallVec};

/// How a reduction combines elements.
///
/// ```
/// assert_eq!(dendrite_graph::ReduceOp::Max.name(), "max");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReduceOp {
    /// Sum of the elements.
    Sum,
    /// Largest element (NaN if any is NaN).
    Max,
}

impl ReduceOp {
    /// The op's name.
    ///
    /// ```
    /// assert_eq!(dendrite_graph::ReduceOp::Sum.name(), "sum");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            ReduceOp::Sum => "sum",
            ReduceOp::Max => "max",
        }
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

pub(crate) fn infer(op: &Op, node: &str, operands: &[&Shape]) -> Result<Shape> {
    check_arity(op, node, operands, 1)?;
    let x = operands[0];
    match op {
        Op::Reduce {
            axes, keep_dims, ..
        } => {
            check_axes(op, node, axes, x.rank())?;
            if *keep_dims {
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
        Op::DimSize(axes) => {
            check_axes(op, node, axes, x.rank())?;
            Ok(Shape::scalar())
        }
        Op::ArgMax(axis) => {
            check_axis(op, node, *axis, x.rank())?;
            if x.dims()[*axis] == Dim::Fixed(0) {
                return Err(GraphError::InvalidShape {
                    op: op.name(),
                    node: node.to_owned(),
                    reason: format!("argmax over axis {axis}, which is empty"),
                    shape: x.clone(),
                });
            }
            let mut out = x.clone();
            out.dims_mut().remove(*axis);
            Ok(out)
        }
        _ => Err(GraphError::InvalidShape {
            op: op.name(),
            node: node.to_owned(),
            reason: "internal: not a reduction".to_owned(),
            shape: x.clone(),
        }),
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
            for row in xs.chunks_exact(os.len()) {
                os.iter_mut().zip(row).for_each(|(o, &v)| *o = f(*o, v));
            }
            return;
        }
    }
    reduce_general(x, &mut out, &reduced, &f);
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
fn max_keep_nan<F: Element>(acc: F, v: F) -> F {
    if v > acc || v.is_nan() {
        v
    } else {
        acc
    }
}

pub(crate) fn forward<F: Element>(
    op: &Op,
    inputs: &[ArrayViewD<'_, F>],
    mut out: ArrayViewMutD<'_, F>,
) -> Result<()> {
    let x = &inputs[0];
    match op {
        Op::Reduce { op: kind, axes, .. } => {
            let keep: SmallVec<[usize; 4]> = x
                .shape()
                .iter()
                .enumerate()
                .map(|(i, &n)| if axes.contains(&i) { 1 } else { n })
                .collect();
            if let Ok(view) = out.view_mut().into_shape_with_order(IxDyn(&keep)) {
                match kind {
                    ReduceOp::Sum => reduce_into(x, view, F::zero(), |a, v| a + v),
                    ReduceOp::Max => reduce_into(x, view, F::neg_infinity(), max_keep_nan),
                }
            }
        }
        Op::DimSize(axes) => {
            let n: usize = axes.iter().map(|&a| x.shape()[a]).product();
            out.fill(F::of(n as f64));
        }
        Op::ArgMax(axis) => {
            for (o, lane) in out.iter_mut().zip(x.lanes(Axis(*axis))) {
                let mut best = 0;
                let mut best_value = F::neg_infinity();
                for (i, &v) in lane.iter().enumerate() {
                    if v.is_nan() {
                        best = i;
                        break;
                    }
                    if i == 0 || v > best_value {
                        best = i;
                        best_value = v;
                    }
                }
                *o = F::of(best as f64);
            }
        }
        _ => {}
    }
    Ok(())
}

// ANCHOR: reduce_vjp
pub(crate) fn vjp<F: Element>(
    g: &mut Graph<F>,
    op: &Op,
    x: NodeId,
    y: NodeId,
    y_bar: NodeId,
) -> Result<OperandGrads> {
    let Op::Reduce {
        op: kind,
        axes,
        keep_dims,
    } = op
    else {
        return Ok(smallvec![None]);
    };
    let (y_keep, y_bar_keep) = if *keep_dims {
        (y, y_bar)
    } else {
        (g.expand_dims(y, axes)?, g.expand_dims(y_bar, axes)?)
    };
    let x_bar = match kind {
        ReduceOp::Sum => g.broadcast_like(y_bar_keep, x)?,
        ReduceOp::Max => {
            let is_max = g.equal(x, y_keep)?;
            let count = g.sum_keep_dims(is_max, axes)?;
            let share = g.div(is_max, count)?;
            g.mul(share, y_bar_keep)?
        }
    };
    Ok(smallvec![Some(x_bar)])
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
        self.push(
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

    /// The number of elements of `x` along `axes` (product of their run-time sizes), as a
    /// scalar. Used for means over dynamic axes.
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// let x = g.input("x", [None, Some(3)])?;
    /// let batch = g.dim_size(x, &[0])?;
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn dim_size(&mut self, x: NodeId, axes: &[usize]) -> Result<NodeId> {
        let axes = normalize_axes(axes);
        self.push(Op::DimSize(axes), &[x])
    }

    /// Index of the first maximum along `axis` (the axis is removed). Not differentiable.
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// let logits = g.input("logits", [None, Some(10)])?;
    /// let class = g.argmax(logits, 1)?;
    /// assert_eq!(g.shape(class)?.to_string(), "[?]");
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn argmax(&mut self, x: NodeId, axis: usize) -> Result<NodeId> {
        self.push(Op::ArgMax(axis), &[x])
    }
}
