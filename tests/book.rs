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
// A tour from scratch: a scalar reverse-mode engine, a neuron, a loss, a step
// ---------------------------------------------------------------------------------------------

/// Compares a listing's printed output with the copy the book shows (`docs/src/output/NAME.txt`),
/// so that the numbers on the page are the numbers the code prints. With `DENDRITE_BLESS=1`
/// the file is written instead.
fn shows(name: &str, printed: &str) -> TestResult {
    matches_file(&format!("docs/src/output/{name}.txt"), printed)
}

/// Compares `made` with the file at `path` (relative to the repository), or writes it there
/// when `DENDRITE_BLESS` is set: for outputs and figures that the book shows.
fn matches_file(path: &str, made: &str) -> TestResult {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    if std::env::var_os("DENDRITE_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().ok_or("no parent")?)?;
        std::fs::write(&path, made)?;
        return Ok(());
    }
    let shown = std::fs::read_to_string(&path)
        .map_err(|e| format!("{}: {e} (DENDRITE_BLESS=1 writes it)", path.display()))?;
    assert_eq!(
        shown,
        made,
        "{} is not what the listing makes now (DENDRITE_BLESS=1 rewrites it)",
        path.display()
    );
    Ok(())
}

// ANCHOR: scratch_engine
/// Reverse-mode automatic differentiation of scalars, from scratch.
mod scratch {
    /// A value on the tape, by its index.
    #[derive(Clone, Copy, Debug)]
    pub struct Var(usize);

    /// Every value computed so far and, for each, its operands with the local derivative
    /// ∂value/∂operand, taken in the forward pass while the numbers are at hand. An operand is
    /// always pushed before its users, so the tape's order is a topological order.
    #[derive(Default)]
    pub struct Tape {
        values: Vec<f64>,
        locals: Vec<Vec<(usize, f64)>>,
    }

    impl Tape {
        /// A new value with its local derivatives, as (operand index, ∂value/∂operand).
        pub fn push(&mut self, value: f64, locals: Vec<(usize, f64)>) -> Var {
            self.values.push(value);
            self.locals.push(locals);
            Var(self.values.len() - 1)
        }

        /// A leaf: an input or a parameter.
        pub fn var(&mut self, value: f64) -> Var {
            self.push(value, vec![])
        }

        pub fn value(&self, v: Var) -> f64 {
            self.values[v.0]
        }

        pub fn add(&mut self, a: Var, b: Var) -> Var {
            let y = self.value(a) + self.value(b);
            self.push(y, vec![(a.0, 1.0), (b.0, 1.0)]) // ∂(a + b)/∂a = 1, ∂(a + b)/∂b = 1
        }

        pub fn mul(&mut self, a: Var, b: Var) -> Var {
            let (x, y) = (self.value(a), self.value(b));
            self.push(x * y, vec![(a.0, y), (b.0, x)]) // ∂(ab)/∂a = b, ∂(ab)/∂b = a
        }

        pub fn powi(&mut self, a: Var, n: i32) -> Var {
            let x = self.value(a);
            self.push(x.powi(n), vec![(a.0, f64::from(n) * x.powi(n - 1))])
        }

        pub fn tanh(&mut self, a: Var) -> Var {
            let y = self.value(a).tanh();
            self.push(y, vec![(a.0, 1.0 - y * y)]) // tanh' = 1 - tanh²
        }

        /// ∂output/∂v for every value v on the tape: one sweep in reverse tape order. Each
        /// value's cotangent is complete when the sweep reaches it (all its users come later
        /// on the tape), and is *added* into its operands', so a value used twice gets both.
        pub fn grad(&self, output: Var) -> Vec<f64> {
            let mut bar = vec![0.0; self.values.len()];
            bar[output.0] = 1.0;
            for i in (0..=output.0).rev() {
                for &(operand, local) in &self.locals[i] {
                    bar[operand] += bar[i] * local;
                }
            }
            bar
        }
    }

    impl Var {
        /// Where this value's derivative is in what `Tape::grad` returns.
        pub fn index(self) -> usize {
            self.0
        }
    }
}
// ANCHOR_END: scratch_engine

// ANCHOR: scratch_chain_rule
#[test]
fn scratch_chain_rule() {
    use scratch::Tape;

    // f(x) = x·x + x: x is used three times, and its derivative 2x + 1 adds all three paths.
    let mut t = Tape::default();
    let x = t.var(3.0);
    let xx = t.mul(x, x);
    let f = t.add(xx, x);
    let bar = t.grad(f);
    println!("f(3) = {}, f'(3) = {}", t.value(f), bar[x.index()]);
    assert_eq!(t.value(f), 12.0);
    assert_eq!(bar[x.index()], 7.0);
}
// ANCHOR_END: scratch_chain_rule

// ANCHOR: scratch_neuron
/// One neuron, y = tanh(w₁x₁ + w₂x₂ + b), learns the OR of two inputs (targets ±1) by
/// gradient descent on the squared error. Returns what it prints.
fn train_a_neuron() -> String {
    use scratch::Tape;
    use std::fmt::Write;

    let data = [
        ([0.0, 0.0], -1.0),
        ([0.0, 1.0], 1.0),
        ([1.0, 0.0], 1.0),
        ([1.0, 1.0], 1.0),
    ];
    let mut params = [0.1, -0.2, 0.0]; // w₁, w₂, b
    let learning_rate = 0.1;
    let mut out = String::new();
    for step in 0..=60 {
        // Forward: a fresh tape each step (the graph is rebuilt every time: define-by-run).
        let mut t = Tape::default();
        let [w1, w2, b] = params.map(|p| t.var(p));
        let mut loss = t.var(0.0);
        for ([x1, x2], target) in data {
            let (x1, x2, minus_target) = (t.var(x1), t.var(x2), t.var(-target));
            let (a, c) = (t.mul(w1, x1), t.mul(w2, x2));
            let z = t.add(a, c);
            let z = t.add(z, b);
            let y = t.tanh(z);
            let error = t.add(y, minus_target);
            let squared = t.powi(error, 2);
            loss = t.add(loss, squared);
        }
        // Backward: ∂loss/∂ every value, in one sweep.
        let bar = t.grad(loss);
        // Update: a small step against the gradient.
        for (p, v) in params.iter_mut().zip([w1, w2, b]) {
            *p -= learning_rate * bar[v.index()];
        }
        if step % 15 == 0 {
            let [g1, g2, gb] = [w1, w2, b].map(|v| bar[v.index()]);
            writeln!(
                out,
                "step {step:2}: loss {:.4}  gradient ({g1:+.4}, {g2:+.4}, {gb:+.4})",
                t.value(loss)
            )
            .ok();
        }
    }
    let [w1, w2, b] = params;
    writeln!(out, "learned: w1 = {w1:.3}, w2 = {w2:.3}, b = {b:.3}").ok();
    out
}

#[test]
fn a_neuron_learns_or() -> TestResult {
    let printed = train_a_neuron();
    print!("{printed}");
    shows("scratch_neuron", &printed)
}
// ANCHOR_END: scratch_neuron

// ANCHOR: scratch_vs_dendrite
#[test]
fn the_same_gradient_from_dendrite() -> TestResult {
    use dendrite_autodiff::grad;
    use dendrite_graph::{compile, Graph};
    use ndarray::arr1;

    // The neuron's loss on the four examples at once, as tensors: x is [4, 2], w is [2].
    let mut g = Graph::<f64>::new();
    let x = g.constant(ndarray::arr2(&[[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]).into_dyn());
    let target = g.constant(arr1(&[-1.0, 1.0, 1.0, 1.0]).into_dyn());
    let w = g.parameter("w", arr1(&[0.1, -0.2]).into_dyn())?;
    let b = g.parameter("b", ndarray::arr0(0.0).into_dyn())?;
    let w_column = g.reshape(w, [2, 1])?;
    let xw = g.matmul(x, w_column)?;
    let xw = g.reshape(xw, [4])?;
    let z = g.add(xw, b)?; // b is broadcast to the four examples
    let y = g.tanh(z)?;
    let error = g.sub(y, target)?;
    let squared = g.square(error)?;
    let loss = g.sum(squared, &[0])?;
    let grads = grad(&mut g, loss, &[w, b])?;

    let mut plan = compile(&g, &[loss, grads[0], grads[1]])?;
    let out = plan.run(&g, &[])?;
    let (dw, db) = (out.get(1)?, out.scalar(2)?);
    println!(
        "loss {:.4}  gradient ({:+.4}, {:+.4}, {db:+.4})",
        out.scalar(0)?,
        dw[[0]],
        dw[[1]]
    );

    // The scratch engine's first step, on the same numbers, gives the same gradient.
    let first = train_a_neuron();
    let line = first.lines().next().ok_or("no output")?;
    assert_eq!(
        line,
        format!(
            "step  0: loss {:.4}  gradient ({:+.4}, {:+.4}, {db:+.4})",
            out.scalar(0)?,
            dw[[0]],
            dw[[1]]
        )
    );
    Ok(())
}
// ANCHOR_END: scratch_vs_dendrite

// ANCHOR: scratch_figure
/// The neuron's graph for one example, x = (1, 0) with target 1, drawn with the value (v) and
/// the cotangent (v̄ = ∂L/∂v) of every node, both computed by the scratch engine.
fn neuron_graph_svg() -> String {
    use scratch::Tape;
    use std::fmt::Write;

    let mut t = Tape::default();
    let (w1, w2, b) = (t.var(0.1), t.var(-0.2), t.var(0.0));
    let (x1, x2, minus_target) = (t.var(1.0), t.var(0.0), t.var(-1.0));
    let a = t.mul(w1, x1);
    let c = t.mul(w2, x2);
    let s = t.add(a, c);
    let z = t.add(s, b);
    let y = t.tanh(z);
    let e = t.add(y, minus_target);
    let loss = t.powi(e, 2);
    let bar = t.grad(loss);

    // (label, node, column, row) and the edges operand -> user.
    let nodes = [
        ("w1", w1, 0, 0),
        ("x1", x1, 0, 1),
        ("w2", w2, 0, 2),
        ("x2", x2, 0, 3),
        ("w1 * x1", a, 1, 0),
        ("w2 * x2", c, 1, 2),
        ("b", b, 1, 3),
        ("+", s, 2, 1),
        ("+ b", z, 3, 2),
        ("tanh", y, 4, 1),
        ("-target", minus_target, 4, 3),
        ("y - target", e, 5, 2),
        ("L = e^2", loss, 6, 2),
    ];
    let edges = [
        (0, 4),
        (1, 4),
        (2, 5),
        (3, 5),
        (4, 7),
        (5, 7),
        (7, 8),
        (6, 8),
        (8, 9),
        (9, 11),
        (10, 11),
        (11, 12),
    ];
    let (bw, bh, gx, gy) = (100.0, 46.0, 24.0, 22.0);
    let centre = |col: i32, row: i32| {
        (
            16.0 + f64::from(col) * (bw + gx) + bw / 2.0,
            16.0 + f64::from(row) * (bh + gy) + bh / 2.0,
        )
    };
    let (w, h) = (32.0 + 7.0 * bw + 6.0 * gx, 32.0 + 4.0 * bh + 3.0 * gy);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
         font-family=\"sans-serif\" font-size=\"12\" text-anchor=\"middle\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    for (from, to) in edges {
        let ((x0, y0), (x1, y1)) = (
            centre(nodes[from].2, nodes[from].3),
            centre(nodes[to].2, nodes[to].3),
        );
        let _ = writeln!(
            svg,
            "<line x1=\"{:.0}\" y1=\"{y0:.0}\" x2=\"{:.0}\" y2=\"{y1:.0}\" stroke=\"#888\"/>",
            x0 + bw / 2.0,
            x1 - bw / 2.0
        );
    }
    for (label, node, col, row) in nodes {
        let (cx, cy) = centre(col, row);
        let v = t.value(node);
        let v_bar = bar[node.index()];
        let _ = writeln!(
            svg,
            "<rect x=\"{:.0}\" y=\"{:.0}\" width=\"{bw}\" height=\"{bh}\" rx=\"6\" fill=\"#f4f1e8\" \
             stroke=\"#555\"/><text x=\"{cx:.0}\" y=\"{:.0}\" font-weight=\"bold\">{label}</text>\
             <text x=\"{cx:.0}\" y=\"{:.0}\">v = {v:.4}</text>\
             <text x=\"{cx:.0}\" y=\"{:.0}\" fill=\"#b22\">v\u{304} = {v_bar:.4}</text>",
            cx - bw / 2.0,
            cy - bh / 2.0,
            cy - 8.0,
            cy + 6.0,
            cy + 19.0
        );
    }
    svg.push_str("</svg>\n");
    svg
}

#[test]
fn the_neuron_graph_figure() -> TestResult {
    matches_file("docs/src/figures/scratch_neuron.svg", &neuron_graph_svg())
}
// ANCHOR_END: scratch_figure

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
        .filter(|&(&p, &y)| (p > 0.5) == (y > 0.5))
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

// ANCHOR: xor_boundary
/// XOR's model (8 tanh units, a sigmoid output) trained as above; its prediction on a grid
/// over [-0.25, 1.25]², drawn as an SVG: each cell coloured by p in five steps (blue for p near
/// 0, red for p near 1), the four examples as dots (white where XOR is true, black where false).
fn xor_boundary_svg() -> Result<String, Box<dyn Error>> {
    use dendrite_nn::{Activation, Adam, Dense, FitConfig, Loss, Sequential};
    use ndarray::{array, Array2};
    use std::fmt::Write;

    let x = array![[0.0_f32, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]];
    let y = array![0.0_f32, 1.0, 1.0, 0.0];
    let mut model = Sequential::new().with_seed(1);
    model.add(Dense::new(8).input_dim(2).activation(Activation::Tanh));
    model.add(Dense::new(1).activation(Activation::Sigmoid));
    model.compile(Adam::new(0.05), Loss::BinaryCrossentropy, &[])?;
    model.fit(
        &(x.view(), y.view()),
        FitConfig::default().epochs(500).batch_size(4).verbosity(0),
    )?;

    let (n, cell) = (30, 10.0);
    let at = |i: usize| -0.25 + 1.5 * (i as f32 + 0.5) / n as f32;
    let grid = Array2::from_shape_fn((n * n, 2), |(k, j)| at(if j == 0 { k % n } else { k / n }));
    let p = model.predict(&grid.view(), 256)?;
    let colours = ["#4575b4", "#91bfdb", "#f7f7f7", "#fc8d59", "#d73027"];
    let size = n as f64 * cell;
    let mut svg =
        format!("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{size}\" height=\"{size}\">\n");
    for k in 0..n * n {
        let level = ((p[[k, 0]] * 5.0) as usize).min(4);
        let (col, row) = ((k % n) as f64, (n - 1 - k / n) as f64); // w₂ grows upwards
        writeln!(
            svg,
            "<rect x=\"{}\" y=\"{}\" width=\"{cell}\" height=\"{cell}\" fill=\"{}\"/>",
            col * cell,
            row * cell,
            colours[level]
        )?;
    }
    for (point, label) in x.rows().into_iter().zip(&y) {
        let to_px = |v: f32| f64::from((v + 0.25) / 1.5) * size;
        let fill = if *label > 0.5 { "white" } else { "black" }; // XOR true: white
        writeln!(
            svg,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"7\" fill=\"{fill}\" stroke=\"black\"/>",
            to_px(point[0]),
            size - to_px(point[1])
        )?;
    }
    svg.push_str("</svg>\n");
    Ok(svg)
}

#[test]
fn xor_decision_boundary_figure() -> TestResult {
    let svg = xor_boundary_svg()?;
    // Both classes appear on the grid: the boundary is not one line, as no linear model's is.
    assert!(svg.contains("#4575b4\"/>") && svg.contains("#d73027\"/>"));
    matches_file("docs/src/figures/xor_boundary.svg", &svg)
}
// ANCHOR_END: xor_boundary

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
        opt.prepare(&[1])?;
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
        opt.prepare(&[2])?;
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

// ANCHOR: optimizer_paths
/// An optimizer's name and the points it visits.
type Path2 = (&'static str, Vec<[f64; 2]>);

/// The path of each optimizer on f(w) = ½ (w₁² + 50 w₂²) from w = (-1, 0.2), 60 steps, at the
/// settings of the loop above (the gradient is A w, written out).
fn optimizer_paths() -> Result<Vec<Path2>, dendrite_nn::NnError> {
    use dendrite_nn::{Adam, Optimizer, Sgd};

    let mut sgd = Sgd::new(2.0 / 51.0);
    let mut momentum = Sgd::new(4.0 / (50f64.sqrt() + 1.0).powi(2)).momentum(0.566);
    let mut adam = Adam::new(0.05);
    let optimizers: [(&'static str, &mut dyn Optimizer<f64>); 3] = [
        ("SGD", &mut sgd),
        ("momentum", &mut momentum),
        ("Adam", &mut adam),
    ];
    let mut paths = Vec::new();
    for (name, opt) in optimizers {
        opt.prepare(&[2])?;
        let mut w = [-1.0, 0.2];
        let mut path = vec![w];
        for t in 0..60 {
            let gradient = [w[0], 50.0 * w[1]];
            opt.begin_step(t);
            opt.update(0, &mut w, &gradient)?;
            path.push(w);
        }
        paths.push((name, path));
    }
    Ok(paths)
}

/// The paths drawn over the level sets of f, as a small SVG (no plotting library: a few
/// ellipses, polylines and labels).
fn paths_svg(paths: &[Path2]) -> String {
    use std::fmt::Write;

    let (width, height) = (560.0, 360.0);
    // w₁ in [-1.1, 0.3] and w₂ in [-0.6, 0.6] onto the picture, a caption line below.
    let px = |w: [f64; 2]| {
        (
            (w[0] + 1.1) / 1.4 * width,
            (0.6 - w[1]) / 1.2 * (height - 24.0),
        )
    };
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"13\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    let (cx, cy) = px([0.0, 0.0]);
    for level in [0.005_f64, 0.05, 0.2, 0.5, 1.0, 2.0, 4.0, 8.0] {
        // f = level: w₁ = ±√(2 level), w₂ = ±√(2 level / 50).
        let (rx, ry) = ((2.0 * level).sqrt(), (2.0 * level / 50.0).sqrt());
        let _ = writeln!(
            svg,
            "<ellipse cx=\"{cx:.1}\" cy=\"{cy:.1}\" rx=\"{:.1}\" ry=\"{:.1}\" fill=\"none\" stroke=\"#ccc\"/>",
            rx / 1.4 * width,
            ry / 1.2 * (height - 24.0)
        );
    }
    for ((name, path), (colour, y)) in
        paths
            .iter()
            .zip([("#d62728", 20), ("#1f77b4", 38), ("#2ca02c", 56)])
    {
        let points: Vec<String> = path
            .iter()
            .map(|&w| {
                let (x, y) = px(w);
                format!("{x:.1},{y:.1}")
            })
            .collect();
        let _ = writeln!(
            svg,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\"/>",
            points.join(" ")
        );
        let _ = writeln!(
            svg,
            "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{colour}\" stroke-width=\"3\"/>\
             <text x=\"{}\" y=\"{}\">{name}</text>",
            width - 120.0,
            y - 4,
            width - 100.0,
            y - 4,
            width - 94.0,
            y
        );
    }
    let _ = writeln!(
        svg,
        "<rect y=\"{}\" width=\"100%\" height=\"24\" fill=\"white\"/><text x=\"8\" y=\"{}\">f(w) = (w1\u{b2} + 50 w2\u{b2}) / 2, from (-1, 0.2), 60 steps; minimum at the centre</text>",
        height - 24.0,
        height - 8.0
    );
    svg.push_str("</svg>\n");
    svg
}

#[test]
fn optimizer_paths_figure() -> TestResult {
    let paths = optimizer_paths()?;
    for (name, path) in &paths {
        let last = path[path.len() - 1];
        println!("{name:>8}: ends at ({:+.4}, {:+.4})", last[0], last[1]);
    }
    let distance = |k: usize| {
        let w = paths[k].1[60];
        (w[0] * w[0] + w[1] * w[1]).sqrt()
    };
    assert!(distance(1) < distance(0) / 10.0); // momentum: far closer than SGD
    assert!(distance(2) < distance(0)); // Adam too, at this learning rate
    matches_file("docs/src/figures/optimizers.svg", &paths_svg(&paths))
}
// ANCHOR_END: optimizer_paths

// ---------------------------------------------------------------------------------------------
// Initialization, vanishing and exploding gradients
// ---------------------------------------------------------------------------------------------

// ANCHOR: deep_stack
/// How to draw a layer's initial weights, each from U(-l, l) (variance l²/3) for a layer with
/// `fan_in` inputs and `fan_out` outputs.
#[derive(Clone, Copy, Debug)]
enum InitRule {
    /// A fixed standard deviation, whatever the layer's size.
    Std(f64),
    /// Glorot & Bengio (2010): variance 2 / (fan_in + fan_out), l = √(6 / (fan_in + fan_out)).
    Glorot,
    /// He et al. (2015), for ReLU: variance 2 / fan_in, l = √(6 / fan_in).
    He,
}

impl InitRule {
    fn limit(self, fan_in: usize, fan_out: usize) -> f64 {
        match self {
            InitRule::Std(s) => s * 3f64.sqrt(),
            InitRule::Glorot => (6.0 / (fan_in + fan_out) as f64).sqrt(),
            InitRule::He => (6.0 / fan_in as f64).sqrt(),
        }
    }
}

/// A stack of `depth` dense layers (no bias) of `width` units with activation `act`, started
/// with `init`, on a batch of 64 standard-normal-ish inputs. Returns, per layer, the standard
/// deviation of its activations and the norm of the loss's gradient with respect to its kernel,
/// for the loss L = mean over the batch of the sum of the last layer's outputs.
fn deep_stack(
    act: &str,
    init: InitRule,
    depth: usize,
    width: usize,
) -> Result<(Vec<f64>, Vec<f64>), Box<dyn std::error::Error>> {
    use dendrite_autodiff::grad;
    use dendrite_graph::{compile, Graph};
    use ndarray::Array2;

    let mut state = 0x9E37_79B9_7F4A_7C15_u64; // xorshift: the same numbers on every run
    let mut uniform = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0 // U(-1, 1)
    };
    let batch = 64;
    let mut g = Graph::<f64>::new();
    let x = Array2::from_shape_fn((batch, width), |_| uniform() * 3f64.sqrt()); // variance 1
    let mut h = g.constant(x.into_dyn());
    let (mut kernels, mut outputs) = (Vec::new(), Vec::new());
    for k in 0..depth {
        let l = init.limit(width, width);
        let w = Array2::from_shape_fn((width, width), |_| uniform() * l);
        let w = g.parameter(&format!("w{k}"), w.into_dyn())?;
        let z = g.matmul(h, w)?;
        h = match act {
            "tanh" => g.tanh(z)?,
            "relu" => g.relu(z)?,
            "sigmoid" => g.sigmoid(z)?,
            other => return Err(format!("unknown activation {other}").into()),
        };
        kernels.push(w);
        outputs.push(h);
    }
    let per_example = g.sum(h, &[1])?;
    let loss = g.mean(per_example, &[0], false)?;
    let grads = grad(&mut g, loss, &kernels)?;
    let fetches: Vec<_> = outputs.iter().chain(&grads).copied().collect();
    let mut plan = compile(&g, &fetches)?;
    let out = plan.run(&g, &[])?;
    let (mut stds, mut norms) = (Vec::new(), Vec::new());
    for k in 0..depth {
        let a = out.get(k)?;
        let mean = a.mean().unwrap_or(0.0);
        stds.push((a.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / a.len() as f64).sqrt());
        norms.push(
            out.get(depth + k)?
                .iter()
                .map(|v| v * v)
                .sum::<f64>()
                .sqrt(),
        );
    }
    Ok((stds, norms))
}
// ANCHOR_END: deep_stack

// ANCHOR: initialization
#[test]
fn initialization_keeps_the_signal() -> TestResult {
    use std::fmt::Write;

    let (depth, width) = (10, 64);
    let runs = [
        ("tanh", InitRule::Std(0.01)),
        ("tanh", InitRule::Std(1.0)),
        ("tanh", InitRule::Glorot),
        ("relu", InitRule::Glorot),
        ("relu", InitRule::He),
    ];
    let mut s = String::from("std of the activations, layer 1 to 10\n");
    let mut last = Vec::new();
    for (act, init) in runs {
        let (stds, _) = deep_stack(act, init, depth, width)?;
        let shown: Vec<String> = stds.iter().map(|v| format!("{v:.3}")).collect();
        writeln!(s, "{:<22} {}", format!("{act}, {init:?}"), shown.join(" "))?;
        last.push(stds[depth - 1]);
    }
    print!("{s}");
    // Too small: the signal dies out. Glorot keeps tanh's, He keeps ReLU's; Glorot halves
    // ReLU's variance at every layer (ReLU zeroes half of it), so its std falls by √2 a layer.
    assert!(last[0] < 1e-6);
    assert!(last[2] > 0.1 && last[4] > 0.3);
    assert!(last[3] < last[4] / 10.0);
    shows("initialization", &s)
}
// ANCHOR_END: initialization

// ANCHOR: vanishing
#[test]
fn vanishing_and_exploding_gradients() -> TestResult {
    use std::fmt::Write;

    let (depth, width) = (10, 64);
    let runs = [
        ("sigmoid", InitRule::Glorot),
        ("tanh", InitRule::Std(1.0)),
        ("tanh", InitRule::Glorot),
        ("relu", InitRule::He),
        ("relu", InitRule::Std(0.5)),
    ];
    let mut s = String::from("norm of dL/dW, layer 1 to 10\n");
    let (mut ratio, mut first) = (Vec::new(), Vec::new());
    for (act, init) in runs {
        let (_, norms) = deep_stack(act, init, depth, width)?;
        let shown: Vec<String> = norms.iter().map(|v| format!("{v:.1e}")).collect();
        writeln!(s, "{:<22} {}", format!("{act}, {init:?}"), shown.join(" "))?;
        ratio.push(norms[0] / norms[depth - 1]); // first layer against last
        first.push(norms[0]);
    }
    print!("{s}");
    assert!(ratio[0] < 1e-3); // sigmoid: the first layers barely learn
    assert!(ratio[1] > 100.0); // tanh with weights too large: it grows on the way down
    for r in [ratio[2], ratio[3]] {
        assert!(r > 0.1 && r < 10.0); // tanh-Glorot, ReLU-He: the same order at every layer
    }
    assert!(first[4] > 1e3 * first[3]); // ReLU, weights too large: every gradient is huge
    shows("vanishing", &s)
}
// ANCHOR_END: vanishing

// ---------------------------------------------------------------------------------------------
// The backward pass in numbers: the reference model's graph at toy size
// ---------------------------------------------------------------------------------------------

// ANCHOR: backward_numbers
/// The reference model's layers (dense + ReLU, dense, sparse cross-entropy from the logits) at
/// toy size: a batch of B = 2 examples of 3 inputs, 2 hidden units, 2 classes. The layer-wise
/// formulas of the backward pass, computed by hand with ndarray, next to what `grad` derives;
/// returns what it prints.
fn backward_in_numbers() -> Result<String, Box<dyn std::error::Error>> {
    use dendrite_autodiff::grad;
    use dendrite_graph::{compile, Graph};
    use ndarray::{arr1, arr2, Array2, Axis};
    use std::fmt::Write;

    let x = arr2(&[[1.0, 2.0, 0.5], [0.0, 1.0, -1.0]]);
    let labels = arr1(&[1.0, 0.0]); // the class of each example
    let w1 = arr2(&[[0.2, -0.5], [0.1, 0.3], [-0.4, 0.6]]);
    let b1 = arr1(&[0.0, 0.1]);
    let w2 = arr2(&[[0.7, -0.3], [-0.2, 0.5]]);
    let b2 = arr1(&[0.05, -0.05]);

    // Dendrite: the graph of the reference model, and its gradient.
    let mut g = Graph::<f64>::new();
    let xs = g.input("inputs", [None, Some(3)])?;
    let ys = g.input("labels", [None])?;
    let pw1 = g.parameter("w1", w1.clone().into_dyn())?;
    let pb1 = g.parameter("b1", b1.clone().into_dyn())?;
    let pw2 = g.parameter("w2", w2.clone().into_dyn())?;
    let pb2 = g.parameter("b2", b2.clone().into_dyn())?;
    let xw = g.matmul(xs, pw1)?;
    let z1 = g.add(xw, pb1)?;
    let h = g.relu(z1)?;
    let hw = g.matmul(h, pw2)?;
    let logits = g.add(hw, pb2)?;
    let log_p = g.log_softmax(logits, 1)?;
    let target = g.one_hot(ys, 2)?;
    let picked = g.mul(target, log_p)?;
    let per_example = g.sum(picked, &[1])?;
    let mean = g.mean(per_example, &[0], false)?;
    let loss = g.neg(mean)?;
    let grads = grad(&mut g, loss, &[pw1, pb1, pw2, pb2])?;
    let mut plan = compile(&g, &[loss, grads[0], grads[1], grads[2], grads[3]])?;
    let out = plan.run(
        &g,
        &[
            ("inputs", x.view().into_dyn()),
            ("labels", labels.view().into_dyn()),
        ],
    )?;

    // By hand, layer by layer.
    let b = x.nrows() as f64;
    let z1 = x.dot(&w1) + &b1;
    let h = z1.mapv(|v| v.max(0.0));
    let z2 = h.dot(&w2) + &b2;
    let p = {
        let e = z2.mapv(f64::exp);
        let rows = e.sum_axis(Axis(1)).insert_axis(Axis(1));
        e / rows
    };
    let y = Array2::from_shape_fn((2, 2), |(i, c)| f64::from(labels[i] as usize == c));
    let loss_by_hand = -(&y * &p.mapv(f64::ln)).sum() / b;
    let delta2 = (&p - &y) / b; // ∂loss/∂logits
    let w2_bar = h.t().dot(&delta2);
    let b2_bar = delta2.sum_axis(Axis(0));
    let h_bar = delta2.dot(&w2.t());
    let delta1 = &h_bar * &z1.mapv(|v| f64::from(v > 0.0)); // ∂loss/∂z1: ReLU's mask
    let w1_bar = x.t().dot(&delta1);
    let b1_bar = delta1.sum_axis(Axis(0));

    let mut s = String::new();
    let rows = |a: &Array2<f64>| {
        a.rows()
            .into_iter()
            .map(|r| {
                r.iter()
                    .map(|v| format!("{v:+.4}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect::<Vec<_>>()
            .join(" | ")
    };
    writeln!(s, "forward")?;
    writeln!(s, "  z1 = x W1 + b1       {}", rows(&z1))?;
    writeln!(s, "  h  = relu(z1)        {}", rows(&h))?;
    writeln!(s, "  z2 = h W2 + b2       {}", rows(&z2))?;
    writeln!(s, "  p  = softmax(z2)     {}", rows(&p))?;
    writeln!(s, "  loss = mean -log p_y {loss_by_hand:.4}")?;
    writeln!(s, "backward")?;
    writeln!(s, "  d2 = (p - y) / B     {}", rows(&delta2))?;
    writeln!(s, "  W2_bar = h^T d2      {}", rows(&w2_bar))?;
    writeln!(
        s,
        "  b2_bar = sum_rows d2 {}",
        rows(&b2_bar.clone().insert_axis(Axis(0)))
    )?;
    writeln!(s, "  h_bar = d2 W2^T      {}", rows(&h_bar))?;
    writeln!(s, "  d1 = h_bar * [z1>0]  {}", rows(&delta1))?;
    writeln!(s, "  W1_bar = x^T d1      {}", rows(&w1_bar))?;
    writeln!(
        s,
        "  b1_bar = sum_rows d1 {}",
        rows(&b1_bar.clone().insert_axis(Axis(0)))
    )?;

    // What the reverse sweep derived from the primitives' rules is the same, to rounding.
    let close = |a: ndarray::ArrayViewD<'_, f64>, b: ndarray::ArrayViewD<'_, f64>| {
        a.shape() == b.shape() && a.iter().zip(b.iter()).all(|(u, v)| (u - v).abs() < 1e-12)
    };
    assert!((out.scalar(0)? - loss_by_hand).abs() < 1e-12);
    assert!(close(out.get(1)?, w1_bar.view().into_dyn()));
    assert!(close(out.get(2)?, b1_bar.view().into_dyn()));
    assert!(close(out.get(3)?, w2_bar.view().into_dyn()));
    assert!(close(out.get(4)?, b2_bar.view().into_dyn()));
    writeln!(
        s,
        "grad(loss, [w1, b1, w2, b2]) gives the same four gradients"
    )?;
    Ok(s)
}

#[test]
fn the_backward_pass_in_numbers() -> TestResult {
    let printed = backward_in_numbers()?;
    print!("{printed}");
    shows("backward_numbers", &printed)
}
// ANCHOR_END: backward_numbers

// ---------------------------------------------------------------------------------------------
// Overfitting, validation and regularization
// ---------------------------------------------------------------------------------------------

// ANCHOR: overfitting
/// Least squares with an L2 penalty (ridge regression) for a polynomial of degree `degree`:
/// the coefficients c minimizing Σ (p_c(x_n) - y_n)² + λ Σ c_k², i.e. solving
/// (XᵀX + λI) c = Xᵀy for the matrix X of powers x_n^k, by Gaussian elimination.
fn ridge_fit(x: &[f64], y: &[f64], degree: usize, lambda: f64) -> Vec<f64> {
    let k = degree + 1;
    let mut a = vec![vec![0.0; k + 1]; k]; // [XᵀX + λI | Xᵀy]
    for (&xn, &yn) in x.iter().zip(y) {
        let powers: Vec<f64> = (0..k).map(|i| xn.powi(i as i32)).collect();
        for (row, &pi) in a.iter_mut().zip(&powers) {
            for (cell, &pj) in row.iter_mut().zip(&powers) {
                *cell += pi * pj;
            }
            row[k] += pi * yn;
        }
    }
    for (i, row) in a.iter_mut().enumerate() {
        row[i] += lambda;
    }
    for col in 0..k {
        let pivot = (col..k)
            .max_by(|&p, &q| a[p][col].abs().total_cmp(&a[q][col].abs()))
            .unwrap_or(col);
        a.swap(col, pivot);
        let (top, below) = a.split_at_mut(col + 1);
        let pivot_row = &top[col];
        for row in below {
            let f = row[col] / pivot_row[col];
            for (x, p) in row[col..].iter_mut().zip(&pivot_row[col..]) {
                *x -= f * p;
            }
        }
    }
    let mut c = vec![0.0; k];
    for (i, row) in a.iter().enumerate().rev() {
        let rest: f64 = row[i + 1..k]
            .iter()
            .zip(&c[i + 1..])
            .map(|(r, c)| r * c)
            .sum();
        c[i] = (row[k] - rest) / row[i];
    }
    c
}

fn mean_squared_error(c: &[f64], x: &[f64], y: &[f64]) -> f64 {
    let p = |x: f64| c.iter().rev().fold(0.0, |acc, ck| acc * x + ck);
    x.iter()
        .zip(y)
        .map(|(&x, &y)| (p(x) - y).powi(2))
        .sum::<f64>()
        / x.len() as f64
}

#[test]
fn overfitting_and_regularization() -> TestResult {
    use std::fmt::Write;

    // y = sin(πx) + noise: 12 examples to train on, 200 held out to validate.
    let mut state = 0x2545_F491_4F6C_DD1D_u64;
    let mut uniform = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    };
    let mut sample = |n: usize| -> (Vec<f64>, Vec<f64>) {
        let x: Vec<f64> = (0..n).map(|_| uniform()).collect();
        let y = x
            .iter()
            .map(|&x| (std::f64::consts::PI * x).sin() + 0.2 * uniform())
            .collect();
        (x, y)
    };
    let (x_train, y_train) = sample(12);
    let (x_valid, y_valid) = sample(200);

    let mut s = String::from("degree  lambda   train MSE  validation MSE\n");
    let mut results = Vec::new();
    for (degree, lambda) in [(1, 0.0), (3, 0.0), (9, 0.0), (9, 1e-4), (9, 1e-2), (9, 1.0)] {
        let c = ridge_fit(&x_train, &y_train, degree, lambda);
        let train = mean_squared_error(&c, &x_train, &y_train);
        let valid = mean_squared_error(&c, &x_valid, &y_valid);
        writeln!(s, "{degree:6}  {lambda:<7}  {train:9.4}  {valid:14.4}")?;
        results.push((train, valid));
    }
    print!("{s}");
    // Degree 9 fits the 12 training points better than degree 3, noise included, and new
    // data far worse; a penalty on the coefficients brings it back, a too large one underfits.
    assert!(results[2].0 < results[1].0 && results[2].1 > 10.0 * results[1].1);
    assert!(results[3].1 < results[2].1 / 10.0);
    assert!(results[5].1 > results[3].1);
    shows("overfitting", &s)
}
// ANCHOR_END: overfitting

// ANCHOR: learning_curves
/// The reference model trained on only 100 synthetic digits for 100 epochs, validated on 1000
/// others after each epoch: the training and validation losses per epoch.
fn learning_curves() -> Result<dendrite_nn::History, Box<dyn Error>> {
    use dendrite_nn::data::synthetic_digits;
    use dendrite_nn::{Activation, Adam, Dense, FitConfig, Loss, Metric, Sequential};

    let (train, valid) = (synthetic_digits(100, 1)?, synthetic_digits(1000, 2)?);
    let mut model = Sequential::new().with_seed(3);
    model.add(Dense::new(32).input_dim(784).activation(Activation::Relu));
    model.add(Dense::new(10).activation(Activation::Softmax));
    model.compile(
        Adam::new(0.01),
        Loss::SparseCategoricalCrossentropy,
        &[Metric::Accuracy],
    )?;
    let config = FitConfig::default()
        .epochs(100)
        .batch_size(32)
        .validation_data(&valid)
        .verbosity(0);
    Ok(model.fit(&train, config)?)
}

/// Both curves as a small SVG line chart, the loss on a logarithmic axis.
fn curves_svg(history: &dendrite_nn::History) -> String {
    use std::fmt::Write;

    let (w, h, left, bottom) = (560.0, 300.0, 50.0, 30.0);
    let epochs = history.loss.len() as f64;
    let (lo, hi) = (1e-4_f64.log10(), 10f64.log10());
    let px = |epoch: usize, loss: f64| {
        let x = left + (epoch as f64 + 1.0) / epochs * (w - left - 10.0);
        let y = 10.0 + (hi - loss.max(1e-4).log10()) / (hi - lo) * (h - bottom - 10.0);
        format!("{x:.1},{y:.1}")
    };
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    for (decade, label) in [
        (10.0, "10"),
        (1.0, "1"),
        (0.1, "0.1"),
        (0.01, "0.01"),
        (0.001, "0.001"),
        (1e-4, "0.0001"),
    ] {
        let y = 10.0 + (hi - f64::log10(decade)) / (hi - lo) * (h - bottom - 10.0);
        let _ = writeln!(
            svg,
            "<line x1=\"{left}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{label}</text>",
            w - 10.0,
            left - 4.0,
            y + 4.0
        );
    }
    for (curve, colour, name, y) in [
        (&history.loss, "#1f77b4", "training loss", 24),
        (&history.val_loss, "#d62728", "validation loss", 42),
    ] {
        let points: Vec<String> = curve.iter().enumerate().map(|(e, &l)| px(e, l)).collect();
        let _ = writeln!(
            svg,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"/>\
             <text x=\"{}\" y=\"{y}\" fill=\"{colour}\">{name}</text>",
            points.join(" "),
            w - 130.0
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">epoch (1 to {epochs})</text>",
        (w + left) / 2.0,
        h - 8.0
    );
    svg.push_str("</svg>\n");
    svg
}

#[test]
fn learning_curves_figure() -> TestResult {
    use std::fmt::Write;

    let history = learning_curves()?;
    let mut s = String::from("epoch  train loss  validation loss  validation accuracy\n");
    for e in (0..100).step_by(10).chain([99]) {
        writeln!(
            s,
            "{:5}  {:10.4}  {:15.4}  {:19.3}",
            e + 1,
            history.loss[e],
            history.val_loss[e],
            history.val_accuracy[e]
        )?;
    }
    let best = (0..100)
        .min_by(|&a, &b| history.val_loss[a].total_cmp(&history.val_loss[b]))
        .unwrap_or(0);
    // The training loss keeps falling; the validation loss reaches its best well before the end.
    assert!(history.loss[99] < history.loss[best]);
    assert!(history.val_loss[99] > history.val_loss[best]);
    writeln!(
        s,
        "lowest validation loss {:.4} after epoch {}",
        history.val_loss[best],
        best + 1
    )?;
    print!("{s}");
    shows("learning_curves", &s)?;
    matches_file(
        "docs/src/figures/learning_curves.svg",
        &curves_svg(&history),
    )
}
// ANCHOR_END: learning_curves

// ---------------------------------------------------------------------------------------------
// Exercises (`#[ignore]`d: the reader makes them pass) and their solutions (run by every test run)
// ---------------------------------------------------------------------------------------------

// ANCHOR: exercise_sub_div
use scratch::{Tape, Var};

/// `a - b`, from the engine's operations only.
fn exercise_sub(t: &mut Tape, a: Var, b: Var) -> Var {
    let _ = (t, a, b);
    todo!("exercise: a + (-1)·b")
}

/// `a / b`, from the engine's operations only.
fn exercise_div(t: &mut Tape, a: Var, b: Var) -> Var {
    let _ = (t, a, b);
    todo!("exercise: a · b⁻¹")
}
// ANCHOR_END: exercise_sub_div

// ANCHOR: exercise_exp
/// `e^a`, a new operation with its own local derivative (see `Tape::push`).
fn exercise_exp(t: &mut Tape, a: Var) -> Var {
    let _ = (t, a);
    todo!("exercise: push e^a with its local derivative")
}
// ANCHOR_END: exercise_exp

// ANCHOR: exercise_relu_std
/// The standard deviation of the initial weights that keeps the variance of a ReLU layer's
/// activations from layer to layer, for a layer with `fan_in` inputs.
fn exercise_relu_std(fan_in: usize) -> f64 {
    let _ = fan_in;
    todo!("exercise: a ReLU keeps half of the variance")
}
// ANCHOR_END: exercise_relu_std

// ANCHOR: exercise_delta
/// ∂ℓ/∂z for one example's cross-entropy ℓ = -log softmax(z)_label, by the formula.
fn exercise_cross_entropy_gradient(z: &[f64], label: usize) -> Vec<f64> {
    let _ = (z, label);
    todo!("exercise: softmax minus one-hot")
}
// ANCHOR_END: exercise_delta

// ANCHOR: exercise_forward_difference
/// The forward difference (f(x + h) - f(x)) / h, the one-sided estimate of f'(x).
fn exercise_forward_difference(f: fn(f64) -> f64, x: f64, h: f64) -> f64 {
    let _ = (f, x, h);
    todo!("exercise: one evaluation to the right")
}
// ANCHOR_END: exercise_forward_difference

// ANCHOR: exercise_matvec_vjp
/// The VJP of y = A x with respect to x: given the cotangent ȳ, the cotangent x̄.
fn exercise_matvec_vjp(
    a: &ndarray::Array2<f64>,
    y_bar: &ndarray::Array1<f64>,
) -> ndarray::Array1<f64> {
    let _ = (a, y_bar);
    todo!("exercise: cᵀ J, with J = A")
}
// ANCHOR_END: exercise_matvec_vjp

// ANCHOR: exercise_momentum
/// One heavy-ball momentum step, in place: the velocity v, then the parameter w.
fn exercise_momentum_step(
    w: &mut f64,
    v: &mut f64,
    gradient: f64,
    learning_rate: f64,
    momentum: f64,
) {
    let _ = (w, v, gradient, learning_rate, momentum);
    todo!("exercise: v ← μ v - η g, w ← w + v")
}
// ANCHOR_END: exercise_momentum

// ANCHOR: solutions
mod solutions {
    use super::scratch::{Tape, Var};

    pub fn sub(t: &mut Tape, a: Var, b: Var) -> Var {
        let minus_one = t.var(-1.0);
        let minus_b = t.mul(b, minus_one);
        t.add(a, minus_b)
    }

    pub fn div(t: &mut Tape, a: Var, b: Var) -> Var {
        let inverse = t.powi(b, -1);
        t.mul(a, inverse)
    }

    pub fn exp(t: &mut Tape, a: Var) -> Var {
        let y = t.value(a).exp();
        t.push(y, vec![(a.index(), y)]) // (e^x)' = e^x: the value itself
    }

    pub fn relu_std(fan_in: usize) -> f64 {
        // Var(z) = fan_in · Var(w) · E[h²], and a ReLU of a symmetric z keeps half of E[z²].
        (2.0 / fan_in as f64).sqrt()
    }

    pub fn forward_difference(f: fn(f64) -> f64, x: f64, h: f64) -> f64 {
        (f(x + h) - f(x)) / h
    }

    pub fn matvec_vjp(
        a: &ndarray::Array2<f64>,
        y_bar: &ndarray::Array1<f64>,
    ) -> ndarray::Array1<f64> {
        a.t().dot(y_bar) // the Jacobian of A x is A, and ȳᵀ A = (Aᵀ ȳ)ᵀ
    }

    pub fn momentum_step(
        w: &mut f64,
        v: &mut f64,
        gradient: f64,
        learning_rate: f64,
        momentum: f64,
    ) {
        *v = momentum * *v - learning_rate * gradient;
        *w += *v;
    }

    pub fn cross_entropy_gradient(z: &[f64], label: usize) -> Vec<f64> {
        let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = z.iter().map(|v| (v - max).exp()).collect();
        let total: f64 = e.iter().sum();
        let onehot = |c: usize| f64::from(c == label);
        e.iter()
            .enumerate()
            .map(|(c, v)| v / total - onehot(c))
            .collect()
    }
}
// ANCHOR_END: solutions

// ANCHOR: exercise_checks
type Binary = fn(&mut Tape, Var, Var) -> Var;

fn check_sub_div(sub: Binary, div: Binary) {
    let mut t = Tape::default();
    let (a, b) = (t.var(6.0), t.var(4.0));
    let d = sub(&mut t, a, b);
    let q = div(&mut t, a, b);
    let f = t.mul(d, q); // (a - b) · (a / b)
    let bar = t.grad(f);
    assert_eq!(t.value(f), 3.0);
    assert_eq!(bar[a.index()], 2.0); // q + d / b
    assert_eq!(bar[b.index()], -2.25); // -q - d · a / b²
}

fn check_exp(exp: fn(&mut Tape, Var) -> Var) {
    let mut t = Tape::default();
    let x = t.var(0.5);
    let e = exp(&mut t, x);
    let f = t.mul(e, x); // f = x e^x, f' = (x + 1) e^x
    let bar = t.grad(f);
    assert!((bar[x.index()] - 1.5 * 0.5f64.exp()).abs() < 1e-15);
}

fn check_relu_std(relu_std: fn(usize) -> f64) -> TestResult {
    let (stds, _) = deep_stack("relu", InitRule::Std(relu_std(64)), 10, 64)?;
    println!("{stds:.3?}");
    assert!(stds[9] > stds[0] / 2.0 && stds[9] < stds[0] * 2.0);
    Ok(())
}

fn check_cross_entropy_gradient(gradient: fn(&[f64], usize) -> Vec<f64>) {
    // Against central differences of ℓ(z) = log Σ e^z - z_label.
    let loss = |z: &[f64]| z.iter().map(|v| v.exp()).sum::<f64>().ln() - z[2];
    let z = [0.5, -1.0, 2.0, 0.0];
    let g = gradient(&z, 2);
    for k in 0..4 {
        let (mut up, mut down) = (z, z);
        up[k] += 1e-6;
        down[k] -= 1e-6;
        let numeric = (loss(&up) - loss(&down)) / 2e-6;
        assert!((g[k] - numeric).abs() < 1e-8, "{k}: {} vs {numeric}", g[k]);
    }
}

/// A difference formula: (f, x, h) to an estimate of f'(x).
type Difference = fn(fn(f64) -> f64, f64, f64) -> f64;

fn check_forward_difference(forward: Difference) {
    // For exp at 1 the error is about h e / 2: first order in h, where the central one is second.
    let error = |h: f64| (forward(f64::exp, 1.0, h) - 1f64.exp()).abs();
    let (e1, e2) = (error(1e-4), error(5e-5));
    assert!(
        (e1 / (1e-4 * 1f64.exp() / 2.0) - 1.0).abs() < 0.01,
        "error {e1}"
    );
    assert!(
        (e1 / e2 - 2.0).abs() < 0.01,
        "halving h should halve the error: {e1} {e2}"
    );
}

fn check_matvec_vjp(
    vjp: fn(&ndarray::Array2<f64>, &ndarray::Array1<f64>) -> ndarray::Array1<f64>,
) -> TestResult {
    use dendrite_graph::{compile, Graph};
    use ndarray::{arr1, arr2};

    // Against Dendrite's own VJP of the same product.
    let a = arr2(&[[1.0, 2.0, 0.0], [0.0, -1.0, 3.0]]);
    let y_bar = arr1(&[0.5, -2.0]);
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [3, 1])?;
    let am = g.constant(a.clone().into_dyn());
    let y = g.matmul(am, x)?;
    let c = g.constant(y_bar.clone().into_shape_with_order((2, 1))?.into_dyn());
    let x_bar = dendrite_autodiff::vjp(&mut g, y, &[x], c)?[0];
    let mut plan = compile(&g, &[x_bar])?;
    let xv = arr2(&[[0.1], [0.2], [0.3]]).into_dyn();
    let out = plan.run(&g, &[("x", xv.view())])?;
    let mine = vjp(&a, &y_bar);
    for (u, v) in mine.iter().zip(out.get(0)?.iter()) {
        assert!((u - v).abs() < 1e-15);
    }
    Ok(())
}

fn check_momentum_step(step: fn(&mut f64, &mut f64, f64, f64, f64)) -> TestResult {
    use dendrite_nn::{Optimizer, Sgd};

    // Three steps on f(w) = w² (gradient 2w), against dendrite_nn's Sgd with momentum.
    let mut sgd = Sgd::new(0.1).momentum(0.9);
    sgd.prepare(&[1])?;
    let (mut reference, mut w, mut v) = ([1.0_f64], 1.0, 0.0);
    for t in 0..3 {
        sgd.begin_step(t);
        let g = [2.0 * reference[0]];
        sgd.update(0, &mut reference, &g)?;
        let gradient = 2.0 * w;
        step(&mut w, &mut v, gradient, 0.1, 0.9);
        assert!(
            (w - reference[0]).abs() < 1e-15,
            "step {t}: {w} vs {}",
            reference[0]
        );
    }
    Ok(())
}

#[test]
#[ignore = "exercise: write exercise_forward_difference"]
fn exercise_5_forward_difference() {
    check_forward_difference(exercise_forward_difference);
}

#[test]
#[ignore = "exercise: write exercise_matvec_vjp"]
fn exercise_6_matvec_vjp() -> TestResult {
    check_matvec_vjp(exercise_matvec_vjp)
}

#[test]
#[ignore = "exercise: write exercise_momentum_step"]
fn exercise_7_momentum() -> TestResult {
    check_momentum_step(exercise_momentum_step)
}

#[test]
#[ignore = "exercise: write exercise_sub and exercise_div"]
fn exercise_1_sub_div() {
    check_sub_div(exercise_sub, exercise_div);
}

#[test]
#[ignore = "exercise: write exercise_exp"]
fn exercise_2_exp() {
    check_exp(exercise_exp);
}

#[test]
#[ignore = "exercise: write exercise_relu_std"]
fn exercise_3_relu_std() -> TestResult {
    check_relu_std(exercise_relu_std)
}

#[test]
#[ignore = "exercise: write exercise_cross_entropy_gradient"]
fn exercise_4_cross_entropy_gradient() {
    check_cross_entropy_gradient(exercise_cross_entropy_gradient);
}

#[test]
fn solutions_pass() -> TestResult {
    check_sub_div(solutions::sub, solutions::div);
    check_exp(solutions::exp);
    check_relu_std(solutions::relu_std)?;
    check_cross_entropy_gradient(solutions::cross_entropy_gradient);
    check_forward_difference(solutions::forward_difference);
    check_matvec_vjp(solutions::matvec_vjp)?;
    check_momentum_step(solutions::momentum_step)?;
    Ok(())
}
// ANCHOR_END: exercise_checks

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
        None => synthetic_mnist(0)?,
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

    let train = synthetic_digits(3000, 1)?;
    let mut adam = Adam::<f32>::default();
    let sizes: Vec<usize> = params
        .iter()
        .map(|&p| g.value(p).map(|v| v.len()))
        .collect::<Result<_, _>>()?;
    adam.prepare(&sizes)?;

    let batch = 32;
    let mut x = vec![0.0_f32; batch * 784];
    let mut y = vec![0.0_f32; batch];
    let mut order = EpochOrder::new(train.len(), 42)?;
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
    let test = synthetic_digits(1000, 2)?;
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
        .filter(|&(&p, &y)| p == f32::from(y))
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

/// The sentence of `docs/src/plan/index.md` that gives the training plan's counts gives the
/// counts the code has now, so the page cannot go stale.
#[test]
fn the_plan_page_gives_the_current_counts() -> TestResult {
    use dendrite_graph::compile;

    let Reference {
        graph: g, fetches, ..
    } = reference_graph(0)?;
    let plan = compile(&g, &fetches)?;
    let sentence = format!(
        "{} nodes become {} steps sharing {} buffers",
        g.node_count(),
        plan.step_count(),
        plan.buffer_count()
    );
    let page = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/src/plan/index.md"),
    )?;
    // The page wraps lines anywhere; compare with the line breaks made spaces.
    let page = page.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        page.contains(&sentence),
        "docs/src/plan/index.md should say \"{sentence}\" (the code's numbers now)"
    );
    Ok(())
}

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
