//! User-defined primitives: the [`CustomOp`] trait and the [`Custom`] handle that
//! [`Op::Custom`] stores.
//!
//! A custom op is a primitive like the built-in ones: it has a name, a shape rule (run when a
//! node is added, and again at run time with concrete sizes), a forward kernel that writes into
//! a buffer the plan owns, and a derivative rule that builds graph nodes. Everything that
//! handles ops handles it: plans (buffer reuse, [`Plan::profile`](crate::Plan::profile)), the
//! reverse sweep and everything built on it (`grad`, `vjp`, `hvp`, `jvp`, `jacobian`,
//! `hessian` in `dendrite-autodiff`), `simplify`, [`to_dot`](crate::to_dot) and the gradient
//! checker.
//!
//! # Writing one
//!
//! `softsign(x) = x / (1 + |x|)`, whose derivative is `1 / (1 + |x|)²`:
//!
//! ```
//! use dendrite_graph::ops::{CustomOp, CustomOpError, OperandGrads};
//! use dendrite_graph::{compile, Element, Graph, NodeId, Shape};
//! use ndarray::{ArrayViewD, ArrayViewMutD, Zip};
//! use std::sync::Arc;
//!
//! struct Softsign;
//!
//! impl<F: Element> CustomOp<F> for Softsign {
//!     fn name(&self) -> &'static str {
//!         "softsign"
//!     }
//!     fn infer_shape(&self, operands: &[&Shape]) -> Result<Shape, CustomOpError> {
//!         match operands {
//!             [x] => Ok((*x).clone()),
//!             _ => Err(CustomOpError::new("expects one operand")),
//!         }
//!     }
//!     fn forward(
//!         &self,
//!         xs: &[ArrayViewD<'_, F>],
//!         out: ArrayViewMutD<'_, F>,
//!     ) -> Result<(), CustomOpError> {
//!         Zip::from(out).and(&xs[0]).for_each(|y, &x| *y = x / (F::one() + x.abs()));
//!         Ok(())
//!     }
//!     // x̄ = ȳ / (1 + |x|)², built from primitives: so it can be differentiated again.
//!     fn vjp(&self, g: &mut Graph<F>, xs: &[NodeId], _y: NodeId, y_bar: NodeId)
//!         -> dendrite_graph::Result<OperandGrads>
//!     {
//!         let a = g.abs(xs[0])?;
//!         let one = g.scalar(1.0);
//!         let d = g.add(one, a)?;
//!         let d2 = g.square(d)?;
//!         Ok(OperandGrads::from_slice(&[Some(g.div(y_bar, d2)?)]))
//!     }
//! }
//!
//! let mut g = Graph::<f64>::new();
//! let x = g.input("x", [None, Some(2)])?;
//! let y = g.custom(Arc::new(Softsign), &[x])?;
//! assert_eq!(g.name(y)?, "softsign");
//! let mut plan = compile(&g, &[y])?;
//! let xv = ndarray::arr2(&[[1.0, -3.0]]).into_dyn();
//! let out = plan.run(&g, &[("x", xv.view())])?;
//! assert_eq!(out.get(0)?, ndarray::arr2(&[[0.5, -0.75]]).into_dyn().view());
//! # Ok::<(), dendrite_graph::GraphError>(())
//! ```
//!
//! Because the VJP rule is written with primitives, gradients of gradients, Hessian-vector
//! products and forward-mode products need nothing more: they differentiate the rule's nodes.
//! A rule that calls an opaque kernel of its own (another custom op without a rule) stops
//! there, with an error naming that op.
//!
//! # Design
//!
//! The kernel and the rules are generic over the element type, so [`Op`] is generic over it
//! too (`Op<F>`, like [`Graph<F>`](crate::Graph)) and stores the user's op as
//! `Arc<dyn CustomOp<F>>`: no downcast anywhere, and a custom op of an `f32` graph cannot be
//! added to an `f64` graph by mistake. Every built-in variant is the same for both element
//! types. The custom op's name is a `&'static str`, like every built-in name, so errors, DOT
//! output and profiles keep one type for op names.
//!
//! Two custom ops are equal (and hash alike) when they are of the same Rust type, have the same
//! name and the same [`CustomOp::params`], compared by bits: that is what lets `simplify`'s
//! common-subexpression elimination merge `softsign(x)` built twice, while `leaky(x, 0.1)` and
//! `leaky(x, 0.2)`, or two types that happen to share a name, stay apart.
//!
//! # Rules a kernel must keep
//!
//! - The output buffer may hold values of an earlier run (plans reuse buffers): write every
//!   element of `out`.
//! - The shape rule sees declared shapes, where a dimension may be dynamic
//!   ([`Dim::Dynamic`](crate::Dim)); the plan runs it again with concrete sizes (and caches the
//!   result while the batch size does not change).
//! - A VJP rule returns one entry per operand, `None` where no gradient flows, each shaped like
//!   its operand or like the output (the reverse sweep sums a broadcast operand's gradient
//!   down); anything else is a [`GraphError::CustomRule`] naming the op and the node.

use crate::error::{GraphError, Result};
use crate::ops::OperandGrads;
use crate::shape::Shape;
use crate::{Element, Graph, NodeId, Op};
use ndarray::{ArrayViewD, ArrayViewMutD};
use std::any::{Any, TypeId};
use std::fmt;
use std::sync::Arc;

/// What a custom op's shape rule or kernel reports when it refuses its operands; the graph
/// adds the op's name, the node's name and the shapes ([`GraphError::CustomShape`],
/// [`GraphError::CustomKernel`]).
///
/// ```
/// use dendrite_graph::ops::CustomOpError;
/// let e = CustomOpError::new("expects one operand");
/// assert_eq!(e.to_string(), "expects one operand");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct CustomOpError {
    /// What went wrong, in the op's own words.
    pub reason: String,
}

impl CustomOpError {
    /// An error with this reason.
    pub fn new(reason: impl Into<String>) -> Self {
        CustomOpError {
            reason: reason.into(),
        }
    }
}

/// A graph error met inside a shape rule (from [`crate::broadcast_shapes`], say) keeps its
/// message.
impl From<GraphError> for CustomOpError {
    fn from(e: GraphError) -> Self {
        CustomOpError::new(e.to_string())
    }
}

/// A user-defined primitive: name, shape rule, forward kernel and derivative rules. See the
/// [module docs](self) for a complete example and the rules a kernel must keep.
///
/// Object safe; add one to a graph with [`Graph::custom`].
pub trait CustomOp<F: Element>: Any + Send + Sync {
    /// The op's name, used for its nodes' names, in errors, DOT output and profiles.
    fn name(&self) -> &'static str;

    /// Values that distinguish two instances of the op (a slope, an exponent, an axis as
    /// `f64`), compared by bits: two nodes with the same type, name, parameters and operands
    /// are one node to `simplify`. Read once, when the op is added. None by default.
    fn params(&self) -> Vec<f64> {
        Vec::new()
    }

    /// The output's shape from the operands' declared shapes (which may have dynamic
    /// dimensions), or why they are refused.
    ///
    /// # Errors
    /// A [`CustomOpError`] saying which rule the shapes break.
    fn infer_shape(&self, operands: &[&Shape]) -> Result<Shape, CustomOpError>;

    /// Computes the output into `out`, already shaped by [`CustomOp::infer_shape`] with the
    /// run's concrete sizes. Must write every element; must not allocate per call if the plan
    /// is to run without allocating.
    ///
    /// # Errors
    /// A [`CustomOpError`] for operand values the kernel cannot handle.
    fn forward(
        &self,
        operands: &[ArrayViewD<'_, F>],
        out: ArrayViewMutD<'_, F>,
    ) -> Result<(), CustomOpError>;

    /// The vector-Jacobian product: from the output's cotangent `y_bar`, builds the operands'
    /// cotangents as new nodes of `g` (one entry per operand, `None` where no gradient flows).
    /// `operands` are the node's operands and `output` the node itself.
    ///
    /// Written with differentiable graph ops, it makes second order, `hvp` and `jvp` work.
    /// The default has no rule and refuses with [`GraphError::NotDifferentiable`] naming the
    /// op and the node.
    ///
    /// # Errors
    /// Whatever building the nodes reports.
    fn vjp(
        &self,
        g: &mut Graph<F>,
        operands: &[NodeId],
        output: NodeId,
        y_bar: NodeId,
    ) -> Result<OperandGrads> {
        let _ = (operands, y_bar);
        Err(GraphError::NotDifferentiable {
            op: self.name(),
            node: g.name(output)?.to_owned(),
            reason: "this custom op defines no VJP rule",
        })
    }

    /// The Jacobian-vector product, if the op has a rule of its own: from the operands'
    /// tangents (`None` for an operand held constant), builds the output's tangent. `None`
    /// (the default) when the op has no JVP rule; `dendrite_autodiff::jvp` then transposes the
    /// VJP rule instead.
    fn jvp(
        &self,
        g: &mut Graph<F>,
        operands: &[NodeId],
        output: NodeId,
        tangents: &[Option<NodeId>],
    ) -> Option<Result<NodeId>> {
        let _ = (g, operands, output, tangents);
        None
    }
}

/// A custom op as [`Op::Custom`] stores it: the shared op, with its name and parameters read
/// once so that comparing and hashing never call into user code.
///
/// ```
/// # use dendrite_graph::ops::{Custom, CustomOp, CustomOpError};
/// # use dendrite_graph::Shape;
/// # use ndarray::{ArrayViewD, ArrayViewMutD};
/// # use std::sync::Arc;
/// struct Scale(f64);
/// impl CustomOp<f64> for Scale {
///     fn name(&self) -> &'static str { "scale" }
///     fn params(&self) -> Vec<f64> { vec![self.0] }
///     fn infer_shape(&self, xs: &[&Shape]) -> Result<Shape, CustomOpError> {
///         xs.first().map(|x| (*x).clone()).ok_or_else(|| CustomOpError::new("one operand"))
///     }
///     fn forward(&self, xs: &[ArrayViewD<'_, f64>], mut out: ArrayViewMutD<'_, f64>)
///         -> Result<(), CustomOpError> {
///         out.assign(&(&xs[0] * self.0));
///         Ok(())
///     }
/// }
/// let scale = |k: f64| Custom::new(Arc::new(Scale(k)));
/// let (a, b, c) = (scale(2.0), scale(2.0), scale(3.0));
/// assert!(a == b && a != c);
/// assert_eq!((a.name(), a.params()), ("scale", &[2.0][..]));
/// ```
pub struct Custom<F: Element> {
    op: Arc<dyn CustomOp<F>>,
    name: &'static str,
    /// Compared and hashed by bits.
    params: Arc<[f64]>,
    /// The concrete type behind `op`: ops of different types never compare equal.
    type_id: TypeId,
}

impl<F: Element> Custom<F> {
    /// Wraps an op, reading its name and parameters.
    pub fn new(op: Arc<dyn CustomOp<F>>) -> Self {
        let type_id = Any::type_id(&*op);
        Custom {
            name: op.name(),
            params: op.params().into(),
            type_id,
            op,
        }
    }

    /// The op's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The op's parameters, as read when it was wrapped.
    pub fn params(&self) -> &[f64] {
        &self.params
    }

    /// The user's op.
    pub fn op(&self) -> &dyn CustomOp<F> {
        &*self.op
    }

    pub(crate) fn infer_shape(&self, node: &str, operands: &[&Shape]) -> Result<Shape> {
        self.op
            .infer_shape(operands)
            .map_err(|e| GraphError::CustomShape {
                op: self.name,
                node: node.to_owned(),
                reason: e.reason,
                operands: operands.iter().map(|s| (*s).clone()).collect(),
            })
    }

    pub(crate) fn forward(
        &self,
        node: &str,
        inputs: &[ArrayViewD<'_, F>],
        out: ArrayViewMutD<'_, F>,
    ) -> Result<()> {
        self.op
            .forward(inputs, out)
            .map_err(|e| GraphError::CustomKernel {
                op: self.name,
                node: node.to_owned(),
                reason: e.reason,
            })
    }

    /// Runs the user's VJP rule and checks what it returns: one entry per operand, each
    /// shaped like its operand or like the output.
    pub(crate) fn vjp(
        &self,
        g: &mut Graph<F>,
        operands: &[NodeId],
        output: NodeId,
        y_bar: NodeId,
    ) -> Result<OperandGrads> {
        let grads = self.op.vjp(g, operands, output, y_bar)?;
        if grads.len() != operands.len() {
            return Err(self.rule_error(
                g,
                output,
                format!(
                    "the VJP rule returned {} gradients for {} operands",
                    grads.len(),
                    operands.len()
                ),
            ));
        }
        let out_shape = g.shape(output)?.clone();
        for (slot, (&x, x_bar)) in operands.iter().zip(&grads).enumerate() {
            let Some(x_bar) = *x_bar else { continue };
            let shape = g.shape(x_bar)?;
            if shape != g.shape(x)? && *shape != out_shape {
                let reason = format!(
                    "the VJP rule's gradient for operand {slot} has shape {shape}, \
                     expected {} (the operand's) or {out_shape} (the output's)",
                    g.shape(x)?
                );
                return Err(self.rule_error(g, output, reason));
            }
        }
        Ok(grads)
    }

    /// Runs the user's JVP rule, if any, and checks that the tangent has the output's shape.
    ///
    /// # Errors
    /// [`GraphError::CustomRule`] for a tangent of another shape; whatever the rule reports.
    pub fn jvp(
        &self,
        g: &mut Graph<F>,
        operands: &[NodeId],
        output: NodeId,
        tangents: &[Option<NodeId>],
    ) -> Option<Result<NodeId>> {
        let tangent = self.op.jvp(g, operands, output, tangents)?;
        Some(tangent.and_then(|t| {
            let (shape, expected) = (g.shape(t)?, g.shape(output)?);
            if shape == expected {
                Ok(t)
            } else {
                let reason =
                    format!("the JVP rule's tangent has shape {shape}, expected {expected}");
                Err(self.rule_error(g, output, reason))
            }
        }))
    }

    fn rule_error(&self, g: &Graph<F>, output: NodeId, reason: String) -> GraphError {
        GraphError::CustomRule {
            op: self.name,
            node: g.name(output).unwrap_or_default().to_owned(),
            reason,
        }
    }
}

impl<F: Element> Clone for Custom<F> {
    fn clone(&self) -> Self {
        Custom {
            op: Arc::clone(&self.op),
            name: self.name,
            params: Arc::clone(&self.params),
            type_id: self.type_id,
        }
    }
}

impl<F: Element> PartialEq for Custom<F> {
    fn eq(&self, other: &Self) -> bool {
        self.type_id == other.type_id
            && self.name == other.name
            && self.params.len() == other.params.len()
            && self
                .params
                .iter()
                .zip(other.params.iter())
                .all(|(a, b)| a.to_bits() == b.to_bits())
    }
}

impl<F: Element> Eq for Custom<F> {}

impl<F: Element> std::hash::Hash for Custom<F> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (self.type_id, self.name).hash(state);
        for p in self.params.iter() {
            p.to_bits().hash(state);
        }
    }
}

impl<F: Element> fmt::Debug for Custom<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Custom")
            .field("name", &self.name)
            .field("params", &self.params)
            .finish()
    }
}

impl<F: Element> Graph<F> {
    /// Adds a node computing the user-defined primitive `op` on `operands` (see
    /// [`CustomOp`] and the [`custom`](self) module for a complete example).
    ///
    /// # Errors
    /// Bad handles, and [`GraphError::CustomShape`] naming the op when its shape rule refuses
    /// the operands' shapes.
    ///
    /// ```
    /// # use dendrite_graph::ops::{CustomOp, CustomOpError};
    /// # use dendrite_graph::{Graph, GraphError, Shape};
    /// # use ndarray::{ArrayViewD, ArrayViewMutD};
    /// # use std::sync::Arc;
    /// struct Twice;
    /// impl CustomOp<f32> for Twice {
    ///     fn name(&self) -> &'static str { "twice" }
    ///     fn infer_shape(&self, xs: &[&Shape]) -> Result<Shape, CustomOpError> {
    ///         match xs {
    ///             [x] if x.rank() == 1 => Ok((*x).clone()),
    ///             _ => Err(CustomOpError::new("expects one vector")),
    ///         }
    ///     }
    ///     fn forward(&self, xs: &[ArrayViewD<'_, f32>], mut out: ArrayViewMutD<'_, f32>)
    ///         -> Result<(), CustomOpError> {
    ///         out.assign(&(&xs[0] * 2.0));
    ///         Ok(())
    ///     }
    /// }
    /// let mut g = Graph::<f32>::new();
    /// let v = g.input("v", [3])?;
    /// let m = g.input("m", [2, 2])?;
    /// let y = g.custom(Arc::new(Twice), &[v])?;
    /// assert_eq!(g.shape(y)?, &Shape::from([3]));
    /// let err = g.custom(Arc::new(Twice), &[m]).unwrap_err();
    /// assert!(matches!(err, GraphError::CustomShape { op: "twice", .. }));
    /// # Ok::<(), GraphError>(())
    /// ```
    pub fn custom(&mut self, op: Arc<dyn CustomOp<F>>, operands: &[NodeId]) -> Result<NodeId> {
        self.add_op(Op::Custom(Custom::new(op)), operands)
    }
}
