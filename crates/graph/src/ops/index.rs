//! Integer indexing: `gather` (NumPy's `take`), its adjoint `scatter_add`, and `one_hot`.
//!
//! Indices are tensors of the graph's element type holding integers; a value that is not an
//! integer in range gives [`GraphError::IndexOutOfRange`] naming the node, the value, its
//! position and the index tensor's shape (labels out of range surface here).
//!
//! - `gather(x, idx, axis)`: `y[a.., j.., b..] = x[a.., idx[j..], b..]`; the output shape is
//!   `x.shape[..axis] ++ idx.shape ++ x.shape[axis+1..]`.
//! - `scatter_add(src, idx, like, axis)`: zeros shaped like `like`, then
//!   `out[a.., idx[j..], b..] += src[a.., j.., b..]`. Repeated indices accumulate.
//! - `one_hot(idx, depth)`: `y[j.., c] = [idx[j..] = c]`, shape `idx.shape ++ [depth]`.
//!
//! Gather and scatter-add are each other's adjoints (with respect to `x` and `src`). No
//! gradient flows into indices, nor through `one_hot`: they are piecewise constant.

use crate::error::{GraphError, Result};
use crate::ops::{check_arity, check_axis, OperandGrads};
use crate::shape::{Dim, Shape};
use crate::{Element, Graph, NodeId, Op};
use ndarray::{ArrayViewD, ArrayViewMutD};
use smallvec::smallvec;

/// `base[..axis] ++ idx ++ base[axis+1..]`
fn gathered_shape(base: &Shape, idx: &Shape, axis: usize) -> Shape {
    let d = base.dims();
    Shape::new(
        d[..axis]
            .iter()
            .chain(idx.dims())
            .chain(&d[axis + 1..])
            .copied(),
    )
}

family! {
    /// Integer indexing.
    ///
    /// ```
    /// use dendrite_graph::ops::IndexOp;
    /// assert_eq!(IndexOp::NAMES, &["gather", "scatter_add", "one_hot"]);
    /// ```
    #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    pub enum IndexOp {
        /// `take(x, indices, axis)`.
        Gather(usize) => "gather",
        /// The adjoint of gather: add slices of `src` into zeros shaped like `like`.
        ScatterAdd(usize) => "scatter_add",
        /// One-hot encoding of integer-valued indices with `depth` classes.
        OneHot(usize) => "one_hot",
    }
}

pub(crate) fn infer(op: &IndexOp, node: &str, operands: &[&Shape]) -> Result<Shape> {
    let name = op.name();
    match *op {
        IndexOp::Gather(axis) => {
            check_arity(name, node, operands, 2)?;
            check_axis(name, node, axis, operands[0].rank())?;
            Ok(gathered_shape(operands[0], operands[1], axis))
        }
        IndexOp::ScatterAdd(axis) => {
            check_arity(name, node, operands, 3)?;
            let (src, idx, like) = (operands[0], operands[1], operands[2]);
            check_axis(name, node, axis, like.rank())?;
            let expected = gathered_shape(like, idx, axis);
            let agree = expected.rank() == src.rank()
                && expected
                    .dims()
                    .iter()
                    .zip(src.dims())
                    .all(|(a, b)| !matches!((a, b), (Dim::Fixed(x), Dim::Fixed(y)) if x != y));
            if !agree {
                return Err(GraphError::IncompatibleShapes {
                    op: "scatter_add",
                    node: node.to_owned(),
                    reason: "source does not match the gathered shape of the target",
                    lhs: src.clone(),
                    rhs: expected,
                });
            }
            Ok(like.clone())
        }
        IndexOp::OneHot(depth) => {
            check_arity(name, node, operands, 1)?;
            if depth == 0 {
                return Err(GraphError::InvalidShape {
                    op: "one_hot",
                    node: node.to_owned(),
                    reason: "depth must be at least 1".into(),
                    shape: operands[0].clone(),
                });
            }
            let mut out = operands[0].clone();
            out.push(Dim::Fixed(depth));
            Ok(out)
        }
    }
}

/// Converts the index value at flat `position` of an index tensor shaped `indices` to `usize`,
/// or says why it is not one.
fn to_index<F: Element>(
    op: &IndexOp,
    node: &str,
    value: F,
    (position, indices): (usize, &[usize]),
    bound: usize,
) -> Result<usize> {
    let v = value.as_f64();
    if v.is_finite() && v.fract() == 0.0 && v >= 0.0 && v < bound as f64 {
        Ok(v as usize)
    } else {
        Err(GraphError::IndexOutOfRange {
            op: op.name(),
            node: node.to_owned(),
            value: v,
            position,
            bound,
            indices_shape: indices.to_vec(),
        })
    }
}

pub(crate) fn forward<F: Element>(
    op: &IndexOp,
    node: &str,
    inputs: &[ArrayViewD<'_, F>],
    mut out: ArrayViewMutD<'_, F>,
) -> Result<()> {
    match *op {
        IndexOp::OneHot(depth) => {
            out.fill(F::zero());
            if let Some(os) = out.as_slice_mut() {
                for (p, &v) in inputs[0].iter().enumerate() {
                    let c = to_index(op, node, v, (p, inputs[0].shape()), depth)?;
                    os[p * depth + c] = F::one();
                }
            }
        }
        IndexOp::Gather(axis) => {
            let x = inputs[0].as_standard_layout();
            let (Some(xs), Some(os)) = (x.as_slice(), out.as_slice_mut()) else {
                return Ok(());
            };
            let n = x.shape()[axis];
            let inner: usize = x.shape()[axis + 1..].iter().product();
            let outer: usize = x.shape()[..axis].iter().product();
            let m = inputs[1].len();
            for (j, &v) in inputs[1].iter().enumerate() {
                let i = to_index(op, node, v, (j, inputs[1].shape()), n)?;
                for o in 0..outer {
                    let src = &xs[(o * n + i) * inner..][..inner];
                    os[(o * m + j) * inner..][..inner].copy_from_slice(src);
                }
            }
        }
        IndexOp::ScatterAdd(axis) => {
            out.fill(F::zero());
            let src = inputs[0].as_standard_layout();
            let n = out.shape()[axis];
            let inner: usize = out.shape()[axis + 1..].iter().product();
            let outer: usize = out.shape()[..axis].iter().product();
            let m = inputs[1].len();
            let (Some(ss), Some(os)) = (src.as_slice(), out.as_slice_mut()) else {
                return Ok(());
            };
            for (j, &v) in inputs[1].iter().enumerate() {
                let i = to_index(op, node, v, (j, inputs[1].shape()), n)?;
                for o in 0..outer {
                    let from = &ss[(o * m + j) * inner..][..inner];
                    os[(o * n + i) * inner..][..inner]
                        .iter_mut()
                        .zip(from)
                        .for_each(|(t, &s)| *t = *t + s);
                }
            }
        }
    }
    Ok(())
}

// ANCHOR: index_vjp
pub(crate) fn vjp<F: Element>(
    g: &mut Graph<F>,
    op: &IndexOp,
    xs: &[NodeId],
    y_bar: NodeId,
) -> Result<OperandGrads> {
    Ok(match *op {
        IndexOp::Gather(axis) => smallvec![Some(g.scatter_add(y_bar, xs[1], xs[0], axis)?), None],
        IndexOp::ScatterAdd(axis) => smallvec![Some(g.gather(y_bar, xs[1], axis)?), None, None],
        // An encoding of indices is piecewise constant.
        IndexOp::OneHot(_) => smallvec![None],
    })
}
// ANCHOR_END: index_vjp

impl<F: Element> Graph<F> {
    /// `take(x, indices, axis)`: picks slices of `x` along `axis` (an embedding lookup, say).
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// let table = g.input("table", [100, 16])?;
    /// let ids = g.input("ids", [None, Some(5)])?;
    /// let vectors = g.gather(table, ids, 0)?;
    /// assert_eq!(g.shape(vectors)?.to_string(), "[?, 5, 16]");
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn gather(&mut self, x: NodeId, indices: NodeId, axis: usize) -> Result<NodeId> {
        self.add_op(Op::Index(IndexOp::Gather(axis)), &[x, indices])
    }

    /// The adjoint of [`Graph::gather`]: adds slices of `src` into zeros shaped like `like`.
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// let table = g.input("table", [100, 16])?;
    /// let ids = g.input("ids", [5])?;
    /// let rows = g.input("rows", [5, 16])?;
    /// let dense = g.scatter_add(rows, ids, table, 0)?;
    /// assert_eq!(g.shape(dense)?.to_string(), "[100, 16]");
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn scatter_add(
        &mut self,
        src: NodeId,
        indices: NodeId,
        like: NodeId,
        axis: usize,
    ) -> Result<NodeId> {
        self.add_op(Op::Index(IndexOp::ScatterAdd(axis)), &[src, indices, like])
    }

    /// One-hot encodes integer-valued `indices` into `depth` classes (new last axis).
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// let labels = g.input("labels", [None])?;
    /// let targets = g.one_hot(labels, 10)?;
    /// assert_eq!(g.shape(targets)?.to_string(), "[?, 10]");
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn one_hot(&mut self, indices: NodeId, depth: usize) -> Result<NodeId> {
        self.add_op(Op::Index(IndexOp::OneHot(depth)), &[indices])
    }
}
