//! Elementwise functions of two operands with NumPy broadcasting: `add`, `sub`, `mul`, `div`,
//! `maximum`, `minimum`, `power`.
//!
//! Shape rule: align the shapes on the right; each pair of dimensions must be equal or one of
//! them 1; the output takes the larger (see [`crate::broadcast_shapes`]).
//!
//! | op | forward | ∂/∂a | ∂/∂b |
//! | --- | --- | --- | --- |
//! | add | `a + b` | `1` | `1` |
//! | sub | `a - b` | `1` | `-1` |
//! | mul | `a b` | `b` | `a` |
//! | div | `a / b` | `1/b` | `-a/b²` |
//! | maximum | `max(a, b)` | `[a > b] + ½[a = b]` | `[b > a] + ½[a = b]` |
//! | minimum | `min(a, b)` | `[a < b] + ½[a = b]` | `[b < a] + ½[a = b]` |
//! | power | `a^b` | `b a^(b-1)` | `a^b ln a` |
//!
//! Ties in `maximum`/`minimum` split the gradient evenly, as the max reduction does; the sum of
//! the two partials is 1 either way, so `max(x, x)` has derivative 1.
//!
//! `power`'s domain: `a > 0` for any `b` (the `b`-gradient `a^b ln a` needs it), or any `a`
//! with an integer `b` for the value and the `a`-gradient (`(-2)^3 = -8`); a negative base
//! with a fractional exponent gives NaN, as in NumPy.
//!
//! Each partial is returned in the output's (broadcast) shape; the reverse sweep sums it back to
//! the operand's shape.

use crate::error::{GraphError, Result};
use crate::ops::{check_arity, CompareOp, OperandGrads};
use crate::shape::{broadcast_shapes, Shape};
use crate::{Element, Graph, NodeId, Op};
use ndarray::{ArrayViewD, ArrayViewMutD, Zip};
use smallvec::{smallvec, SmallVec};

family! {
    /// An elementwise, broadcasting function of two operands.
    ///
    /// ```
    /// use dendrite_graph::BinaryOp;
    /// assert_eq!(BinaryOp::Div.apply(1.0_f64, 4.0), 0.25);
    /// assert_eq!(BinaryOp::Maximum.name(), "maximum");
    /// ```
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub unit enum BinaryOp {
        /// `a + b`
        Add => "add",
        /// `a - b`
        Sub => "sub",
        /// `a * b`
        Mul => "mul",
        /// `a / b`
        Div => "div",
        /// `max(a, b)`; NaN if either is NaN.
        Maximum => "maximum",
        /// `min(a, b)`; NaN if either is NaN.
        Minimum => "minimum",
        /// `a^b` for a tensor exponent (NumPy's `power`); defined for `a > 0`, and for any `a`
        /// where `b` is an integer (the `b`-gradient needs `a > 0`).
        Power => "power",
    }
}

impl BinaryOp {
    /// Applies the function to one pair of values.
    ///
    /// ```
    /// assert_eq!(dendrite_graph::BinaryOp::Sub.apply(3.0_f32, 1.0), 2.0);
    /// ```
    #[inline]
    pub fn apply<F: Element>(self, a: F, b: F) -> F {
        match self {
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
            BinaryOp::Div => a / b,
            BinaryOp::Maximum => max_nan(a, b),
            BinaryOp::Minimum => min_nan(a, b),
            BinaryOp::Power => a.powf(b),
        }
    }
}

// `Float::max` ignores NaN; a network whose activations went NaN should say so, not hide it.
#[inline]
fn max_nan<F: Element>(a: F, b: F) -> F {
    if a.is_nan() || b.is_nan() {
        F::nan()
    } else if a >= b {
        a
    } else {
        b
    }
}

#[inline]
fn min_nan<F: Element>(a: F, b: F) -> F {
    if a.is_nan() || b.is_nan() {
        F::nan()
    } else if a <= b {
        a
    } else {
        b
    }
}

/// Shape rule shared by binary ops and comparisons.
pub(crate) fn infer(op: &'static str, node: &str, operands: &[&Shape]) -> Result<Shape> {
    check_arity(op, node, operands, 2)?;
    broadcast_shapes(operands[0], operands[1]).ok_or_else(|| GraphError::IncompatibleShapes {
        op,
        node: node.to_owned(),
        reason: "shapes do not broadcast",
        lhs: operands[0].clone(),
        rhs: operands[1].clone(),
    })
}

/// Applies `f` elementwise with broadcasting, taking a slice fast path for the common layouts.
pub(crate) fn zip_broadcast<F: Element, G: Element>(
    a: &ArrayViewD<'_, F>,
    b: &ArrayViewD<'_, F>,
    mut out: ArrayViewMutD<'_, G>,
    f: impl Fn(F, F) -> G,
) -> Result<()> {
    let out_shape: SmallVec<[usize; 4]> = out.shape().into();
    if let (Some(xs), Some(ys), Some(os)) = (a.as_slice(), b.as_slice(), out.as_slice_mut()) {
        let n = os.len();
        if xs.len() == n && ys.len() == n {
            os.iter_mut()
                .zip(xs.iter().zip(ys))
                .for_each(|(o, (&x, &y))| *o = f(x, y));
            return Ok(());
        }
        if xs.len() == n && ys.len() == 1 {
            let y = ys[0];
            os.iter_mut().zip(xs).for_each(|(o, &x)| *o = f(x, y));
            return Ok(());
        }
        if ys.len() == n && xs.len() == 1 {
            let x = xs[0];
            os.iter_mut().zip(ys).for_each(|(o, &y)| *o = f(x, y));
            return Ok(());
        }
        // The two broadcasts of a dense layer and a softmax: a row vector repeated down the
        // rows (`[n, k] + [k]`) and a column repeated across them (`[n, k] - [n, 1]`).
        if xs.len() == n && !ys.is_empty() && is_row_of(b.shape(), &out_shape) {
            for (orow, xrow) in os.chunks_exact_mut(ys.len()).zip(xs.chunks_exact(ys.len())) {
                orow.iter_mut()
                    .zip(xrow.iter().zip(ys))
                    .for_each(|(o, (&x, &y))| *o = f(x, y));
            }
            return Ok(());
        }
        // n > 0: an empty last axis would make the row width 0, which `chunks_exact` rejects.
        if n > 0 && xs.len() == n && !ys.is_empty() && is_column_of(b.shape(), &out_shape) {
            let width = n / ys.len();
            for ((orow, xrow), &y) in os
                .chunks_exact_mut(width)
                .zip(xs.chunks_exact(width))
                .zip(ys)
            {
                orow.iter_mut().zip(xrow).for_each(|(o, &x)| *o = f(x, y));
            }
            return Ok(());
        }
    }
    let shape = out.raw_dim();
    match (a.broadcast(shape.clone()), b.broadcast(shape)) {
        (Some(a), Some(b)) => {
            Zip::from(&mut out)
                .and(&a)
                .and(&b)
                .for_each(|o, &x, &y| *o = f(x, y));
            Ok(())
        }
        _ => Err(GraphError::Internal {
            op: "broadcast",
            node: String::new(),
            what: "operands do not broadcast to the inferred shape",
        }),
    }
}

/// Whether `operand` (contiguous) broadcasts to `out` by repeating it as the trailing block:
/// its shape, without leading 1s, equals `out`'s trailing dimensions.
fn is_row_of(operand: &[usize], out: &[usize]) -> bool {
    let start = operand
        .iter()
        .position(|&d| d != 1)
        .unwrap_or(operand.len());
    let trimmed = &operand[start..];
    trimmed.len() <= out.len() && out.ends_with(trimmed)
}

/// Whether `operand` broadcasts to `out` by repeating each element along the last axis only:
/// its shape is `out`'s with the last dimension 1 (leading 1s allowed).
fn is_column_of(operand: &[usize], out: &[usize]) -> bool {
    let (Some((&1, lead)), Some((_, out_lead))) = (operand.split_last(), out.split_last()) else {
        return false;
    };
    lead.len() <= out_lead.len()
        && out_lead.ends_with(lead)
        && out_lead[..out_lead.len() - lead.len()]
            .iter()
            .all(|&d| d == 1)
}

pub(crate) fn forward<F: Element>(
    op: BinaryOp,
    a: &ArrayViewD<'_, F>,
    b: &ArrayViewD<'_, F>,
    out: ArrayViewMutD<'_, F>,
) -> Result<()> {
    match op {
        BinaryOp::Add => zip_broadcast(a, b, out, |x, y| x + y),
        BinaryOp::Sub => zip_broadcast(a, b, out, |x, y| x - y),
        BinaryOp::Mul => zip_broadcast(a, b, out, |x, y| x * y),
        BinaryOp::Div => zip_broadcast(a, b, out, |x, y| x / y),
        BinaryOp::Maximum => zip_broadcast(a, b, out, max_nan),
        BinaryOp::Minimum => zip_broadcast(a, b, out, min_nan),
        BinaryOp::Power => zip_broadcast(a, b, out, F::powf),
    }
}

// ANCHOR: binary_vjp
pub(crate) fn vjp<F: Element>(
    g: &mut Graph<F>,
    op: BinaryOp,
    a: NodeId,
    b: NodeId,
    y: NodeId,
    y_bar: NodeId,
) -> Result<OperandGrads> {
    let (a_bar, b_bar) = match op {
        BinaryOp::Add => (y_bar, y_bar),
        BinaryOp::Sub => (y_bar, g.neg(y_bar)?),
        BinaryOp::Mul => (g.mul(y_bar, b)?, g.mul(y_bar, a)?),
        // ∂(a/b)/∂b = -a/b² = -y/b
        BinaryOp::Div => {
            let a_bar = g.div(y_bar, b)?;
            let y_over_b = g.div(y, b)?;
            let scaled = g.mul(y_bar, y_over_b)?;
            (a_bar, g.neg(scaled)?)
        }
        BinaryOp::Maximum | BinaryOp::Minimum => {
            let wins = if op == BinaryOp::Maximum {
                CompareOp::Gt
            } else {
                CompareOp::Lt
            };
            // share_a = [a wins] + ½[a = b]; b gets the rest, so ties split evenly.
            let a_wins = g.compare(wins, a, b)?;
            let tie = g.compare(CompareOp::Eq, a, b)?;
            let half = g.scalar(0.5);
            let half_tie = g.mul(tie, half)?;
            let share_a = g.add(a_wins, half_tie)?;
            let a_bar = g.mul(y_bar, share_a)?;
            (a_bar, g.sub(y_bar, a_bar)?)
        }
        // ∂(a^b)/∂a = b a^(b-1) = b y / a, written as b a^(b-1) so that a = 0 with b ≥ 1 stays
        // finite; ∂(a^b)/∂b = y ln a, real only for a > 0.
        BinaryOp::Power => {
            let one = g.scalar(1.0);
            let b_minus_one = g.sub(b, one)?;
            let lower = g.power(a, b_minus_one)?;
            let slope_a = g.mul(b, lower)?;
            let a_bar = g.mul(y_bar, slope_a)?;
            let ln_a = g.log(a)?;
            let slope_b = g.mul(y, ln_a)?;
            (a_bar, g.mul(y_bar, slope_b)?)
        }
    };
    Ok(smallvec![Some(a_bar), Some(b_bar)])
}
// ANCHOR_END: binary_vjp

impl<F: Element> Graph<F> {
    /// Adds a broadcasting binary op.
    ///
    /// ```
    /// use dendrite_graph::{BinaryOp, Graph};
    /// let mut g = Graph::<f32>::new();
    /// let a = g.input("a", [2, 3])?;
    /// let b = g.input("b", [3])?;
    /// let c = g.binary(BinaryOp::Add, a, b)?;
    /// assert_eq!(g.shape(c)?.to_string(), "[2, 3]");
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn binary(&mut self, op: BinaryOp, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.add_op(Op::Binary(op), &[a, b])
    }

    /// `a + b` with broadcasting.
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// # let (a, b) = (g.input("a", [2])?, g.input("b", [2])?);
    /// let c = g.add(a, b)?;
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn add(&mut self, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.binary(BinaryOp::Add, a, b)
    }

    /// `a - b` with broadcasting.
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// # let (a, b) = (g.input("a", [2])?, g.input("b", [2])?);
    /// let c = g.sub(a, b)?;
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn sub(&mut self, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.binary(BinaryOp::Sub, a, b)
    }

    /// `a * b` (elementwise) with broadcasting.
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// # let (a, b) = (g.input("a", [2])?, g.input("b", [2])?);
    /// let c = g.mul(a, b)?;
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn mul(&mut self, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.binary(BinaryOp::Mul, a, b)
    }

    /// `a / b` with broadcasting.
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// # let (a, b) = (g.input("a", [2])?, g.input("b", [2])?);
    /// let c = g.div(a, b)?;
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn div(&mut self, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.binary(BinaryOp::Div, a, b)
    }

    /// `max(a, b)` elementwise with broadcasting; ties split the gradient evenly.
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// # let (a, b) = (g.input("a", [2])?, g.input("b", [2])?);
    /// let c = g.maximum(a, b)?;
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn maximum(&mut self, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.binary(BinaryOp::Maximum, a, b)
    }

    /// `min(a, b)` elementwise with broadcasting; ties split the gradient evenly.
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// # let (a, b) = (g.input("a", [2])?, g.input("b", [2])?);
    /// let c = g.minimum(a, b)?;
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn minimum(&mut self, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.binary(BinaryOp::Minimum, a, b)
    }

    /// `a^b` elementwise with broadcasting, for a tensor exponent (NumPy's `power`).
    /// Derivatives: `b a^(b-1)` and `a^b ln a`; the second needs `a > 0`. For a fixed scalar
    /// exponent use [`Graph::pow`].
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f64>::new();
    /// # let (a, b) = (g.input("a", [2])?, g.input("b", [2])?);
    /// let c = g.power(a, b)?;
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn power(&mut self, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.binary(BinaryOp::Power, a, b)
    }
}
