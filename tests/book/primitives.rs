//! Chapter 3: primitives and their derivatives.

use super::*;

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
    let missing: Vec<&str> = Op::<f64>::primitive_names()
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
