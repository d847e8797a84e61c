//! Explicit broadcasting and its adjoint: `broadcast_to`, `broadcast_like`, `sum_like`.
//!
//! Broadcasting copies an operand along axes where it has size 1 (or lacks the axis): for
//! `y = broadcast(x)`, `y[i] = x[π(i)]` where `π` drops the leading axes and zeroes the
//! stretched indices. Its adjoint adds every copy's cotangent back: `x_bar = sum_like(y_bar, x)`.
//! The two are each other's vector-Jacobian products, which makes second-order gradients
//! through them free.
//!
//! Shape rules:
//! - `broadcast_to(x, shape)`: `x` must broadcast to `shape`; a dynamic target dimension takes
//!   the aligned dimension of `x`.
//! - `broadcast_like(x, like)`: the output has `like`'s shape (resolved at run time, so dynamic
//!   batch dimensions work); `x` must broadcast to it. No gradient flows into `like`.
//! - `sum_like(x, like)`: the output has `like`'s shape; `like` must broadcast to `x`.

use crate::error::{GraphError, Result};
use crate::ops::reduce::reduce_into;
use crate::ops::{check_arity, OperandGrads};
use crate::shape::{Dim, Shape};
use crate::{Element, Graph, NodeId, Op};
use ndarray::{ArrayViewD, ArrayViewMutD, IxDyn};
use smallvec::smallvec;

family! {
    /// Explicit broadcasting and its adjoint.
    ///
    /// ```
    /// use dendrite_graph::ops::BroadcastOp;
    /// assert_eq!(BroadcastOp::SumLike.name(), "sum_like");
    /// assert_eq!(BroadcastOp::NAMES, &["broadcast_to", "broadcast_like", "sum_like"]);
    /// ```
    #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    pub enum BroadcastOp {
        /// Broadcast to a declared shape.
        To(Shape) => "broadcast_to",
        /// Broadcast the first operand to the runtime shape of the second.
        Like => "broadcast_like",
        /// Sum the first operand down to the runtime shape of the second: the adjoint of
        /// broadcasting.
        SumLike => "sum_like",
    }
}

/// Whether `from` broadcasts to `to` (dynamic dimensions taken on trust).
fn broadcasts_to(from: &Shape, to: &Shape) -> bool {
    if from.rank() > to.rank() {
        return false;
    }
    let pad = to.rank() - from.rank();
    from.dims()
        .iter()
        .zip(&to.dims()[pad..])
        .all(|(&f, &t)| match (f, t) {
            (Dim::Fixed(a), Dim::Fixed(b)) => a == b || a == 1,
            _ => true,
        })
}

pub(crate) fn infer(op: &BroadcastOp, node: &str, operands: &[&Shape]) -> Result<Shape> {
    let mismatch = |reason, lhs: &Shape, rhs: &Shape| GraphError::IncompatibleShapes {
        op: op.name(),
        node: node.to_owned(),
        reason,
        lhs: lhs.clone(),
        rhs: rhs.clone(),
    };
    match op {
        BroadcastOp::To(target) => {
            check_arity(op.name(), node, operands, 1)?;
            let x = operands[0];
            if x.rank() > target.rank() {
                return Err(mismatch("operand has more axes than the target", x, target));
            }
            let pad = target.rank() - x.rank();
            let mut out = target.clone();
            for (i, dim) in out.dims_mut().iter_mut().enumerate() {
                if *dim == Dim::Dynamic {
                    *dim = if i >= pad {
                        x.dims()[i - pad]
                    } else {
                        return Err(mismatch(
                            "a dynamic target axis needs an aligned operand axis",
                            x,
                            target,
                        ));
                    };
                }
            }
            if broadcasts_to(x, &out) {
                Ok(out)
            } else {
                Err(mismatch(
                    "operand does not broadcast to the target",
                    x,
                    target,
                ))
            }
        }
        BroadcastOp::Like => {
            check_arity(op.name(), node, operands, 2)?;
            if broadcasts_to(operands[0], operands[1]) {
                Ok(operands[1].clone())
            } else {
                Err(mismatch(
                    "operand does not broadcast to the reference shape",
                    operands[0],
                    operands[1],
                ))
            }
        }
        BroadcastOp::SumLike => {
            check_arity(op.name(), node, operands, 2)?;
            if broadcasts_to(operands[1], operands[0]) {
                Ok(operands[1].clone())
            } else {
                Err(mismatch(
                    "reference shape does not broadcast to the operand",
                    operands[0],
                    operands[1],
                ))
            }
        }
    }
}

pub(crate) fn forward<F: Element>(
    op: &BroadcastOp,
    node: &str,
    inputs: &[ArrayViewD<'_, F>],
    mut out: ArrayViewMutD<'_, F>,
) -> Result<()> {
    let x = &inputs[0];
    match op {
        BroadcastOp::SumLike => {
            // View the output with x's rank (leading 1s), then reduce into it.
            let mut keep: smallvec::SmallVec<[usize; 4]> = smallvec![1; x.ndim() - out.ndim()];
            keep.extend_from_slice(out.shape());
            let keep_view = out
                .view_mut()
                .into_shape_with_order(IxDyn(&keep))
                .map_err(|_| internal(op, node, x.shape(), &keep))?;
            reduce_into(x, keep_view, F::zero(), |acc, v| acc + v);
            Ok(())
        }
        BroadcastOp::To(_) | BroadcastOp::Like => match x.broadcast(out.raw_dim()) {
            Some(view) => {
                out.assign(&view);
                Ok(())
            }
            None => Err(internal(op, node, x.shape(), out.shape())),
        },
    }
}

fn internal(op: &BroadcastOp, node: &str, lhs: &[usize], rhs: &[usize]) -> GraphError {
    GraphError::IncompatibleShapes {
        op: op.name(),
        node: node.to_owned(),
        reason: "operand does not broadcast at run time",
        lhs: Shape::fixed(lhs),
        rhs: Shape::fixed(rhs),
    }
}

// ANCHOR: broadcast_vjp
pub(crate) fn vjp<F: Element>(
    g: &mut Graph<F>,
    op: &BroadcastOp,
    xs: &[NodeId],
    y_bar: NodeId,
) -> Result<OperandGrads> {
    Ok(match op {
        // The adjoint of a broadcast is the sum back to the operand's shape.
        BroadcastOp::To(_) => smallvec![Some(g.sum_like(y_bar, xs[0])?)],
        BroadcastOp::Like => smallvec![Some(g.sum_like(y_bar, xs[0])?), None],
        // ...and the adjoint of that sum is the broadcast.
        BroadcastOp::SumLike => smallvec![Some(g.broadcast_like(y_bar, xs[0])?), None],
    })
}
// ANCHOR_END: broadcast_vjp

impl<F: Element> Graph<F> {
    /// Broadcasts `x` to `shape` (NumPy rules). A dynamic target dimension takes `x`'s aligned
    /// dimension.
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// let b = g.input("bias", [3])?;
    /// let tiled = g.broadcast_to(b, [4, 3])?;
    /// assert_eq!(g.shape(tiled)?.to_string(), "[4, 3]");
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn broadcast_to(&mut self, x: NodeId, shape: impl Into<Shape>) -> Result<NodeId> {
        self.add_op(Op::Broadcast(BroadcastOp::To(shape.into())), &[x])
    }

    /// Broadcasts `x` to the run-time shape of `like`. No gradient flows into `like`.
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// let x = g.input("x", [None, Some(3)])?;
    /// let one = g.scalar(1.0);
    /// let ones = g.broadcast_like(one, x)?;
    /// assert_eq!(g.shape(ones)?.to_string(), "[?, 3]");
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn broadcast_like(&mut self, x: NodeId, like: NodeId) -> Result<NodeId> {
        self.add_op(Op::Broadcast(BroadcastOp::Like), &[x, like])
    }

    /// Sums `x` down to the run-time shape of `like` (which must broadcast to `x`): the adjoint
    /// of broadcasting. No gradient flows into `like`.
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// let x = g.input("x", [None, Some(3)])?;
    /// let b = g.input("b", [3])?;
    /// let summed = g.sum_like(x, b)?;
    /// assert_eq!(g.shape(summed)?.to_string(), "[3]");
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn sum_like(&mut self, x: NodeId, like: NodeId) -> Result<NodeId> {
        self.add_op(Op::Broadcast(BroadcastOp::SumLike), &[x, like])
    }
}
