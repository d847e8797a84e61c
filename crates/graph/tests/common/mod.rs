//! Helpers shared by the graph crate's integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dendrite_graph::{compile, Element, Graph, NodeId, Result, Shape};
use ndarray::{ArrayD, ArrayViewD, IxDyn};

/// A tensor of `f64` from its shape and row-major data.
pub fn t(shape: &[usize], data: &[f64]) -> ArrayD<f64> {
    ArrayD::from_shape_vec(IxDyn(shape), data.to_vec()).expect("data fits the shape")
}

/// A rank-0 tensor.
pub fn s(value: f64) -> ArrayD<f64> {
    ndarray::arr0(value).into_dyn()
}

/// `0, 1, 2, ...` in the given shape.
pub fn arange(shape: &[usize]) -> ArrayD<f64> {
    let n: usize = shape.iter().product();
    t(shape, &(0..n).map(|i| i as f64).collect::<Vec<_>>())
}

/// Compiles `fetches`, runs once with `feeds` and copies the results out.
pub fn run_all<F: Element>(
    g: &Graph<F>,
    fetches: &[NodeId],
    feeds: &[(&str, &ArrayD<F>)],
) -> Result<Vec<ArrayD<F>>> {
    let mut plan = compile(g, fetches)?;
    let feeds: Vec<(&str, ArrayViewD<'_, F>)> = feeds.iter().map(|(n, v)| (*n, v.view())).collect();
    let out = plan.run(g, &feeds)?;
    out.to_vec()
}

/// Like [`run_all`] for one fetch, panicking on error.
pub fn run1<F: Element>(g: &Graph<F>, y: NodeId, feeds: &[(&str, &ArrayD<F>)]) -> ArrayD<F> {
    run_all(g, &[y], feeds).expect("run succeeds").remove(0)
}

/// Builds `build(x)` on an input shaped like `x`, runs it, returns the output.
pub fn unary(
    x: &ArrayD<f64>,
    build: impl FnOnce(&mut Graph<f64>, NodeId) -> Result<NodeId>,
) -> ArrayD<f64> {
    let mut g = Graph::<f64>::new();
    let xi = g.input("x", Shape::fixed(x.shape())).expect("input");
    let y = build(&mut g, xi).expect("builds");
    run1(&g, y, &[("x", x)])
}

/// Builds `build(a, b)` on inputs shaped like `a` and `b`, runs it, returns the output.
pub fn binary(
    a: &ArrayD<f64>,
    b: &ArrayD<f64>,
    build: impl FnOnce(&mut Graph<f64>, NodeId, NodeId) -> Result<NodeId>,
) -> ArrayD<f64> {
    let mut g = Graph::<f64>::new();
    let ai = g.input("a", Shape::fixed(a.shape())).expect("input a");
    let bi = g.input("b", Shape::fixed(b.shape())).expect("input b");
    let y = build(&mut g, ai, bi).expect("builds");
    run1(&g, y, &[("a", a), ("b", b)])
}

/// Exact equality of shape and values, NaN equal to NaN (bitwise-insensitive to NaN payloads).
pub fn assert_same(actual: &ArrayD<f64>, expected: &ArrayD<f64>) {
    assert_eq!(
        actual.shape(),
        expected.shape(),
        "shapes differ: {actual} vs {expected}"
    );
    for (i, (a, e)) in actual.iter().zip(expected.iter()).enumerate() {
        let same = (a.is_nan() && e.is_nan()) || a == e;
        assert!(
            same,
            "element {i}: got {a}, expected {e}\nactual: {actual}\nexpected: {expected}"
        );
    }
}

/// Equal shapes and values within `tol` (absolute, or relative for large values); NaN matches NaN,
/// infinities must match exactly.
pub fn assert_close(actual: &ArrayD<f64>, expected: &ArrayD<f64>, tol: f64) {
    assert_eq!(
        actual.shape(),
        expected.shape(),
        "shapes differ: {actual} vs {expected}"
    );
    for (i, (&a, &e)) in actual.iter().zip(expected.iter()).enumerate() {
        let ok = if e.is_nan() || a.is_nan() {
            a.is_nan() && e.is_nan()
        } else if e.is_infinite() || a.is_infinite() {
            a == e
        } else {
            (a - e).abs() <= tol * e.abs().max(1.0)
        };
        assert!(
            ok,
            "element {i}: got {a}, expected {e} (tol {tol})\nactual: {actual}\nexpected: {expected}"
        );
    }
}

/// Naive reference matrix product of two 2-D tensors.
pub fn naive_matmul(a: &ArrayD<f64>, b: &ArrayD<f64>) -> ArrayD<f64> {
    let (m, k) = (a.shape()[0], a.shape()[1]);
    let n = b.shape()[1];
    assert_eq!(b.shape()[0], k);
    let mut c = ArrayD::<f64>::zeros(IxDyn(&[m, n]));
    for i in 0..m {
        for j in 0..n {
            let mut acc = 0.0;
            for p in 0..k {
                acc += a[[i, p]] * b[[p, j]];
            }
            c[[i, j]] = acc;
        }
    }
    c
}

/// Feeds `vals` as inputs `x0, x1, ..` (shaped like them) to the graph `f` builds on them,
/// runs its fetches once and returns their values.
pub fn run(
    vals: &[&ArrayD<f64>],
    f: impl Fn(&mut Graph<f64>, &[NodeId]) -> Result<Vec<NodeId>>,
) -> Vec<ArrayD<f64>> {
    let mut g = Graph::<f64>::new();
    let names: Vec<String> = (0..vals.len()).map(|i| format!("x{i}")).collect();
    let xs: Vec<NodeId> = names
        .iter()
        .zip(vals)
        .map(|(name, v)| g.input(name, v.shape()).unwrap())
        .collect();
    let fetches = f(&mut g, &xs).unwrap();
    let feeds: Vec<(&str, &ArrayD<f64>)> = names
        .iter()
        .map(|n| n.as_str())
        .zip(vals.iter().copied())
        .collect();
    run_all(&g, &fetches, &feeds).unwrap()
}
