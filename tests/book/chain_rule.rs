//! Chapter 2: the chain rule, reverse and forward mode.

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
