//! Checking a function in a few lines, after JAX's `check_grads(f, args, order)`: a closure
//! builds the function on fresh inputs `arg0`, `arg1`, ..., the checker feeds them, checks
//! first order and, for `order` 2, second order.

use super::{check_gradients, check_second_order, random_like, CheckConfig, GradCheckReport};
use crate::error::{AutodiffError, Result};
use dendrite_graph::{Graph, NodeId};
use ndarray::{ArrayD, ArrayViewD};
use proptest::strategy::Strategy;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::cell::RefCell;
use std::fmt;

/// The outcome of [`check_fn`]: the first-order report and, for order 2, the second-order one.
///
/// ```
/// use dendrite_autodiff::check::check_fn;
/// let report = check_fn(|g, args| g.tanh(args[0]), &[&[3]], 2)?;
/// assert!(report.passed() && report.second.is_some());
/// # Ok::<(), dendrite_autodiff::AutodiffError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct FnCheckReport {
    /// Gradients against central differences.
    pub first: GradCheckReport,
    /// Hessian-vector products against central differences of the gradient (order 2).
    pub second: Option<GradCheckReport>,
}

impl FnCheckReport {
    /// Whether every comparison of every order was within tolerance.
    pub fn passed(&self) -> bool {
        self.first.passed() && self.second.as_ref().is_none_or(GradCheckReport::passed)
    }

    /// The report itself when it passed, else [`AutodiffError::CheckFailed`] with the report
    /// of the first order that failed.
    ///
    /// # Errors
    /// [`AutodiffError::CheckFailed`].
    pub fn into_result(self) -> Result<FnCheckReport> {
        if !self.first.passed() {
            return Err(AutodiffError::CheckFailed(Box::new(self.first)));
        }
        match self.second {
            Some(second) if !second.passed() => Err(AutodiffError::CheckFailed(Box::new(second))),
            _ => Ok(self),
        }
    }
}

impl fmt::Display for FnCheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "first order: {}", self.first)?;
        if let Some(second) = &self.second {
            write!(f, "; second order: {second}")?;
        }
        Ok(())
    }
}

/// Builds `f` with `build` on fresh inputs of the given shapes (named `arg0`, `arg1`, ...),
/// feeds them uniform random values in `[-1, 1]` (seeded: the same every run) and checks
/// first order and, when `order` is 2, second order, with [`CheckConfig::default`]. Failures
/// name the argument and the element.
///
/// # Errors
/// [`AutodiffError::InvalidCheckConfig`] for an `order` other than 1 or 2; whatever `build`
/// or the checker reports. A failed check is not an error: see [`FnCheckReport::passed`].
///
/// ```
/// use dendrite_autodiff::check::check_fn;
/// // f(x, w) = tanh(x · w), x: [2, 3], w: [3, 1]
/// let report = check_fn(|g, args| {
///     let h = g.matmul(args[0], args[1])?;
///     g.tanh(h)
/// }, &[&[2, 3], &[3, 1]], 2)?;
/// assert!(report.passed(), "{report}");
/// # Ok::<(), dendrite_autodiff::AutodiffError>(())
/// ```
pub fn check_fn<E>(
    build: impl Fn(&mut Graph<f64>, &[NodeId]) -> Result<NodeId, E>,
    shapes: &[&[usize]],
    order: usize,
) -> Result<FnCheckReport>
where
    AutodiffError: From<E>,
{
    let config = CheckConfig::default();
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed ^ 0x5eed_f00d);
    let args: Vec<ArrayD<f64>> = shapes.iter().map(|s| random_like(&mut rng, s)).collect();
    check_fn_at(build, &args, order, &config)
}

/// [`check_fn`] at given argument values and with given settings (for a function whose domain
/// is not `[-1, 1]`, say).
///
/// # Errors
/// As [`check_fn`], and [`AutodiffError::InvalidCheckConfig`] for bad settings.
///
/// ```
/// use dendrite_autodiff::check::{check_fn_at, CheckConfig};
/// let x = ndarray::arr1(&[0.5, 2.0, 7.0]).into_dyn();
/// let report = check_fn_at(|g, args| g.log(args[0]), &[x], 2, &CheckConfig::default())?;
/// assert!(report.passed(), "{report}");
/// # Ok::<(), dendrite_autodiff::AutodiffError>(())
/// ```
pub fn check_fn_at<E>(
    build: impl Fn(&mut Graph<f64>, &[NodeId]) -> Result<NodeId, E>,
    args: &[ArrayD<f64>],
    order: usize,
    config: &CheckConfig,
) -> Result<FnCheckReport>
where
    AutodiffError: From<E>,
{
    if !(1..=2).contains(&order) {
        return Err(AutodiffError::InvalidCheckConfig {
            setting: "order",
            value: order as f64,
            reason: "1 (gradients) or 2 (gradients and Hessian-vector products)",
        });
    }
    let names: Vec<String> = (0..args.len()).map(|k| format!("arg{k}")).collect();
    let feeds: Vec<(&str, ArrayViewD<'_, f64>)> = names
        .iter()
        .zip(args)
        .map(|(n, v)| (n.as_str(), v.view()))
        .collect();
    let build_on = |g: &mut Graph<f64>| -> Result<(NodeId, Vec<NodeId>)> {
        let mut inputs = Vec::with_capacity(args.len());
        for (name, value) in names.iter().zip(args) {
            inputs.push(g.input(name, value.shape())?);
        }
        Ok((build(g, &inputs)?, inputs))
    };
    let mut g = Graph::new();
    let (y, inputs) = build_on(&mut g)?;
    let first = check_gradients(&mut g, y, &inputs, &feeds, config)?;
    let second = if order == 2 {
        // A fresh graph, so the first check's nodes do not slow the second.
        let mut g = Graph::new();
        let (y, inputs) = build_on(&mut g)?;
        Some(check_second_order(&mut g, y, &inputs, &feeds, config)?)
    } else {
        None
    };
    Ok(FnCheckReport { first, second })
}

/// [`check_fn_at`] over `cases` argument lists drawn from a proptest `strategy` (seeded from
/// `config.seed`, so the same every run); on a failure, proptest shrinks the arguments and
/// the report of the smallest failing case is returned as [`AutodiffError::CheckFailed`].
///
/// # Errors
/// [`AutodiffError::CheckFailed`] for the smallest failing case; any error of
/// [`check_fn_at`].
///
/// ```
/// use dendrite_autodiff::check::{check_fn_strategy, CheckConfig};
/// use dendrite_autodiff::strategies::values_in;
/// use proptest::strategy::Strategy;
/// let args = values_in(vec![4], -3.0..3.0).prop_map(|x| vec![x]);
/// check_fn_strategy(|g, a| g.sin(a[0]), args, 2, &CheckConfig::default(), 8)?;
/// # Ok::<(), dendrite_autodiff::AutodiffError>(())
/// ```
pub fn check_fn_strategy<E, S>(
    build: impl Fn(&mut Graph<f64>, &[NodeId]) -> Result<NodeId, E>,
    strategy: S,
    order: usize,
    config: &CheckConfig,
    cases: u32,
) -> Result<()>
where
    AutodiffError: From<E>,
    S: Strategy<Value = Vec<ArrayD<f64>>>,
{
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&config.seed.to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed);
    let mut runner = TestRunner::new_with_rng(Config::with_cases(cases), rng);
    // The last error seen: during shrinking, that of the smallest failing case so far.
    let last_error: RefCell<Option<AutodiffError>> = RefCell::new(None);
    let outcome = runner.run(&strategy, |args| {
        match check_fn_at(&build, &args, order, config).and_then(FnCheckReport::into_result) {
            Ok(_) => Ok(()),
            Err(e) => {
                let message = e.to_string();
                *last_error.borrow_mut() = Some(e);
                Err(TestCaseError::fail(message))
            }
        }
    });
    match outcome {
        Ok(()) => Ok(()),
        Err(TestError::Fail(..)) => match last_error.into_inner() {
            Some(e) => Err(e),
            None => Ok(()),
        },
        Err(TestError::Abort(_)) => Err(AutodiffError::InvalidCheckConfig {
            setting: "strategy",
            value: f64::from(cases),
            reason: "proptest gave up: the strategy rejected too many cases",
        }),
    }
}
