//! Every code listing of the book in `docs/`, compiled and run by `cargo test --test book`.
//!
//! The book pulls the regions between `// ANCHOR: name` and `// ANCHOR_END: name` out of this
//! file with `{{#include ../../tests/book.rs:name}}`, so what a reader sees is what these tests
//! run. Keep each listing readable on its own: its `use` lines go inside it.
// Errors carry structured fields and are cold (the workspace relaxes result_large_err too).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::result_large_err
)]

use std::error::Error;

type TestResult = Result<(), Box<dyn Error>>;

// ---------------------------------------------------------------------------------------------
// Chapter 1: computational graphs
// ---------------------------------------------------------------------------------------------

// ANCHOR: first_graph
#[test]
fn first_graph() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite_graph::{Graph, Op};
    use ndarray::array;

    let mut g = Graph::<f32>::new();
    // A batch of rows with 3 features; the batch size stays open (`None`, Keras' `None`).
    let x = g.input("x", [None, Some(3)])?;
    let w = g.parameter(
        "w",
        array![[0.5_f32, -1.0], [0.25, 0.0], [0.0, 2.0]].into_dyn(),
    )?;
    let b = g.parameter("b", array![0.1_f32, -0.1].into_dyn())?;
    let xw = g.matmul(x, w)?; // [?, 3] · [3, 2] -> [?, 2]
    let z = g.add(xw, b)?; //    [?, 2] + [2]    -> [?, 2]: b is broadcast over the batch
    let y = g.relu(z)?;

    // Every node has a name, an op and a declared shape, inferred when it was added.
    assert_eq!(g.name(xw)?, "matmul");
    assert_eq!(g.shape(xw)?.to_string(), "[?, 2]");
    assert_eq!(g.shape(y)?.to_string(), "[?, 2]");
    // Operands are kept in slot order.
    assert_eq!(g.operands(z)?.as_slice(), &[xw, b]);
    // relu is not a primitive: it was built from `gt` and `select`.
    assert_eq!(g.op(y)?, &Op::Select);
    // Handles are plain indices into an append-only graph: insertion order is topological.
    assert!(x.index() < xw.index() && xw.index() < y.index());
    Ok(())
}
// ANCHOR_END: first_graph

// ANCHOR: scopes
#[test]
fn scopes_name_nodes() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite_graph::Graph;
    use ndarray::Array2;

    let mut g = Graph::<f32>::new();
    let x = g.input("x", [None, Some(784)])?;
    let h = g.with_scope("dense_1", |g| -> Result<_, dendrite_graph::GraphError> {
        let w = g.parameter("kernel", Array2::<f32>::zeros((784, 32)).into_dyn())?;
        let xw = g.matmul(x, w)?;
        g.relu(xw)
    })?;
    assert_eq!(g.name(h)?, "dense_1/select");
    assert!(g.node_by_name("dense_1/kernel").is_some());
    assert!(g.node_by_name("dense_1/matmul").is_some());
    Ok(())
}
// ANCHOR_END: scopes

// ANCHOR: shape_errors
#[test]
fn shape_errors_when_building() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite_graph::{Graph, GraphError, Shape};

    let mut g = Graph::<f32>::new();
    let x = g.input("x", [None, Some(784)])?;
    let w = g.input("w", [32, 10])?;

    // A matrix product whose inner dimensions differ is refused when the node is added.
    let err = g.with_scope("dense_1", |g| g.matmul(x, w)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "matmul `dense_1/matmul`: inner dimensions differ: lhs [?, 784] vs rhs [32, 10]"
    );
    // The error is data, not just text: a program can look at the shapes.
    let GraphError::IncompatibleShapes { op, lhs, rhs, .. } = err else {
        return Err("expected IncompatibleShapes".into());
    };
    assert_eq!(
        (op, lhs, rhs),
        (
            "matmul",
            Shape::from([None, Some(784)]),
            Shape::from([32, 10])
        )
    );

    // NumPy broadcasting: align on the right; each pair equal or one of them 1.
    let a = g.input("a", [2, 3])?;
    let b = g.input("b", [4])?;
    let err = g.add(a, b).unwrap_err();
    assert_eq!(
        err.to_string(),
        "add `add`: shapes do not broadcast: lhs [2, 3] vs rhs [4]"
    );

    // Axes are checked too.
    let err = g.sum(a, &[2]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "sum `sum`: axis 2 is invalid for an operand of rank 2"
    );

    // A handle from another graph is an error, never a silently wrong node.
    let mut other = Graph::<f32>::new();
    assert!(matches!(other.exp(x), Err(GraphError::ForeignNode { .. })));
    Ok(())
}
// ANCHOR_END: shape_errors

// ANCHOR: dynamic_dims
#[test]
fn dynamic_dimensions() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite_graph::{broadcast_shapes, Dim, Shape};

    // A dynamic dimension (`?`) is taken on trust when a node is added...
    let batch = Shape::from([None, Some(10)]);
    let bias = Shape::from([10]);
    assert_eq!(
        broadcast_shapes(&batch, &bias),
        Some(Shape::from([None, Some(10)]))
    );
    // ...and against a fixed size it is assumed to be that size.
    let s = broadcast_shapes(&Shape::from([None, Some(1)]), &Shape::from([4, 10]));
    assert_eq!(s, Some(Shape::from([4, 10])));
    // A fixed conflict is certain, so it is an error right away.
    assert_eq!(broadcast_shapes(&Shape::from([3]), &Shape::from([4])), None);
    // At run time every dimension is known; a declared shape accepts matching concrete shapes.
    assert!(batch.accepts(&[32, 10]));
    assert!(!batch.accepts(&[32, 9]));
    assert_eq!(batch.dims()[0], Dim::Dynamic);
    Ok(())
}
// ANCHOR_END: dynamic_dims

// ANCHOR: run_errors
#[test]
fn shape_errors_when_running() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite_graph::{compile, Graph};
    use ndarray::Array2;

    let mut g = Graph::<f32>::new();
    let x = g.input("x", [None, Some(3)])?;
    let y = g.input("y", [None, Some(3)])?;
    let sum = g.add(x, y)?; // fine when built: both are [?, 3]
    let mut plan = compile(&g, &[sum])?;

    let two = Array2::<f32>::zeros((2, 3)).into_dyn();
    let four = Array2::<f32>::zeros((4, 3)).into_dyn();
    let one = Array2::<f32>::zeros((1, 3)).into_dyn();
    let wide = Array2::<f32>::zeros((2, 4)).into_dyn();

    // A feed is checked against the input's declared shape...
    let err = plan
        .run(&g, &[("x", wide.view()), ("y", two.view())])
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "feed for input `x` has shape [2, 4], expected [?, 3]"
    );
    // ...every input the fetches need must be fed...
    let err = plan.run(&g, &[("x", two.view())]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "missing feed for input `y` of shape [?, 3]"
    );
    // ...and the shape rules run again with the concrete sizes: what trust let through is caught.
    let err = plan
        .run(&g, &[("x", two.view()), ("y", four.view())])
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "add `add`: shapes do not broadcast: lhs [2, 3] vs rhs [4, 3]"
    );
    // A dimension declared dynamic may not be stretched from 1 (the reverse sweep relies on it).
    let err = plan
        .run(&g, &[("x", one.view()), ("y", four.view())])
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "add `add`: a dynamic dimension would be broadcast: lhs [1, 3] vs rhs [4, 3]"
    );
    Ok(())
}
// ANCHOR_END: run_errors

// ANCHOR: compile_run
#[test]
fn compile_and_run() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite_graph::{compile, Graph};
    use ndarray::array;

    let mut g = Graph::<f64>::new();
    let x = g.input("x", [None, Some(2)])?;
    let labels = g.input("labels", [None])?; // not needed by the fetch below
    let squares = g.square(x)?; // x · x
    let total = g.sum_all(squares)?;
    let _unused = g.exp(x)?; // never fetched
    let _also_unused = g.one_hot(labels, 10)?;

    // The plan holds only what `total` depends on: the product and the sum.
    let mut plan = compile(&g, &[total])?;
    assert_eq!(plan.step_count(), 2);

    // Inputs are fed by name; the dynamic batch size may change from run to run.
    let batch = array![[1.0, 2.0], [3.0, 4.0]].into_dyn();
    let out = plan.run(&g, &[("x", batch.view())])?;
    assert_eq!(out.scalar(0)?, 1.0 + 4.0 + 9.0 + 16.0);

    let bigger = array![[1.0, 1.0], [1.0, 1.0], [0.5, 0.5]].into_dyn();
    let out = plan.run(&g, &[("x", bigger.view())])?;
    assert_eq!(out.scalar(0)?, 4.5);
    Ok(())
}
// ANCHOR_END: compile_run

// ANCHOR: parameters
#[test]
fn parameters_live_in_the_graph() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite_graph::{compile, Graph};
    use ndarray::array;

    let mut g = Graph::<f32>::new();
    let x = g.input("x", [None, Some(2)])?;
    let w = g.parameter("w", array![[1.0_f32], [1.0]].into_dyn())?;
    let y = g.matmul(x, w)?;
    let mut plan = compile(&g, &[y])?;
    let batch = array![[1.0_f32, 2.0]].into_dyn();

    assert_eq!(plan.run(&g, &[("x", batch.view())])?.scalar(0)?, 3.0);
    // An optimizer updates parameters in place between runs; the plan reads the new value.
    g.parameter_mut(w)?[[1, 0]] = 10.0;
    assert_eq!(plan.run(&g, &[("x", batch.view())])?.scalar(0)?, 21.0);
    Ok(())
}
// ANCHOR_END: parameters

// ---------------------------------------------------------------------------------------------
// Chapter 2: the chain rule, reverse and forward mode
// ---------------------------------------------------------------------------------------------

// ANCHOR: chain_rule
#[test]
fn chain_rule() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite_autodiff::grad;
    use dendrite_graph::{compile, Graph, Shape};

    // f(x) = tanh(x²), so f'(x) = (1 - tanh²(x²)) · 2x.
    let mut g = Graph::<f64>::new();
    let x = g.input("x", Shape::scalar())?;
    let u = g.square(x)?;
    let f = g.tanh(u)?;
    let df = grad(&mut g, f, &[x])?;

    let mut plan = compile(&g, &[f, df[0]])?;
    let x0 = 0.7_f64;
    let xv = ndarray::arr0(x0).into_dyn();
    let out = plan.run(&g, &[("x", xv.view())])?;
    let expected = (1.0 - (x0 * x0).tanh().powi(2)) * 2.0 * x0;
    assert!((out.scalar(1)? - expected).abs() < 1e-15);
    Ok(())
}
// ANCHOR_END: chain_rule

// ANCHOR: vjp_jvp
#[test]
fn vjp_and_jvp() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite_autodiff::{jacobian, jvp, vjp};
    use dendrite_graph::{compile, Graph};
    use ndarray::{arr1, arr2};

    // y = tanh(A x) for a 2×3 matrix A: J = diag(1 - y²) A.
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [3])?;
    let a = g.constant(arr2(&[[1.0, 2.0, 0.0], [0.0, -1.0, 3.0]]).into_dyn());
    let column = g.reshape(x, [3, 1])?;
    let ax = g.matmul(a, column)?;
    let ax = g.reshape(ax, [2])?;
    let y = g.tanh(ax)?;

    // Reverse mode: a cotangent c (shaped like y) gives the row vector cᵀ J (shaped like x).
    let c = g.input("c", [2])?;
    let c_j = vjp(&mut g, y, &[x], c)?[0];
    // Forward mode: a tangent t (shaped like x) gives the column vector J t (shaped like y).
    let t = g.input("t", [3])?;
    let j_t = jvp(&mut g, y, &[x], &[t])?;
    // For small sizes the whole Jacobian can be built, one VJP per output element.
    let j = jacobian(&mut g, y, x)?;

    let mut plan = compile(&g, &[j, c_j, j_t])?;
    let xv = arr1(&[0.1, 0.2, 0.3]).into_dyn();
    let cv = arr1(&[1.0, 0.0]).into_dyn(); // picks row 0 of J
    let tv = arr1(&[0.0, 0.0, 1.0]).into_dyn(); // picks column 2 of J
    let out = plan.run(&g, &[("x", xv.view()), ("c", cv.view()), ("t", tv.view())])?;
    let jm = out.get(0)?;
    assert_eq!(jm.shape(), &[2, 3]);
    for k in 0..3 {
        assert_eq!(out.get(1)?[[k]], jm[[0, k]]);
    }
    for i in 0..2 {
        assert!((out.get(2)?[[i]] - jm[[i, 2]]).abs() < 1e-15);
    }
    Ok(())
}
// ANCHOR_END: vjp_jvp

// ANCHOR: cost
#[test]
fn reverse_mode_cost() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite_autodiff::{grad, jvp};
    use dendrite_graph::{compile, Graph};
    use ndarray::{Array1, ArrayD, IxDyn};

    // A scalar loss of n = 50 inputs: f(x) = Σ tanh(x)².
    let n = 50;
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [n])?;
    let t = g.tanh(x)?;
    let sq = g.square(t)?;
    let f = g.sum_all(sq)?;
    let forward_nodes = g.node_count();

    // Reverse mode: one sweep gives all n partial derivatives.
    let before = g.node_count();
    let gradient = grad(&mut g, f, &[x])?[0];
    let reverse_nodes = g.node_count() - before;

    // Forward mode: one JVP per input direction e_i, n sweeps for the same gradient.
    let before = g.node_count();
    let mut columns = Vec::new();
    for i in 0..n {
        let mut e = ArrayD::<f64>::zeros(IxDyn(&[n]));
        e[[i]] = 1.0;
        let e = g.constant(e);
        columns.push(jvp(&mut g, f, &[x], &[e])?);
    }
    let forward_mode_nodes = g.node_count() - before;

    let mut fetches = vec![gradient];
    fetches.extend(&columns);
    let mut plan = compile(&g, &fetches)?;
    let xv = Array1::linspace(-1.0, 1.0, n).into_dyn();
    let out = plan.run(&g, &[("x", xv.view())])?;
    for i in 0..n {
        assert!((out.get(0)?[[i]] - out.scalar(1 + i)?).abs() < 1e-12);
    }
    // The reverse sweep costs a small constant times the forward graph; forward mode, n times that.
    assert!(reverse_nodes < 4 * forward_nodes);
    assert!(forward_mode_nodes > n * reverse_nodes / 2);
    Ok(())
}
// ANCHOR_END: cost

// ---------------------------------------------------------------------------------------------
// Chapter 3: primitives and their derivatives
// ---------------------------------------------------------------------------------------------

/// Value and gradient of `build(x)` summed with weights `w` (so the cotangent is `w`), at `x`.
fn value_and_vjp(
    x: ndarray::ArrayD<f64>,
    cotangent: ndarray::ArrayD<f64>,
    build: impl FnOnce(
        &mut dendrite_graph::Graph<f64>,
        dendrite_graph::NodeId,
    ) -> Result<dendrite_graph::NodeId, dendrite_graph::GraphError>,
) -> Result<(ndarray::ArrayD<f64>, ndarray::ArrayD<f64>), Box<dyn Error>> {
    use dendrite_graph::{compile, Graph, Shape};
    let mut g = Graph::<f64>::new();
    let xi = g.input("x", Shape::fixed(x.shape()))?;
    let y = build(&mut g, xi)?;
    let c = g.input("c", g.shape(y)?.clone())?;
    let x_bar = dendrite_autodiff::vjp(&mut g, y, &[xi], c)?[0];
    let mut plan = compile(&g, &[y, x_bar])?;
    let out = plan.run(&g, &[("x", x.view()), ("c", cotangent.view())])?;
    Ok((out.get(0)?.to_owned(), out.get(1)?.to_owned()))
}

// ANCHOR: unary_example
#[test]
fn unary_derivatives() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite_autodiff::grad;
    use dendrite_graph::{compile, Graph};
    use ndarray::arr1;

    let mut g = Graph::<f64>::new();
    let x = g.input("x", [3])?;
    let fns = [g.sqrt(x)?, g.tanh(x)?, g.abs(x)?, g.pow(x, 3.0)?];
    let mut grads = Vec::new();
    for f in fns {
        let total = g.sum_all(f)?; // the gradient of Σ f(x_i) is f'(x) elementwise
        grads.push(grad(&mut g, total, &[x])?[0]);
    }
    let mut plan = compile(&g, &grads)?;
    let xv = arr1(&[0.25, 1.0, 4.0]).into_dyn();
    let out = plan.run(&g, &[("x", xv.view())])?;
    assert_eq!(out.get(0)?, arr1(&[1.0, 0.5, 0.25]).into_dyn().view()); // 1 / (2√x)
    let tanh1 = 1.0 - 1.0_f64.tanh().powi(2);
    assert!((out.get(1)?[[1]] - tanh1).abs() < 1e-15); // 1 - tanh² x
    assert_eq!(out.get(2)?, arr1(&[1.0, 1.0, 1.0]).into_dyn().view()); // sign x
    assert_eq!(out.get(3)?, arr1(&[0.1875, 3.0, 48.0]).into_dyn().view()); // 3x²

    // |x| at its kink: the derivative is taken to be 0.
    let zero = arr1(&[0.0, 0.0, 0.0]).into_dyn();
    let out = plan.run(&g, &[("x", zero.view())])?;
    assert_eq!(out.get(2)?, zero.view());
    Ok(())
}
// ANCHOR_END: unary_example

// ANCHOR: unbroadcast_example
#[test]
fn broadcasting_is_undone() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite_autodiff::vjp;
    use dendrite_graph::{compile, Graph};
    use ndarray::{arr1, arr2};

    // z = h + b with h: [?, 3] and b: [3]. Each b_j was copied into every row,
    // so its cotangent is the sum of the row cotangents: b̄_j = Σ_i z̄_ij.
    let mut g = Graph::<f64>::new();
    let h = g.input("h", [None, Some(3)])?;
    let b = g.parameter("b", arr1(&[0.0, 0.0, 0.0]).into_dyn())?;
    let z = g.add(h, b)?;
    let z_bar = g.input("z_bar", [None, Some(3)])?;
    let grads = vjp(&mut g, z, &[h, b], z_bar)?;
    assert_eq!(g.shape(grads[1])?.to_string(), "[3]");
    assert_eq!(g.op(grads[1])?.name(), "sum_like"); // inserted by the reverse sweep

    let mut plan = compile(&g, &grads)?;
    let hv = arr2(&[[0.0; 3]; 4]).into_dyn();
    let z_bar_v = arr2(&[
        [1.0, 2.0, 3.0],
        [1.0, 2.0, 3.0],
        [1.0, 0.0, 0.0],
        [0.0, 0.0, 1.0],
    ])
    .into_dyn();
    let out = plan.run(&g, &[("h", hv.view()), ("z_bar", z_bar_v.view())])?;
    assert_eq!(out.get(0)?, z_bar_v.view()); // h was not broadcast: its cotangent passes through
    assert_eq!(out.get(1)?, arr1(&[3.0, 4.0, 7.0]).into_dyn().view());
    Ok(())
}
// ANCHOR_END: unbroadcast_example

// ANCHOR: kinks_example
#[test]
fn kinks_and_ties() -> Result<(), Box<dyn std::error::Error>> {
    use ndarray::arr1;

    let at = arr1(&[-1.0, 0.0, 2.0]).into_dyn();
    let ones = arr1(&[1.0, 1.0, 1.0]).into_dyn();

    // relu = select(x > 0, x, 0): derivative 0 at the kink, as Keras, PyTorch and JAX report.
    let (_, d_relu) = value_and_vjp(at.clone(), ones.clone(), |g, x| g.relu(x))?;
    assert_eq!(d_relu, arr1(&[0.0, 0.0, 1.0]).into_dyn());

    // maximum(x, 0) splits a tie evenly: ½ at x = 0. Also a subgradient, but not relu's.
    let (_, d_max) = value_and_vjp(at.clone(), ones.clone(), |g, x| {
        let zero = g.scalar(0.0);
        g.maximum(x, zero)
    })?;
    assert_eq!(d_max, arr1(&[0.0, 0.5, 1.0]).into_dyn());

    // A max reduction shares the cotangent among tied maxima.
    let tied = arr1(&[3.0, 1.0, 3.0]).into_dyn();
    let (m, d_reduce) = value_and_vjp(tied, ndarray::arr0(1.0).into_dyn(), |g, x| {
        g.max(x, &[0], false)
    })?;
    assert_eq!(m.sum(), 3.0);
    assert_eq!(d_reduce, arr1(&[0.5, 0.0, 0.5]).into_dyn());
    Ok(())
}
// ANCHOR_END: kinks_example

// ANCHOR: select_example
#[test]
fn select_routes_the_gradient() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite_autodiff::grad;
    use dendrite_graph::{compile, Graph};
    use ndarray::arr1;

    let mut g = Graph::<f64>::new();
    let cond = g.input("cond", [3])?;
    let a = g.input("a", [3])?;
    let b = g.input("b", [3])?;
    let y = g.select(cond, a, b)?;
    let total = g.sum_all(y)?;
    let grads = grad(&mut g, total, &[a, b, cond])?;
    let mut plan = compile(&g, &grads)?;
    let (cv, av, bv) = (
        arr1(&[1.0, 0.0, 1.0]),
        arr1(&[5.0, 6.0, 7.0]),
        arr1(&[8.0, 9.0, 10.0]),
    );
    let out = plan.run(
        &g,
        &[
            ("cond", cv.view().into_dyn()),
            ("a", av.view().into_dyn()),
            ("b", bv.view().into_dyn()),
        ],
    )?;
    assert_eq!(out.get(0)?, arr1(&[1.0, 0.0, 1.0]).into_dyn().view()); // ā = [cond ≠ 0] ȳ
    assert_eq!(out.get(1)?, arr1(&[0.0, 1.0, 0.0]).into_dyn().view()); // b̄ = [cond = 0] ȳ
    assert_eq!(out.get(2)?, arr1(&[0.0, 0.0, 0.0]).into_dyn().view()); // nothing flows into cond
    Ok(())
}
// ANCHOR_END: select_example

// ANCHOR: matmul_example
#[test]
fn matmul_gradients() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite_autodiff::vjp;
    use dendrite_graph::{compile, Graph};
    use ndarray::arr2;

    let mut g = Graph::<f64>::new();
    let a = g.input("a", [2, 3])?;
    let b = g.input("b", [3, 4])?;
    let c = g.matmul(a, b)?;
    let c_bar = g.input("c_bar", [2, 4])?;
    let grads = vjp(&mut g, c, &[a, b], c_bar)?;
    // The rule builds products with transpose flags, not transposed copies.
    assert_eq!(
        g.op(grads[0])?,
        &dendrite_graph::Op::MatMul {
            transpose_lhs: false,
            transpose_rhs: true
        }
    );

    let av = arr2(&[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]);
    let bv = arr2(&[
        [1.0, 0.0, 2.0, 1.0],
        [0.0, 1.0, 1.0, 0.0],
        [2.0, 1.0, 0.0, 1.0],
    ]);
    let cbv = arr2(&[[1.0, -1.0, 0.5, 0.0], [0.0, 2.0, 1.0, -1.0]]);
    let mut plan = compile(&g, &grads)?;
    let out = plan.run(
        &g,
        &[
            ("a", av.view().into_dyn()),
            ("b", bv.view().into_dyn()),
            ("c_bar", cbv.view().into_dyn()),
        ],
    )?;
    assert_eq!(out.get(0)?, cbv.dot(&bv.t()).into_dyn().view()); // Ā = C̄ Bᵀ
    assert_eq!(out.get(1)?, av.t().dot(&cbv).into_dyn().view()); // B̄ = Aᵀ C̄
    Ok(())
}
// ANCHOR_END: matmul_example

// ANCHOR: layout_example
#[test]
fn layout_gradients() -> Result<(), Box<dyn std::error::Error>> {
    use ndarray::{Array, ArrayD, IxDyn};

    let x = Array::range(0.0, 24.0, 1.0).into_shape_with_order(IxDyn(&[2, 3, 4]))?;
    // Weight each output element by its own position, so we can see where it comes from.
    let weights = |shape: &[usize]| -> Result<ArrayD<f64>, Box<dyn std::error::Error>> {
        Ok(Array::range(100.0, 124.0, 1.0).into_shape_with_order(IxDyn(shape))?)
    };

    // permute(x, [2, 0, 1]) moves axis 2 to the front; its VJP moves it back.
    let (y, x_bar) = value_and_vjp(x.clone(), weights(&[4, 2, 3])?, |g, x| {
        g.permute(x, &[2, 0, 1])
    })?;
    assert_eq!(y.shape(), &[4, 2, 3]);
    assert_eq!(x_bar, weights(&[4, 2, 3])?.permuted_axes(vec![1, 2, 0]));

    // reshape keeps the row-major order; its VJP reshapes back.
    let (_, x_bar) = value_and_vjp(x, weights(&[6, 4])?, |g, x| g.reshape(x, [6, 4]))?;
    assert_eq!(x_bar, weights(&[2, 3, 4])?);
    Ok(())
}
// ANCHOR_END: layout_example

// ANCHOR: slice_example
#[test]
fn slice_pad_concat_gradients() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite_autodiff::vjp;
    use dendrite_graph::{compile, Graph};
    use ndarray::arr1;

    let mut g = Graph::<f64>::new();
    let a = g.input("a", [2])?;
    let b = g.input("b", [3])?;
    let ab = g.concat(&[a, b], 0)?; // [a0, a1, b0, b1, b2]
    let middle = g.slice(ab, 0, 1, 4)?; // [a1, b0, b1]
    let c = g.input("c", [3])?;
    let grads = vjp(&mut g, middle, &[a, b], c)?;
    let mut plan = compile(&g, &grads)?;
    let (av, bv, cv) = (arr1(&[0.0; 2]), arr1(&[0.0; 3]), arr1(&[7.0, 8.0, 9.0]));
    let out = plan.run(
        &g,
        &[
            ("a", av.view().into_dyn()),
            ("b", bv.view().into_dyn()),
            ("c", cv.view().into_dyn()),
        ],
    )?;
    // slice's VJP pads with zeros; concat's VJP hands each operand its slice.
    assert_eq!(out.get(0)?, arr1(&[0.0, 7.0]).into_dyn().view());
    assert_eq!(out.get(1)?, arr1(&[8.0, 9.0, 0.0]).into_dyn().view());
    Ok(())
}
// ANCHOR_END: slice_example

// ANCHOR: gather_example
#[test]
fn gather_accumulates_repeated_indices() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite_autodiff::grad;
    use dendrite_graph::{compile, Graph};
    use ndarray::{arr1, arr2};

    // An embedding lookup: rows of `table` picked by `ids`, with id 2 used twice.
    let mut g = Graph::<f64>::new();
    let table = g.parameter(
        "table",
        arr2(&[[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]).into_dyn(),
    )?;
    let ids = g.input("ids", [3])?;
    let rows = g.gather(table, ids, 0)?; // [3, 2]
    let total = g.sum_all(rows)?;
    let d_table = grad(&mut g, total, &[table, ids])?;
    assert_eq!(g.op(d_table[0])?.name(), "scatter_add");

    let mut plan = compile(&g, &[rows, d_table[0], d_table[1]])?;
    let idv = arr1(&[2.0, 0.0, 2.0]).into_dyn();
    let out = plan.run(&g, &[("ids", idv.view())])?;
    assert_eq!(
        out.get(0)?,
        arr2(&[[2.0, 2.0], [0.0, 0.0], [2.0, 2.0]])
            .into_dyn()
            .view()
    );
    // scatter_add sums the cotangents of both copies of row 2.
    assert_eq!(
        out.get(1)?,
        arr2(&[[1.0, 1.0], [0.0, 0.0], [2.0, 2.0], [0.0, 0.0]])
            .into_dyn()
            .view()
    );
    // Indices are piecewise constant: their gradient is a documented zero.
    assert_eq!(out.get(2)?, arr1(&[0.0, 0.0, 0.0]).into_dyn().view());

    // An index out of range is an error naming the node, the value and its position.
    let bad = arr1(&[2.0, 7.0, 0.0]).into_dyn();
    let err = plan.run(&g, &[("ids", bad.view())]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "gather `gather`: index 7 at flat position 1 is not an integer in 0..4"
    );
    Ok(())
}
// ANCHOR_END: gather_example

// ANCHOR: composite_relu
/// relu as `composite.rs` writes it: no derivative rule of its own.
fn relu(
    g: &mut dendrite_graph::Graph<f64>,
    x: dendrite_graph::NodeId,
) -> dendrite_graph::Result<dendrite_graph::NodeId> {
    use dendrite_graph::CompareOp;
    let zero = g.scalar(0.0);
    // 1 where x <= 0, else 0; no gradient flows through it. (Not `x > 0`: every comparison
    // with NaN is false, and this way round a NaN input comes out NaN instead of 0.)
    let not_positive = g.compare(CompareOp::Le, x, zero)?;
    g.select(not_positive, zero, x) // the gradient flows to x where x > 0
}
// ANCHOR_END: composite_relu

// ANCHOR: composite_log_softmax
/// log_softmax written as a composite: `z - log Σ e^z` with `z = x - max(x)`. (The library
/// makes it one primitive, `ops/softmax.rs`, with the same arithmetic.)
fn log_softmax(
    g: &mut dendrite_graph::Graph<f64>,
    x: dendrite_graph::NodeId,
    axis: usize,
) -> dendrite_graph::Result<dendrite_graph::NodeId> {
    let m = g.max(x, &[axis], true)?;
    let m = g.stop_gradient(m)?; // any shift leaves the result unchanged: its derivative is exactly 0
    let z = g.sub(x, m)?; // z ≤ 0, so exp(z) ≤ 1 never overflows
    let e = g.exp(z)?;
    let s = g.sum_keep_dims(e, &[axis])?; // s ≥ 1, so log(s) is finite
    let lse = g.log(s)?;
    g.sub(z, lse)
}
// ANCHOR_END: composite_log_softmax

#[test]
fn composites_match_the_library() -> TestResult {
    use dendrite_graph::{compile, Graph};
    use ndarray::arr2;
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [None, Some(3)])?;
    let mine = [relu(&mut g, x)?, log_softmax(&mut g, x, 1)?];
    let theirs = [g.relu(x)?, g.log_softmax(x, 1)?];
    assert_eq!(g.op(mine[0])?, g.op(theirs[0])?);
    let mut fetches = mine.to_vec();
    fetches.extend(theirs);
    let mut plan = compile(&g, &fetches)?;
    let xv = arr2(&[[1.0, -2.0, 0.0], [1e4, 0.0, -1e4]]).into_dyn();
    let out = plan.run(&g, &[("x", xv.view())])?;
    for k in 0..2 {
        assert_eq!(out.get(k)?, out.get(k + 2)?);
    }
    assert!(out.get(1)?.iter().all(|v| v.is_finite()));
    // relu(NaN) is NaN: a poisoned activation stays visible.
    let nan = arr2(&[[f64::NAN, 1.0, -1.0]]).into_dyn();
    let out = plan.run(&g, &[("x", nan.view())])?;
    assert!(out.get(0)?[[0, 0]].is_nan() && out.get(2)?[[0, 0]].is_nan());
    Ok(())
}

// ANCHOR: composite_gradient
#[test]
fn composites_get_gradients_from_primitives() -> Result<(), Box<dyn std::error::Error>> {
    use ndarray::{arr0, arr1};

    // d/dx_i variance(x) = 2 (x_i - mean x) / n, though variance has no rule: it is
    // mean((x - mean x)²), and the chain rule through mean, sub and mul gives the formula.
    let xs = arr1(&[-3.0, 0.0, 0.5, 4.0]).into_dyn();
    let (_, dv) = value_and_vjp(xs.clone(), arr0(1.0).into_dyn(), |g, x| {
        g.variance(x, &[0], false)
    })?;
    let mean = xs.sum() / 4.0;
    for i in 0..4 {
        assert!((dv[[i]] - 2.0 * (xs[[i]] - mean) / 4.0).abs() < 1e-15);
    }
    // leaky_relu' = 1 above 0 and alpha at and below it: the kink is placed by `select`.
    let (_, dl) = value_and_vjp(xs, arr1(&[1.0; 4]).into_dyn(), |g, x| g.leaky_relu(x, 0.1))?;
    assert_eq!(dl.as_slice(), Some(&[0.1, 0.1, 1.0, 1.0][..]));
    Ok(())
}
// ANCHOR_END: composite_gradient

// ANCHOR: derivative_table_complete
#[test]
fn derivative_table_lists_every_primitive() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite_graph::Op;

    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/src/derivatives.md");
    let table = std::fs::read_to_string(&path)?;
    // A row of the table starts with `| `name` |`.
    let rows: Vec<&str> = table
        .lines()
        .filter_map(|line| line.trim().strip_prefix("| `"))
        .filter_map(|rest| rest.split('`').next())
        .collect();
    let missing: Vec<&str> = Op::primitive_names()
        .iter()
        .copied()
        .filter(|op| !rows.contains(op))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/src/derivatives.md has no row for {missing:?}"
    );
    Ok(())
}
// ANCHOR_END: derivative_table_complete

// ---------------------------------------------------------------------------------------------
// Chapter 4: the reverse sweep, gradients as graph nodes
// ---------------------------------------------------------------------------------------------

// ANCHOR: accumulate
#[test]
fn contributions_are_summed() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite_autodiff::grad;
    use dendrite_graph::{compile, Graph, Shape};

    // y = x · x uses x twice (two edges, slots 0 and 1). Each use contributes x̄ = ȳ · x;
    // the sweep adds them: dy/dx = 2x. Overwriting instead of adding would give x.
    let mut g = Graph::<f64>::new();
    let x = g.input("x", Shape::scalar())?;
    let y = g.mul(x, x)?;
    assert_eq!(g.operands(y)?.as_slice(), &[x, x]);
    let dy = grad(&mut g, y, &[x])?[0];
    assert_eq!(g.op(dy)?.name(), "add");

    let mut plan = compile(&g, &[dy])?;
    let xv = ndarray::arr0(3.0).into_dyn();
    assert_eq!(plan.run(&g, &[("x", xv.view())])?.scalar(0)?, 6.0);
    Ok(())
}
// ANCHOR_END: accumulate

// ANCHOR: pruning
#[test]
fn only_the_needed_nodes_are_differentiated() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite_autodiff::grad;
    use dendrite_graph::{compile, Graph};
    use ndarray::arr1;

    let mut g = Graph::<f64>::new();
    let x = g.input("x", [2])?;
    let w = g.parameter("w", arr1(&[1.0, 2.0]).into_dyn())?;
    let unrelated = g.parameter("unrelated", arr1(&[5.0]).into_dyn())?;
    // A long side computation that depends on x but does not reach the loss.
    let mut side = x;
    for _ in 0..100 {
        side = g.exp(side)?;
    }
    let wx = g.mul(w, x)?;
    let loss = g.sum_all(wx)?;

    let before = g.node_count();
    let grads = grad(&mut g, loss, &[w, unrelated])?;
    // The side chain is not on a path to the loss: no node was derived for it.
    assert!(g.node_count() - before < 10);
    // A parameter that does not reach the loss gets zeros of its own shape, not an error.
    let mut plan = compile(&g, &grads)?;
    let xv = arr1(&[3.0, 4.0]).into_dyn();
    let out = plan.run(&g, &[("x", xv.view())])?;
    assert_eq!(out.get(0)?, xv.view());
    assert_eq!(out.get(1)?, arr1(&[0.0]).into_dyn().view());
    Ok(())
}
// ANCHOR_END: pruning

// ANCHOR: gradient_is_a_graph
#[test]
fn the_gradient_is_a_graph() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite_autodiff::grad;
    use dendrite_graph::{to_dot, Graph, Shape};

    let mut g = Graph::<f64>::new();
    let x = g.input("x", Shape::scalar())?;
    let e = g.exp(x)?;
    let y = g.mul(e, x)?; // y = x eˣ
    let dy = grad(&mut g, y, &[x])?[0]; // dy/dx = eˣ + x eˣ

    // The gradient is made of ordinary nodes: they can be printed, compiled and differentiated.
    let dot = to_dot(&g, Some(&[dy]))?;
    assert!(dot.starts_with("digraph"));
    assert!(dot.contains("exp")); // the derivative reuses the forward node e = eˣ
    for node in g.nodes().skip(y.index() + 1) {
        assert!(!g.op(node)?.is_leaf() || g.op(node)?.name() == "constant");
    }
    Ok(())
}
// ANCHOR_END: gradient_is_a_graph

// ANCHOR: higher_order
#[test]
fn higher_order_derivatives() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite_autodiff::grad;
    use dendrite_graph::{compile, Graph, Shape};

    // f(x) = x³: f' = 3x², f'' = 6x, f''' = 6, f'''' = 0.
    let mut g = Graph::<f64>::new();
    let x = g.input("x", Shape::scalar())?;
    let mut derivatives = vec![g.pow(x, 3.0)?];
    for k in 0..4 {
        let next = grad(&mut g, derivatives[k], &[x])?[0];
        derivatives.push(next);
    }
    let mut plan = compile(&g, &derivatives)?;
    let xv = ndarray::arr0(2.0).into_dyn();
    let out = plan.run(&g, &[("x", xv.view())])?;
    let values: Vec<f64> = (0..5).map(|k| out.scalar(k)).collect::<Result<_, _>>()?;
    assert_eq!(values, [8.0, 12.0, 12.0, 6.0, 0.0]);
    Ok(())
}
// ANCHOR_END: higher_order

// ANCHOR: hvp
#[test]
fn hessian_vector_products() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite_autodiff::{hessian, hvp};
    use dendrite_graph::{compile, Graph};
    use ndarray::arr1;

    // Rosenbrock: f(x, y) = (1 - x)² + 100 (y - x²)².
    let mut g = Graph::<f64>::new();
    let p = g.input("p", [2])?;
    let x = g.slice(p, 0, 0, 1)?;
    let y = g.slice(p, 0, 1, 2)?;
    let one = g.scalar(1.0);
    let a = g.sub(one, x)?;
    let a2 = g.square(a)?;
    let x2 = g.square(x)?;
    let b = g.sub(y, x2)?;
    let b2 = g.square(b)?;
    let b2 = g.scale(b2, 100.0)?;
    let f = g.add(a2, b2)?;
    let f = g.sum_all(f)?;

    let v = g.input("v", [2])?;
    let hv = hvp(&mut g, f, &[p], &[v])?[0]; // H v without ever forming H: two sweeps
    let h = hessian(&mut g, f, p)?; // the whole H, one HVP per basis vector

    let mut plan = compile(&g, &[hv, h])?;
    let (pv, vv) = (arr1(&[1.0, 1.0]).into_dyn(), arr1(&[1.0, -2.0]).into_dyn());
    let out = plan.run(&g, &[("p", pv.view()), ("v", vv.view())])?;
    // At (1, 1): H = [[1200x² - 400y + 2, -400x], [-400x, 200]] = [[802, -400], [-400, 200]].
    assert_eq!(
        out.get(1)?,
        ndarray::arr2(&[[802.0, -400.0], [-400.0, 200.0]])
            .into_dyn()
            .view()
    );
    assert_eq!(
        out.get(0)?,
        arr1(&[802.0 + 800.0, -400.0 - 400.0]).into_dyn().view()
    );
    Ok(())
}
// ANCHOR_END: hvp

// ---------------------------------------------------------------------------------------------
// Chapter 5: gradient checking
// ---------------------------------------------------------------------------------------------

// ANCHOR: central_difference
/// Central differences of a scalar plan output with respect to the input `name`, one element at a
/// time: `(f(x + ε eᵢ) - f(x - ε eᵢ)) / 2ε`. Costs 2n runs for n elements.
fn numeric_gradient(
    g: &dendrite_graph::Graph<f64>,
    plan: &mut dendrite_graph::Plan<f64>,
    name: &str,
    x: &ndarray::ArrayD<f64>,
    eps: f64,
) -> Result<ndarray::ArrayD<f64>, Box<dyn std::error::Error>> {
    let mut gradient = ndarray::ArrayD::zeros(x.raw_dim());
    let mut probe = x.clone();
    for (i, slot) in gradient.iter_mut().enumerate() {
        let x_i = x.iter().nth(i).copied().unwrap_or_default();
        let mut f_at = |value: f64| -> Result<f64, Box<dyn std::error::Error>> {
            if let Some(p) = probe.iter_mut().nth(i) {
                *p = value;
            }
            Ok(plan.run(g, &[(name, probe.view())])?.scalar(0)?)
        };
        let (up, down) = (f_at(x_i + eps)?, f_at(x_i - eps)?);
        f_at(x_i)?;
        *slot = (up - down) / (2.0 * eps);
    }
    Ok(gradient)
}
// ANCHOR_END: central_difference

// ANCHOR: elementwise_check
#[test]
fn elementwise_gradient_check() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite_autodiff::grad;
    use dendrite_graph::{compile, Graph};
    use ndarray::arr2;

    // A small softmax cross-entropy, in f64.
    let mut g = Graph::<f64>::new();
    let logits = g.input("logits", [2, 3])?;
    let labels = g.constant(ndarray::arr1(&[2.0, 0.0]).into_dyn());
    let log_p = g.log_softmax(logits, 1)?;
    let target = g.one_hot(labels, 3)?;
    let picked = g.mul(target, log_p)?;
    let total = g.sum_all(picked)?;
    let loss = g.neg(total)?;
    let analytic = grad(&mut g, loss, &[logits])?[0];

    let x = arr2(&[[0.3, -1.2, 2.0], [1.5, 0.1, -0.4]]).into_dyn();
    let mut loss_plan = compile(&g, &[loss])?;
    let numeric = numeric_gradient(&g, &mut loss_plan, "logits", &x, 1e-5)?;
    let mut grad_plan = compile(&g, &[analytic])?;
    let out = grad_plan.run(&g, &[("logits", x.view())])?;
    for (&a, &n) in out.get(0)?.iter().zip(numeric.iter()) {
        // |a - n| ≤ atol + rtol |n|, with tolerances far above the ~1e-10 error of the method.
        assert!(
            (a - n).abs() <= 1e-7 + 1e-6 * n.abs(),
            "analytic {a} vs numeric {n}"
        );
    }
    Ok(())
}
// ANCHOR_END: elementwise_check

// ANCHOR: step_size
#[test]
fn step_size_tradeoff() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite_graph::{compile, Graph, Shape};

    // f(x) = eˣ at x = 1, whose derivative e is known exactly.
    let mut g = Graph::<f64>::new();
    let x = g.input("x", Shape::scalar())?;
    let f = g.exp(x)?;
    let mut plan = compile(&g, &[f])?;
    let x0 = ndarray::arr0(1.0).into_dyn();

    let mut errors = Vec::new();
    for k in 1..=12 {
        let eps = 10f64.powi(-k);
        let d = numeric_gradient(&g, &mut plan, "x", &x0, eps)?;
        errors.push((eps, (d.sum() - std::f64::consts::E).abs()));
    }
    let (best_eps, best_error) =
        errors
            .iter()
            .copied()
            .fold((0.0, f64::INFINITY), |a, b| if b.1 < a.1 { b } else { a });
    // Truncation error ~ ε² f'''/6 falls as ε shrinks, rounding error ~ u |f| / ε grows:
    // the best ε is near ∛u ≈ 6e-6 for f64, and the error there near u^(2/3) ≈ 1e-11.
    assert!((1e-7..=1e-4).contains(&best_eps), "best step {best_eps}");
    assert!(best_error < 1e-9);
    // Too large a step: truncation dominates. Too small: rounding dominates.
    assert!(errors[0].1 > 1e-3); // ε = 0.1
    assert!(errors[11].1 > 1e3 * best_error); // ε = 1e-12
    Ok(())
}
// ANCHOR_END: step_size

// ANCHOR: directional_check
/// Autodidax-style check of a VJP along random directions: for a tangent t and a cotangent c,
/// ⟨c, (f(x + εt) - f(x - εt)) / 2ε⟩ must equal ⟨vjp(c), t⟩. Two runs of f, whatever the size.
fn directional_check(
    build: impl Fn(
        &mut dendrite_graph::Graph<f64>,
        dendrite_graph::NodeId,
    ) -> dendrite_graph::Result<dendrite_graph::NodeId>,
    x: &ndarray::ArrayD<f64>,
    t: &ndarray::ArrayD<f64>,
    c_of: impl Fn(&[usize]) -> ndarray::ArrayD<f64>,
) -> Result<(f64, f64), Box<dyn std::error::Error>> {
    use dendrite_graph::{compile, Graph, Shape};
    let mut g = Graph::<f64>::new();
    let xi = g.input("x", Shape::fixed(x.shape()))?;
    let y = build(&mut g, xi)?;
    let ci = g.input("c", g.shape(y)?.clone())?;
    let x_bar = dendrite_autodiff::vjp(&mut g, y, &[xi], ci)?[0];

    let mut f = compile(&g, &[y])?;
    let eps = 1e-5;
    let (xp, xm) = (x + &(t * eps), x - &(t * eps));
    let yp = f.run(&g, &[("x", xp.view())])?.get(0)?.to_owned();
    let ym = f.run(&g, &[("x", xm.view())])?.get(0)?.to_owned();
    let c = c_of(yp.shape());
    let numeric = (&c * &((&yp - &ym) / (2.0 * eps))).sum();

    let mut back = compile(&g, &[x_bar])?;
    let analytic = (&back.run(&g, &[("x", x.view()), ("c", c.view())])?.get(0)? * t).sum();
    Ok((numeric, analytic))
}
// ANCHOR_END: directional_check

// ANCHOR: proptest_check
mod property_checks {
    use super::directional_check;
    use ndarray::{Array, ArrayD, IxDyn};
    use proptest::prelude::*;

    /// A tensor of the given shape with values in [-2, 2].
    fn tensor(shape: Vec<usize>) -> impl Strategy<Value = ArrayD<f64>> {
        let n = shape.iter().product::<usize>();
        proptest::collection::vec(-2.0..2.0_f64, n)
            .prop_map(move |v| Array::from_shape_vec(IxDyn(&shape), v).expect("length matches"))
    }

    /// x, a tangent t and a cotangent seed, on a random [rows, cols] shape.
    fn case() -> impl Strategy<Value = (ArrayD<f64>, ArrayD<f64>, f64)> {
        (1..5usize, 1..6usize)
            .prop_flat_map(|(r, c)| (tensor(vec![r, c]), tensor(vec![r, c]), 0.1..1.0_f64))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn softmax_vjp_matches_finite_differences((x, t, seed) in case()) {
            // A cotangent that varies along the softmax axis (a constant one would see nothing).
            let c_of = |shape: &[usize]| {
                Array::from_shape_fn(IxDyn(shape), |i| ((3 * i[0] + 7 * i[1] + 1) as f64 * seed).sin())
            };
            let (numeric, analytic) = directional_check(|g, x| g.softmax(x, 1), &x, &t, c_of)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!((numeric - analytic).abs() <= 1e-7 + 1e-6 * analytic.abs(),
                "numeric {} vs analytic {}", numeric, analytic);
        }

        #[test]
        fn tanh_of_product_vjp_matches((x, t, seed) in case()) {
            let c_of = |shape: &[usize]| Array::from_elem(IxDyn(shape), seed);
            let build = |g: &mut dendrite_graph::Graph<f64>, x| {
                let sq = g.mul(x, x)?;
                let s = g.sum_keep_dims(sq, &[1])?;
                let y = g.mul(x, s)?;
                g.tanh(y)
            };
            let (numeric, analytic) = directional_check(build, &x, &t, c_of)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!((numeric - analytic).abs() <= 1e-6 + 1e-6 * analytic.abs(),
                "numeric {} vs analytic {}", numeric, analytic);
        }
    }
}
// ANCHOR_END: proptest_check

// ANCHOR: why_f64
#[test]
fn why_f64() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite_graph::{compile, Graph, Shape};

    // The same central difference of eˣ at x = 1, in f32 and in f64, each at its best step ∛u.
    let mut g32 = Graph::<f32>::new();
    let x32 = g32.input("x", Shape::scalar())?;
    let f32_node = g32.exp(x32)?;
    let mut p32 = compile(&g32, &[f32_node])?;
    let mut run32 = |x: f32| -> Result<f32, Box<dyn std::error::Error>> {
        let xv = ndarray::arr0(x).into_dyn();
        Ok(p32.run(&g32, &[("x", xv.view())])?.scalar(0)?)
    };
    let eps = f32::EPSILON.cbrt(); // ≈ 4.9e-3
    let d32 = (run32(1.0 + eps)? - run32(1.0 - eps)?) / (2.0 * eps);
    let error32 = (f64::from(d32) - std::f64::consts::E).abs();

    let eps = f64::EPSILON.cbrt(); // ≈ 6.1e-6
    let d64 = ((1.0 + eps).exp() - (1.0 - eps).exp()) / (2.0 * eps);
    let error64 = (d64 - std::f64::consts::E).abs();

    // f32 checks can only resolve about 1e-5 relative error: too coarse to catch a subtle bug.
    assert!(error32 > 1e-6);
    assert!(error64 < 1e-9);
    Ok(())
}
// ANCHOR_END: why_f64

// ANCHOR: library_checker
#[test]
fn the_library_checker() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite_autodiff::check::{check_gradients, CheckConfig, CheckMode};
    use dendrite_graph::Graph;
    use ndarray::arr2;

    // A dense layer with a tanh: check the gradients of both the input and the weights.
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [2, 3])?;
    let w = g.parameter(
        "w",
        arr2(&[[0.5, -1.0], [0.25, 0.0], [1.0, 2.0]]).into_dyn(),
    )?;
    let h = g.matmul(x, w)?;
    let y = g.tanh(h)?; // not a scalar: the checker contracts it with a random cotangent
    let xv = arr2(&[[0.3, -0.2, 0.1], [0.0, 0.4, -0.5]]).into_dyn();

    let elementwise = CheckConfig::default().with_mode(CheckMode::Elementwise);
    let report = check_gradients(&mut g, y, &[x, w], &[("x", xv.view())], &elementwise)?;
    assert!(report.passed(), "{report}");
    assert_eq!(report.checked, 6 + 6); // every element of x and of w

    let directional = CheckConfig::default().with_mode(CheckMode::Directional { trials: 4 });
    let report = check_gradients(&mut g, y, &[x, w], &[("x", xv.view())], &directional)?;
    assert!(report.passed(), "{report}");
    assert_eq!(report.checked, 4); // four random directions, whatever the sizes
    Ok(())
}
// ANCHOR_END: library_checker

// ANCHOR: kink_check_fails
#[test]
fn a_check_across_a_kink_fails() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite_autodiff::check::{check_gradients, CheckConfig, CheckMode, Location};
    use dendrite_graph::Graph;
    use ndarray::arr1;

    // relu at exactly 0: the rule says 0, the central difference (ε - 0) / 2ε says ½.
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [2])?;
    let r = g.relu(x)?;
    let y = g.sum_all(r)?;
    let xv = arr1(&[0.0, 1.0]).into_dyn();
    let config = CheckConfig::default().with_mode(CheckMode::Elementwise);
    let report = check_gradients(&mut g, y, &[x], &[("x", xv.view())], &config)?;

    assert!(!report.passed());
    assert_eq!(report.failures, 1);
    let worst = report
        .worst
        .ok_or("a failed check reports its worst comparison")?;
    assert_eq!(
        worst.location,
        Location::Element {
            node: "x".into(),
            index: vec![0]
        }
    );
    assert_eq!(worst.analytic, 0.0);
    assert!((worst.numeric - 0.5).abs() < 1e-9);
    Ok(())
}
// ANCHOR_END: kink_check_fails

// ANCHOR: checker_property
mod checker_properties {
    use dendrite_autodiff::check::{check_gradients, CheckConfig};
    use dendrite_autodiff::strategies::{away_from_zero, shape_with_rank};
    use dendrite_graph::{Graph, Shape};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// leaky_relu on random shapes (rank 1-3, size-1 dimensions on purpose) and values kept
        /// away from its kink at 0.
        #[test]
        fn leaky_relu_gradient(x in shape_with_rank(1..=3).prop_flat_map(away_from_zero)) {
            let mut g = Graph::<f64>::new();
            let xi = g.input("x", Shape::fixed(x.shape()))?;
            let y = g.leaky_relu(xi, 0.1)?;
            let report = check_gradients(&mut g, y, &[xi], &[("x", x.view())], &CheckConfig::default())?;
            prop_assert!(report.passed(), "{}", report);
        }
    }
}
// ANCHOR_END: checker_property

// ---------------------------------------------------------------------------------------------
// Chapter 6: activations, losses, optimizers
// ---------------------------------------------------------------------------------------------

// ANCHOR: linear_collapse
#[test]
fn linear_layers_collapse() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite_graph::{compile, Graph};
    use ndarray::{arr1, arr2};

    // Two layers without an activation: (x W1 + b1) W2 + b2.
    let (w1, b1) = (
        arr2(&[[1.0, -2.0, 0.5], [0.0, 1.0, 3.0]]),
        arr1(&[0.1, 0.2, 0.3]),
    );
    let (w2, b2) = (arr2(&[[2.0], [1.0], [-1.0]]), arr1(&[0.5]));
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [None, Some(2)])?;
    let (w1n, b1n) = (
        g.constant(w1.clone().into_dyn()),
        g.constant(b1.clone().into_dyn()),
    );
    let (w2n, b2n) = (
        g.constant(w2.clone().into_dyn()),
        g.constant(b2.clone().into_dyn()),
    );
    let h = g.matmul(x, w1n)?;
    let h = g.add(h, b1n)?;
    let y = g.matmul(h, w2n)?;
    let two_layers = g.add(y, b2n)?;

    // ...are one layer: x (W1 W2) + (b1 W2 + b2).
    let w = w1.dot(&w2);
    let b = b1.dot(&w2) + &b2;
    let (wn, bn) = (g.constant(w.into_dyn()), g.constant(b.into_dyn()));
    let y = g.matmul(x, wn)?;
    let one_layer = g.add(y, bn)?;

    let mut plan = compile(&g, &[two_layers, one_layer])?;
    let xv = arr2(&[[1.0, 2.0], [-3.0, 0.5], [0.0, 0.0]]).into_dyn();
    let out = plan.run(&g, &[("x", xv.view())])?;
    for (a, b) in out.get(0)?.iter().zip(out.get(1)?.iter()) {
        assert!((a - b).abs() < 1e-12);
    }
    Ok(())
}
// ANCHOR_END: linear_collapse

/// Accuracy of a model's 0/1 predictions (threshold ½) against XOR's labels.
fn xor_accuracy(activation: dendrite_nn::Activation) -> Result<f64, Box<dyn Error>> {
    use dendrite_nn::{Activation, Adam, Dense, FitConfig, Loss, Metric, Sequential};
    use ndarray::array;
    let x = array![[0.0_f32, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]];
    let y = array![0.0_f32, 1.0, 1.0, 0.0];
    let mut model = Sequential::new().with_seed(1);
    model.add(Dense::new(8).input_dim(2).activation(activation));
    model.add(Dense::new(1).activation(Activation::Sigmoid));
    model.compile(
        Adam::new(0.05),
        Loss::BinaryCrossentropy,
        &[Metric::Accuracy],
    )?;
    model.fit(
        &(x.view(), y.view()),
        FitConfig::default().epochs(500).batch_size(4).verbosity(0),
    )?;
    let p = model.predict(&x.view(), 4)?;
    let correct = p
        .iter()
        .zip(&y)
        .filter(|(&p, &y)| (p > 0.5) == (y > 0.5))
        .count();
    Ok(correct as f64 / 4.0)
}

// ANCHOR: xor
#[test]
fn xor_needs_a_nonlinearity() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite_nn::Activation;

    // XOR: no line separates {(0,1), (1,0)} from {(0,0), (1,1)}.
    // A hidden layer without activation is still a linear model: at most 3 of 4 right.
    assert!(xor_accuracy(Activation::Linear)? <= 0.75);
    // One tanh in between, and the same network learns it.
    assert_eq!(xor_accuracy(Activation::Tanh)?, 1.0);
    Ok(())
}
// ANCHOR_END: xor

// ANCHOR: softmax_ce
#[test]
fn softmax_cross_entropy_gradient() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite_autodiff::grad;
    use dendrite_graph::{compile, Graph};
    use dendrite_nn::{Activation, Loss};
    use ndarray::{arr1, arr2};

    // A softmax output layer and the sparse cross-entropy, as the nn crate builds them.
    let mut g = Graph::<f64>::new();
    let z = g.input("z", [None, Some(3)])?; // logits
    let labels = g.input("labels", [None])?;
    let output = Activation::Softmax.nodes(&mut g, z)?; // remembers z as its pre-activation
    let loss = Loss::SparseCategoricalCrossentropy.build(&mut g, &output, labels)?;
    let dz = grad(&mut g, loss, &[z])?[0];

    let mut plan = compile(&g, &[output.output, loss, dz])?;
    let zv = arr2(&[[2.0, 1.0, 0.1], [0.5, 2.5, -1.0]]).into_dyn();
    let yv = arr1(&[0.0, 2.0]).into_dyn();
    let out = plan.run(&g, &[("z", zv.view()), ("labels", yv.view())])?;
    let p = out.get(0)?;
    // ∂L/∂z = (p - onehot(y)) / N for the batch mean.
    let onehot = arr2(&[[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]).into_dyn();
    let expected = (&p - &onehot) / 2.0;
    for (a, e) in out.get(2)?.iter().zip(expected.iter()) {
        assert!((a - e).abs() < 1e-15);
    }

    // Logits of 1e4: softmax saturates to exactly 0 and 1, yet the loss and gradient are finite.
    let big = arr2(&[[1e4, 0.0, -1e4], [0.0, 1e4, 0.0]]).into_dyn();
    let last = arr1(&[2.0, 2.0]).into_dyn();
    let out = plan.run(&g, &[("z", big.view()), ("labels", last.view())])?;
    assert_eq!(out.get(0)?[[0, 2]], 0.0); // p = 0 exactly: log p would be -inf
    assert_eq!(out.scalar(1)?, (2e4 + 1e4) / 2.0); // -log p_y = lse(z) - z_y, from the logits
    assert!(out.get(2)?.iter().all(|v| v.is_finite()));
    Ok(())
}
// ANCHOR_END: softmax_ce

// ANCHOR: naive_ce
#[test]
fn cross_entropy_through_probabilities_breaks() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite_autodiff::grad;
    use dendrite_graph::{compile, Graph};
    use ndarray::arr2;

    // The textbook formula, literally: -log(softmax(z)[y]).
    let mut g = Graph::<f64>::new();
    let z = g.input("z", [1, 3])?;
    let p = g.softmax(z, 1)?;
    let log_p = g.log(p)?;
    let target = g.constant(arr2(&[[0.0, 0.0, 1.0]]).into_dyn());
    let picked = g.mul(target, log_p)?;
    let total = g.sum_all(picked)?;
    let loss = g.neg(total)?;
    let dz = grad(&mut g, loss, &[z])?[0];

    let mut plan = compile(&g, &[loss, dz])?;
    let big = arr2(&[[1e4, 0.0, -1e4]]).into_dyn();
    let out = plan.run(&g, &[("z", big.view())])?;
    // p underflows to 0 for two classes, log p = -∞, and 0 · (-∞) = NaN poisons the sum.
    assert!(out.scalar(0)?.is_nan());
    assert!(out.get(1)?.iter().any(|v| v.is_nan()));
    Ok(())
}
// ANCHOR_END: naive_ce

// ANCHOR: optimizer_steps
#[test]
fn optimizer_first_steps() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite_nn::{Adam, Optimizer, Sgd};

    let g = [0.5_f64]; // the same gradient at every step
    let run = |opt: &mut dyn Optimizer<f64>, steps: u64| -> Result<f64, dendrite_nn::NnError> {
        opt.prepare(&[1]);
        let mut w = [1.0_f64];
        for t in 0..steps {
            opt.begin_step(t);
            opt.update(0, &mut w, &g)?;
        }
        Ok(w[0])
    };

    // SGD: w ← w - η g.
    assert_eq!(run(&mut Sgd::new(0.1), 1)?, 1.0 - 0.1 * 0.5);
    // Momentum μ = 0.9: v₁ = -η g, v₂ = μ v₁ - η g; w₂ = w₀ + v₁ + v₂.
    let (v1, v2) = (-0.05, 0.9 * -0.05 - 0.05);
    assert!((run(&mut Sgd::new(0.1).momentum(0.9), 2)? - (1.0 + v1 + v2)).abs() < 1e-15);
    // Nesterov: w ← w + μ v - η g, with v already updated.
    let nesterov = 1.0 + (0.9 * v1 - 0.05) + (0.9 * v2 - 0.05);
    assert!((run(&mut Sgd::new(0.1).momentum(0.9).nesterov(true), 2)? - nesterov).abs() < 1e-15);

    // Adam: thanks to bias correction the first step has length ≈ η whatever the size of g.
    let first = 1.0 - run(&mut Adam::new(1e-3), 1)?;
    assert!((first - 1e-3).abs() < 1e-8); // ε = 1e-7 shortens it by 6e-9
                                          // Without it, m₁ / √v₁ = (1-β₁) g / (√(1-β₂) |g|) ≈ 3.16: a first step three times too long.
    let uncorrected = (1.0 - 0.9) * 0.5 / ((1.0_f64 - 0.999).sqrt() * 0.5);
    assert!((uncorrected - 3.162).abs() < 1e-3);
    Ok(())
}
// ANCHOR_END: optimizer_steps

// ANCHOR: descent_loop
#[test]
fn gradient_descent_with_momentum() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite_autodiff::grad;
    use dendrite_graph::{compile, Graph};
    use dendrite_nn::{Adam, Optimizer, Sgd};
    use ndarray::{arr1, arr2};

    /// Minimizes f(w) = ½ wᵀ A w for an ill-conditioned A (curvatures 1 and 50), returns f.
    fn minimize(
        mut opt: impl Optimizer<f64>,
        steps: u64,
    ) -> Result<f64, Box<dyn std::error::Error>> {
        let mut g = Graph::<f64>::new();
        let w = g.parameter("w", arr1(&[1.0, 1.0]).into_dyn())?;
        let a = g.constant(arr2(&[[1.0, 0.0], [0.0, 50.0]]).into_dyn());
        let col = g.reshape(w, [2, 1])?;
        let aw = g.matmul(a, col)?;
        let waw = g.matmul_t(col, aw, true, false)?;
        let f = g.scale(waw, 0.5)?;
        let f = g.sum_all(f)?;
        let dw = grad(&mut g, f, &[w])?[0];

        // Build once, run many times: the whole training loop.
        let mut plan = compile(&g, &[f, dw])?;
        opt.prepare(&[2]);
        for t in 0..steps {
            let out = plan.run(&g, &[])?;
            let gradient = out.get(1)?;
            opt.begin_step(t);
            let mut param = g.parameter_mut(w)?;
            let (Some(p), Some(d)) = (param.as_slice_mut(), gradient.as_slice()) else {
                return Err("parameters and gradients are contiguous".into());
            };
            opt.update(0, p, d)?;
        }
        Ok(plan.run(&g, &[])?.scalar(0)?)
    }

    // Each at its best settings for curvatures m = 1, L = 50 (κ = 50): plain SGD with
    // η = 2/(L+m) contracts by (κ-1)/(κ+1) ≈ 0.96 per step; heavy-ball momentum with
    // η = 4/(√L+√m)², μ = ((√κ-1)/(√κ+1))² by about (√κ-1)/(√κ+1) ≈ 0.75.
    let sgd = minimize(Sgd::new(2.0 / 51.0), 100)?;
    let momentum = minimize(
        Sgd::new(4.0 / (50f64.sqrt() + 1.0).powi(2)).momentum(0.566),
        100,
    )?;
    let adam = minimize(Adam::new(0.05), 100)?;
    assert!(momentum < sgd / 100.0, "momentum {momentum} vs sgd {sgd}");
    assert!(adam < 0.5);
    Ok(())
}
// ANCHOR_END: descent_loop

// ---------------------------------------------------------------------------------------------
// Chapter 7: MNIST
// ---------------------------------------------------------------------------------------------

// ANCHOR: reference_program
/// The reference program: the Keras MNIST model, trained and evaluated.
fn reference_program(
    mnist: &dendrite_nn::data::Mnist,
    epochs: usize,
) -> Result<(dendrite_nn::History, dendrite_nn::Evaluation), dendrite_nn::NnError> {
    use dendrite_nn::{Activation, Adam, Dense, FitConfig, Loss, Metric, Sequential};

    let mut model = Sequential::new();
    model.add(Dense::new(32).input_dim(784).activation(Activation::Relu));
    model.add(Dense::new(10).activation(Activation::Softmax));
    model.compile(
        Adam::default(),
        Loss::SparseCategoricalCrossentropy,
        &[Metric::Accuracy],
    )?;
    println!("{}", model.summary()?);

    let history = model.fit(
        &mnist.train,
        FitConfig::default().epochs(epochs).batch_size(32),
    )?;
    let result = model.evaluate(&mnist.test, 32)?;
    Ok((history, result))
}
// ANCHOR_END: reference_program

// ANCHOR: load_data
#[test]
fn the_reference_program_learns() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite_nn::data::{load_mnist, mnist_dir_from_env, synthetic_mnist, Mnist};

    // MNIST if DENDRITE_MNIST_DIR names a directory with the four files, else synthetic digits.
    let data = match mnist_dir_from_env() {
        Some(dir) => load_mnist(&dir)?,
        None => synthetic_mnist(0),
    };
    // A slice of it, to keep the test quick; the example trains on all of it.
    let small = Mnist {
        train: data.train.take(3000),
        test: data.test.take(1000),
    };
    let (history, result) = reference_program(&small, 2)?;
    assert!(history.loss[1] < history.loss[0]);
    assert!(result.accuracy.unwrap_or(0.0) > 0.8, "{result:?}");
    Ok(())
}
// ANCHOR_END: load_data

// ANCHOR: summary
#[test]
fn reference_model_summary() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite_nn::{Activation, Dense, Sequential};

    let mut model = Sequential::new();
    model.add(Dense::new(32).input_dim(784).activation(Activation::Relu));
    model.add(Dense::new(10).activation(Activation::Softmax));
    let summary = model.summary()?;
    assert_eq!(summary.total_params(), 784 * 32 + 32 + 32 * 10 + 10); // 25,450
    let expected = r#"Model: "sequential"
_________________________________________________________________
 Layer (type)                Output Shape                Param #
=================================================================
 dense_1 (Dense)             (None, 32)                   25,120

 dense_2 (Dense)             (None, 10)                      330
=================================================================
Total params: 25,450
Trainable params: 25,450
Non-trainable params: 0
_________________________________________________________________"#;
    assert_eq!(summary.to_string().trim_end(), expected);
    Ok(())
}
// ANCHOR_END: summary

// ANCHOR: reference_graph
/// The reference model's training graph, and the nodes a training loop needs.
struct Reference {
    graph: dendrite_graph::Graph<f32>,
    /// The loss, then the gradients of the four parameters.
    fetches: Vec<dendrite_graph::NodeId>,
    /// The logits, for predictions.
    logits: dendrite_graph::NodeId,
}

/// Builds the reference model with the graph and autodiff crates directly.
fn reference_graph(seed: u64) -> Result<Reference, Box<dyn std::error::Error>> {
    use dendrite_autodiff::grad;
    use dendrite_graph::Graph;
    use ndarray::{Array1, Array2};

    // Glorot-uniform, as Keras initializes a Dense kernel: U(-l, l) with l = √(6 / (in + out)).
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut glorot = |rows: usize, cols: usize| {
        let limit = (6.0 / (rows + cols) as f64).sqrt();
        Array2::from_shape_fn((rows, cols), |_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32 * limit as f32
        })
    };

    let mut g = Graph::<f32>::new();
    let x = g.input("inputs", [None, Some(784)])?;
    let labels = g.input("labels", [None])?;
    let w1 = g.parameter("dense_1/kernel", glorot(784, 32).into_dyn())?;
    let b1 = g.parameter("dense_1/bias", Array1::zeros(32).into_dyn())?;
    let w2 = g.parameter("dense_2/kernel", glorot(32, 10).into_dyn())?;
    let b2 = g.parameter("dense_2/bias", Array1::zeros(10).into_dyn())?;

    let h = g.with_scope("dense_1", |g| -> dendrite_graph::Result<_> {
        let xw = g.matmul(x, w1)?;
        let z = g.add(xw, b1)?;
        g.relu(z)
    })?;
    let logits = g.with_scope("dense_2", |g| -> dendrite_graph::Result<_> {
        let hw = g.matmul(h, w2)?;
        g.add(hw, b2)
    })?;
    // Sparse categorical cross-entropy from the logits: mean over the batch of -log p_y.
    let loss = g.with_scope("loss", |g| -> dendrite_graph::Result<_> {
        let log_p = g.log_softmax(logits, 1)?;
        let target = g.one_hot(labels, 10)?;
        let picked = g.mul(target, log_p)?;
        let per_example = g.sum(picked, &[1])?;
        let mean = g.mean(per_example, &[0], false)?;
        g.neg(mean)
    })?;

    let mut fetches = vec![loss];
    fetches.extend(grad(&mut g, loss, &[w1, b1, w2, b2])?);
    Ok(Reference {
        graph: g,
        fetches,
        logits,
    })
}
// ANCHOR_END: reference_graph

// ANCHOR: by_hand
#[test]
fn training_by_hand() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite_graph::compile;
    use dendrite_nn::data::{synthetic_digits, EpochOrder};
    use dendrite_nn::{Adam, Optimizer};
    use ndarray::{ArrayView1, ArrayView2};

    let Reference {
        graph: mut g,
        fetches,
        logits,
    } = reference_graph(0)?;
    let params = g.parameters(); // kernel and bias of both layers, in the order grad used
    let mut train_step = compile(&g, &fetches)?; // loss and four gradients, one plan

    let train = synthetic_digits(3000, 1);
    let mut adam = Adam::<f32>::default();
    let sizes: Vec<usize> = params
        .iter()
        .map(|&p| g.value(p).map(|v| v.len()))
        .collect::<Result<_, _>>()?;
    adam.prepare(&sizes);

    let batch = 32;
    let mut x = vec![0.0_f32; batch * 784];
    let mut y = vec![0.0_f32; batch];
    let mut order = EpochOrder::new(train.len(), 42);
    let mut epoch_losses = Vec::new();
    let mut step = 0;
    for epoch in 0..3 {
        let mut total = 0.0;
        order.shuffle(epoch);
        for idx in order.batches(batch)? {
            let n = idx.len();
            train.write_images(idx, &mut x[..n * 784])?; // pixels / 255
            train.write_class_indices(idx, &mut y[..n])?;
            let xv = ArrayView2::from_shape((n, 784), &x[..n * 784])?.into_dyn();
            let yv = ArrayView1::from_shape(n, &y[..n])?.into_dyn();

            let out = train_step.run(&g, &[("inputs", xv), ("labels", yv)])?;
            total += f64::from(out.scalar(0)?) * n as f64;
            adam.begin_step(step);
            for (k, &p) in params.iter().enumerate() {
                let gradient = out.get(1 + k)?;
                let mut value = g.parameter_mut(p)?;
                let (Some(w), Some(d)) = (value.as_slice_mut(), gradient.as_slice()) else {
                    return Err("parameter buffers are contiguous".into());
                };
                adam.update(k, w, d)?; // in place: the plan reads the new values next step
            }
            step += 1;
        }
        epoch_losses.push(total / train.len() as f64);
    }
    assert!(epoch_losses[2] < epoch_losses[0]);

    // Accuracy on digits the model has not seen: argmax of the logits against the labels.
    let test = synthetic_digits(1000, 2);
    let prediction = g.argmax(logits, 1)?;
    let mut predict = compile(&g, &[prediction])?;
    let all: Vec<usize> = (0..test.len()).collect();
    let mut pixels = vec![0.0_f32; test.len() * 784];
    test.write_images(&all, &mut pixels)?;
    let xv = ArrayView2::from_shape((test.len(), 784), &pixels)?.into_dyn();
    let out = predict.run(&g, &[("inputs", xv)])?;
    let correct = out
        .get(0)?
        .iter()
        .zip(test.labels())
        .filter(|(&p, &y)| p == f32::from(y))
        .count();
    let accuracy = correct as f64 / test.len() as f64;
    assert!(accuracy > 0.8, "accuracy {accuracy}");
    Ok(())
}
// ANCHOR_END: by_hand

// ---------------------------------------------------------------------------------------------
// Chapter 8: the execution plan
// ---------------------------------------------------------------------------------------------

// ANCHOR: plan_stats
#[test]
fn the_training_plan() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite_graph::compile;
    use ndarray::{Array1, Array2};

    let Reference {
        graph: g, fetches, ..
    } = reference_graph(0)?;
    let mut plan = compile(&g, &fetches)?;
    println!(
        "{} nodes in the graph, {} steps, {} buffers",
        g.node_count(),
        plan.step_count(),
        plan.buffer_count()
    );
    // Not every node of the graph is a step (leaves and unneeded nodes are not)...
    assert!(plan.step_count() < g.node_count());
    // ...and liveness lets many steps share few buffers.
    assert!(plan.buffer_count() * 2 < plan.step_count());

    let x = Array2::<f32>::from_elem((32, 784), 0.5).into_dyn();
    let y = Array1::<f32>::from_iter((0..32).map(|i| (i % 10) as f32)).into_dyn();
    assert_eq!(plan.buffer_capacity(), 0); // nothing allocated before the first run
    plan.run(&g, &[("inputs", x.view()), ("labels", y.view())])?;
    let after_first = plan.buffer_capacity();
    for _ in 0..10 {
        plan.run(&g, &[("inputs", x.view()), ("labels", y.view())])?;
    }
    assert_eq!(plan.buffer_capacity(), after_first); // later runs reuse the same memory
    Ok(())
}
// ANCHOR_END: plan_stats

// ANCHOR: chain_buffers
#[test]
fn a_chain_needs_two_buffers() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite_graph::{compile, Graph};

    let mut g = Graph::<f32>::new();
    let mut x = g.input("x", [1000])?;
    for _ in 0..10_000 {
        x = g.tanh(x)?;
    }
    let plan = compile(&g, &[x])?;
    assert_eq!(plan.step_count(), 10_000);
    // Each value dies as soon as the next one is computed: two buffers take turns.
    assert_eq!(plan.buffer_count(), 2);
    Ok(())
}
// ANCHOR_END: chain_buffers

// ANCHOR: simplify
#[test]
fn simplifying_the_training_graph() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite_autodiff::simplify::simplify;
    use dendrite_graph::compile;
    use ndarray::{Array1, Array2};

    let Reference {
        graph: mut g,
        fetches,
        ..
    } = reference_graph(0)?;
    let simplified = simplify(&mut g, &fetches)?; // new nodes; the old ones stay, unused
    let stats = simplified.stats;
    println!(
        "{} nodes before, {} after: {} folded, {} merged, {} identities",
        stats.before, stats.after, stats.folded, stats.merged, stats.identities
    );
    assert!(stats.after < stats.before);

    // The same values from fewer steps.
    let mut original = compile(&g, &fetches)?;
    let mut smaller = compile(&g, &simplified.outputs)?;
    assert!(smaller.step_count() < original.step_count());
    let x = Array2::<f32>::from_shape_fn((8, 784), |(i, j)| ((i * 7 + j) % 10) as f32 / 10.0);
    let y = Array1::<f32>::from_shape_fn(8, |i| (i % 10) as f32);
    let feeds = [
        ("inputs", x.view().into_dyn()),
        ("labels", y.view().into_dyn()),
    ];
    let a = original.run(&g, &feeds)?.to_vec()?;
    let b = smaller.run(&g, &feeds)?.to_vec()?;
    for (a, b) in a.iter().zip(&b) {
        for (u, v) in a.iter().zip(b.iter()) {
            assert!((u - v).abs() <= 1e-5 * (1.0 + u.abs()), "{u} vs {v}");
        }
    }
    Ok(())
}
// ANCHOR_END: simplify

/// Every `{{#include file:anchor}}` of the book names a file that exists and an anchor that
/// the file defines. (mdBook includes nothing, silently, for a missing anchor.)
#[test]
fn book_includes_resolve() -> TestResult {
    use std::path::{Path, PathBuf};

    fn markdown_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() {
                markdown_files(&path, out)?;
            } else if path.extension().is_some_and(|e| e == "md") {
                out.push(path);
            }
        }
        Ok(())
    }

    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/src");
    let mut files = Vec::new();
    markdown_files(&src, &mut files)?;
    let mut problems = Vec::new();
    let mut includes = 0;
    for file in &files {
        let text = std::fs::read_to_string(file)?;
        let mut rest = text.as_str();
        while let Some(at) = rest.find("{{#include ") {
            let escaped = rest[..at].ends_with('\\');
            let after = &rest[at + "{{#include ".len()..];
            let Some(end) = after.find("}}") else { break };
            rest = &after[end..];
            if escaped {
                continue;
            }
            includes += 1;
            let target = after[..end].trim();
            let (path, anchor) = match target.rsplit_once(':') {
                Some((p, a)) if !a.chars().all(|c| c.is_ascii_digit()) => (p, Some(a)),
                _ => (target, None),
            };
            let full = file.parent().unwrap_or(&src).join(path);
            let Ok(content) = std::fs::read_to_string(&full) else {
                problems.push(format!("{}: no file {}", file.display(), full.display()));
                continue;
            };
            if let Some(anchor) = anchor {
                let has = |marker: &str| {
                    content
                        .lines()
                        .any(|l| l.trim() == format!("// {marker}: {anchor}"))
                };
                if !has("ANCHOR") || !has("ANCHOR_END") {
                    problems.push(format!(
                        "{}: no anchor `{anchor}` in {path}",
                        file.display()
                    ));
                }
            }
        }
    }
    assert!(includes > 50, "only {includes} includes found");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    Ok(())
}
