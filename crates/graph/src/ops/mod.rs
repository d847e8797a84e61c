//! The closed set of built-in primitive ops, and the door for a user's own ([`custom`]).
//!
//! Each family lives in one file holding, side by side, its math (in rustdoc), its enum (one
//! list of its members, declared with `family!`), its shape rule, its forward kernel, its local
//! derivative rule, and the `Graph` methods that add it. This module only dispatches: every
//! `match` over [`Op`] and over a family enum is exhaustive, so adding a member makes the
//! compiler point at each place that must learn about it.
//!
//! Adding a unary function, for example, is its variant in [`UnaryOp`] (with its name), then
//! the arms the compiler asks for in `unary.rs` (value, kernel, derivative rule), a builder,
//! and a row in the book's derivative table; the gradient checks, the accuracy test and the
//! random DAGs iterate over [`UnaryOp::ALL`] and ask for its domain through exhaustive matches
//! of their own.
//!
//! Derivative rules build new nodes of the same graph (they are vector-Jacobian products
//! written with primitives), which is why gradients of gradients need no extra machinery.
//! Where a rule returns a gradient for a broadcast operand, it returns it in the output's shape;
//! the reverse sweep (in `dendrite-autodiff`) sums it back to the operand's shape, in one place.

#[macro_use]
mod family;

pub mod axis;
pub mod binary;
pub mod broadcast;
pub mod compare;
pub mod conv;
pub mod custom;
pub mod index;
pub mod layout;
pub mod matmul;
pub mod pool;
pub mod random;
pub mod reduce;
pub mod slice;
pub mod softmax;
pub mod stop_gradient;
pub mod unary;
pub mod window;

use crate::error::{GraphError, Result};
use crate::shape::{ConcreteShape, Shape};
use crate::team::Team;
use crate::{Element, Graph, NodeId};
use ndarray::{ArrayViewD, ArrayViewMutD};
use smallvec::SmallVec;

pub use axis::AxisOp;
pub use binary::BinaryOp;
pub use broadcast::BroadcastOp;
pub use compare::CompareOp;
pub use conv::{Conv2d, ConvOp};
pub use custom::{Custom, CustomOp, CustomOpError};
pub use index::IndexOp;
pub use layout::LayoutOp;
pub use pool::{Pool2d, PoolOp};
pub use random::RandomOp;
pub use reduce::ReduceOp;
pub use slice::SliceOp;
pub use softmax::SoftmaxOp;
pub use unary::UnaryOp;
pub use window::Padding;

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

/// A primitive op. The built-in set is closed: composites (relu, softmax, ...) are built from
/// these in [`crate::composite`] and need no derivative rule of their own. A user adds a
/// primitive of their own through [`Op::Custom`] (see [`custom`]).
///
/// `Op` is generic over the element type only because a custom op's kernel and rules are
/// (`Arc<dyn CustomOp<F>>`); every built-in variant is the same for `f32` and `f64`.
///
/// Each family is an enum of its own, declared in its file with the names of its members
/// (`UnaryOp::ALL`, `SliceOp::NAMES`, ...); every shape rule, kernel and derivative rule of a
/// family matches its enum without a wildcard arm, so a new member is a compile error at each
/// place that must learn about it.
///
/// ```
/// use dendrite_graph::{Graph, Op, UnaryOp};
/// let mut g = Graph::<f32>::new();
/// let x = g.input("x", [2])?;
/// let y = g.exp(x)?;
/// assert_eq!(g.op(y)?, &Op::Unary(UnaryOp::Exp));
/// # Ok::<(), dendrite_graph::GraphError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Op<F: Element> {
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
    /// Explicit broadcasting and its adjoint ([`broadcast`]).
    Broadcast(BroadcastOp),
    /// Fold over axes by sum, max, min or product ([`reduce`]).
    Reduce {
        /// How elements combine.
        op: ReduceOp,
        /// The reduced axes, sorted and distinct.
        axes: Axes,
        /// Whether reduced axes stay as size 1.
        keep_dims: bool,
    },
    /// Functions along axes that are not folds: sizes, argmax, cumulative sums ([`axis`]).
    Axis(AxisOp),
    /// Ops that move elements without changing them ([`layout`]).
    Layout(LayoutOp),
    /// Matrix product over the last two axes, batch axes broadcast ([`matmul`]).
    MatMul {
        /// Use the lhs transposed (last two axes swapped).
        transpose_lhs: bool,
        /// Use the rhs transposed.
        transpose_rhs: bool,
    },
    /// Slicing, padding and concatenation along one axis ([`slice`](mod@slice)).
    Slice(SliceOp),
    /// Integer indexing: gather, scatter-add, one-hot ([`index`]).
    Index(IndexOp),
    /// `log_softmax` and `logsumexp`, stable kernels ([`softmax`]).
    Softmax(SoftmaxOp),
    /// Identity forward, no gradient backward ([`stop_gradient`]).
    StopGradient,
    /// Convolution of NHWC images and its two gradient maps ([`conv`]).
    Conv(ConvOp),
    /// Max and average pooling and their gradient maps ([`pool`]).
    Pool(PoolOp),
    /// Counter-based random draws ([`random`]).
    Random(RandomOp),
    /// A user-defined primitive with its own shape rule, kernel and derivative rules
    /// ([`custom`]).
    Custom(Custom<F>),
}

/// Equality is exact: scalars compare by bits, custom ops by type, name and parameters.
impl<F: Element> Eq for Op<F> {}

/// Consistent with `==`; written out (not derived) because `f32` is not `Hash`, and the
/// derive would demand it of `F`.
impl<F: Element> std::hash::Hash for Op<F> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        std::mem::discriminant(self).hash(state);
        match self {
            Op::Input | Op::Parameter | Op::Constant | Op::Select | Op::StopGradient => {}
            Op::Unary(u) => u.hash(state),
            Op::Pow(p) => p.hash(state),
            Op::Binary(b) => b.hash(state),
            Op::Compare(c) => c.hash(state),
            Op::Broadcast(b) => b.hash(state),
            Op::Reduce {
                op,
                axes,
                keep_dims,
            } => (op, axes, keep_dims).hash(state),
            Op::Axis(a) => a.hash(state),
            Op::Layout(l) => l.hash(state),
            Op::MatMul {
                transpose_lhs,
                transpose_rhs,
            } => (transpose_lhs, transpose_rhs).hash(state),
            Op::Slice(s) => s.hash(state),
            Op::Index(i) => i.hash(state),
            Op::Softmax(s) => s.hash(state),
            Op::Conv(c) => c.hash(state),
            Op::Pool(p) => p.hash(state),
            Op::Random(r) => r.hash(state),
            Op::Custom(c) => c.hash(state),
        }
    }
}

/// The names of the single-member families, beside the family enums' own lists.
pub(crate) const POW: &str = "pow";
pub(crate) const SELECT: &str = "select";
pub(crate) const MATMUL: &str = "matmul";

impl<F: Element> Op<F> {
    /// The op's name as used in node names, errors and DOT output.
    ///
    /// ```
    /// use dendrite_graph::{Op, BinaryOp};
    /// assert_eq!(Op::<f32>::Binary(BinaryOp::Mul).name(), "mul");
    /// ```
    pub fn name(&self) -> &'static str {
        match self {
            Op::Input => "input",
            Op::Parameter => "parameter",
            Op::Constant => "constant",
            Op::Unary(u) => u.name(),
            Op::Pow(_) => POW,
            Op::Binary(b) => b.name(),
            Op::Compare(c) => c.name(),
            Op::Select => SELECT,
            Op::Broadcast(b) => b.name(),
            Op::Reduce { op, .. } => op.name(),
            Op::Axis(a) => a.name(),
            Op::Layout(l) => l.name(),
            Op::MatMul { .. } => MATMUL,
            Op::Slice(s) => s.name(),
            Op::Index(i) => i.name(),
            Op::Softmax(s) => s.name(),
            Op::StopGradient => stop_gradient::NAME,
            Op::Conv(c) => c.name(),
            Op::Pool(p) => p.name(),
            Op::Random(r) => r.name(),
            Op::Custom(c) => c.name(),
        }
    }

    /// Names of every built-in primitive op, family by family, each family's names coming
    /// from its own list (custom ops are the user's and not listed). Tests iterate over this
    /// to check that each op has a gradient check, an entry in the book's derivative table and
    /// a place in the random DAGs.
    ///
    /// ```
    /// let names = dendrite_graph::Op::<f64>::primitive_names();
    /// assert!(names.contains(&"matmul") && names.contains(&"sin"));
    /// ```
    pub fn primitive_names() -> Vec<&'static str> {
        let families: [&[&'static str]; 17] = [
            UnaryOp::NAMES,
            &[POW],
            BinaryOp::NAMES,
            CompareOp::NAMES,
            &[SELECT],
            BroadcastOp::NAMES,
            ReduceOp::NAMES,
            AxisOp::NAMES,
            LayoutOp::NAMES,
            &[MATMUL],
            SliceOp::NAMES,
            IndexOp::NAMES,
            SoftmaxOp::NAMES,
            &[stop_gradient::NAME],
            ConvOp::NAMES,
            PoolOp::NAMES,
            RandomOp::NAMES,
        ];
        families.concat()
    }

    /// Whether the op is a leaf (input, parameter or constant) with no kernel.
    ///
    /// ```
    /// assert!(dendrite_graph::Op::<f32>::Input.is_leaf());
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
    /// assert!(Op::<f32>::Binary(BinaryOp::Add).broadcasts_operands());
    /// assert!(!Op::<f32>::StopGradient.broadcasts_operands());
    /// ```
    pub fn broadcasts_operands(&self) -> bool {
        matches!(self, Op::Binary(_) | Op::Compare(_) | Op::Select)
    }

    /// Infers the output shape from the operand shapes, or says which rule they break.
    /// `node` names the node in errors.
    ///
    /// ```
    /// use dendrite_graph::{Op, BinaryOp, Shape};
    /// let add = Op::<f32>::Binary(BinaryOp::Add);
    /// let out = add.infer_shape("n", &[&Shape::from([3, 1]), &Shape::from([4])])?;
    /// assert_eq!(out, Shape::from([3, 4]));
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn infer_shape(&self, node: &str, operands: &[&Shape]) -> Result<Shape> {
        match self {
            Op::Input | Op::Parameter | Op::Constant => {
                expect_arity(self.name(), node, operands, 0)?;
                Err(GraphError::InvalidShape {
                    op: self.name(),
                    node: node.to_owned(),
                    reason: "leaves carry their own shape".to_owned(),
                    shape: Shape::scalar(),
                })
            }
            Op::Unary(u) => unary::infer(u.name(), node, operands),
            Op::Pow(_) => unary::infer(POW, node, operands),
            Op::Binary(b) => binary::infer(b.name(), node, operands),
            Op::Compare(c) => binary::infer(c.name(), node, operands),
            Op::Select => compare::infer_select(node, operands),
            Op::Broadcast(b) => broadcast::infer(b, node, operands),
            Op::Reduce {
                op,
                axes,
                keep_dims,
                ..
            } => reduce::infer(*op, axes, *keep_dims, node, operands),
            Op::Axis(a) => axis::infer(a, node, operands),
            Op::Layout(l) => layout::infer(l, node, operands),
            Op::MatMul {
                transpose_lhs,
                transpose_rhs,
            } => matmul::infer((*transpose_lhs, *transpose_rhs), node, operands),
            Op::Slice(s) => slice::infer(s, node, operands),
            Op::Index(i) => index::infer(i, node, operands),
            Op::Softmax(s) => softmax::infer(s, node, operands),
            Op::StopGradient => stop_gradient::infer(node, operands),
            Op::Conv(c) => conv::infer(c, node, operands),
            Op::Pool(p) => pool::infer(p, node, operands),
            Op::Random(r) => random::infer(r, node, operands),
            Op::Custom(c) => c.infer_shape(node, operands),
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
        out.concrete().ok_or_else(|| GraphError::Internal {
            op: self.name(),
            node: node.to_owned(),
            what: "a shape rule left a dimension dynamic at run time",
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
    pub fn evaluate(&self, node: &str, inputs: &[ArrayViewD<'_, F>]) -> Result<ndarray::ArrayD<F>> {
        let shapes: SmallVec<[&[usize]; 3]> = inputs.iter().map(|v| v.shape()).collect();
        let shape = self.infer_concrete(node, &shapes)?;
        let mut out = crate::limits::zeros::<F>(self.name(), node, &shape)?;
        self.forward(node, inputs, out.view_mut(), &mut Vec::new(), Team::ONE)?;
        Ok(out)
    }

    /// Runs the forward kernel, writing into `out` (already shaped by [`Op::infer_shape`]).
    /// `scratch` is working space the kernel may grow and reuse (the plan keeps one per step,
    /// so that it is allocated once, not on every run); only convolutions use it, and only
    /// they and random draws use `team` (the plan splits the steps of [`Op::splits_by_rows`]
    /// itself).
    pub(crate) fn forward(
        &self,
        node: &str,
        inputs: &[ArrayViewD<'_, F>],
        out: ArrayViewMutD<'_, F>,
        scratch: &mut Vec<F>,
        team: Team,
    ) -> Result<()> {
        match self {
            Op::Input | Op::Parameter | Op::Constant => Ok(()),
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
            Op::Broadcast(b) => broadcast::forward(b, node, inputs, out),
            Op::Reduce { op, axes, .. } => reduce::forward(*op, axes, &inputs[0], out),
            Op::Axis(a) => axis::forward(a, &inputs[0], out),
            Op::Layout(l) => layout::forward(l, &inputs[0], out),
            Op::MatMul {
                transpose_lhs,
                transpose_rhs,
            } => matmul::forward((*transpose_lhs, *transpose_rhs), inputs, out),
            Op::Slice(s) => slice::forward(s, inputs, out),
            Op::Index(i) => index::forward(i, node, inputs, out),
            Op::Softmax(s) => softmax::forward(s, &inputs[0], out),
            Op::StopGradient => stop_gradient::forward(&inputs[0], out),
            Op::Conv(c) => conv::forward(c, node, inputs, out, scratch, team),
            Op::Pool(p) => pool::forward(p, node, inputs, out),
            Op::Random(r) => random::forward(r, node, inputs, out, team),
            Op::Custom(c) => c.forward(node, inputs, out),
        }
    }
}

impl<F: Element> Op<F> {
    /// Whether row `i` (along axis 0) of the output depends only on row `i` of each operand
    /// that has the output's rank and first dimension (and on the whole of the others, which
    /// broadcast): then the plan may run a large step as several row blocks on several
    /// threads, with the same result. True of the elementwise families and of pooling (its
    /// images are independent); convolutions split their own work.
    pub(crate) fn splits_by_rows(&self) -> bool {
        match self {
            Op::Unary(_) | Op::Pow(_) | Op::Binary(_) | Op::Compare(_) | Op::Select => true,
            Op::Pool(_) => true,
            Op::Input
            | Op::Parameter
            | Op::Constant
            | Op::Broadcast(_)
            | Op::Reduce { .. }
            | Op::Axis(_)
            | Op::Layout(_)
            | Op::MatMul { .. }
            | Op::Slice(_)
            | Op::Index(_)
            | Op::Softmax(_)
            | Op::StopGradient
            | Op::Conv(_)
            | Op::Random(_)
            | Op::Custom(_) => false,
        }
    }
}

fn expect_arity(op: &'static str, node: &str, operands: &[&Shape], n: usize) -> Result<()> {
    if operands.len() == n {
        Ok(())
    } else {
        Err(GraphError::Arity {
            op,
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

pub(crate) fn check_arity(
    op: &'static str,
    node: &str,
    operands: &[&Shape],
    n: usize,
) -> Result<()> {
    expect_arity(op, node, operands, n)
}

fn check_axis(op: &'static str, node: &str, axis: usize, rank: usize) -> Result<()> {
    if axis < rank {
        Ok(())
    } else {
        Err(GraphError::InvalidAxis {
            op,
            node: node.to_owned(),
            axis,
            rank,
        })
    }
}

/// In-range, distinct axes (in any order: builders sort them afterwards).
fn check_axes(op: &'static str, node: &str, axes: &[usize], rank: usize) -> Result<()> {
    for (i, &axis) in axes.iter().enumerate() {
        check_axis(op, node, axis, rank)?;
        if axes[..i].contains(&axis) {
            return Err(GraphError::RepeatedAxis {
                op,
                node: node.to_owned(),
                axis,
            });
        }
    }
    Ok(())
}

/// Sorts user-given axes (already checked distinct) so equal reductions are equal ops.
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
            Op::Unary(u) => unary::vjp_unary(self, *u, xs[0], node, y_bar),
            Op::Pow(p) => unary::vjp_pow(self, p.0, xs[0], y_bar),
            Op::Binary(b) => binary::vjp(self, *b, xs[0], xs[1], node, y_bar),
            // Comparisons are piecewise constant: no gradient flows into either side.
            Op::Compare(_) => Ok(smallvec::smallvec![None, None]),
            Op::Select => compare::vjp_select(self, &xs, y_bar),
            Op::Broadcast(b) => broadcast::vjp(self, b, &xs, y_bar),
            Op::Reduce {
                op: kind,
                axes,
                keep_dims,
            } => reduce::vjp(self, *kind, axes, *keep_dims, xs[0], node, y_bar),
            Op::Axis(a) => axis::vjp(self, a, y_bar),
            Op::Layout(l) => layout::vjp(self, l, xs[0], node, y_bar),
            Op::MatMul {
                transpose_lhs,
                transpose_rhs,
            } => matmul::vjp(self, (*transpose_lhs, *transpose_rhs), xs[0], xs[1], y_bar),
            Op::Slice(s) => slice::vjp(self, s, &xs, node, y_bar),
            Op::Index(i) => index::vjp(self, i, &xs, y_bar),
            Op::Softmax(s) => softmax::vjp(self, s, xs[0], node, y_bar),
            Op::StopGradient => Ok(stop_gradient::vjp()),
            Op::Conv(c) => conv::vjp(self, c, &xs, y_bar),
            Op::Pool(p) => pool::vjp(self, p, &xs, y_bar),
            Op::Random(_) => Ok(random::vjp()),
            Op::Custom(c) => c.vjp(self, &xs, node, y_bar),
        }
    }
    // ANCHOR_END: local_vjp
}
