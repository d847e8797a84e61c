//! One Dendrite node to ONNX operators: the exhaustive match over [`Op`], and the elementwise
//! families (unary, binary, comparisons, `select`).
//!
//! Each node's result is the ONNX value named after the node; the operators it lowers to read
//! its operands' values by their node names. Where ONNX has the operator, the node maps one to
//! one; where Dendrite keeps accuracy that the plain ONNX composition would lose (`log1p`,
//! `expm1` near zero) the lowering uses a formula that keeps it. A primitive without an ONNX
//! equivalent is [`OnnxError::Unsupported`], never a silently wrong graph.

use super::builder::{attr_int, Builder};
use super::error::{OnnxError, Result};
use super::proto::data_type;
use super::{lower_shape, lower_window};
use crate::ops::{BinaryOp, CompareOp, UnaryOp};
use crate::{Element, Graph, NodeId, Op, Shape};

/// What the lowering of one node needs to know: its name, its operands' value names and
/// declared shapes.
pub(super) struct Site<'a> {
    pub node: &'a str,
    pub xs: Vec<String>,
    pub shapes: Vec<Shape>,
}

impl Site<'_> {
    /// The error for a primitive (or a configuration of one) ONNX cannot express.
    pub fn unsupported(&self, op: &'static str, reason: &str) -> OnnxError {
        OnnxError::Unsupported {
            op,
            node: self.node.to_owned(),
            reason: reason.to_owned(),
        }
    }
}

/// Adds the ONNX operators computing node `id`, its result in the value of its name.
pub(super) fn lower<F: Element>(b: &mut Builder, g: &Graph<F>, id: NodeId) -> Result<()> {
    let node = g.node(id)?;
    let operands = g.operands(id)?;
    let mut xs = Vec::with_capacity(operands.len());
    let mut shapes = Vec::with_capacity(operands.len());
    for &x in &operands {
        xs.push(g.name(x)?.to_owned());
        shapes.push(g.shape(x)?.clone());
    }
    let s = Site {
        node: node.name(),
        xs,
        shapes,
    };
    match node.op() {
        Op::Input => Ok(()),
        Op::Parameter | Op::Constant => b.initializer(s.node, g.value(id)?),
        Op::Unary(u) => {
            unary(b, &s, *u);
            Ok(())
        }
        Op::Pow(p) => {
            let exponent = b.scalar(s.node, p.0);
            b.emit(
                "Pow",
                s.node,
                vec![s.xs[0].clone(), exponent],
                s.node,
                vec![],
            );
            Ok(())
        }
        Op::Binary(op) => {
            binary(b, &s, *op);
            Ok(())
        }
        Op::Compare(op) => {
            compare(b, &s, *op);
            Ok(())
        }
        Op::Select => {
            select(b, &s);
            Ok(())
        }
        Op::Broadcast(op) => lower_shape::broadcast(b, &s, op),
        Op::Reduce {
            op,
            axes,
            keep_dims,
        } => lower_shape::reduce(b, &s, *op, axes, *keep_dims),
        Op::Axis(op) => lower_shape::axis(b, &s, op),
        Op::Layout(op) => lower_shape::layout(b, &s, op),
        Op::MatMul {
            transpose_lhs,
            transpose_rhs,
        } => lower_shape::matmul(b, &s, *transpose_lhs, *transpose_rhs),
        Op::Slice(op) => lower_shape::slice(b, &s, op),
        Op::Index(op) => lower_shape::index(b, &s, op),
        Op::Softmax(op) => lower_shape::softmax(b, &s, op),
        Op::StopGradient => {
            b.emit("Identity", s.node, s.xs.clone(), s.node, vec![]);
            Ok(())
        }
        Op::Conv(op) => lower_window::conv(b, &s, op),
        Op::Pool(op) => lower_window::pool(b, &s, op),
        Op::Random(op) => Err(s.unsupported(
            op.name(),
            "Dendrite's counter-based draws cannot be reproduced by ONNX's RandomUniformLike \
             and RandomNormalLike, and an inference graph should not draw",
        )),
        Op::Custom(op) => Err(s.unsupported(
            op.name(),
            "a custom op's kernel is Rust code, which an ONNX file cannot carry",
        )),
    }
}

/// The ONNX operator of a unary function, or `None` for those lowered as formulas.
fn unary_op_type(op: UnaryOp) -> Option<&'static str> {
    match op {
        UnaryOp::Neg => Some("Neg"),
        UnaryOp::Exp => Some("Exp"),
        UnaryOp::Log => Some("Log"),
        UnaryOp::Sqrt => Some("Sqrt"),
        UnaryOp::Tanh => Some("Tanh"),
        UnaryOp::Abs => Some("Abs"),
        UnaryOp::Erf => Some("Erf"),
        UnaryOp::Sin => Some("Sin"),
        UnaryOp::Cos => Some("Cos"),
        UnaryOp::Sigmoid => Some("Sigmoid"),
        UnaryOp::Softplus => Some("Softplus"),
        UnaryOp::Log1p | UnaryOp::Expm1 => None,
    }
}

fn unary(b: &mut Builder, s: &Site<'_>, op: UnaryOp) {
    let x = s.xs[0].clone();
    match (unary_op_type(op), op) {
        (Some(op_type), _) => b.emit(op_type, s.node, vec![x], s.node, vec![]),
        (None, UnaryOp::Expm1) => expm1(b, s.node, x),
        (None, _) => log1p(b, s.node, x),
    }
}

/// `log1p(x) = x · log(u) / (u - 1)` with `u = 1 + x` (Goldberg's formula, exact to a few
/// ulps: the rounding of `u` cancels between numerator and denominator), `x` where `u` rounds
/// to 1 and `u` where it is infinite.
fn log1p(b: &mut Builder, node: &str, x: String) {
    let one = b.scalar(node, 1.0);
    let inf = b.scalar(node, f64::INFINITY);
    let u = b.step("Add", node, vec![x.clone(), one.clone()], vec![]);
    let log_u = b.step("Log", node, vec![u.clone()], vec![]);
    let scaled = b.step("Mul", node, vec![x.clone(), log_u], vec![]);
    let u_minus_1 = b.step("Sub", node, vec![u.clone(), one.clone()], vec![]);
    let ratio = b.step("Div", node, vec![scaled, u_minus_1], vec![]);
    let is_inf = b.step("Equal", node, vec![u.clone(), inf], vec![]);
    let finite = b.step("Where", node, vec![is_inf, u.clone(), ratio], vec![]);
    let is_one = b.step("Equal", node, vec![u, one], vec![]);
    b.emit("Where", node, vec![is_one, x, finite], node, vec![]);
}

/// `expm1(x) = (u - 1) · x / log(u)` with `u = e^x` (Kahan's formula), `x` where `u` rounds
/// to 1, `-1` where it underflows to 0 and `u` where it is infinite.
fn expm1(b: &mut Builder, node: &str, x: String) {
    let one = b.scalar(node, 1.0);
    let zero = b.scalar(node, 0.0);
    let inf = b.scalar(node, f64::INFINITY);
    let u = b.step("Exp", node, vec![x.clone()], vec![]);
    let u_minus_1 = b.step("Sub", node, vec![u.clone(), one.clone()], vec![]);
    let scaled = b.step("Mul", node, vec![u_minus_1.clone(), x.clone()], vec![]);
    let log_u = b.step("Log", node, vec![u.clone()], vec![]);
    let ratio = b.step("Div", node, vec![scaled, log_u], vec![]);
    let is_edge = {
        let is_zero = b.step("Equal", node, vec![u.clone(), zero], vec![]);
        let is_inf = b.step("Equal", node, vec![u.clone(), inf], vec![]);
        b.step("Or", node, vec![is_zero, is_inf], vec![])
    };
    let general = b.step("Where", node, vec![is_edge, u_minus_1, ratio], vec![]);
    let is_one = b.step("Equal", node, vec![u, one], vec![]);
    b.emit("Where", node, vec![is_one, x, general], node, vec![]);
}

fn binary(b: &mut Builder, s: &Site<'_>, op: BinaryOp) {
    let op_type = match op {
        BinaryOp::Add => "Add",
        BinaryOp::Sub => "Sub",
        BinaryOp::Mul => "Mul",
        BinaryOp::Div => "Div",
        BinaryOp::Maximum => "Max",
        BinaryOp::Minimum => "Min",
        BinaryOp::Power => "Pow",
    };
    b.emit(op_type, s.node, s.xs.clone(), s.node, vec![]);
}

/// A comparison gives booleans in ONNX; Dendrite's 1 and 0 are a `Cast` of them.
fn compare(b: &mut Builder, s: &Site<'_>, op: CompareOp) {
    let (op_type, negate) = match op {
        CompareOp::Eq => ("Equal", false),
        CompareOp::Ne => ("Equal", true),
        CompareOp::Lt => ("Less", false),
        CompareOp::Le => ("LessOrEqual", false),
        CompareOp::Gt => ("Greater", false),
        CompareOp::Ge => ("GreaterOrEqual", false),
    };
    let mut holds = b.step(op_type, s.node, s.xs.clone(), vec![]);
    if negate {
        holds = b.step("Not", s.node, vec![holds], vec![]);
    }
    let elem = b.elem();
    b.emit(
        "Cast",
        s.node,
        vec![holds],
        s.node,
        vec![attr_int("to", elem.into())],
    );
}

/// `select(c, a, b)` picks `a` where `c != 0` (NaN included), as `Where(Not(c == 0), a, b)`.
fn select(b: &mut Builder, s: &Site<'_>) {
    let zero = b.scalar(s.node, 0.0);
    let is_zero = b.step("Equal", s.node, vec![s.xs[0].clone(), zero], vec![]);
    let cond = b.step("Not", s.node, vec![is_zero], vec![]);
    b.emit(
        "Where",
        s.node,
        vec![cond, s.xs[1].clone(), s.xs[2].clone()],
        s.node,
        vec![],
    );
}

/// Casts a value to `int64` (indices), returning the new value's name.
pub(super) fn to_int64(b: &mut Builder, node: &str, x: String) -> String {
    b.step(
        "Cast",
        node,
        vec![x],
        vec![attr_int("to", data_type::INT64.into())],
    )
}
