//! Chapter 4: the reverse sweep, gradients as graph nodes.

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
