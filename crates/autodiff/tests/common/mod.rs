//! Helpers shared by the gradient-check test files, and the table of primitive checks.
#![allow(dead_code)]

pub mod conv;
pub mod custom;
pub mod elementwise;
pub mod structural;

use dendrite_autodiff::check::{check_gradients, check_second_order, CheckConfig};
use dendrite_autodiff::grad;
use dendrite_graph::{compile, Graph, GraphError, NodeId, Op};
use ndarray::ArrayD;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// A test failure: any error, or a failed expectation, as text.
#[derive(Debug)]
pub struct Fail(pub String);

impl<E: std::error::Error> From<E> for Fail {
    fn from(e: E) -> Self {
        Fail(e.to_string())
    }
}

/// Result of a check function.
pub type R = Result<(), Fail>;

/// `Err` with `msg` unless `cond`.
pub fn ensure(cond: bool, msg: impl FnOnce() -> String) -> R {
    if cond {
        Ok(())
    } else {
        Err(Fail(msg()))
    }
}

/// Turns a check result into a proptest case result.
pub fn prop(r: R) -> Result<(), TestCaseError> {
    r.map_err(|f| TestCaseError::fail(f.0))
}

/// Input values of one case, and integer parameters (axes, flags, exponents...).
#[derive(Debug, Clone)]
pub struct Case {
    /// Values of the inputs `x0`, `x1`, ...
    pub vals: Vec<ArrayD<f64>>,
    /// Parameters of the op.
    pub params: Vec<usize>,
}

impl Case {
    pub fn new(vals: Vec<ArrayD<f64>>) -> Self {
        Case {
            vals,
            params: Vec::new(),
        }
    }
    pub fn with(vals: Vec<ArrayD<f64>>, params: Vec<usize>) -> Self {
        Case { vals, params }
    }
}

/// Strategy of the cases for one primitive.
pub type Cases = BoxedStrategy<Case>;

/// The check of one case.
pub type Check = Box<dyn Fn(&Case) -> R>;

/// How a primitive is checked.
pub enum Entry {
    /// First order (and second order where twice differentiable) against finite differences.
    Differentiable(fn() -> Cases, Check),
    /// The gradient through it is a documented zero (checked, never a panic).
    NonDifferentiable(fn() -> Cases, Check),
}

/// A differentiable entry.
pub fn d(cases: fn() -> Cases, check: impl Fn(&Case) -> R + 'static) -> Entry {
    Entry::Differentiable(cases, Box::new(check))
}

/// A non-differentiable entry.
pub fn n(cases: fn() -> Cases, check: impl Fn(&Case) -> R + 'static) -> Entry {
    Entry::NonDifferentiable(cases, Box::new(check))
}

/// Every primitive of `Op::primitive_names()`, with its check.
pub fn table() -> Vec<(&'static str, Entry)> {
    let mut t = elementwise::entries();
    t.extend(structural::entries());
    t.extend(conv::entries());
    t
}

/// Runs the proptest of the primitive `name` with `cases` cases.
pub fn run_primitive(name: &str, cases: u32) {
    let table = table();
    let Some((_, entry)) = table.iter().find(|(n, _)| *n == name) else {
        panic!("no gradient check for primitive `{name}`");
    };
    let (strategy, check) = match entry {
        Entry::Differentiable(s, c) | Entry::NonDifferentiable(s, c) => (s, c),
    };
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    if let Err(e) = runner.run(&strategy(), |case| prop(check(&case))) {
        panic!("gradient check of `{name}` failed: {e}");
    }
}

/// The default checker settings of these tests.
pub fn cfg() -> CheckConfig {
    CheckConfig::default()
}

/// A graph with inputs `x0`, `x1`, ... shaped like `vals`.
pub fn graph_of(vals: &[ArrayD<f64>]) -> Result<(Graph<f64>, Vec<NodeId>), Fail> {
    let mut g = Graph::new();
    let mut xs = Vec::new();
    for (i, v) in vals.iter().enumerate() {
        xs.push(g.input(&format!("x{i}"), v.shape())?);
    }
    Ok((g, xs))
}

/// The feeds `x0`, `x1`, ... for `vals`.
pub fn feeds<'a>(
    names: &'a [String],
    vals: &'a [ArrayD<f64>],
) -> Vec<(&'a str, ndarray::ArrayViewD<'a, f64>)> {
    names
        .iter()
        .zip(vals)
        .map(|(n, v)| (n.as_str(), v.view()))
        .collect()
}

pub fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("x{i}")).collect()
}

/// Builds `f` over inputs shaped like `vals` and checks its first derivatives with respect to
/// the inputs numbered in `wrt`.
pub fn first(
    vals: &[ArrayD<f64>],
    wrt: &[usize],
    f: impl Fn(&mut Graph<f64>, &[NodeId]) -> Result<NodeId, GraphError>,
) -> R {
    first_with(vals, wrt, &cfg(), f)
}

/// [`first`] with explicit settings.
pub fn first_with(
    vals: &[ArrayD<f64>],
    wrt: &[usize],
    config: &CheckConfig,
    f: impl Fn(&mut Graph<f64>, &[NodeId]) -> Result<NodeId, GraphError>,
) -> R {
    let (mut g, xs) = graph_of(vals)?;
    let y = f(&mut g, &xs)?;
    let w: Vec<NodeId> = wrt.iter().map(|&i| xs[i]).collect();
    let n = names(vals.len());
    let report = check_gradients(&mut g, y, &w, &feeds(&n, vals), config)?;
    ensure(report.passed(), || format!("first order: {report}"))
}

/// Builds `f` and checks Hessian-vector products against differences of the gradient.
pub fn second(
    vals: &[ArrayD<f64>],
    wrt: &[usize],
    f: impl Fn(&mut Graph<f64>, &[NodeId]) -> Result<NodeId, GraphError>,
) -> R {
    let (mut g, xs) = graph_of(vals)?;
    let y = f(&mut g, &xs)?;
    let w: Vec<NodeId> = wrt.iter().map(|&i| xs[i]).collect();
    let n = names(vals.len());
    let report = check_second_order(&mut g, y, &w, &feeds(&n, vals), &cfg())?;
    ensure(report.passed(), || format!("second order: {report}"))
}

/// `f(x)³`: makes a linear op's Hessian non-zero, so the second-order check differentiates
/// through the op's derivative rule.
pub fn cubed(
    f: impl Fn(&mut Graph<f64>, &[NodeId]) -> Result<NodeId, GraphError>,
) -> impl Fn(&mut Graph<f64>, &[NodeId]) -> Result<NodeId, GraphError> {
    move |g, xs| {
        let y = f(g, xs)?;
        g.pow(y, 3.0)
    }
}

/// The analytic gradient of `sum(c · f(x))` (fixed `c`) with respect to input `k`, evaluated.
pub fn gradient_of(
    vals: &[ArrayD<f64>],
    k: usize,
    f: impl Fn(&mut Graph<f64>, &[NodeId]) -> Result<NodeId, GraphError>,
) -> Result<ArrayD<f64>, Fail> {
    let (mut g, xs) = graph_of(vals)?;
    let y = f(&mut g, &xs)?;
    let loss = g.sum_all(y)?;
    let dx = grad(&mut g, loss, &[xs[k]])?;
    let n = names(vals.len());
    let mut plan = compile(&g, &dx)?;
    let out = plan.run(&g, &feeds(&n, vals))?;
    Ok(out.get(0)?.to_owned())
}

/// Names in the table, in order.
pub fn table_names() -> Vec<&'static str> {
    table().into_iter().map(|(n, _)| n).collect()
}

/// Whether `op`'s name is listed by `Op::primitive_names()`.
pub fn is_primitive(op: &Op<f64>) -> bool {
    Op::<f64>::primitive_names().contains(&op.name())
}

/// Strategy helper: a case from a strategy of values.
pub fn cases<S: Strategy<Value = Vec<ArrayD<f64>>> + 'static>(s: S) -> Cases {
    s.prop_map(Case::new).boxed()
}
