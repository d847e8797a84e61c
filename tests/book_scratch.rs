//! The code listings of the book's page "From scalars to tensors to graph nodes"
//! (`docs/src/scratch-tensors.md`), compiled and run by `cargo test --test book_scratch`. The
//! book pulls the regions between `// ANCHOR: name` and `// ANCHOR_END: name` out of this file,
//! as it does from `tests/book.rs`. The two engines here are teaching code, not part of Dendrite.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::result_large_err
)]

use std::error::Error;

type TestResult = Result<(), Box<dyn Error>>;

/// Compares a listing's printed output with the copy the book shows
/// (`docs/src/output/NAME.txt`), as `tests/book.rs` does; `DENDRITE_BLESS=1` writes it.
fn shows(name: &str, printed: &str) -> TestResult {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("docs/src/output/{name}.txt"));
    if std::env::var_os("DENDRITE_BLESS").is_some() {
        std::fs::write(&path, printed)?;
        return Ok(());
    }
    let shown = std::fs::read_to_string(&path)
        .map_err(|e| format!("{}: {e} (DENDRITE_BLESS=1 writes it)", path.display()))?;
    assert_eq!(
        shown,
        printed,
        "{} is stale (DENDRITE_BLESS=1 rewrites it)",
        path.display()
    );
    Ok(())
}

// ANCHOR: tensor_engine
/// Reverse mode over matrices. The scalar tape's local derivative, a number, becomes a
/// function: the vector-Jacobian product (VJP) that maps the output's cotangent to an
/// operand's share of it. The Jacobian itself is never built.
mod tensors {
    use ndarray::{Array2, Axis};

    /// A matrix on the tape, by its index.
    #[derive(Clone, Copy, Debug)]
    pub struct Var(usize);

    /// One operand's VJP: ȳ to this operand's share of the cotangent.
    pub type Vjp = Box<dyn Fn(&Array2<f64>) -> Array2<f64>>;

    #[derive(Default)]
    pub struct Tape {
        values: Vec<Array2<f64>>,
        vjps: Vec<Vec<(usize, Vjp)>>,
    }

    impl Tape {
        /// A new matrix with, for each operand, its index and its VJP.
        pub fn push(&mut self, value: Array2<f64>, vjps: Vec<(usize, Vjp)>) -> Var {
            self.values.push(value);
            self.vjps.push(vjps);
            Var(self.values.len() - 1)
        }

        /// A leaf: an input or a parameter.
        pub fn var(&mut self, value: Array2<f64>) -> Var {
            self.push(value, vec![])
        }

        pub fn value(&self, v: Var) -> &Array2<f64> {
            &self.values[v.0]
        }

        /// Y = A B: Ā = Ȳ Bᵀ and B̄ = Aᵀ Ȳ (each closure keeps the other factor).
        pub fn matmul(&mut self, a: Var, b: Var) -> Var {
            let (x, w) = (self.value(a).clone(), self.value(b).clone());
            let y = x.dot(&w);
            let w_t = w.reversed_axes();
            let x_t = x.reversed_axes();
            let a_vjp: Vjp = Box::new(move |y_bar| y_bar.dot(&w_t));
            let b_vjp: Vjp = Box::new(move |y_bar| x_t.dot(y_bar));
            self.push(y, vec![(a.0, a_vjp), (b.0, b_vjp)])
        }

        /// Y = A + b with the row b added to every row (broadcasting). Ā = Ȳ, and b̄ sums Ȳ
        /// over the rows: b reached the output once per row, and the shares add up.
        pub fn add_row(&mut self, a: Var, b: Var) -> Var {
            let y = self.value(a) + self.value(b);
            let a_vjp: Vjp = Box::new(|y_bar| y_bar.clone());
            let b_vjp: Vjp = Box::new(|y_bar| y_bar.sum_axis(Axis(0)).insert_axis(Axis(0)));
            self.push(y, vec![(a.0, a_vjp), (b.0, b_vjp)])
        }

        /// Y = max(X, 0): X̄ = Ȳ ⊙ [X > 0] (at the kink X = 0 the slope is taken as 0).
        pub fn relu(&mut self, a: Var) -> Var {
            let y = self.value(a).mapv(|v| v.max(0.0));
            let active = self.value(a).mapv(|v| f64::from(u8::from(v > 0.0)));
            let vjp: Vjp = Box::new(move |y_bar| y_bar * &active);
            self.push(y, vec![(a.0, vjp)])
        }

        /// L = mean((P - T)²) over all m·n entries, a 1 × 1 matrix: P̄ = L̄ · 2 (P - T) / (m n).
        pub fn mean_squared_error(&mut self, p: Var, target: &Array2<f64>) -> Var {
            let diff = self.value(p) - target;
            let count = diff.len() as f64;
            let loss = Array2::from_elem((1, 1), diff.mapv(|d| d * d).sum() / count);
            let vjp: Vjp = Box::new(move |l_bar| &diff * (2.0 * l_bar[[0, 0]] / count));
            self.push(loss, vec![(p.0, vjp)])
        }

        /// ∂output/∂v for every matrix v on the tape: the scalar sweep, with `bar · local`
        /// replaced by a call of the VJP, and `+=` adding matrices.
        pub fn grad(&self, output: Var) -> Vec<Array2<f64>> {
            let mut bar: Vec<Array2<f64>> = self
                .values
                .iter()
                .map(|v| Array2::zeros(v.raw_dim()))
                .collect();
            bar[output.0].fill(1.0);
            for i in (0..=output.0).rev() {
                for (operand, vjp) in &self.vjps[i] {
                    let share = vjp(&bar[i]);
                    bar[*operand] += &share;
                }
            }
            bar
        }
    }

    impl Var {
        /// Where this matrix's cotangent is in what `Tape::grad` returns.
        pub fn index(self) -> usize {
            self.0
        }
    }
}
// ANCHOR_END: tensor_engine

/// A small batch for the two-layer network: four samples of three features, two targets each,
/// and fixed weights (the numbers are arbitrary; they are written out so that the page's
/// printed values can be reproduced by hand).
fn tiny_batch() -> [ndarray::Array2<f64>; 6] {
    use ndarray::arr2;
    [
        arr2(&[
            [0.5, -1.0, 2.0],
            [1.0, 0.0, -0.5],
            [-1.5, 0.5, 0.25],
            [0.0, 2.0, 1.0],
        ]),
        arr2(&[[0.2, -0.4, 0.1], [0.5, 0.3, -0.2], [-0.3, 0.1, 0.4]]),
        arr2(&[[0.1, -0.1, 0.05]]),
        arr2(&[[0.6, -0.5], [0.2, 0.4], [-0.7, 0.3]]),
        arr2(&[[0.0, 0.1]]),
        arr2(&[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]]),
    ]
}

#[test]
fn tensor_engine_trains_a_two_layer_network() -> TestResult {
    // ANCHOR: tensor_mlp
    use std::fmt::Write;
    use tensors::Tape;

    let [x, w1, b1, w2, b2, target] = tiny_batch();
    let mut t = Tape::default();
    let (x, w1v, b1v, w2v, b2v) = (t.var(x), t.var(w1), t.var(b1), t.var(w2), t.var(b2));
    let z1 = t.matmul(x, w1v);
    let z1 = t.add_row(z1, b1v);
    let h = t.relu(z1);
    let z2 = t.matmul(h, w2v);
    let p = t.add_row(z2, b2v);
    let loss = t.mean_squared_error(p, &target);
    let bar = t.grad(loss);

    let mut printed = String::new();
    writeln!(printed, "loss {:.6}", t.value(loss)[[0, 0]])?;
    for (name, v) in [("W1", w1v), ("b1", b1v), ("W2", w2v), ("b2", b2v)] {
        writeln!(printed, "d loss / d {name} = {:.4}", bar[v.index()])?;
    }
    // ANCHOR_END: tensor_mlp
    print!("{printed}");
    shows("scratch_tensor_mlp", &printed)?;

    // The same network as a Dendrite graph gives the same gradients.
    let dendrite = dendrite_gradients()?;
    for (v, theirs) in [w1v, b1v, w2v, b2v].into_iter().zip(&dendrite) {
        let ours = &bar[v.index()];
        assert_eq!(ours.shape(), theirs.shape());
        for (a, b) in ours.iter().zip(theirs.iter()) {
            assert!((a - b).abs() < 1e-14, "{a} vs {b}");
        }
    }
    Ok(())
}

// ANCHOR: tensor_mlp_dendrite
/// The same two-layer network and loss as a Dendrite graph: its gradients, W1, b1, W2, b2.
fn dendrite_gradients() -> Result<Vec<ndarray::ArrayD<f64>>, Box<dyn Error>> {
    use dendrite::graph::{compile, Graph};

    let [x, w1, b1, w2, b2, target] = tiny_batch();
    let mut g = Graph::<f64>::new();
    let x = g.constant(x.into_dyn());
    let target = g.constant(target.into_dyn());
    let params = [w1, b1, w2, b2].map(|p| p.into_dyn());
    let [w1, b1, w2, b2] = [("w1", 0), ("b1", 1), ("w2", 2), ("b2", 3)]
        .map(|(name, k)| g.parameter(name, params[k].clone()));
    let (w1, b1, w2, b2) = (w1?, b1?, w2?, b2?);
    let z1 = g.matmul(x, w1)?;
    let z1 = g.add(z1, b1)?; // [4, 3] + [1, 3]: broadcast, undone by sum_like in the VJP
    let h = g.relu(z1)?;
    let z2 = g.matmul(h, w2)?;
    let p = g.add(z2, b2)?;
    let diff = g.sub(p, target)?;
    let squared = g.square(diff)?;
    let loss = g.mean_all(squared)?;
    let grads = dendrite::autodiff::grad(&mut g, loss, &[w1, b1, w2, b2])?;
    let mut plan = compile(&g, &grads)?;
    let out = plan.run(&g, &[])?;
    Ok((0..4)
        .map(|k| out.get(k).map(|a| a.to_owned()))
        .collect::<Result<_, _>>()?)
}
// ANCHOR_END: tensor_mlp_dendrite

// ANCHOR: node_engine
/// The scalar engine once more, with one change: the backward sweep computes no numbers, it
/// pushes new values onto the same tape. A derivative is then a value like any other, and
/// can be differentiated again.
mod nodes {
    /// A value on the tape, by its index.
    #[derive(Clone, Copy, Debug)]
    pub struct Var(usize);

    /// How a value was made: the rules below need the operands, not numbers.
    #[derive(Clone, Copy)]
    enum Op {
        Leaf,
        Add(Var, Var),
        Mul(Var, Var),
        Tanh(Var),
    }

    #[derive(Default)]
    pub struct Tape {
        values: Vec<f64>,
        ops: Vec<Op>,
    }

    impl Tape {
        fn push(&mut self, value: f64, op: Op) -> Var {
            self.values.push(value);
            self.ops.push(op);
            Var(self.values.len() - 1)
        }

        pub fn var(&mut self, value: f64) -> Var {
            self.push(value, Op::Leaf)
        }

        pub fn value(&self, v: Var) -> f64 {
            self.values[v.0]
        }

        pub fn add(&mut self, a: Var, b: Var) -> Var {
            self.push(self.value(a) + self.value(b), Op::Add(a, b))
        }

        pub fn mul(&mut self, a: Var, b: Var) -> Var {
            self.push(self.value(a) * self.value(b), Op::Mul(a, b))
        }

        pub fn tanh(&mut self, a: Var) -> Var {
            self.push(self.value(a).tanh(), Op::Tanh(a))
        }

        /// Each op's derivative rule, written with the tape's own ops: for value `y` with
        /// cotangent `y_bar`, each operand and its share of the cotangent, as new values.
        fn vjp(&mut self, y: Var, y_bar: Var) -> Vec<(Var, Var)> {
            match self.ops[y.0] {
                Op::Leaf => vec![],
                Op::Add(a, b) => vec![(a, y_bar), (b, y_bar)],
                Op::Mul(a, b) => {
                    let a_bar = self.mul(y_bar, b);
                    let b_bar = self.mul(y_bar, a);
                    vec![(a, a_bar), (b, b_bar)]
                }
                Op::Tanh(a) => {
                    // ȳ (1 - y²), built as ȳ + (-1)·ȳ·y·y so that it is made of tape values.
                    let minus_one = self.var(-1.0);
                    let yy = self.mul(y, y);
                    let minus_yy = self.mul(minus_one, yy);
                    let minus_y_bar_yy = self.mul(y_bar, minus_yy);
                    vec![(a, self.add(y_bar, minus_y_bar_yy))]
                }
            }
        }

        /// ∂output/∂wrt as a new value on the tape. The sweep is the scalar one; the values
        /// it pushes come after `output`, so the loop over `0..=output` never meets them.
        pub fn grad(&mut self, output: Var, wrt: Var) -> Var {
            let mut bar: Vec<Option<Var>> = vec![None; output.0 + 1];
            bar[output.0] = Some(self.var(1.0));
            for i in (0..=output.0).rev() {
                let Some(y_bar) = bar[i] else { continue };
                for (operand, share) in self.vjp(Var(i), y_bar) {
                    let sum = match bar[operand.0] {
                        Some(earlier) => self.add(earlier, share),
                        None => share,
                    };
                    bar[operand.0] = Some(sum);
                }
            }
            match bar[wrt.0] {
                Some(derivative) => derivative,
                None => self.var(0.0), // the output does not depend on `wrt`
            }
        }
    }
}
// ANCHOR_END: node_engine

#[test]
fn derivatives_as_values_differentiate_again() -> TestResult {
    // ANCHOR: node_second_order
    use nodes::Tape;

    // f(x) = x tanh(x); with t = tanh(x):
    //   f'(x)  = t + x (1 - t²)
    //   f''(x) = 2 (1 - t²) - 2 x t (1 - t²)
    let mut tape = Tape::default();
    let x = tape.var(0.5);
    let t = tape.tanh(x);
    let f = tape.mul(x, t);
    let df = tape.grad(f, x); // a value on the tape ...
    let d2f = tape.grad(df, x); // ... so it has a derivative too
    let printed = format!(
        "f = {:.6}, f' = {:.6}, f'' = {:.6}\n",
        tape.value(f),
        tape.value(df),
        tape.value(d2f)
    );
    print!("{printed}");

    let th = 0.5f64.tanh();
    assert!((tape.value(df) - (th + 0.5 * (1.0 - th * th))).abs() < 1e-15);
    let second = 2.0 * (1.0 - th * th) - 2.0 * 0.5 * th * (1.0 - th * th);
    assert!((tape.value(d2f) - second).abs() < 1e-15);
    // ANCHOR_END: node_second_order
    shows("scratch_second_order", &printed)?;

    // Dendrite's grad does the same on its graph: the second derivative agrees.
    use dendrite::graph::{compile, Graph};
    let mut g = Graph::<f64>::new();
    let xg = g.input("x", [1])?;
    let tg = g.tanh(xg)?;
    let fg = g.mul(xg, tg)?;
    let fg = g.sum_all(fg)?;
    let dfg = dendrite::autodiff::grad(&mut g, fg, &[xg])?[0];
    let dfg = g.sum_all(dfg)?;
    let d2fg = dendrite::autodiff::grad(&mut g, dfg, &[xg])?[0];
    let mut plan = compile(&g, &[d2fg])?;
    let xv = ndarray::arr1(&[0.5]).into_dyn();
    let out = plan.run(&g, &[("x", xv.view())])?;
    assert!((out.get(0)?[[0]] - tape.value(d2f)).abs() < 1e-15);
    Ok(())
}

// ANCHOR: exercise_tensor_tanh
/// Y = tanh(X) elementwise on the tensor tape, with X̄ = Ȳ ⊙ (1 - Y²).
fn exercise_tensor_tanh(t: &mut tensors::Tape, x: tensors::Var) -> tensors::Var {
    let _ = (t, x);
    todo!("exercise: push tanh(X) with a VJP that keeps 1 - Y²")
}
// ANCHOR_END: exercise_tensor_tanh

// ANCHOR: solution_tensor_tanh
mod solutions {
    use super::tensors::{Tape, Var, Vjp};

    pub fn tensor_tanh(t: &mut Tape, x: Var) -> Var {
        let y = t.value(x).mapv(f64::tanh);
        let slope = y.mapv(|v| 1.0 - v * v); // tanh' = 1 - tanh², kept for the sweep
        let vjp: Vjp = Box::new(move |y_bar| y_bar * &slope);
        t.push(y, vec![(x.index(), vjp)])
    }
}
// ANCHOR_END: solution_tensor_tanh

/// The check of exercise 8: the gradient of mean((tanh(X W) - T)²) with respect to W, against
/// central differences.
fn check_tensor_tanh(tanh: fn(&mut tensors::Tape, tensors::Var) -> tensors::Var) {
    let [x, w, _, _, _, _] = tiny_batch();
    let target = ndarray::Array2::from_elem((4, 3), 0.25);
    let loss_at = |w: &ndarray::Array2<f64>| {
        let mut t = tensors::Tape::default();
        let (xv, wv) = (t.var(x.clone()), t.var(w.clone()));
        let z = t.matmul(xv, wv);
        let y = tanh(&mut t, z);
        let loss = t.mean_squared_error(y, &target);
        let value = t.value(loss)[[0, 0]];
        (value, t.grad(loss)[wv.index()].clone())
    };
    let (_, analytic) = loss_at(&w);
    let h = 1e-6;
    for ((i, j), &d) in analytic.indexed_iter() {
        let (mut up, mut down) = (w.clone(), w.clone());
        up[[i, j]] += h;
        down[[i, j]] -= h;
        let numeric = (loss_at(&up).0 - loss_at(&down).0) / (2.0 * h);
        assert!((d - numeric).abs() < 1e-8, "[{i}, {j}]: {d} vs {numeric}");
    }
}

#[test]
#[ignore = "exercise: write exercise_tensor_tanh"]
fn exercise_8_tensor_tanh() {
    check_tensor_tanh(exercise_tensor_tanh);
}

#[test]
fn solution_8_passes() {
    check_tensor_tanh(solutions::tensor_tanh);
}
