//! The closed set of primitive ops.
//!
//! Each family lives in one file holding, side by side, its math (in rustdoc), its shape rule,
//! its forward kernel and its local derivative rule, and the `Graph` methods that add it. This
//! module only dispatches: every `match` over [`Op`] is exhaustive, so adding a variant makes
//! the compiler point at each place that must learn about it.
//!
//! Derivative rules build new nodes of the same graph (they are vector-Jacobian products
//! written with primitives), which is why gradients of gradients need no extra machinery.
//! Where a rule returns a gradient for a broadcast operand, it returns it in the output's shape;
//! the reverse sweep (in `dendrite-autodiff`) sums it back to the operand's shape, in one place.

pub mod binary;
pub mod broadcast;
pub mod compare;
pub mod index;
pub mod layout;
pub mod matmul;
pub mod reduce;
pub mod slice;
pub mod softmax;
pub mod unary;

use crate::error::{GraphError, Result};
use crate::shape::{ConcreteShape, Shape};
use crate::{Element, Graph, NodeId};
use ndarray::{ArrayViewD, ArrayViewMutD};
use smallvec::SmallVec;

pub use binary::BinaryOp;
pub use compare::CompareOp;
pub use reduce::ReduceOp;
pub use unary::UnaryOp;

/// A list of axes, stored inline.
pub type Axes = SmallVec<[usize; 4]>;

/// Gradients of one node's operands, in slot order; `None` where no gradient flows.
pub type OperandGrads = SmallVec<[Option<NodeId>; 3]>;

/// An `f64` stored in an op, compared and hashed by its bits so that ops can key hash maps
/// (common-subexpression elimination).
///
/// ```
/// use dendrite_graph::ops::Scalar;
/// assert_eq!(Scalar(2.0), Scalar(2.0));
/// assert_eq!(Scalar(2.0).0, 2.0);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Scalar(pub f64);

impl PartialEq for Scalar {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}
impl Eq for Scalar {}
impl std::hash::Hash for Scalar {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.to_bits().hash(state);
    }
}

/// A primitive op. The set is closed: composites (relu, softmax, ...) are built from these in
/// [`crate::composite`] and need no derivative rule of their own.
///
/// ```
/// use dendrite_graph::{Graph, Op, UnaryOp};
/// let mut g = Graph::<f32>::new();
/// let x = g.input("x", [2])?;
/// let y = g.exp(x)?;
/// assert_eq!(g.op(y)?, &Op::Unary(UnaryOp::Exp));
/// # Ok::<(), dendrite_graph::GraphError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Op {
    /// A placeholder fed on every run.
    Input,
    /// A trainable value stored in the graph.
    Parameter,
    /// A fixed value stored in the graph.
    Constant,
    /// An elementwise function of one operand ([`unary`]).
    Unary(UnaryOp),
    /// `x^p` for a scalar exponent `p` ([`unary`]).
    Pow(Scalar),
    /// An elementwise, broadcasting function of two operands ([`binary`]).
    Binary(BinaryOp),
    /// An elementwise, broadcasting comparison giving 1 or 0 ([`compare`]).
    Compare(CompareOp),
    /// `where(cond, a, b)`, broadcasting all three ([`compare`]).
    Select,
    /// Broadcast to a declared shape ([`broadcast`]).
    BroadcastTo(Shape),
    /// Broadcast the first operand to the runtime shape of the second ([`broadcast`]).
    BroadcastLike,
    /// Sum the first operand down to the runtime shape of the second: the adjoint of
    /// broadcasting ([`broadcast`]).
    SumLike,
    /// Insert size-1 axes at the given output positions ([`layout`]).
    ExpandDims(Axes),
    /// Reduce over axes by sum or max ([`reduce`]).
    Reduce {
        /// Sum or max.
        op: ReduceOp,
        /// The reduced axes, sorted and distinct.
        axes: Axes,
        /// Whether reduced axes stay as size 1.
        keep_dims: bool,
    },
    /// The number of elements along the given axes, as a scalar ([`reduce`]).
    DimSize(Axes),
    /// Index of the first maximum along an axis, as a float ([`reduce`]).
    ArgMax(usize),
    /// Reinterpret the elements in a new shape ([`layout`]).
    Reshape(Shape),
    /// Reorder the axes ([`layout`]).
    Permute(Axes),
    /// Matrix product over the last two axes, batch axes broadcast ([`matmul`]).
    MatMul {
        /// Use the lhs transposed (last two axes swapped).
        transpose_lhs: bool,
        /// Use the rhs transposed.
        transpose_rhs: bool,
    },
    /// `x[start..end]` along one axis ([`slice`](mod@slice)).
    Slice {
        /// The sliced axis.
        axis: usize,
        /// First index kept.
        start: usize,
        /// One past the last index kept.
        end: usize,
    },
    /// Zero padding along one axis ([`slice`](mod@slice)).
    Pad {
        /// The padded axis.
        axis: usize,
        /// Zeros before.
        before: usize,
        /// Zeros after.
        after: usize,
    },
    /// Concatenation along an axis ([`slice`](mod@slice)).
    Concat(usize),
    /// `take(x, indices, axis)` ([`index`]).
    Gather(usize),
    /// The adjoint of gather: add slices of `src` into zeros shaped like `like` ([`index`]).
    ScatterAdd(usize),
    /// One-hot encoding of integer-valued indices with `depth` classes ([`index`]).
    OneHot(usize),
    /// `x - logsumexp(x)` along an axis, one stable kernel ([`softmax`]).
    LogSoftmax(usize),
    /// Identity forward, no gradient backward.
    StopGradient,
}

impl Op {
    /// The op's name as used in node names, errors and DOT output.
    ///
    /// ```
    /// use dendrite_graph::{Op, BinaryOp};
    /// assert_eq!(Op::Binary(BinaryOp::Mul).name(), "mul");
    /// ```
    pub fn name(&self) -> &'static str {
        match self {
            Op::Input => "input",
            Op::Parameter => "parameter",
            Op::Constant => "constant",
            Op::Unary(u) => u.name(),
            Op::Pow(_) => "pow",
            Op::Binary(b) => b.name(),
            Op::Compare(c) => c.name(),
            Op::Select => "select",
            Op::BroadcastTo(_) => "broadcast_to",
            Op::BroadcastLike => "broadcast_like",
            Op::SumLike => "sum_like",
            Op::ExpandDims(_) => "expand_dims",
            Op::Reduce { op, .. } => op.name(),
            Op::DimSize(_) => "dim_size",
            Op::ArgMax(_) => "argmax",
            Op::Reshape(_) => "reshape",
            Op::Permute(_) => "permute",
            Op::MatMul { .. } => "matmul",
            Op::Slice { .. } => "slice",
            Op::Pad { .. } => "pad",
            Op::Concat(_) => "concat",
            Op::Gather(_) => "gather",
            Op::ScatterAdd(_) => "scatter_add",
            Op::OneHot(_) => "one_hot",
            Op::LogSoftmax(_) => "log_softmax",
            Op::StopGradient => "stop_gradient",
        }
    }

    /// Names of every primitive op, one per variant (unary, binary and compare families listed
    /// member by member). Tests use this to check that each op has a gradient check and an
    /// entry in the book's derivative table.
    ///
    /// ```
    /// assert!(dendrite_graph::Op::primitive_names().contains(&"matmul"));
    /// ```
    pub fn primitive_names() -> &'static [&'static str] {
        &[
            "neg",
            "exp",
            "log",
            "sqrt",
            "tanh",
            "abs",
            "erf",
            "pow",
            "add",
            "sub",
            "mul",
            "div",
            "maximum",
            "minimum",
            "eq",
            "ne",
            "lt",
            "le",
            "gt",
            "ge",
            "select",
            "broadcast_to",
            "broadcast_like",
            "sum_like",
            "expand_dims",
            "sum",
            "max",
            "dim_size",
            "argmax",
            "reshape",
            "permute",
            "matmul",
            "slice",
            "pad",
            "concat",
            "gather",
            "scatter_add",
            "one_hot",
            "log_softmax",
            "stop_gradient",
        ]
    }

    /// Whether the op is a leaf (input, parameter or constant) with no kernel.
    ///
    /// ```
    /// assert!(dendrite_graph::Op::Input.is_leaf());
    /// ```
    pub fn is_leaf(&self) -> bool {
        matches!(self, Op::Input | Op::Parameter | Op::Constant)
    }

    /// Whether the op broadcasts its operands elementwise (NumPy rules). For these the runtime
    /// also checks that no dimension declared dynamic was stretched from size 1, which keeps
    /// the static broadcast undo of the reverse sweep sound.
    ///
    /// ```
    /// use dendrite_graph::{Op, BinaryOp};
    /// assert!(Op::Binary(BinaryOp::Add).broadcasts_operands());
    /// assert!(!Op::StopGradient.broadcasts_operands());
    /// ```
    pub fn broadcasts_operands(&self) -> bool {
        matches!(self, Op::Binary(_) | Op::Compare(_) | Op::Select)
    }

    /// Infers the output shape from the operand shapes, or says which rule they break.
    /// `node` names the node in errors.
    ///
    /// ```
    /// use dendrite_graph::{Op, BinaryOp, Shape};
    /// let out = Op::Binary(BinaryOp::Add).infer_shape("n", &[&Shape::from([3, 1]), &Shape::from([4])])?;
    /// assert_eq!(out, Shape::from([3, 4]));
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn infer_shape(&self, node: &str, operands: &[&Shape]) -> Result<Shape> {
        match self {
            Op::Input | Op::Parameter | Op::Constant => {
                expect_arity(self, node, operands, 0)?;
                Err(GraphError::InvalidShape {
                    op: self.name(),
                    node: node.to_owned(),
                    reason: "leaves carry their own shape".to_owned(),
                    shape: Shape::scalar(),
                })
            }
            Op::Unary(_) | Op::Pow(_) | Op::StopGradient => {
                expect_arity(self, node, operands, 1)?;
                Ok(operands[0].clone())
            }
            Op::Binary(_) | Op::Compare(_) => binary::infer(self, node, operands),
            Op::Select => compare::infer_select(node, operands),
            Op::BroadcastTo(_) | Op::BroadcastLike | Op::SumLike => {
                broadcast::infer(self, node, operands)
            }
            Op::Reduce { .. } | Op::DimSize(_) | Op::ArgMax(_) => {
                reduce::infer(self, node, operands)
            }
            Op::ExpandDims(_) | Op::Reshape(_) | Op::Permute(_) => {
                layout::infer(self, node, operands)
            }
            Op::MatMul { .. } => matmul::infer(self, node, operands),
            Op::Slice { .. } | Op::Pad { .. } | Op::Concat(_) => slice::infer(self, node, operands),
            Op::Gather(_) | Op::ScatterAdd(_) | Op::OneHot(_) => index::infer(self, node, operands),
            Op::LogSoftmax(_) => softmax::infer(self, node, operands),
        }
    }

    /// Infers the concrete output shape at run time (every dimension known).
    pub(crate) fn infer_concrete(
        &self,
        node: &str,
        operands: &[&[usize]],
    ) -> Result<ConcreteShape> {
        let shapes: SmallVec<[Shape; 3]> = operands.iter().map(|s| Shape::fixed(s)).collect();
        let refs: SmallVec<[&Shape; 3]> = shapes.iter().collect();
        let out = self.infer_shape(node, &refs)?;
        out.concrete().ok_or_else(|| GraphError::InvalidShape {
            op: self.name(),
            node: node.to_owned(),
            reason: "internal: a shape rule left a dimension dynamic at run time".to_owned(),
            shape: out.clone(),
        })
    }

    /// Evaluates the op on concrete operand values, allocating the result: a plan-free way to
    /// run one op (constant folding and tests use it).
    ///
    /// # Errors
    /// Any shape or index error the op's rule or kernel reports; leaves cannot be evaluated.
    ///
    /// ```
    /// use dendrite_graph::{BinaryOp, Op};
    /// use ndarray::array;
    /// let a = array![[1.0_f64, 2.0], [3.0, 4.0]].into_dyn();
    /// let b = array![10.0_f64, 20.0].into_dyn();
    /// let c = Op::Binary(BinaryOp::Add).evaluate("c", &[a.view(), b.view()])?;
    /// assert_eq!(c, array![[11.0, 22.0], [13.0, 24.0]].into_dyn());
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn evaluate<F: Element>(
        &self,
        node: &str,
        inputs: &[ArrayViewD<'_, F>],
    ) -> Result<ndarray::ArrayD<F>> {
        let shapes: SmallVec<[&[usize]; 3]> = inputs.iter().map(|v| v.shape()).collect();
        let shape = self.infer_concrete(node, &shapes)?;
        let mut out = ndarray::ArrayD::<F>::zeros(ndarray::IxDyn(&shape));
        self.forward(node, inputs, out.view_mut())?;
        Ok(out)
    }

    /// Runs the forward kernel, writing into `out` (already shaped by [`Op::infer_shape`]).
    pub(crate) fn forward<F: Element>(
        &self,
        node: &str,
        inputs: &[ArrayViewD<'_, F>],
        out: ArrayViewMutD<'_, F>,
    ) -> Result<()> {
        match self {
            Op::Input | Op::Parameter | Op::Constant => Ok(()),
            Op::StopGradient => {
                let mut out = out;
                out.assign(&inputs[0]);
                Ok(())
            }
            Op::Unary(u) => {
                unary::forward_unary(*u, &inputs[0], out);
                Ok(())
            }
            Op::Pow(p) => {
                unary::forward_pow(p.0, &inputs[0], out);
                Ok(())
            }
            Op::Binary(b) => binary::forward(*b, &inputs[0], &inputs[1], out),
            Op::Compare(c) => compare::forward_compare(*c, &inputs[0], &inputs[1], out),
            Op::Select => compare::forward_select(inputs, out),
            Op::BroadcastTo(_) | Op::BroadcastLike | Op::SumLike => {
                broadcast::forward(self, node, inputs, out)
            }
            Op::Reduce { .. } | Op::DimSize(_) | Op::ArgMax(_) => {
                reduce::forward(self, inputs, out)
            }
            Op::ExpandDims(_) | Op::Reshape(_) | Op::Permute(_) => {
                layout::forward(self, inputs, out)
            }
            Op::MatMul { .. } => matmul::forward(self, inputs, out),
            Op::Slice { .. } | Op::Pad { .. } | Op::Concat(_) => slice::forward(self, inputs, out),
            Op::Gather(_) | Op::ScatterAdd(_) | Op::OneHot(_) => {
                index::forward(self, node, inputs, out)
            }
            Op::LogSoftmax(_) => softmax::forward(self, inputs, out),
        }
    }
}

fn expect_arity(op: &Op, node: &str, operands: &[&Shape], n: usize) -> Result<()> {
    if operands.len() == n {
        Ok(())
    } else {
        Err(GraphError::Arity {
            op: op.name(),
            node: node.to_owned(),
            expected: match n {
                0 => "no operands",
                1 => "1 operand",
                2 => "2 operands",
                3 => "3 operands",
                _ => "several operands",
            },
            actual: operands.len(),
        })
    }
}

pub(crate) fn check_arity(op: &Op, node: &str, operands: &[&Shape], n: usize) -> Result<()> {
    expect_arity(op, node, operands, n)
}

fn check_axis(op: &Op, node: &str, axis: usize, rank: usize) -> Result<()> {
    if axis < rank {
        Ok(())
    } else {
        Err(GraphError::InvalidAxis {
            op: op.name(),
            node: node.to_owned(),
            axis,
            rank,
        })
    }
}

/// Sorted, distinct, in-range axes.
fn check_axes(op: &Op, node: &str, axes: &[usize], rank: usize) -> Result<()> {
    for (i, &axis) in axes.iter().enumerate() {
        check_axis(op, node, axis, rank)?;
        if i > 0 && axes[i - 1] >= axis {
            return Err(GraphError::InvalidAxis {
                op: op.name(),
                node: node.to_owned(),
                axis,
                rank,
            });
        }
    }
    Ok(())
}

/// Sorts and deduplicates user-given axes so equal reductions are equal ops.
fn normalize_axes(axes: &[usize]) -> Axes {
    let mut axes: Axes = axes.iter().copied().collect();
    axes.sort_unstable();
    axes
}

impl<F: Element> Graph<F> {
    /// The local derivative rule of one node: given the cotangent `y_bar` of its output,
    /// builds the cotangents of its operands as new nodes. `None` marks an operand through
    /// which no gradient flows (an index, a comparison, a constant-valued function).
    ///
    /// Gradients of broadcast operands come back in the output's shape; the caller sums them
    /// down (the reverse sweep in `dendrite-autodiff` does).
    ///
    /// # Errors
    /// [`GraphError::NotDifferentiable`] where an op has no rule for this configuration.
    ///
    /// ```
    /// use dendrite_graph::Graph;
    /// let mut g = Graph::<f64>::new();
    /// let x = g.input("x", [3])?;
    /// let y = g.exp(x)?;
    /// let y_bar = g.input("y_bar", [3])?;
    /// let grads = g.local_vjp(y, y_bar)?;
    /// assert_eq!(g.op(grads[0].unwrap())?.name(), "mul"); // y_bar * exp(x)
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    // ANCHOR: local_vjp
    pub fn local_vjp(&mut self, node: NodeId, y_bar: NodeId) -> Result<OperandGrads> {
        let op = self.op(node)?.clone();
        let xs = self.operands(node)?;
        match &op {
            Op::Input | Op::Parameter | Op::Constant => Ok(OperandGrads::new()),
            Op::StopGradient | Op::Compare(_) | Op::DimSize(_) | Op::ArgMax(_) | Op::OneHot(_) => {
                Ok(xs.iter().map(|_| None).collect())
            }
            Op::Unary(u) => unary::vjp_unary(self, *u, xs[0], node, y_bar),
            Op::Pow(p) => unary::vjp_pow(self, p.0, xs[0], y_bar),
            Op::Binary(b) => binary::vjp(self, *b, xs[0], xs[1], node, y_bar),
            Op::Select => compare::vjp_select(self, &xs, y_bar),
            Op::BroadcastTo(_) | Op::BroadcastLike | Op::SumLike => {
                broadcast::vjp(self, &op, &xs, y_bar)
            }
            Op::Reduce { .. } => reduce::vjp(self, &op, xs[0], node, y_bar),
            Op::ExpandDims(_) | Op::Reshape(_) | Op::Permute(_) => {
                layout::vjp(self, &op, xs[0], node, y_bar)
            }
            Op::MatMul { .. } => matmul::vjp(self, &op, xs[0], xs[1], y_bar),
            Op::Slice { .. } | Op::Pad { .. } | Op::Concat(_) => {
                slice::vjp(self, &op, &xs, node, y_bar)
            }
            Op::Gather(_) | Op::ScatterAdd(_) => index::vjp(self, &op, &xs, y_bar),
            Op::LogSoftmax(_) => softmax::vjp(self, &op, node, y_bar),
        }
    }
    // ANCHOR_END: local_vjp
}
