//! A tour from scratch: a scalar reverse-mode engine, a neuron, a loss, a step.

use super::*;

// ANCHOR: scratch_engine
/// Reverse-mode automatic differentiation of scalars, from scratch.
pub(crate) mod scratch {
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
