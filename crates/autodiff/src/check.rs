//! The gradient checker: analytic derivatives from [`crate::vjp`] against central finite
//! differences, in `f64`, on any graph (a user's own included).
//!
//! Two modes, after JAX's `check_grads`:
//!
//! - **Elementwise**: every element `x_i` of every `wrt` node is nudged by `±ε` and
//!   `⟨c, (f(x + ε e_i) - f(x - ε e_i)) / 2ε⟩` is compared with the `i`-th element of the VJP
//!   `cᵀ ∂f/∂x`. For a scalar output `c = 1`, so this compares the gradient itself; for a
//!   larger output `c` is a random cotangent. Costs two forward runs per element.
//! - **Directional**: for a random tangent `t` and cotangent `c` (seeded ChaCha8),
//!   `⟨c, (f(x + ε t) - f(x - ε t)) / 2ε⟩` against `⟨cᵀ ∂f/∂x, t⟩`. Costs two forward runs per
//!   trial whatever the input size, so it suits large inputs.
//!
//! Two values `a` (analytic) and `n` (numeric) agree when
//! `|a - n| ≤ atol + rtol · max(|a|, |n|)`; NaN never agrees. Plans are compiled once per check.
//!
//! [`check_second_order`] checks Hessian-vector products the same way: the gradient of
//! `⟨∇f, v⟩` against central differences of `⟨∇f, v⟩`.
//!
//! Every [`Comparison`] says what its two numbers are ([`Contraction`]): the derivative itself,
//! or its product with random vectors. When a direction fails, the checker bisects it to the
//! element responsible (the error is linear in the tangent: `log₂ n` halvings, two runs each)
//! and reports that element as [`GradCheckReport::located`].
//!
//! [`check_fn`] is the short form, after JAX's `check_grads(f, args, order)`: a closure builds
//! the function on fresh inputs of given shapes, and first and second order are checked at
//! seeded random values ([`check_fn_at`] at given values, [`check_fn_strategy`] over a proptest
//! strategy).

mod function;
mod harness;
mod report;
mod sweep;

pub use function::{check_fn, check_fn_at, check_fn_strategy, FnCheckReport};
pub use report::{CheckConfig, CheckMode, Comparison, Contraction, GradCheckReport, Location};

use crate::error::Result;
use crate::reverse::grad;
use dendrite_graph::{compile, Graph, NodeId};
use harness::Harness;
use ndarray::{ArrayD, ArrayViewD, ArrayViewMutD, IxDyn};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Checks the derivatives of `output` with respect to `wrt` (inputs or parameters) against
/// central finite differences, and reports; see the [module docs](self) for the two modes.
///
/// Inputs are perturbed in a private copy of their feed; parameters are perturbed in the graph
/// and restored before returning (on error too). The checker appends the nodes it needs to
/// the graph: a cotangent input named `check/cotangent…` and the VJP.
///
/// # Errors
/// [`AutodiffError::InvalidCheckConfig`](crate::AutodiffError::InvalidCheckConfig) for a
/// setting out of range (see [`CheckConfig::validate`]),
/// [`AutodiffError::NotPerturbable`](crate::AutodiffError::NotPerturbable) for a `wrt` node
/// that is neither an input nor a parameter,
/// [`GraphError::MissingFeed`](dendrite_graph::GraphError::MissingFeed) for a `wrt` input
/// without a feed, and any error from deriving or running the graph. A failed check is *not*
/// an error here: see [`GradCheckReport::into_result`] and [`assert_gradients`].
///
/// ```
/// use dendrite_autodiff::check::{check_gradients, CheckConfig};
/// use dendrite_graph::Graph;
/// let mut g = Graph::<f64>::new();
/// let x = g.input("x", [2, 2])?;
/// let w = g.parameter("w", ndarray::arr2(&[[1.0, -1.0], [0.5, 2.0]]).into_dyn())?;
/// let h = g.matmul(x, w)?;
/// let y = g.tanh(h)?;                         // a non-scalar output: contracted with a cotangent
/// let xv = ndarray::arr2(&[[0.3, 0.1], [-0.4, 0.2]]).into_dyn();
/// let report = check_gradients(&mut g, y, &[x, w], &[("x", xv.view())], &CheckConfig::default())?;
/// assert!(report.passed(), "{report}");
/// # Ok::<(), dendrite_autodiff::AutodiffError>(())
/// ```
pub fn check_gradients(
    graph: &mut Graph<f64>,
    output: NodeId,
    wrt: &[NodeId],
    feeds: &[(&str, ArrayViewD<'_, f64>)],
    config: &CheckConfig,
) -> Result<GradCheckReport> {
    config.validate()?;
    let mut harness = Harness::new(graph, wrt, feeds)?;
    let result = harness.check(graph, output, wrt, config);
    let restored = harness.restore(graph);
    let report = result?;
    restored?;
    Ok(report)
}

/// [`check_gradients`], turning a failed check into an error.
///
/// # Errors
/// [`AutodiffError::CheckFailed`](crate::AutodiffError::CheckFailed) with the report when a
/// comparison is out of tolerance, and every error of [`check_gradients`].
///
/// ```
/// use dendrite_autodiff::check::{assert_gradients, CheckConfig};
/// use dendrite_graph::Graph;
/// let mut g = Graph::<f64>::new();
/// let x = g.input("x", [3])?;
/// let sq = g.square(x)?;
/// let y = g.sum_all(sq)?;
/// let xv = ndarray::arr1(&[1.0, 2.0, 3.0]).into_dyn();
/// assert_gradients(&mut g, y, &[x], &[("x", xv.view())], &CheckConfig::default())?;
/// # Ok::<(), dendrite_autodiff::AutodiffError>(())
/// ```
pub fn assert_gradients(
    graph: &mut Graph<f64>,
    output: NodeId,
    wrt: &[NodeId],
    feeds: &[(&str, ArrayViewD<'_, f64>)],
    config: &CheckConfig,
) -> Result<()> {
    check_gradients(graph, output, wrt, feeds, config)?
        .into_result()
        .map(|_| ())
}

/// Second-order check: Hessian-vector products against central differences of the gradient.
///
/// Builds `s(x) = ⟨∇f(x), v⟩` for random constant vectors `v` (one per `wrt` node, shaped like
/// its value) and checks `∇s = H v` with [`check_gradients`]: in elementwise mode element `i`
/// compares `(H v)_i` with `(s(x + ε e_i) - s(x - ε e_i)) / 2ε`. A non-scalar `output` is first
/// contracted with a random constant cotangent, `f = ⟨c, output⟩`.
///
/// # Errors
/// As [`check_gradients`].
///
/// ```
/// use dendrite_autodiff::check::{check_second_order, CheckConfig};
/// use dendrite_graph::Graph;
/// let mut g = Graph::<f64>::new();
/// let x = g.input("x", [3])?;
/// let y = g.tanh(x)?;
/// let xv = ndarray::arr1(&[0.5, -1.0, 0.25]).into_dyn();
/// let report = check_second_order(&mut g, y, &[x], &[("x", xv.view())], &CheckConfig::default())?;
/// assert!(report.passed(), "{report}");
/// # Ok::<(), dendrite_autodiff::AutodiffError>(())
/// ```
pub fn check_second_order(
    graph: &mut Graph<f64>,
    output: NodeId,
    wrt: &[NodeId],
    feeds: &[(&str, ArrayViewD<'_, f64>)],
    config: &CheckConfig,
) -> Result<GradCheckReport> {
    config.validate()?;
    let harness = Harness::new(graph, wrt, feeds)?;
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed ^ 0x9e37_79b9_7f4a_7c15);
    let scalar = if graph.shape(output)?.size() == Some(1) {
        output
    } else {
        let mut plan = compile(graph, &[output])?;
        let value = plan.run(graph, &harness.feed_list(&[]))?.get(0)?.to_owned();
        let c = graph.constant(random_like(&mut rng, value.shape()));
        let contracted = graph.mul(output, c)?;
        graph.sum_all(contracted)?
    };
    let gradients = grad(graph, scalar, wrt)?;
    let mut total: Option<NodeId> = None;
    for (k, &g_k) in gradients.iter().enumerate() {
        let v = graph.constant(random_like(&mut rng, harness.originals[k].shape()));
        let p = graph.mul(g_k, v)?;
        let s = graph.sum_all(p)?;
        total = Some(match total {
            Some(t) => graph.add(t, s)?,
            None => s,
        });
    }
    let s = match total {
        Some(t) => t,
        None => graph.scalar(0.0),
    };
    let mut report = check_gradients(graph, s, wrt, feeds, config)?;
    for cmp in [&mut report.worst, &mut report.located]
        .into_iter()
        .flatten()
    {
        cmp.contraction = cmp.contraction.second_order();
    }
    Ok(report)
}

/// Uniform values in [-1, 1] of the given shape.
fn random_like(rng: &mut ChaCha8Rng, shape: &[usize]) -> ArrayD<f64> {
    ArrayD::from_shape_simple_fn(IxDyn(shape), || rng.gen_range(-1.0..=1.0))
}

/// `base`, or `base_k` for the first free `k`.
fn free_name(g: &Graph<f64>, base: &str) -> String {
    if g.node_by_name(base).is_none() {
        return base.to_owned();
    }
    (1..)
        .map(|k| format!("{base}_{k}"))
        .find(|n| g.node_by_name(n).is_none())
        .unwrap_or_else(|| base.to_owned())
}

fn set_flat(v: &mut ArrayViewMutD<'_, f64>, i: usize, value: f64) {
    if let Some(slot) = v.iter_mut().nth(i) {
        *slot = value;
    }
}

/// The row-major multi-index of flat position `i`.
fn multi_index(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut index = vec![0; shape.len()];
    for (slot, &n) in index.iter_mut().zip(shape).rev() {
        *slot = i % n.max(1);
        i /= n.max(1);
    }
    index
}
