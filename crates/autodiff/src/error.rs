//! Errors of the autodiff crate.

use dendrite_graph::{GraphError, Shape};

/// Result alias of the autodiff crate.
pub type Result<T, E = AutodiffError> = std::result::Result<T, E>;

/// What can go wrong while deriving or checking gradients.
///
/// ```
/// use dendrite_autodiff::{grad, AutodiffError};
/// let mut g = dendrite_graph::Graph::<f64>::new();
/// let x = g.input("x", [3])?;
/// let y = g.exp(x)?;
/// let err = grad(&mut g, y, &[x]).unwrap_err();
/// assert!(matches!(err, AutodiffError::NonScalarOutput { .. }));
/// # Ok::<(), AutodiffError>(())
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum AutodiffError {
    /// An error from the graph: a bad handle, a shape mismatch, a missing rule.
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// `grad` or `hvp` asked of an output with more than one element.
    #[error(
        "`{node}` has shape {shape}; a gradient needs a scalar output (use vjp with a cotangent)"
    )]
    NonScalarOutput {
        /// The output's name.
        node: String,
        /// Its shape.
        shape: Shape,
    },
    /// A cotangent or tangent whose shape differs from the value it pairs with.
    #[error("{what} for `{node}` has shape {actual}, expected {expected}")]
    PairShape {
        /// "cotangent" or "tangent".
        what: &'static str,
        /// The node it pairs with.
        node: String,
        /// Shape of that node.
        expected: Shape,
        /// Shape given.
        actual: Shape,
    },
    /// Different numbers of `wrt` nodes and tangents or vectors.
    #[error("{wrt} nodes to differentiate with respect to, but {given} {what}")]
    CountMismatch {
        /// Number of `wrt` nodes.
        wrt: usize,
        /// Number of tangents or vectors given.
        given: usize,
        /// What was given.
        what: &'static str,
    },
    /// Jacobians and Hessians are materialized element by element and need fixed shapes.
    #[error("{what} needs a fixed shape, but `{node}` has shape {shape}")]
    NeedsFixedShape {
        /// "jacobian" or "hessian".
        what: &'static str,
        /// The node.
        node: String,
        /// Its shape.
        shape: Shape,
    },
    /// A gradient check that found analytic and numeric derivatives disagreeing.
    #[error("gradient check failed: {0}")]
    CheckFailed(Box<crate::check::GradCheckReport>),
    /// A node given to the checker that it cannot perturb.
    #[error("`{node}` is a {op} node; the checker perturbs inputs and parameters only")]
    NotPerturbable {
        /// The node's name.
        node: String,
        /// Its op.
        op: &'static str,
    },
    /// A checker setting outside its valid range.
    #[error("check config: {setting} = {value} is invalid: {reason}")]
    InvalidCheckConfig {
        /// The field of [`crate::check::CheckConfig`] (or of its mode).
        setting: &'static str,
        /// The value given.
        value: f64,
        /// The valid range.
        reason: &'static str,
    },
    /// A result too big to build: a Jacobian or Hessian with more elements than fit in one
    /// tensor (see `dendrite_graph::limits`).
    #[error("{what} of `{node}`: {rows} rows of {columns} elements each is too large: {reason}")]
    TooLarge {
        /// "jacobian" or "hessian".
        what: &'static str,
        /// The output (or scalar function) differentiated.
        node: String,
        /// Number of VJPs or HVPs it would take.
        rows: usize,
        /// Elements per row.
        columns: usize,
        /// What limit it exceeds.
        reason: String,
    },
}
