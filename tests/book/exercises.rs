//! Exercises (`#[ignore]`d: the reader makes them pass) and their solutions (run by every test
//! run).

use super::*;
use crate::initialization::{deep_stack, InitRule};
use crate::tour::scratch;

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
