//! Slicing, zero padding and concatenation along one axis.
//!
//! - `slice(x, axis, start..end)`: `y[.., i, ..] = x[.., start + i, ..]`.
//! - `pad(x, axis, before, after)`: `x` surrounded by `before` and `after` zeros along `axis`.
//! - `concat([x₁, …, xₙ], axis)`: the operands one after another along `axis`; every other
//!   dimension must agree.
//!
//! Slice and pad are each other's adjoints: `x_bar = pad(y_bar)` for a slice and
//! `x_bar = slice(y_bar)` for a pad. A concatenation hands each operand its slice of the
//! cotangent. These rules need the sizes along the axis at build time; along a dynamic axis
//! they return [`GraphError::NotDifferentiable`].

use crate::error::{GraphError, Result};
use crate::ops::{check_arity, check_axis, OperandGrads};
use crate::shape::{Dim, Shape};
use crate::{Element, Graph, NodeId, Op};
use ndarray::{ArrayViewD, ArrayViewMutD, Axis, Slice};
use smallvec::smallvec;

family! {
    /// Slicing, zero padding and concatenation along one axis.
    ///
    /// ```
    /// use dendrite_graph::ops::SliceOp;
    /// assert_eq!(SliceOp::NAMES, &["slice", "pad", "concat"]);
    /// ```
    #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    pub enum SliceOp {
        /// `x[start..end]` along one axis.
        Slice {
            /// The sliced axis.
            axis: usize,
            /// First index kept.
            start: usize,
            /// One past the last index kept.
            end: usize,
        } => "slice",
        /// Zero padding along one axis.
        Pad {
            /// The padded axis.
            axis: usize,
            /// Zeros before.
            before: usize,
            /// Zeros after.
            after: usize,
        } => "pad",
        /// Concatenation along an axis.
        Concat(usize) => "concat",
    }
}

pub(crate) fn infer(op: &SliceOp, node: &str, operands: &[&Shape]) -> Result<Shape> {
    let at = Site { op, node };
    match *op {
        SliceOp::Slice { axis, start, end } => {
            check_arity(op.name(), node, operands, 1)?;
            at.slice_shape(operands[0], axis, start, end)
        }
        SliceOp::Pad {
            axis,
            before,
            after,
        } => {
            check_arity(op.name(), node, operands, 1)?;
            at.pad_shape(operands[0], axis, before, after)
        }
        SliceOp::Concat(axis) => at.concat_shape(operands, axis),
    }
}

/// The op and node a shape rule reports its errors for.
struct Site<'a> {
    op: &'a SliceOp,
    node: &'a str,
}

impl Site<'_> {
    fn invalid(&self, reason: String, shape: &Shape) -> GraphError {
        GraphError::InvalidShape {
            op: self.op.name(),
            node: self.node.to_owned(),
            reason,
            shape: shape.clone(),
        }
    }

    /// `x` with `axis` cut to `end - start`, when the range fits the axis (always, along a
    /// dynamic one: the run checks it).
    fn slice_shape(&self, x: &Shape, axis: usize, start: usize, end: usize) -> Result<Shape> {
        check_axis(self.op.name(), self.node, axis, x.rank())?;
        let fits = match x.dims()[axis] {
            Dim::Fixed(n) => end <= n,
            Dim::Dynamic => true,
        };
        if start > end || !fits {
            let reason = format!("range {start}..{end} does not fit axis {axis}");
            return Err(self.invalid(reason, x));
        }
        let mut out = x.clone();
        out.dims_mut()[axis] = Dim::Fixed(end - start);
        Ok(out)
    }

    /// `x` with `before + after` added along `axis` (a dynamic axis stays dynamic).
    fn pad_shape(&self, x: &Shape, axis: usize, before: usize, after: usize) -> Result<Shape> {
        check_axis(self.op.name(), self.node, axis, x.rank())?;
        let mut out = x.clone();
        if let Dim::Fixed(n) = x.dims()[axis] {
            let padded = n.checked_add(before).and_then(|m| m.checked_add(after));
            let Some(padded) = padded else {
                let reason = format!("padding {before} + {after} around {n} overflows a dimension");
                return Err(self.invalid(reason, x));
            };
            out.dims_mut()[axis] = Dim::Fixed(padded);
        }
        Ok(out)
    }

    /// The first operand's shape with the sizes along `axis` summed, once every operand agrees
    /// with it off the axis.
    fn concat_shape(&self, operands: &[&Shape], axis: usize) -> Result<Shape> {
        let Some(first) = operands.first() else {
            return Err(GraphError::Arity {
                op: "concat",
                node: self.node.to_owned(),
                expected: "at least one operand",
                actual: 0,
            });
        };
        check_axis(self.op.name(), self.node, axis, first.rank())?;
        let mut out = (*first).clone();
        for other in &operands[1..] {
            if !agree_off_axis(first, other, axis) {
                return Err(GraphError::IncompatibleShapes {
                    op: "concat",
                    node: self.node.to_owned(),
                    reason: "operands differ off the concatenation axis",
                    lhs: (*first).clone(),
                    rhs: (*other).clone(),
                });
            }
            let total = &mut out.dims_mut()[axis];
            *total = match (*total, other.dims()[axis]) {
                (Dim::Fixed(a), Dim::Fixed(b)) => match a.checked_add(b) {
                    Some(sum) => Dim::Fixed(sum),
                    None => {
                        let reason = format!("concatenated sizes along axis {axis} overflow");
                        return Err(self.invalid(reason, other));
                    }
                },
                _ => Dim::Dynamic,
            };
        }
        Ok(out)
    }
}

/// Whether `a` and `b` have the same rank and no two fixed sizes differ off `axis`.
fn agree_off_axis(a: &Shape, b: &Shape, axis: usize) -> bool {
    a.rank() == b.rank()
        && a.dims()
            .iter()
            .zip(b.dims())
            .enumerate()
            .all(|(i, (x, y))| {
                i == axis || !matches!((x, y), (Dim::Fixed(m), Dim::Fixed(n)) if m != n)
            })
}

pub(crate) fn forward<F: Element>(
    op: &SliceOp,
    inputs: &[ArrayViewD<'_, F>],
    mut out: ArrayViewMutD<'_, F>,
) -> Result<()> {
    match *op {
        SliceOp::Slice { axis, start, end } => {
            out.assign(&inputs[0].slice_axis(Axis(axis), Slice::from(start..end)));
        }
        SliceOp::Pad { axis, before, .. } => {
            out.fill(F::zero());
            let n = inputs[0].shape()[axis];
            out.slice_axis_mut(Axis(axis), Slice::from(before..before + n))
                .assign(&inputs[0]);
        }
        SliceOp::Concat(axis) => {
            let mut offset = 0;
            for x in inputs {
                let n = x.shape()[axis];
                out.slice_axis_mut(Axis(axis), Slice::from(offset..offset + n))
                    .assign(x);
                offset += n;
            }
        }
    }
    Ok(())
}

fn fixed_along<F: Element>(
    g: &Graph<F>,
    x: NodeId,
    axis: usize,
    y: NodeId,
    op: &'static str,
) -> Result<usize> {
    match g.shape(x)?.dims().get(axis) {
        Some(Dim::Fixed(n)) => Ok(*n),
        _ => Err(GraphError::NotDifferentiable {
            op,
            node: g.name(y)?.to_owned(),
            reason: "the derivative needs a fixed size along the axis",
        }),
    }
}

// ANCHOR: slice_vjp
pub(crate) fn vjp<F: Element>(
    g: &mut Graph<F>,
    op: &SliceOp,
    xs: &[NodeId],
    y: NodeId,
    y_bar: NodeId,
) -> Result<OperandGrads> {
    match *op {
        SliceOp::Slice { axis, start, end } => {
            let n = fixed_along(g, xs[0], axis, y, "slice")?;
            Ok(smallvec![Some(g.pad(y_bar, axis, start, n - end)?)])
        }
        SliceOp::Pad { axis, before, .. } => {
            let n = fixed_along(g, xs[0], axis, y, "pad")?;
            Ok(smallvec![Some(g.slice(y_bar, axis, before, before + n)?)])
        }
        SliceOp::Concat(axis) => {
            let mut offset = 0;
            let mut grads = smallvec![];
            for &x in xs {
                let n = fixed_along(g, x, axis, y, "concat")?;
                grads.push(Some(g.slice(y_bar, axis, offset, offset + n)?));
                offset += n;
            }
            Ok(grads)
        }
    }
}
// ANCHOR_END: slice_vjp

impl<F: Element> Graph<F> {
    /// `x[start..end]` along `axis`.
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// let x = g.input("x", [4, 10])?;
    /// let y = g.slice(x, 1, 2, 5)?;
    /// assert_eq!(g.shape(y)?.to_string(), "[4, 3]");
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn slice(&mut self, x: NodeId, axis: usize, start: usize, end: usize) -> Result<NodeId> {
        self.add_op(Op::Slice(SliceOp::Slice { axis, start, end }), &[x])
    }

    /// Pads `x` with `before` and `after` zeros along `axis`.
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// let x = g.input("x", [3])?;
    /// let y = g.pad(x, 0, 1, 2)?;
    /// assert_eq!(g.shape(y)?.to_string(), "[6]");
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn pad(&mut self, x: NodeId, axis: usize, before: usize, after: usize) -> Result<NodeId> {
        self.add_op(
            Op::Slice(SliceOp::Pad {
                axis,
                before,
                after,
            }),
            &[x],
        )
    }

    /// Concatenates the operands along `axis`.
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// let a = g.input("a", [2, 3])?;
    /// let b = g.input("b", [2, 5])?;
    /// let c = g.concat(&[a, b], 1)?;
    /// assert_eq!(g.shape(c)?.to_string(), "[2, 8]");
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn concat(&mut self, xs: &[NodeId], axis: usize) -> Result<NodeId> {
        self.add_op(Op::Slice(SliceOp::Concat(axis)), xs)
    }
}
