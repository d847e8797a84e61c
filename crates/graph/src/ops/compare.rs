//! Comparisons (`eq`, `ne`, `lt`, `le`, `gt`, `ge`) and `select` (NumPy's `where`).
//!
//! Comparisons broadcast like binary ops and give 1 where the relation holds, 0 elsewhere, in
//! the graph's element type. They are piecewise constant, so their derivative is 0 almost
//! everywhere: no gradient flows through them (documented zero, not an error).
//!
//! `select(cond, a, b)` broadcasts all three operands and picks `a` where `cond ≠ 0`, else `b`.
//! ∂/∂a = `[cond ≠ 0]`, ∂/∂b = `[cond = 0]`; no gradient flows into `cond`.

use crate::error::{GraphError, Result};
use crate::ops::binary::{infer as infer_binary, zip_broadcast};
use crate::ops::{check_arity, OperandGrads, SELECT};
use crate::shape::{broadcast_shapes, Shape};
use crate::{Element, Graph, NodeId, Op};
use ndarray::{ArrayViewD, ArrayViewMutD, Zip};
use smallvec::smallvec;

family! {
    /// An elementwise comparison giving 1 (true) or 0 (false).
    ///
    /// ```
    /// use dendrite_graph::CompareOp;
    /// assert!(CompareOp::Le.holds(1.0_f32, 1.0));
    /// assert!(!CompareOp::Lt.holds(1.0_f32, 1.0));
    /// assert_eq!(CompareOp::Ge.name(), "ge");
    /// ```
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub unit enum CompareOp {
        /// `a == b`
        Eq => "eq",
        /// `a != b`
        Ne => "ne",
        /// `a < b`
        Lt => "lt",
        /// `a <= b`
        Le => "le",
        /// `a > b`
        Gt => "gt",
        /// `a >= b`
        Ge => "ge",
    }
}

impl CompareOp {
    /// Whether the relation holds (IEEE semantics: every comparison with NaN is false except `ne`).
    ///
    /// ```
    /// assert!(dendrite_graph::CompareOp::Ne.holds(f64::NAN, f64::NAN));
    /// ```
    #[inline]
    pub fn holds<F: Element>(self, a: F, b: F) -> bool {
        match self {
            CompareOp::Eq => a == b,
            CompareOp::Ne => a != b,
            CompareOp::Lt => a < b,
            CompareOp::Le => a <= b,
            CompareOp::Gt => a > b,
            CompareOp::Ge => a >= b,
        }
    }
}

pub(crate) fn forward_compare<F: Element>(
    op: CompareOp,
    a: &ArrayViewD<'_, F>,
    b: &ArrayViewD<'_, F>,
    out: ArrayViewMutD<'_, F>,
) -> Result<()> {
    let as_float = |holds: bool| if holds { F::one() } else { F::zero() };
    match op {
        CompareOp::Eq => zip_broadcast(a, b, out, |x, y| as_float(x == y)),
        CompareOp::Ne => zip_broadcast(a, b, out, |x, y| as_float(x != y)),
        CompareOp::Lt => zip_broadcast(a, b, out, |x, y| as_float(x < y)),
        CompareOp::Le => zip_broadcast(a, b, out, |x, y| as_float(x <= y)),
        CompareOp::Gt => zip_broadcast(a, b, out, |x, y| as_float(x > y)),
        CompareOp::Ge => zip_broadcast(a, b, out, |x, y| as_float(x >= y)),
    }
}

pub(crate) fn infer_select(node: &str, operands: &[&Shape]) -> Result<Shape> {
    check_arity(SELECT, node, operands, 3)?;
    let ab = infer_binary(SELECT, node, &operands[1..])?;
    broadcast_shapes(operands[0], &ab).ok_or_else(|| GraphError::IncompatibleShapes {
        op: "select",
        node: node.to_owned(),
        reason: "condition does not broadcast against the values",
        lhs: operands[0].clone(),
        rhs: ab.clone(),
    })
}

pub(crate) fn forward_select<F: Element>(
    inputs: &[ArrayViewD<'_, F>],
    mut out: ArrayViewMutD<'_, F>,
) -> Result<()> {
    // Fast path (relu and its gradient): each operand contiguous and either full-size or a
    // single element, the condition full-size. One loop per combination, so each is a plain
    // zip that compiles to vector blends (a per-element "which kind is it" test would not).
    if let (Some(c), Some(a), Some(b), Some(os)) = (
        inputs[0].as_slice(),
        inputs[1].as_slice(),
        inputs[2].as_slice(),
        out.as_slice_mut(),
    ) {
        let n = os.len();
        let pick = |c: F, a: F, b: F| if c != F::zero() { a } else { b };
        if c.len() == n {
            match (a.len(), b.len(), a.first(), b.first()) {
                (la, lb, _, _) if la == n && lb == n => {
                    for (((o, &c), &a), &b) in os.iter_mut().zip(c).zip(a).zip(b) {
                        *o = pick(c, a, b);
                    }
                    return Ok(());
                }
                (la, 1, _, Some(&b)) if la == n => {
                    for ((o, &c), &a) in os.iter_mut().zip(c).zip(a) {
                        *o = pick(c, a, b);
                    }
                    return Ok(());
                }
                (1, lb, Some(&a), _) if lb == n => {
                    for ((o, &c), &b) in os.iter_mut().zip(c).zip(b) {
                        *o = pick(c, a, b);
                    }
                    return Ok(());
                }
                _ => {}
            }
        }
    }
    let shape = out.raw_dim();
    match (
        inputs[0].broadcast(shape.clone()),
        inputs[1].broadcast(shape.clone()),
        inputs[2].broadcast(shape),
    ) {
        (Some(c), Some(a), Some(b)) => {
            Zip::from(&mut out)
                .and(&c)
                .and(&a)
                .and(&b)
                .for_each(|o, &c, &a, &b| *o = if c != F::zero() { a } else { b });
            Ok(())
        }
        _ => Err(GraphError::Internal {
            op: "select",
            node: String::new(),
            what: "operands do not broadcast to the inferred shape",
        }),
    }
}

// ANCHOR: select_vjp
pub(crate) fn vjp_select<F: Element>(
    g: &mut Graph<F>,
    xs: &[NodeId],
    y_bar: NodeId,
) -> Result<OperandGrads> {
    let zero = g.scalar(0.0);
    let a_bar = g.select(xs[0], y_bar, zero)?;
    let b_bar = g.select(xs[0], zero, y_bar)?;
    Ok(smallvec![None, Some(a_bar), Some(b_bar)])
}
// ANCHOR_END: select_vjp

impl<F: Element> Graph<F> {
    /// An elementwise comparison with broadcasting, giving 1 or 0. No gradient flows through it.
    ///
    /// ```
    /// use dendrite_graph::CompareOp;
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// # let x = g.input("x", [3])?;
    /// let zero = g.scalar(0.0);
    /// let positive = g.compare(CompareOp::Gt, x, zero)?;
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn compare(&mut self, op: CompareOp, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.add_op(Op::Compare(op), &[a, b])
    }

    /// `a == b` as 1/0.
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// # let (a, b) = (g.input("a", [2])?, g.input("b", [2])?);
    /// let same = g.equal(a, b)?;
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn equal(&mut self, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.compare(CompareOp::Eq, a, b)
    }

    /// `a > b` as 1/0.
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// # let (a, b) = (g.input("a", [2])?, g.input("b", [2])?);
    /// let bigger = g.greater(a, b)?;
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn greater(&mut self, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.compare(CompareOp::Gt, a, b)
    }

    /// `a < b` as 1/0.
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// # let (a, b) = (g.input("a", [2])?, g.input("b", [2])?);
    /// let smaller = g.less(a, b)?;
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn less(&mut self, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.compare(CompareOp::Lt, a, b)
    }

    /// `where(cond, a, b)`: `a` where `cond ≠ 0`, else `b`, all three broadcast.
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// # let x = g.input("x", [3])?;
    /// let zero = g.scalar(0.0);
    /// let positive = g.greater(x, zero)?;
    /// let relu = g.select(positive, x, zero)?;
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn select(&mut self, cond: NodeId, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.add_op(Op::Select, &[cond, a, b])
    }
}
