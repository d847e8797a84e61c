//! Chapter 1: computational graphs.

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
