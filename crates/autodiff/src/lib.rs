//! # dendrite-autodiff
//!
//! Reverse-mode automatic differentiation for [`dendrite_graph`] graphs. Gradients are derived
//! as new nodes of the same graph, so a gradient can be compiled, run, inspected with
//! [`dendrite_graph::to_dot`], and differentiated again: [`hvp`], [`jvp`], [`jacobian`] and
//! [`hessian`] are all built from the one reverse sweep, [`vjp`].
//!
//! - [`check`]: the gradient checker, central finite differences in `f64` against the derived
//!   gradients (elementwise or along random directions), for first and second order; usable on
//!   any graph; [`check::check_fn`] checks a function built by a closure in one call.
//! - [`strategies`]: proptest strategies for shapes, broadcast pairs, tensors inside an op's
//!   domain and away from its kinks, and random DAGs of primitives.
//! - [`simplify`](mod@simplify): common-subexpression elimination, constant folding and algebraic
//!   identities on derived graphs.
//!
//! ```
//! use dendrite_autodiff::grad;
//! use dendrite_graph::{compile, Graph};
//! use ndarray::arr1;
//!
//! let mut g = Graph::<f64>::new();
//! let x = g.input("x", [3])?;
//! let sq = g.square(x)?;
//! let loss = g.sum_all(sq)?;              // loss = Σ x², so ∇loss = 2x
//! let dx = grad(&mut g, loss, &[x])?;
//! let mut plan = compile(&g, &dx)?;
//! let xv = arr1(&[1.0, -2.0, 0.5]).into_dyn();
//! let out = plan.run(&g, &[("x", xv.view())])?;
//! assert_eq!(out.get(0)?, arr1(&[2.0, -4.0, 1.0]).into_dyn().view());
//! # Ok::<(), dendrite_autodiff::AutodiffError>(())
//! ```

pub mod check;
mod error;
mod higher_order;
mod reverse;
pub mod simplify;
pub mod strategies;
mod tangent;

pub use check::{
    assert_gradients, check_fn, check_gradients, check_second_order, CheckConfig, CheckMode,
    GradCheckReport,
};
pub use error::{AutodiffError, Result};
pub use higher_order::{hessian, hvp, jacobian, jvp};
pub use reverse::{grad, vjp};
pub use simplify::{simplify, Simplified, SimplifyStats};
