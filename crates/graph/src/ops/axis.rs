//! Functions along axes that are not folds: `dim_size`, `argmax` and `cumsum`.
//!
//! - `dim_size(x, axes)`: the number of elements along `axes` (the product of their run-time
//!   sizes), as a scalar: what a mean over a dynamic batch divides by.
//! - `argmax(x, axis)`: the index of the first maximum along `axis` (removed), as a float. A NaN
//!   counts as the maximum (as in NumPy), so a poisoned row is visible rather than silently
//!   mapped to some class.
//! - `cumsum(x, axis)`: `y_i = Σ_{j ≤ i} x_j` along `axis` (or `Σ_{j ≥ i}` when reversed);
//!   the output has the operand's shape.
//!
//! Derivatives: `dim_size` and `argmax` are piecewise constant, so no gradient flows through
//! them. `cumsum` is linear with a lower-triangular matrix of ones; its transpose is the upper
//! triangle, so `x_bar = reversed cumsum(y_bar)`: `x_bar_j = Σ_{i ≥ j} ȳ_i`, every output at
//! or after `j` having counted `x_j` once.

use crate::error::{GraphError, Result};
use crate::ops::{check_arity, check_axes, check_axis, normalize_axes, Axes, OperandGrads};
use crate::shape::{Dim, Shape};
use crate::{Element, Graph, NodeId, Op};
use ndarray::{ArrayViewD, ArrayViewMutD, Axis, Zip};
use smallvec::smallvec;

family! {
    /// Functions along axes that are not folds.
    ///
    /// ```
    /// use dendrite_graph::ops::AxisOp;
    /// assert_eq!(AxisOp::NAMES, &["dim_size", "argmax", "cumsum"]);
    /// ```
    #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    pub enum AxisOp {
        /// The number of elements along the given axes, as a scalar.
        DimSize(Axes) => "dim_size",
        /// Index of the first maximum along an axis, as a float.
        ArgMax(usize) => "argmax",
        /// Running sum along an axis.
        CumSum {
            /// The summed axis.
            axis: usize,
            /// Sum from the end of the axis towards its start.
            reverse: bool,
        } => "cumsum",
    }
}

pub(crate) fn infer(op: &AxisOp, node: &str, operands: &[&Shape]) -> Result<Shape> {
    check_arity(op.name(), node, operands, 1)?;
    let x = operands[0];
    match op {
        AxisOp::DimSize(axes) => {
            check_axes(op.name(), node, axes, x.rank())?;
            Ok(Shape::scalar())
        }
        AxisOp::ArgMax(axis) => {
            check_axis(op.name(), node, *axis, x.rank())?;
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
        AxisOp::CumSum { axis, .. } => {
            check_axis(op.name(), node, *axis, x.rank())?;
            Ok(x.clone())
        }
    }
}

pub(crate) fn forward<F: Element>(
    op: &AxisOp,
    x: &ArrayViewD<'_, F>,
    mut out: ArrayViewMutD<'_, F>,
) -> Result<()> {
    match *op {
        AxisOp::DimSize(ref axes) => {
            let n: usize = axes.iter().map(|&a| x.shape()[a]).product();
            out.fill(F::of(n as f64));
        }
        AxisOp::ArgMax(axis) => {
            for (o, lane) in out.iter_mut().zip(x.lanes(Axis(axis))) {
                *o = F::of(first_max(lane.iter().copied()) as f64);
            }
        }
        AxisOp::CumSum { axis, reverse } => {
            Zip::from(out.lanes_mut(Axis(axis)))
                .and(x.lanes(Axis(axis)))
                .for_each(|mut y, x| {
                    let mut total = F::zero();
                    let mut step = |(t, &v): (&mut F, &F)| {
                        total = total + v;
                        *t = total;
                    };
                    if reverse {
                        y.iter_mut().zip(x.iter()).rev().for_each(&mut step);
                    } else {
                        y.iter_mut().zip(x.iter()).for_each(&mut step);
                    }
                });
        }
    }
    Ok(())
}

/// Index of the first maximum; the first NaN wins outright.
fn first_max<F: Element>(lane: impl Iterator<Item = F>) -> usize {
    let mut best = 0;
    let mut best_value = F::neg_infinity();
    for (i, v) in lane.enumerate() {
        if v.is_nan() {
            return i;
        }
        if i == 0 || v > best_value {
            best = i;
            best_value = v;
        }
    }
    best
}

// ANCHOR: axis_vjp
pub(crate) fn vjp<F: Element>(
    g: &mut Graph<F>,
    op: &AxisOp,
    y_bar: NodeId,
) -> Result<OperandGrads> {
    Ok(match *op {
        // Sizes and positions are piecewise constant in the values.
        AxisOp::DimSize(_) | AxisOp::ArgMax(_) => smallvec![None],
        // The transpose of a running sum is the running sum from the other end.
        AxisOp::CumSum { axis, reverse } => smallvec![Some(g.cumsum(y_bar, axis, !reverse)?)],
    })
}
// ANCHOR_END: axis_vjp

impl<F: Element> Graph<F> {
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
        self.add_op(Op::Axis(AxisOp::DimSize(axes)), &[x])
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
        self.add_op(Op::Axis(AxisOp::ArgMax(axis)), &[x])
    }

    /// Running sum along `axis`: `y_i = Σ_{j ≤ i} x_j`, or `Σ_{j ≥ i} x_j` when `reverse`.
    /// Derivative: the running sum of the cotangent in the other direction.
    ///
    /// ```
    /// # use dendrite_graph::{compile, Graph};
    /// let mut g = Graph::<f64>::new();
    /// let x = g.input("x", [3])?;
    /// let y = g.cumsum(x, 0, false)?;
    /// let mut plan = compile(&g, &[y])?;
    /// let v = ndarray::arr1(&[1.0, 2.0, 3.0]).into_dyn();
    /// let out = plan.run(&g, &[("x", v.view())])?;
    /// assert_eq!(out.get(0)?.as_slice(), Some(&[1.0, 3.0, 6.0][..]));
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn cumsum(&mut self, x: NodeId, axis: usize, reverse: bool) -> Result<NodeId> {
        self.add_op(Op::Axis(AxisOp::CumSum { axis, reverse }), &[x])
    }
}
