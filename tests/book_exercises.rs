//! Exercises 9 to 18 of the book, one per chapter, with their checks and solutions, compiled
//! and run by `cargo test --test book_exercises`. Each exercise is an `#[ignore]`d test that
//! calls a function the reader writes (`todo!()` until then); `solutions_pass` runs the same
//! checks on the solutions in every `cargo test`, so the solutions are known to pass. The book
//! pulls the regions between `// ANCHOR: name` and `// ANCHOR_END: name` out of this file.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::result_large_err
)]

use dendrite::graph::{compile, Graph, NodeId};
use std::error::Error;

type TestResult = Result<(), Box<dyn Error>>;
type GraphResult = dendrite::graph::Result<NodeId>;
type GradResult = dendrite::autodiff::Result<NodeId>;

// ---------------------------------------------------------------------------------------------
// The exercises, as the reader finds them
// ---------------------------------------------------------------------------------------------

// ANCHOR: exercise_build_graph
/// f(x, y) = (x + y) · x, elementwise, as nodes of `g` (x and y are its inputs).
fn exercise_build_graph(g: &mut Graph<f64>, x: NodeId, y: NodeId) -> GraphResult {
    let _ = (g, x, y);
    todo!("exercise: one add and one mul")
}
// ANCHOR_END: exercise_build_graph

// ANCHOR: exercise_softplus_derivative
/// d/dx log(1 + eˣ), accurate for every finite x (try x = ±800).
fn exercise_softplus_derivative(x: f64) -> f64 {
    let _ = x;
    todo!("exercise: the logistic sigmoid, written so that no exp overflows")
}
// ANCHOR_END: exercise_softplus_derivative

// ANCHOR: exercise_second_derivative
/// A node for d²f/dx², where f and x are nodes of `g` of shape [1].
fn exercise_second_derivative(g: &mut Graph<f64>, f: NodeId, x: NodeId) -> GradResult {
    let _ = (g, f, x);
    todo!("exercise: grad of (the sum of) grad")
}
// ANCHOR_END: exercise_second_derivative

// ANCHOR: exercise_sigmoid_derivative
/// σ′(x) for the logistic sigmoid σ(x) = 1 / (1 + e⁻ˣ), finite for every finite x.
fn exercise_sigmoid_derivative(x: f64) -> f64 {
    let _ = x;
    todo!("exercise: σ(x) (1 - σ(x)), with σ computed without overflow")
}
// ANCHOR_END: exercise_sigmoid_derivative

// ANCHOR: exercise_bce_logits
/// The binary cross-entropy of the logit z against a target t ∈ [0, 1],
/// -(t log σ(z) + (1 - t) log(1 - σ(z))), finite for every finite z.
fn exercise_bce_with_logits(z: f64, t: f64) -> f64 {
    let _ = (z, t);
    todo!("exercise: max(z, 0) - z t + log(1 + e^(-|z|))")
}
// ANCHOR_END: exercise_bce_logits

// ANCHOR: exercise_clip_global_norm
/// Scales every gradient by one factor so that their joint Euclidean norm is at most
/// `max_norm` (unchanged when it already is).
fn exercise_clip_by_global_norm(gradients: &mut [Vec<f64>], max_norm: f64) {
    let _ = (gradients, max_norm);
    todo!("exercise: the norm over all of them, then one scale factor")
}
// ANCHOR_END: exercise_clip_global_norm

// ANCHOR: exercise_early_stopping
/// The epoch (counted from 0) after which early stopping ends training: the first epoch that
/// completes `patience` epochs in a row without a validation loss below the best so far, or
/// the last epoch if that never happens.
fn exercise_early_stopping_epoch(validation_losses: &[f64], patience: usize) -> usize {
    let _ = (validation_losses, patience);
    todo!("exercise: track the best loss and the epochs since it")
}
// ANCHOR_END: exercise_early_stopping

// ANCHOR: exercise_cube_op
use dendrite::graph::ops::Padding;
use dendrite::graph::ops::{CustomOp, CustomOpError, OperandGrads};
use dendrite::graph::{Element, Shape};
use ndarray::{ArrayViewD, ArrayViewMutD};

/// y = x³, elementwise, as a primitive of its own: x̄ = ȳ · 3x².
struct ExerciseCube;

impl<F: Element> CustomOp<F> for ExerciseCube {
    fn name(&self) -> &'static str {
        "cube"
    }

    fn infer_shape(&self, operands: &[&Shape]) -> Result<Shape, CustomOpError> {
        let _ = operands;
        todo!("exercise: one operand, whose shape the output keeps")
    }

    fn forward(
        &self,
        xs: &[ArrayViewD<'_, F>],
        out: ArrayViewMutD<'_, F>,
    ) -> Result<(), CustomOpError> {
        let _ = (xs, out);
        todo!("exercise: write x³ into out")
    }

    fn vjp(
        &self,
        g: &mut Graph<F>,
        xs: &[NodeId],
        _y: NodeId,
        y_bar: NodeId,
    ) -> dendrite::graph::Result<OperandGrads> {
        let _ = (g, xs, y_bar);
        todo!("exercise: ȳ · 3x², built from graph nodes")
    }
}
// ANCHOR_END: exercise_cube_op

// ANCHOR: exercise_last_uses
/// Liveness, as the plan computes it: `steps[k]` lists the values step k reads (values are
/// numbered 0..n_values; step k writes value `n_inputs + k`). For each value, the last step
/// that reads it, or None if no step does: after that step its buffer can be reused.
fn exercise_last_uses(steps: &[Vec<usize>], n_values: usize) -> Vec<Option<usize>> {
    let _ = (steps, n_values);
    todo!("exercise: one pass over the steps")
}
// ANCHOR_END: exercise_last_uses

// ---------------------------------------------------------------------------------------------
// The solutions
// ---------------------------------------------------------------------------------------------

// ANCHOR: exercise_conv_output_size
/// The length of a convolution's output along one axis of length `n`, for a kernel of `k` taps
/// `dilation` apart moving by `stride`, or `None` where `valid` padding leaves no window.
fn exercise_conv_output_size(
    n: usize,
    k: usize,
    stride: usize,
    dilation: usize,
    padding: Padding,
) -> Option<usize> {
    let _ = (n, k, stride, dilation, padding);
    todo!("exercise: the effective window, then one formula per padding")
}
// ANCHOR_END: exercise_conv_output_size

// ANCHOR: solutions
mod solutions {
    use super::{GradResult, GraphResult};
    use dendrite::graph::ops::Padding;
    use dendrite::graph::ops::{CustomOp, CustomOpError, OperandGrads};
    use dendrite::graph::{Element, Graph, NodeId, Shape};
    use ndarray::{ArrayViewD, ArrayViewMutD, Zip};

    pub fn build_graph(g: &mut Graph<f64>, x: NodeId, y: NodeId) -> GraphResult {
        let sum = g.add(x, y)?;
        g.mul(sum, x)
    }

    /// σ(x) without overflow: for x ≥ 0, e⁻ˣ ≤ 1; for x < 0, write σ(x) = eˣ / (1 + eˣ).
    pub fn sigmoid(x: f64) -> f64 {
        if x >= 0.0 {
            1.0 / (1.0 + (-x).exp())
        } else {
            let e = x.exp();
            e / (1.0 + e)
        }
    }

    pub fn softplus_derivative(x: f64) -> f64 {
        sigmoid(x) // d/dx log(1 + eˣ) = eˣ / (1 + eˣ)
    }

    pub fn second_derivative(g: &mut Graph<f64>, f: NodeId, x: NodeId) -> GradResult {
        let first = dendrite::autodiff::grad(g, f, &[x])?[0]; // a node of the same graph ...
        let first = g.sum_all(first)?; // (grad wants a scalar output)
        Ok(dendrite::autodiff::grad(g, first, &[x])?[0]) // ... so it has a gradient too
    }

    pub fn sigmoid_derivative(x: f64) -> f64 {
        let s = sigmoid(x);
        s * (1.0 - s) // at most 1/4, at x = 0
    }

    pub fn bce_with_logits(z: f64, t: f64) -> f64 {
        // log σ(z) = -log(1 + e⁻ᶻ) and log(1 - σ(z)) = -z - log(1 + e⁻ᶻ); both are rewritten
        // with e^(-|z|) ≤ 1, so nothing overflows and log1p keeps the small tail.
        z.max(0.0) - z * t + (-z.abs()).exp().ln_1p()
    }

    pub fn clip_by_global_norm(gradients: &mut [Vec<f64>], max_norm: f64) {
        let norm = gradients
            .iter()
            .flatten()
            .map(|g| g * g)
            .sum::<f64>()
            .sqrt();
        if norm > max_norm {
            let scale = max_norm / norm;
            gradients.iter_mut().flatten().for_each(|g| *g *= scale);
        }
    }

    pub fn early_stopping_epoch(validation_losses: &[f64], patience: usize) -> usize {
        let mut best = f64::INFINITY;
        let mut since_best = 0;
        for (epoch, &loss) in validation_losses.iter().enumerate() {
            if loss < best {
                (best, since_best) = (loss, 0);
            } else {
                since_best += 1;
                if since_best >= patience {
                    return epoch;
                }
            }
        }
        validation_losses.len().saturating_sub(1)
    }

    pub struct Cube;

    impl<F: Element> CustomOp<F> for Cube {
        fn name(&self) -> &'static str {
            "cube"
        }

        fn infer_shape(&self, operands: &[&Shape]) -> Result<Shape, CustomOpError> {
            match operands {
                [x] => Ok((*x).clone()),
                _ => Err(CustomOpError::new("expects one operand")),
            }
        }

        fn forward(
            &self,
            xs: &[ArrayViewD<'_, F>],
            out: ArrayViewMutD<'_, F>,
        ) -> Result<(), CustomOpError> {
            Zip::from(out).and(&xs[0]).for_each(|y, &x| *y = x * x * x);
            Ok(())
        }

        fn vjp(
            &self,
            g: &mut Graph<F>,
            xs: &[NodeId],
            _y: NodeId,
            y_bar: NodeId,
        ) -> dendrite::graph::Result<OperandGrads> {
            let square = g.square(xs[0])?;
            let slope = g.scale(square, 3.0)?; // (x³)' = 3x²
            Ok(OperandGrads::from_slice(&[Some(g.mul(y_bar, slope)?)]))
        }
    }

    pub fn last_uses(steps: &[Vec<usize>], n_values: usize) -> Vec<Option<usize>> {
        let mut last = vec![None; n_values];
        for (k, operands) in steps.iter().enumerate() {
            for &v in operands {
                last[v] = Some(k); // later steps overwrite earlier ones
            }
        }
        last
    }

    pub fn conv_output_size(
        n: usize,
        k: usize,
        stride: usize,
        dilation: usize,
        padding: Padding,
    ) -> Option<usize> {
        let span = (k - 1) * dilation + 1; // the window's extent, taps and gaps
        match padding {
            Padding::Valid => Some(n.checked_sub(span)? / stride + 1),
            Padding::Same => Some(n.div_ceil(stride)), // the padding adapts to the window
        }
    }
}
// ANCHOR_END: solutions

// ---------------------------------------------------------------------------------------------
// The checks, run on the exercises (ignored until written) and on the solutions
// ---------------------------------------------------------------------------------------------

// ANCHOR: exercise_checks
type Builder = fn(&mut Graph<f64>, NodeId, NodeId) -> GraphResult;
type UnaryBuilder = fn(&mut Graph<f64>, NodeId) -> GraphResult;
type Liveness = fn(&[Vec<usize>], usize) -> Vec<Option<usize>>;

fn check_build_graph(build: Builder) -> TestResult {
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [2])?;
    let y = g.input("y", [2])?;
    let f = build(&mut g, x, y)?;
    let mut plan = compile(&g, &[f])?;
    let (xv, yv) = (ndarray::arr1(&[2.0, 3.0]), ndarray::arr1(&[1.0, -1.0]));
    let out = plan.run(
        &g,
        &[("x", xv.into_dyn().view()), ("y", yv.into_dyn().view())],
    )?;
    assert_eq!(out.get(0)?.as_slice(), Some(&[6.0, 6.0][..]));
    Ok(())
}

/// Dendrite's own derivative of a unary composite at x, by `grad` on a one-element graph.
fn dendrite_derivative(build: UnaryBuilder, x: f64) -> Result<f64, Box<dyn Error>> {
    let mut g = Graph::<f64>::new();
    let xn = g.input("x", [1])?;
    let y = build(&mut g, xn)?;
    let y = g.sum_all(y)?;
    let d = dendrite::autodiff::grad(&mut g, y, &[xn])?[0];
    let mut plan = compile(&g, &[d])?;
    let xv = ndarray::arr1(&[x]).into_dyn();
    Ok(plan.run(&g, &[("x", xv.view())])?.get(0)?[[0]])
}

const TAIL_POINTS: [f64; 9] = [-800.0, -40.0, -5.0, -0.5, 0.0, 0.5, 5.0, 40.0, 800.0];

fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-14 * b.abs().max(f64::MIN_POSITIVE)
}

fn check_softplus_derivative(derivative: fn(f64) -> f64) -> TestResult {
    for x in TAIL_POINTS {
        let theirs = dendrite_derivative(|g, x| g.softplus(x), x)?;
        assert!(
            close(derivative(x), theirs),
            "x = {x}: {} vs {theirs}",
            derivative(x)
        );
    }
    Ok(())
}

fn check_second_derivative(
    second: fn(&mut Graph<f64>, NodeId, NodeId) -> GradResult,
) -> TestResult {
    // f = x³ (f'' = 6x) and f = sin x (f'' = -sin x), at x = 0.7.
    let cases: [(UnaryBuilder, f64); 2] = [
        (|g, x| g.powi(x, 3), 6.0 * 0.7),
        (|g, x| g.sin(x), -(0.7f64.sin())),
    ];
    for (build, expected) in cases {
        let mut g = Graph::<f64>::new();
        let x = g.input("x", [1])?;
        let f = build(&mut g, x)?;
        let f = g.sum_all(f)?;
        let d2 = second(&mut g, f, x)?;
        let mut plan = compile(&g, &[d2])?;
        let xv = ndarray::arr1(&[0.7]).into_dyn();
        let got = plan.run(&g, &[("x", xv.view())])?.get(0)?[[0]];
        assert!((got - expected).abs() < 1e-14, "{got} vs {expected}");
    }
    Ok(())
}

fn check_sigmoid_derivative(derivative: fn(f64) -> f64) -> TestResult {
    for x in TAIL_POINTS {
        let theirs = dendrite_derivative(|g, x| g.sigmoid(x), x)?;
        let mine = derivative(x);
        assert!(
            mine.is_finite() && (mine - theirs).abs() <= 1e-15,
            "x = {x}: {mine} vs {theirs}"
        );
    }
    assert_eq!(derivative(0.0), 0.25); // the largest value σ′ takes
    Ok(())
}

fn check_bce_with_logits(bce: fn(f64, f64) -> f64) {
    let sigmoid = |z: f64| 1.0 / (1.0 + (-z).exp());
    for z in [-5.0, -0.5, 0.0, 0.5, 5.0] {
        for t in [0.0, 0.3, 1.0] {
            let naive = -(t * sigmoid(z).ln() + (1.0 - t) * (1.0 - sigmoid(z)).ln());
            assert!((bce(z, t) - naive).abs() < 1e-12, "z = {z}, t = {t}");
        }
    }
    // Where the naive formula gives inf or NaN: log σ(z) ≈ z for z ≪ 0.
    assert_eq!(bce(1000.0, 0.0), 1000.0);
    assert_eq!(bce(-1000.0, 1.0), 1000.0);
    assert_eq!(bce(1000.0, 1.0), 0.0);
    assert!((bce(-40.0, 0.0) - (-40f64).exp()).abs() < 1e-30); // the tiny tail survives
}

fn check_clip_by_global_norm(clip: fn(&mut [Vec<f64>], f64)) {
    let mut gradients = vec![vec![3.0, 0.0], vec![0.0, 4.0, 0.0]]; // joint norm 5
    clip(&mut gradients, 1.0);
    assert!((gradients[0][0] - 0.6).abs() < 1e-15 && (gradients[1][1] - 0.8).abs() < 1e-15);
    let mut small = vec![vec![0.1, -0.2]];
    clip(&mut small, 1.0);
    assert_eq!(small, vec![vec![0.1, -0.2]]); // already within the bound: untouched
}

fn check_early_stopping_epoch(stop: fn(&[f64], usize) -> usize) {
    assert_eq!(stop(&[1.0, 0.8, 0.85, 0.9, 0.7], 2), 3); // epochs 2 and 3 do not beat 0.8
    assert_eq!(stop(&[1.0, 0.8, 0.85, 0.7, 0.75], 2), 4); // 0.7 resets the count: never stops
    assert_eq!(stop(&[1.0, 1.0, 1.0], 1), 1); // equal is not better
}

fn check_cube_op<Op: CustomOp<f64> + 'static>(op: Op) -> TestResult {
    use dendrite::autodiff::check::check_fn;
    use std::sync::Arc;

    let op = Arc::new(op);
    let report = check_fn(|g, args| g.custom(op.clone(), &[args[0]]), &[&[3, 2]], 2)?;
    assert!(report.passed(), "{report}");
    Ok(())
}

fn check_last_uses(last_uses: Liveness) {
    // Inputs 0 and 1; step 0 writes 2 = f(0, 1), step 1 writes 3 = f(2, 0), step 2 writes
    // 4 = f(3, 3). Value 4 is the output: no step reads it.
    let steps = vec![vec![0, 1], vec![2, 0], vec![3, 3]];
    assert_eq!(
        last_uses(&steps, 5),
        vec![Some(1), Some(0), Some(1), Some(2), None]
    );
}

type OutputSize = fn(usize, usize, usize, usize, Padding) -> Option<usize>;

/// Compares `size` with the height of `Graph::conv2d`'s output over a grid of sizes, kernels,
/// strides and dilations, both paddings; `None` must be where the graph refuses the window.
fn check_conv_output_size(size: OutputSize) -> TestResult {
    use dendrite::graph::ops::Conv2d;
    for padding in [Padding::Valid, Padding::Same] {
        for (n, k, stride, dilation) in (1..9).flat_map(|n| {
            (1..5).flat_map(move |k| (1..4).flat_map(move |s| (1..4).map(move |d| (n, k, s, d))))
        }) {
            let mut g = Graph::<f64>::new();
            let x = g.input("x", [1, n, 1, 1])?;
            let w = g.input("w", [k, 1, 1, 1])?;
            let conv = Conv2d {
                strides: [stride, 1],
                dilation: [dilation, 1],
                padding,
            };
            let graph_says = match g.conv2d(x, w, conv) {
                Ok(y) => g.shape(y)?.dims()[1].fixed(),
                Err(_) => None,
            };
            let mine = size(n, k, stride, dilation, padding);
            assert_eq!(
                mine, graph_says,
                "n {n}, k {k}, stride {stride}, dilation {dilation}, {padding:?}"
            );
        }
    }
    Ok(())
}
// ANCHOR_END: exercise_checks

#[test]
fn solutions_pass() -> TestResult {
    check_build_graph(solutions::build_graph)?;
    check_softplus_derivative(solutions::softplus_derivative)?;
    check_second_derivative(solutions::second_derivative)?;
    check_sigmoid_derivative(solutions::sigmoid_derivative)?;
    check_bce_with_logits(solutions::bce_with_logits);
    check_clip_by_global_norm(solutions::clip_by_global_norm);
    check_early_stopping_epoch(solutions::early_stopping_epoch);
    check_cube_op(solutions::Cube)?;
    check_last_uses(solutions::last_uses);
    check_conv_output_size(solutions::conv_output_size)?;
    Ok(())
}

#[test]
#[ignore = "exercise: write exercise_build_graph"]
fn exercise_9_build_graph() -> TestResult {
    check_build_graph(exercise_build_graph)
}

#[test]
#[ignore = "exercise: write exercise_softplus_derivative"]
fn exercise_10_softplus_derivative() -> TestResult {
    check_softplus_derivative(exercise_softplus_derivative)
}

#[test]
#[ignore = "exercise: write exercise_second_derivative"]
fn exercise_11_second_derivative() -> TestResult {
    check_second_derivative(exercise_second_derivative)
}

#[test]
#[ignore = "exercise: write exercise_sigmoid_derivative"]
fn exercise_12_sigmoid_derivative() -> TestResult {
    check_sigmoid_derivative(exercise_sigmoid_derivative)
}

#[test]
#[ignore = "exercise: write exercise_bce_with_logits"]
fn exercise_13_bce_with_logits() {
    check_bce_with_logits(exercise_bce_with_logits);
}

#[test]
#[ignore = "exercise: write exercise_clip_by_global_norm"]
fn exercise_14_clip_by_global_norm() {
    check_clip_by_global_norm(exercise_clip_by_global_norm);
}

#[test]
#[ignore = "exercise: write exercise_early_stopping_epoch"]
fn exercise_15_early_stopping() {
    check_early_stopping_epoch(exercise_early_stopping_epoch);
}

#[test]
#[ignore = "exercise: write the methods of ExerciseCube"]
fn exercise_16_cube_op() -> TestResult {
    check_cube_op(ExerciseCube)
}

#[test]
#[ignore = "exercise: write exercise_last_uses"]
fn exercise_17_last_uses() {
    check_last_uses(exercise_last_uses);
}

#[test]
#[ignore = "exercise: write exercise_conv_output_size"]
fn exercise_18_conv_output_size() -> TestResult {
    check_conv_output_size(exercise_conv_output_size)
}
