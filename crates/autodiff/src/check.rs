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

mod report;

pub use report::{CheckConfig, CheckMode, Comparison, GradCheckReport, Location};

use crate::error::{AutodiffError, Result};
use crate::reverse::{grad, vjp};
use dendrite_graph::{compile, Graph, GraphError, NodeId, Op, Plan, Shape};
use ndarray::{ArrayD, ArrayViewD, ArrayViewMutD, IxDyn, Zip};
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
/// [`AutodiffError::InvalidCheckConfig`] for a setting out of range (see
/// [`CheckConfig::validate`]), [`AutodiffError::NotPerturbable`] for a `wrt` node that is
/// neither an input nor a parameter, [`GraphError::MissingFeed`] for a `wrt` input without a feed, and any error from
/// deriving or running the graph. A failed check is *not* an error here: see
/// [`GradCheckReport::into_result`] and [`assert_gradients`].
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
/// [`AutodiffError::CheckFailed`] with the report when a comparison is out of tolerance, and
/// every error of [`check_gradients`].
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
    check_gradients(graph, s, wrt, feeds, config)
}

/// Uniform values in [-1, 1] of the given shape.
fn random_like(rng: &mut ChaCha8Rng, shape: &[usize]) -> ArrayD<f64> {
    ArrayD::from_shape_simple_fn(IxDyn(shape), || rng.gen_range(-1.0..=1.0))
}

/// Where a `wrt` node's value lives while it is perturbed.
#[derive(Debug, Clone, Copy)]
enum Slot {
    /// A copy of the feed at this position of `Harness::owned`.
    Feed(usize),
    /// A parameter, perturbed in the graph.
    Param(NodeId),
}

/// The function under test: feeds (with private copies of the perturbed ones), where each
/// `wrt` value lives, and the original values to restore.
struct Harness<'a, 'f> {
    feeds: &'a [(&'a str, ArrayViewD<'f, f64>)],
    /// (position in `feeds`, working copy).
    owned: Vec<(usize, ArrayD<f64>)>,
    slots: Vec<Slot>,
    originals: Vec<ArrayD<f64>>,
    names: Vec<String>,
}

impl<'a, 'f> Harness<'a, 'f> {
    fn new(
        g: &Graph<f64>,
        wrt: &[NodeId],
        feeds: &'a [(&'a str, ArrayViewD<'f, f64>)],
    ) -> Result<Self> {
        let mut h = Harness {
            feeds,
            owned: Vec::new(),
            slots: Vec::with_capacity(wrt.len()),
            originals: Vec::with_capacity(wrt.len()),
            names: Vec::with_capacity(wrt.len()),
        };
        for &w in wrt {
            let node = g.node(w)?;
            let name = node.name().to_owned();
            let (slot, value) = match node.op() {
                Op::Parameter => (
                    Slot::Param(w),
                    g.value(w)?.as_standard_layout().into_owned(),
                ),
                Op::Input => {
                    let Some(pos) = feeds.iter().position(|(n, _)| *n == name) else {
                        return Err(GraphError::MissingFeed {
                            input: name,
                            expected: node.shape().clone(),
                        }
                        .into());
                    };
                    let k = match h.owned.iter().position(|(p, _)| *p == pos) {
                        Some(k) => k,
                        None => {
                            let copy = feeds[pos].1.as_standard_layout().into_owned();
                            h.owned.push((pos, copy));
                            h.owned.len() - 1
                        }
                    };
                    (Slot::Feed(k), h.owned[k].1.clone())
                }
                op => {
                    return Err(AutodiffError::NotPerturbable {
                        node: name,
                        op: op.name(),
                    })
                }
            };
            h.slots.push(slot);
            h.originals.push(value);
            h.names.push(name);
        }
        Ok(h)
    }

    /// The feeds with perturbed copies substituted, then `extra`.
    fn feed_list<'s>(
        &'s self,
        extra: &[(&'s str, ArrayViewD<'s, f64>)],
    ) -> Vec<(&'s str, ArrayViewD<'s, f64>)> {
        let mut list: Vec<(&str, ArrayViewD<'_, f64>)> = self
            .feeds
            .iter()
            .enumerate()
            .map(
                |(i, (name, value))| match self.owned.iter().find(|(p, _)| *p == i) {
                    Some((_, copy)) => (*name, copy.view()),
                    None => (*name, value.view()),
                },
            )
            .collect();
        list.extend(extra.iter().map(|(n, v)| (*n, v.clone())));
        list
    }

    /// Runs `edit` on the live value of `wrt` node `k`.
    fn edit<R>(
        &mut self,
        g: &mut Graph<f64>,
        k: usize,
        edit: impl FnOnce(ArrayViewMutD<'_, f64>) -> R,
    ) -> Result<R> {
        Ok(match self.slots[k] {
            Slot::Feed(o) => edit(self.owned[o].1.view_mut()),
            Slot::Param(id) => edit(g.parameter_mut(id)?),
        })
    }

    fn restore(&mut self, g: &mut Graph<f64>) -> Result<()> {
        for (slot, original) in self.slots.iter().zip(&self.originals) {
            match *slot {
                Slot::Feed(o) => self.owned[o].1.assign(original),
                Slot::Param(id) => g.parameter_mut(id)?.assign(original),
            }
        }
        Ok(())
    }

    /// `⟨c, f(x)⟩` at the current (perturbed) values.
    fn contract(&self, g: &Graph<f64>, plan: &mut Plan<f64>, c: &ArrayD<f64>) -> Result<f64> {
        let out = plan.run(g, &self.feed_list(&[]))?;
        let y = out.get(0)?;
        if y.shape() != c.shape() {
            return Err(GraphError::ValueShape {
                node: "check/cotangent".to_owned(),
                expected: Shape::fixed(y.shape()),
                actual: Shape::fixed(c.shape()),
            }
            .into());
        }
        Ok(y.iter().zip(c.iter()).map(|(a, b)| a * b).sum())
    }

    fn check(
        &mut self,
        g: &mut Graph<f64>,
        output: NodeId,
        wrt: &[NodeId],
        config: &CheckConfig,
    ) -> Result<GradCheckReport> {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let mut f_plan = compile(g, &[output])?;
        let out_shape: Vec<usize> = f_plan
            .run(g, &self.feed_list(&[]))?
            .get(0)?
            .shape()
            .to_vec();
        let declared = g.shape(output)?.clone();
        let ct_name = free_name(g, "check/cotangent");
        let ct = g.input(&ct_name, declared.clone())?;
        let grads = vjp(g, output, wrt, ct)?;
        let mut g_plan = compile(g, &grads)?;
        let total: usize = self.originals.iter().map(|o| o.len()).sum();
        let mode = match config.mode {
            CheckMode::Auto if total <= config.elementwise_limit => CheckMode::Elementwise,
            CheckMode::Auto => CheckMode::Directional {
                trials: config.auto_trials,
            },
            mode => mode,
        };
        let mut report = GradCheckReport {
            mode,
            eps: config.eps,
            rtol: config.rtol,
            atol: config.atol,
            checked: 0,
            failures: 0,
            worst: None,
        };
        let mut worst_badness = f64::NEG_INFINITY;
        let mut record = |report: &mut GradCheckReport, cmp: Comparison| {
            let b = config.badness(cmp.analytic, cmp.numeric);
            report.checked += 1;
            if b > 1.0 {
                report.failures += 1;
            }
            if b > worst_badness {
                worst_badness = b;
                report.worst = Some(cmp);
            }
        };
        let eps = config.eps;
        match mode {
            CheckMode::Elementwise | CheckMode::Auto => {
                let c = if declared.size() == Some(1) {
                    ArrayD::ones(IxDyn(&out_shape))
                } else {
                    random_like(&mut rng, &out_shape)
                };
                let analytic = self.analytic(g, &mut g_plan, &ct_name, &c)?;
                for (k, grad_k) in analytic.iter().enumerate() {
                    let original = self.originals[k].clone();
                    let shape = original.shape().to_vec();
                    for (i, (&x0, &a)) in original.iter().zip(grad_k.iter()).enumerate() {
                        self.edit(g, k, |mut v| set_flat(&mut v, i, x0 + eps))?;
                        let plus = self.contract(g, &mut f_plan, &c)?;
                        self.edit(g, k, |mut v| set_flat(&mut v, i, x0 - eps))?;
                        let minus = self.contract(g, &mut f_plan, &c)?;
                        self.edit(g, k, |mut v| set_flat(&mut v, i, x0))?;
                        let location = Location::Element {
                            node: self.names[k].clone(),
                            index: multi_index(i, &shape),
                        };
                        record(
                            &mut report,
                            Comparison::new(location, a, (plus - minus) / (2.0 * eps)),
                        );
                    }
                }
            }
            CheckMode::Directional { trials } => {
                for trial in 0..trials {
                    let c = random_like(&mut rng, &out_shape);
                    let tangents: Vec<ArrayD<f64>> = self
                        .originals
                        .iter()
                        .map(|o| random_like(&mut rng, o.shape()))
                        .collect();
                    let analytic_grads = self.analytic(g, &mut g_plan, &ct_name, &c)?;
                    let analytic: f64 = analytic_grads
                        .iter()
                        .zip(&tangents)
                        .map(|(a, t)| (a * t).sum())
                        .sum();
                    let mut side = |h: &mut Self, g: &mut Graph<f64>, step: f64| -> Result<f64> {
                        for (k, t) in tangents.iter().enumerate() {
                            h.edit(g, k, |mut v| {
                                Zip::from(&mut v).and(t).for_each(|x, &t| *x += step * t)
                            })?;
                        }
                        let value = h.contract(g, &mut f_plan, &c)?;
                        h.restore(g)?;
                        Ok(value)
                    };
                    let plus = side(self, g, eps)?;
                    let minus = side(self, g, -eps)?;
                    record(
                        &mut report,
                        Comparison::new(
                            Location::Direction { trial },
                            analytic,
                            (plus - minus) / (2.0 * eps),
                        ),
                    );
                }
            }
        }
        Ok(report)
    }

    /// The VJP with cotangent `c`, at the unperturbed values.
    fn analytic(
        &self,
        g: &Graph<f64>,
        plan: &mut Plan<f64>,
        ct_name: &str,
        c: &ArrayD<f64>,
    ) -> Result<Vec<ArrayD<f64>>> {
        let feeds = self.feed_list(&[(ct_name, c.view())]);
        Ok(plan.run(g, &feeds)?.to_vec()?)
    }
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
