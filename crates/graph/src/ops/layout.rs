//! Ops that move elements without changing them: `reshape`, `permute` (transpose) and
//! `expand_dims`.
//!
//! - `reshape(x, shape)`: the same elements in row-major order under a new shape. At most one
//!   target dimension may be dynamic; it is solved from the element count. Derivative: reshape
//!   the cotangent back to `x`'s shape.
//! - `permute(x, perm)`: output axis `i` is input axis `perm[i]`. Derivative: permute the
//!   cotangent by the inverse permutation.
//! - `expand_dims(x, axes)`: insert size-1 axes at the given output positions. Derivative: sum
//!   the cotangent over those axes (dropping them), which is a reshape in disguise that works
//!   with any number of dynamic dimensions.

use crate::error::{GraphError, Result};
use crate::ops::{check_arity, check_axes, normalize_axes, Axes, OperandGrads};
use crate::shape::{Dim, Shape};
use crate::{Element, Graph, NodeId, Op};
use ndarray::{ArrayViewD, ArrayViewMutD};
use smallvec::smallvec;

family! {
    /// Ops that move elements without changing them.
    ///
    /// ```
    /// use dendrite_graph::ops::LayoutOp;
    /// assert_eq!(LayoutOp::NAMES, &["expand_dims", "reshape", "permute"]);
    /// ```
    #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    pub enum LayoutOp {
        /// Insert size-1 axes at the given output positions.
        ExpandDims(Axes) => "expand_dims",
        /// Reinterpret the elements (row-major) in a new shape.
        Reshape(Shape) => "reshape",
        /// Reorder the axes: output axis `i` is operand axis `perm[i]`.
        Permute(Axes) => "permute",
    }
}

pub(crate) fn infer(op: &LayoutOp, node: &str, operands: &[&Shape]) -> Result<Shape> {
    check_arity(op.name(), node, operands, 1)?;
    let x = operands[0];
    match op {
        LayoutOp::ExpandDims(axes) => expand_dims_shape(op, node, x, axes),
        LayoutOp::Reshape(target) => reshape_shape(op, node, x, target),
        LayoutOp::Permute(perm) => permute_shape(op, node, x, perm),
    }
}

fn invalid(op: &LayoutOp, node: &str, reason: String, shape: &Shape) -> GraphError {
    GraphError::InvalidShape {
        op: op.name(),
        node: node.to_owned(),
        reason,
        shape: shape.clone(),
    }
}

/// `x` with a size-1 axis at each of `axes` (positions in the result).
fn expand_dims_shape(op: &LayoutOp, node: &str, x: &Shape, axes: &[usize]) -> Result<Shape> {
    let rank = x.rank() + axes.len();
    check_axes(op.name(), node, axes, rank)?;
    let mut src = x.dims().iter();
    Ok(Shape::new((0..rank).map(|i| {
        if axes.contains(&i) {
            Dim::Fixed(1)
        } else {
            src.next().copied().unwrap_or(Dim::Fixed(1))
        }
    })))
}

/// The reshape target, its one dynamic dimension (if any) solved from `x`'s element count
/// when that is known.
fn reshape_shape(op: &LayoutOp, node: &str, x: &Shape, target: &Shape) -> Result<Shape> {
    let dynamic = target.dims().iter().filter(|d| **d == Dim::Dynamic).count();
    if dynamic > 1 {
        let reason = "a reshape target may have at most one dynamic dimension".into();
        return Err(invalid(op, node, reason, target));
    }
    let Some(total) = x.size() else {
        return Ok(target.clone());
    };
    let mismatch = || GraphError::IncompatibleShapes {
        op: op.name(),
        node: node.to_owned(),
        reason: "element counts differ",
        lhs: x.clone(),
        rhs: target.clone(),
    };
    // Checked: a target whose fixed dimensions overflow matches no operand.
    let known = target
        .dims()
        .iter()
        .filter_map(|d| d.fixed())
        .try_fold(1usize, |n, m| n.checked_mul(m))
        .ok_or_else(mismatch)?;
    if dynamic == 0 {
        return if known == total {
            Ok(target.clone())
        } else {
            Err(mismatch())
        };
    }
    if known == 0 || total % known != 0 {
        return Err(mismatch());
    }
    Ok(Shape::new(target.dims().iter().map(|&d| match d {
        Dim::Dynamic => Dim::Fixed(total / known),
        fixed => fixed,
    })))
}

/// `x`'s dimensions in the order `perm` names them, when `perm` is a permutation of its axes.
fn permute_shape(op: &LayoutOp, node: &str, x: &Shape, perm: &[usize]) -> Result<Shape> {
    let mut seen = vec![false; x.rank()];
    let valid = perm.len() == x.rank()
        && perm
            .iter()
            .all(|&p| p < x.rank() && !std::mem::replace(&mut seen[p], true));
    if !valid {
        let reason = format!("{perm:?} is not a permutation of the operand's axes");
        return Err(invalid(op, node, reason, x));
    }
    Ok(Shape::new(perm.iter().map(|&p| x.dims()[p])))
}

pub(crate) fn forward<F: Element>(
    op: &LayoutOp,
    x: &ArrayViewD<'_, F>,
    mut out: ArrayViewMutD<'_, F>,
) -> Result<()> {
    match op {
        LayoutOp::Permute(perm) => out.assign(&x.view().permuted_axes(perm.as_slice())),
        // Reshape and expand_dims keep the row-major element order.
        LayoutOp::Reshape(_) | LayoutOp::ExpandDims(_) => {
            match (x.as_slice(), out.as_slice_mut()) {
                (Some(xs), Some(os)) => os.copy_from_slice(xs),
                (_, os) => {
                    if let Some(os) = os {
                        os.iter_mut().zip(x.iter()).for_each(|(o, &v)| *o = v);
                    }
                }
            }
        }
    }
    Ok(())
}

// ANCHOR: layout_vjp
pub(crate) fn vjp<F: Element>(
    g: &mut Graph<F>,
    op: &LayoutOp,
    x: NodeId,
    y: NodeId,
    y_bar: NodeId,
) -> Result<OperandGrads> {
    let x_bar = match op {
        LayoutOp::ExpandDims(axes) => g.sum(y_bar, axes)?,
        LayoutOp::Permute(perm) => {
            let mut inverse: Axes = smallvec![0; perm.len()];
            for (i, &p) in perm.iter().enumerate() {
                inverse[p] = i;
            }
            g.permute(y_bar, &inverse)?
        }
        LayoutOp::Reshape(_) => {
            let shape = g.shape(x)?.clone();
            if shape.dims().iter().filter(|d| **d == Dim::Dynamic).count() > 1 {
                return Err(GraphError::NotDifferentiable {
                    op: "reshape",
                    node: g.name(y)?.to_owned(),
                    reason: "the operand has more than one dynamic dimension, \
                             so its shape cannot be restored",
                });
            }
            g.reshape(y_bar, shape)?
        }
    };
    Ok(smallvec![Some(x_bar)])
}
// ANCHOR_END: layout_vjp

impl<F: Element> Graph<F> {
    /// The same elements (row-major) in a new shape; one target dimension may be `None`
    /// (dynamic), solved from the element count.
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// let x = g.input("x", [2, 3, 4])?;
    /// let flat = g.reshape(x, [None, Some(4)])?;
    /// assert_eq!(g.shape(flat)?.to_string(), "[6, 4]");
    /// assert!(g.reshape(x, [5, 5]).is_err());
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn reshape(&mut self, x: NodeId, shape: impl Into<Shape>) -> Result<NodeId> {
        self.add_op(Op::Layout(LayoutOp::Reshape(shape.into())), &[x])
    }

    /// Reorders axes: output axis `i` is input axis `perm[i]`.
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// let x = g.input("x", [2, 3, 4])?;
    /// let y = g.permute(x, &[2, 0, 1])?;
    /// assert_eq!(g.shape(y)?.to_string(), "[4, 2, 3]");
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn permute(&mut self, x: NodeId, perm: &[usize]) -> Result<NodeId> {
        self.add_op(
            Op::Layout(LayoutOp::Permute(perm.iter().copied().collect())),
            &[x],
        )
    }

    /// Swaps the last two axes (a matrix transpose, batched).
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// let x = g.input("x", [2, 3])?;
    /// let t = g.transpose(x)?;
    /// assert_eq!(g.shape(t)?.to_string(), "[3, 2]");
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn transpose(&mut self, x: NodeId) -> Result<NodeId> {
        let rank = self.shape(x)?.rank();
        if rank < 2 {
            return Err(GraphError::InvalidShape {
                op: "permute",
                node: self.name(x)?.to_owned(),
                reason: "transpose needs at least two axes".into(),
                shape: self.shape(x)?.clone(),
            });
        }
        let mut perm: Axes = (0..rank).collect();
        perm.swap(rank - 2, rank - 1);
        self.permute(x, &perm)
    }

    /// Inserts size-1 axes at the given positions of the output.
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// let x = g.input("x", [None, Some(3)])?;
    /// let y = g.expand_dims(x, &[1])?;
    /// assert_eq!(g.shape(y)?.to_string(), "[?, 1, 3]");
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn expand_dims(&mut self, x: NodeId, axes: &[usize]) -> Result<NodeId> {
        self.add_op(Op::Layout(LayoutOp::ExpandDims(normalize_axes(axes))), &[x])
    }
}
