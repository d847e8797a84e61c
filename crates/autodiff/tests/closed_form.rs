//! Gradients with known closed forms, each derivative written next to its test; kinks; ties;
//! higher order; dynamic batch dimensions; typed errors instead of panics.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dendrite_autodiff::check::{assert_gradients, CheckConfig};
use dendrite_autodiff::{grad, hessian, hvp, jacobian, jvp, vjp, AutodiffError};
use dendrite_graph::{compile, Graph, GraphError, NodeId, Shape};
use ndarray::{arr0, arr1, arr2, Array2, ArrayD, ArrayViewD, IxDyn};

/// Runs `fetches` with `feeds` and returns owned values.
fn eval(
    g: &Graph<f64>,
    fetches: &[NodeId],
    feeds: &[(&str, ArrayViewD<'_, f64>)],
) -> Vec<ArrayD<f64>> {
    compile(g, fetches)
        .unwrap()
        .run(g, feeds)
        .unwrap()
        .to_vec()
        .unwrap()
}

fn close(a: &ArrayD<f64>, b: &ArrayD<f64>, tol: f64) -> bool {
    a.shape() == b.shape()
        && a.iter()
            .zip(b)
            .all(|(x, y)| (x - y).abs() <= tol * (1.0 + y.abs()))
}

#[test]
fn tanh_derivative_is_one_minus_tanh_squared() {
    // d tanh x / dx = 1 - tanh² x
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [5]).unwrap();
    let t = g.tanh(x).unwrap();
    let y = g.sum_all(t).unwrap();
    let dx = grad(&mut g, y, &[x]).unwrap();
    let xv = arr1(&[-3.0, -0.5, 0.0, 0.7, 2.0]).into_dyn();
    let out = eval(&g, &dx, &[("x", xv.view())]);
    let expected = xv.mapv(|v| 1.0 - v.tanh().powi(2));
    assert!(close(&out[0], &expected, 1e-15), "{} vs {expected}", out[0]);
}

#[test]
fn erf_derivative_is_a_gaussian_bump() {
    // d erf x / dx = (2/√π) e^(-x²);  d² erf x / dx² = -2x (2/√π) e^(-x²)
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [5]).unwrap();
    let e = g.erf(x).unwrap();
    let y = g.sum_all(e).unwrap();
    let dx = grad(&mut g, y, &[x]).unwrap();
    let d1 = g.sum_all(dx[0]).unwrap();
    let ddx = grad(&mut g, d1, &[x]).unwrap();
    let xv = arr1(&[-2.0, -0.5, 0.0, 0.7, 3.0]).into_dyn();
    let out = eval(&g, &[dx[0], ddx[0]], &[("x", xv.view())]);
    let bump = xv.mapv(|v| std::f64::consts::FRAC_2_SQRT_PI * (-v * v).exp());
    assert!(close(&out[0], &bump, 1e-15), "{} vs {bump}", out[0]);
    assert_eq!(out[0][2], std::f64::consts::FRAC_2_SQRT_PI);
    let curvature = &bump * &xv.mapv(|v| -2.0 * v);
    assert!(
        close(&out[1], &curvature, 1e-15),
        "{} vs {curvature}",
        out[1]
    );
}

#[test]
fn hessian_of_quadratic_form_is_a_plus_a_transpose() {
    // f(x) = xᵀ A x  ⇒  ∇f = (A + Aᵀ) x,  H = A + Aᵀ
    let a_val = arr2(&[[1.0, 2.0, -1.0], [0.5, 3.0, 4.0], [-2.0, 0.0, 1.5]]);
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [3]).unwrap();
    let a = g.constant(a_val.clone().into_dyn());
    let col = g.reshape(x, [3, 1]).unwrap();
    let ax = g.matmul(a, col).unwrap();
    let xax = g.matmul_t(col, ax, true, false).unwrap();
    let f = g.sum_all(xax).unwrap();
    let h = hessian(&mut g, f, x).unwrap();
    let xv = arr1(&[0.3, -1.2, 2.0]).into_dyn();
    let out = eval(&g, &[h], &[("x", xv.view())]);
    let expected = (&a_val + &a_val.t()).into_dyn();
    assert!(close(&out[0], &expected, 1e-14), "{}", out[0]);
}

/// Sparse categorical cross-entropy over a batch: `-mean_b Σ_c onehot(y)_bc log softmax(z)_bc`.
fn cross_entropy(g: &mut Graph<f64>, logits: NodeId, labels: NodeId, classes: usize) -> NodeId {
    let log_p = g.log_softmax(logits, 1).unwrap();
    let oh = g.one_hot(labels, classes).unwrap();
    let picked = g.mul(oh, log_p).unwrap();
    let per_example = g.sum(picked, &[1]).unwrap();
    let m = g.mean(per_example, &[0], false).unwrap();
    g.neg(m).unwrap()
}

#[test]
fn softmax_cross_entropy_gradient_is_p_minus_onehot_over_batch() {
    // ∂/∂z_bc [-(1/B) Σ_b log softmax(z_b)_{y_b}] = (softmax(z)_bc - [c = y_b]) / B
    let mut g = Graph::<f64>::new();
    let z = g.input("z", [None, Some(4)]).unwrap();
    let y = g.input("y", [None]).unwrap();
    let loss = cross_entropy(&mut g, z, y, 4);
    let dz = grad(&mut g, loss, &[z]).unwrap();
    let zv = arr2(&[
        [1.0, 2.0, 0.5, -1.0],
        [0.0, 0.0, 0.0, 0.0],
        [10.0, -10.0, 3.0, 2.0],
    ])
    .into_dyn();
    let yv = arr1(&[1.0, 3.0, 0.0]).into_dyn();
    let out = eval(&g, &dz, &[("z", zv.view()), ("y", yv.view())]);
    let mut expected = Array2::<f64>::zeros((3, 4));
    for b in 0..3 {
        let row: Vec<f64> = (0..4).map(|c| zv[[b, c]].exp()).collect();
        let total: f64 = row.iter().sum();
        for c in 0..4 {
            let onehot = if c as f64 == yv[b] { 1.0 } else { 0.0 };
            expected[[b, c]] = (row[c] / total - onehot) / 3.0;
        }
    }
    assert!(close(&out[0], &expected.into_dyn(), 1e-14), "{}", out[0]);
}

#[test]
fn relu_at_zero_has_derivative_zero() {
    // relu'(x) = [x > 0]; at the kink x = 0 the derivative is taken to be 0.
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [3]).unwrap();
    let r = g.relu(x).unwrap();
    let y = g.sum_all(r).unwrap();
    let dx = grad(&mut g, y, &[x]).unwrap();
    let xv = arr1(&[-1.0, 0.0, 1.0]).into_dyn();
    assert_eq!(
        eval(&g, &dx, &[("x", xv.view())])[0],
        arr1(&[0.0, 0.0, 1.0]).into_dyn()
    );
}

#[test]
fn abs_at_zero_has_derivative_zero() {
    // d|x|/dx = sign x, with sign 0 = 0 (the least-norm subgradient).
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [3]).unwrap();
    let a = g.abs(x).unwrap();
    let y = g.sum_all(a).unwrap();
    let dx = grad(&mut g, y, &[x]).unwrap();
    let xv = arr1(&[-2.0, 0.0, 0.5]).into_dyn();
    assert_eq!(
        eval(&g, &dx, &[("x", xv.view())])[0],
        arr1(&[-1.0, 0.0, 1.0]).into_dyn()
    );
}

#[test]
fn max_reduction_ties_split_evenly() {
    // ∂ max(x) / ∂x_i = [x_i = max] / #{j : x_j = max}
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [2, 4]).unwrap();
    let m = g.max(x, &[1], false).unwrap();
    let y = g.sum_all(m).unwrap();
    let dx = grad(&mut g, y, &[x]).unwrap();
    let xv = arr2(&[[1.0, 3.0, 3.0, 2.0], [5.0, 5.0, 5.0, 0.0]]).into_dyn();
    let expected = arr2(&[[0.0, 0.5, 0.5, 0.0], [1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0, 0.0]]).into_dyn();
    assert!(close(
        &eval(&g, &dx, &[("x", xv.view())])[0],
        &expected,
        1e-15
    ));
}

#[test]
fn maximum_ties_split_evenly() {
    // ∂ max(a, b)/∂a = [a > b] + ½[a = b], and the same for b: at a tie each gets ½, and
    // max(x, x) has derivative ½ + ½ = 1.
    let mut g = Graph::<f64>::new();
    let a = g.input("a", [3]).unwrap();
    let b = g.input("b", [3]).unwrap();
    let m = g.maximum(a, b).unwrap();
    let y = g.sum_all(m).unwrap();
    let same = g.maximum(a, a).unwrap();
    let y2 = g.sum_all(same).unwrap();
    let d = grad(&mut g, y, &[a, b]).unwrap();
    let d2 = grad(&mut g, y2, &[a]).unwrap();
    let (av, bv) = (
        arr1(&[1.0, 2.0, 3.0]).into_dyn(),
        arr1(&[0.0, 2.0, 4.0]).into_dyn(),
    );
    let out = eval(
        &g,
        &[d[0], d[1], d2[0]],
        &[("a", av.view()), ("b", bv.view())],
    );
    assert_eq!(out[0], arr1(&[1.0, 0.5, 0.0]).into_dyn());
    assert_eq!(out[1], arr1(&[0.0, 0.5, 1.0]).into_dyn());
    assert_eq!(out[2], arr1(&[1.0, 1.0, 1.0]).into_dyn());
}

#[test]
fn jacobian_of_a_small_function() {
    // f(x) = tanh(W x)  ⇒  J = diag(1 - tanh²(W x)) W
    let w_val = arr2(&[[1.0, -2.0], [0.5, 0.25], [3.0, 1.0]]);
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [2]).unwrap();
    let w = g.constant(w_val.clone().into_dyn());
    let col = g.reshape(x, [2, 1]).unwrap();
    let wx = g.matmul(w, col).unwrap();
    let flat = g.reshape(wx, [3]).unwrap();
    let f = g.tanh(flat).unwrap();
    let j = jacobian(&mut g, f, x).unwrap();
    let xv = arr1(&[0.2, -0.4]).into_dyn();
    let out = eval(&g, &[j], &[("x", xv.view())]);
    let wxv = w_val.dot(&arr1(&[0.2, -0.4]));
    let expected = Array2::from_shape_fn((3, 2), |(i, k)| {
        (1.0 - wxv[i].tanh().powi(2)) * w_val[[i, k]]
    })
    .into_dyn();
    assert!(close(&out[0], &expected, 1e-14), "{}", out[0]);
}

#[test]
fn jvp_equals_jacobian_times_tangent() {
    // J t computed forward (jvp) and as an explicit product with the Jacobian.
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [3]).unwrap();
    let t = g.input("t", [3]).unwrap();
    let e = g.exp(x).unwrap();
    let s = g.sum_keep_dims(e, &[0]).unwrap();
    let sm = g.div(e, s).unwrap();
    let sq = g.square(x).unwrap();
    let f = g.add(sm, sq).unwrap();
    let jt = jvp(&mut g, f, &[x], &[t]).unwrap();
    let j = jacobian(&mut g, f, x).unwrap();
    let tcol = g.reshape(t, [3, 1]).unwrap();
    let prod = g.matmul(j, tcol).unwrap();
    let prod = g.reshape(prod, [3]).unwrap();
    let (xv, tv) = (
        arr1(&[0.1, -1.0, 2.0]).into_dyn(),
        arr1(&[1.0, 0.5, -2.0]).into_dyn(),
    );
    let out = eval(&g, &[jt, prod], &[("x", xv.view()), ("t", tv.view())]);
    assert!(close(&out[0], &out[1], 1e-14), "{} vs {}", out[0], out[1]);
}

#[test]
fn a_wrt_that_does_not_reach_the_output_gets_zeros_of_its_shape() {
    // ∂f/∂z = 0 for a z that f does not depend on, shaped like z (dynamic dims too).
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [2]).unwrap();
    let z = g.input("z", [None, Some(4)]).unwrap();
    let w = g
        .parameter("w", Array2::<f64>::ones((2, 3)).into_dyn())
        .unwrap();
    let y = g.sum_all(x).unwrap();
    let d = grad(&mut g, y, &[z, w, x]).unwrap();
    let (xv, zv) = (
        arr1(&[1.0, 2.0]).into_dyn(),
        Array2::<f64>::ones((5, 4)).into_dyn(),
    );
    let out = eval(&g, &d, &[("x", xv.view()), ("z", zv.view())]);
    assert_eq!(out[0], Array2::<f64>::zeros((5, 4)).into_dyn());
    assert_eq!(out[1], Array2::<f64>::zeros((2, 3)).into_dyn());
    assert_eq!(out[2], arr1(&[1.0, 1.0]).into_dyn());
    // Nodes added after the output cannot reach it either (no index arithmetic underflow).
    let _later = g.scalar(1.0);
    let u = g.input("u", [3]).unwrap();
    let du = grad(&mut g, y, &[u]).unwrap();
    let uv = arr1(&[1.0, 2.0, 3.0]).into_dyn();
    assert_eq!(
        eval(&g, &du, &[("u", uv.view())])[0],
        ArrayD::zeros(IxDyn(&[3]))
    );
}

/// `f(x)` and its first and second derivatives (`grad` of `Σ f`, then of `Σ f'`) at `xs`.
fn derivatives(xs: &[f64], f: impl Fn(&mut Graph<f64>, NodeId) -> NodeId) -> [ArrayD<f64>; 3] {
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [xs.len()]).unwrap();
    let y = f(&mut g, x);
    let total = g.sum_all(y).unwrap();
    let d1 = grad(&mut g, total, &[x]).unwrap()[0];
    let total1 = g.sum_all(d1).unwrap();
    let d2 = grad(&mut g, total1, &[x]).unwrap()[0];
    let xv = arr1(xs).into_dyn();
    let out = eval(&g, &[y, d1, d2], &[("x", xv.view())]);
    [out[0].clone(), out[1].clone(), out[2].clone()]
}

#[test]
fn softplus_and_sigmoid_derivatives_at_zero_and_in_the_tails() {
    // softplus'(x) = σ(x), softplus''(x) = σ'(x) = σ(x)σ(-x): ½ and ¼ at 0, where the old
    // two-branch composite gave a second derivative of 0.
    // σ(x) keeps full relative accuracy in both tails: σ(-800) = e^-800 (a subnormal, not 0),
    // and σ'(40) = σ(40)σ(-40) ≈ e^-40, where σ(1 - σ) would round to 0.
    let xs = [0.0, -800.0, 40.0, -40.0, 1.0];
    let [sp, dsp, ddsp] = derivatives(&xs, |g, x| g.softplus(x).unwrap());
    let [s, ds, _] = derivatives(&xs, |g, x| g.sigmoid(x).unwrap());
    let sigma = |v: f64| {
        if v >= 0.0 {
            1.0 / (1.0 + (-v).exp())
        } else {
            v.exp() / (1.0 + v.exp())
        }
    };
    for (i, &v) in xs.iter().enumerate() {
        assert!(
            (s[[i]] - sigma(v)).abs() <= 1e-15 * sigma(v),
            "σ({v}) = {}",
            s[[i]]
        );
        assert!((dsp[[i]] - sigma(v)).abs() <= 1e-15 * sigma(v));
        let slope = sigma(v) * sigma(-v);
        assert!(
            (ds[[i]] - slope).abs() <= 1e-15 * slope,
            "σ'({v}) = {}",
            ds[[i]]
        );
        assert!(
            (ddsp[[i]] - slope).abs() <= 1e-15 * slope,
            "softplus''({v}) = {}",
            ddsp[[i]]
        );
    }
    assert_eq!((dsp[[0]], ddsp[[0]]), (0.5, 0.25));
    assert_eq!(s[[1]], (-800.0f64).exp());
    // softplus(-40) = log1p(e^-40) ≈ e^-40, so log(softplus(-40)) ≈ -40, not -inf.
    assert!((sp[[3]].ln() + 40.0).abs() < 1e-12);
    assert!((ds[[2]] - (-40.0f64).exp()).abs() < 1e-30);
}

#[test]
fn sin_and_cos_derivatives_are_each_other() {
    // sin' = cos, sin'' = -sin; cos' = -sin, cos'' = -cos.
    let xs = [-2.0, 0.0, 0.3, 1.5, 100.0];
    let [s, ds, dds] = derivatives(&xs, |g, x| g.sin(x).unwrap());
    let [c, dc, ddc] = derivatives(&xs, |g, x| g.cos(x).unwrap());
    for (i, &v) in xs.iter().enumerate() {
        assert_eq!((s[[i]], c[[i]]), (v.sin(), v.cos()));
        assert_eq!((ds[[i]], dds[[i]]), (v.cos(), -v.sin()));
        assert_eq!((dc[[i]], ddc[[i]]), (-v.sin(), -v.cos()));
    }
}

#[test]
fn log1p_and_expm1_are_exact_near_zero() {
    // log1p'(x) = 1/(1 + x), log1p''(x) = -1/(1 + x)²; expm1' = expm1'' = e^x.
    let xs = [1e-20, -0.5, 3.0, -40.0];
    let [l, dl, ddl] = derivatives(&xs[..3], |g, x| g.log1p(x).unwrap());
    assert_eq!(l[[0]], 1e-20); // log(1 + 1e-20) would give 0
    for (i, &v) in xs[..3].iter().enumerate() {
        assert_eq!(dl[[i]], 1.0 / (1.0 + v));
        assert!((ddl[[i]] + 1.0 / (1.0 + v).powi(2)).abs() < 1e-15);
    }
    let [e, de, dde] = derivatives(&xs, |g, x| g.expm1(x).unwrap());
    assert_eq!(e[[0]], 1e-20);
    for (i, &v) in xs.iter().enumerate() {
        assert_eq!((de[[i]], dde[[i]]), (v.exp(), v.exp()));
    }
    // At -40 the derivative is e^-40, not y + 1 = 0.
    assert!(de[[3]] > 0.0);
}

#[test]
fn power_gradients_with_respect_to_base_and_exponent() {
    // d(a^b)/da = b a^(b-1), d(a^b)/db = a^b ln a.
    let mut g = Graph::<f64>::new();
    let a = g.input("a", [3]).unwrap();
    let b = g.input("b", [3]).unwrap();
    let y = g.power(a, b).unwrap();
    let total = g.sum_all(y).unwrap();
    let d = grad(&mut g, total, &[a, b]).unwrap();
    let av = arr1(&[2.0, 0.5, 3.0]).into_dyn();
    let bv = arr1(&[3.0, -1.5, 0.5]).into_dyn();
    let out = eval(&g, &[y, d[0], d[1]], &[("a", av.view()), ("b", bv.view())]);
    for i in 0..3 {
        let (x, p) = (av[[i]], bv[[i]]);
        assert!((out[0][[i]] - x.powf(p)).abs() < 1e-15);
        assert!((out[1][[i]] - p * x.powf(p - 1.0)).abs() < 1e-14);
        assert!((out[2][[i]] - x.powf(p) * x.ln()).abs() < 1e-14);
    }
    // 2³ = 8: d/da = 3·4 = 12, d/db = 8 ln 2.
    assert_eq!(out[1][[0]], 12.0);
}

#[test]
fn prod_gradient_with_zeros() {
    // d(Π x)/dx_i = Π_{j≠i} x_j, with no division by a zero element.
    let grad_of = |v: &[f64]| {
        let mut g = Graph::<f64>::new();
        let x = g.input("x", [v.len()]).unwrap();
        let p = g.prod(x, &[0], false).unwrap();
        let d = grad(&mut g, p, &[x]).unwrap();
        let xv = arr1(v).into_dyn();
        eval(&g, &d, &[("x", xv.view())])[0].clone()
    };
    assert_eq!(grad_of(&[1.0, 2.0, 3.0]), arr1(&[6.0, 3.0, 2.0]).into_dyn());
    assert_eq!(grad_of(&[2.0, 0.0, 3.0]), arr1(&[0.0, 6.0, 0.0]).into_dyn());
    assert_eq!(grad_of(&[0.0, 5.0, 0.0]), arr1(&[0.0, 0.0, 0.0]).into_dyn());
    // The Hessian of x0 x1 x2 at (0, 0, 3): ∂²/∂x0∂x1 = x2 = 3, the rest 0 but for
    // ∂²/∂x0∂x2 = x1 = 0 and ∂²/∂x1∂x2 = x0 = 0.
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [3]).unwrap();
    let p = g.prod(x, &[0], false).unwrap();
    let h = hessian(&mut g, p, x).unwrap();
    let xv = arr1(&[0.0, 0.0, 3.0]).into_dyn();
    let hv = eval(&g, &[h], &[("x", xv.view())])[0].clone();
    let expected = arr2(&[[0.0, 3.0, 0.0], [3.0, 0.0, 0.0], [0.0, 0.0, 0.0]]).into_dyn();
    assert_eq!(hv, expected);
}

#[test]
fn min_reduction_ties_split_evenly() {
    // min over [1, -2, -2]: the two minima share the gradient, ½ each.
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [3]).unwrap();
    let m = g.min(x, &[0], false).unwrap();
    let d = grad(&mut g, m, &[x]).unwrap();
    let xv = arr1(&[1.0, -2.0, -2.0]).into_dyn();
    let out = eval(&g, &[m, d[0]], &[("x", xv.view())]);
    assert_eq!(out[0], arr0(-2.0).into_dyn());
    assert_eq!(out[1], arr1(&[0.0, 0.5, 0.5]).into_dyn());
}

#[test]
fn cumsum_gradient_is_the_reversed_cumsum() {
    // y_i = Σ_{j≤i} x_j, so ∂(Σ_i c_i y_i)/∂x_j = Σ_{i≥j} c_i.
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [4]).unwrap();
    let c = g.input("c", [4]).unwrap();
    let y = g.cumsum(x, 0, false).unwrap();
    let d = vjp(&mut g, y, &[x], c).unwrap();
    let xv = arr1(&[1.0, 2.0, 3.0, 4.0]).into_dyn();
    let cv = arr1(&[1.0, 10.0, 100.0, 1000.0]).into_dyn();
    let out = eval(&g, &[y, d[0]], &[("x", xv.view()), ("c", cv.view())]);
    assert_eq!(out[0], arr1(&[1.0, 3.0, 6.0, 10.0]).into_dyn());
    assert_eq!(out[1], arr1(&[1111.0, 1110.0, 1100.0, 1000.0]).into_dyn());
}

#[test]
fn logsumexp_of_infinite_rows() {
    // logsumexp(x)' = softmax(x). A row of all -inf gives -inf with gradient 0 (the composite
    // with a stopped max gave NaN for both); a row holding +inf gives +inf.
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [3, 2]).unwrap();
    let l = g.logsumexp(x, &[1], false).unwrap();
    let total = g.sum_all(l).unwrap();
    let d = grad(&mut g, total, &[x]).unwrap();
    let ninf = f64::NEG_INFINITY;
    let xv = arr2(&[[ninf, ninf], [f64::INFINITY, 1.0], [0.0, 3.0_f64.ln()]]).into_dyn();
    let out = eval(&g, &[l, d[0]], &[("x", xv.view())]);
    assert_eq!(out[0][[0]], ninf);
    assert_eq!(out[0][[1]], f64::INFINITY);
    assert!((out[0][[2]] - 4.0_f64.ln()).abs() < 1e-15);
    assert_eq!((out[1][[0, 0]], out[1][[0, 1]]), (0.0, 0.0));
    assert!((out[1][[2, 0]] - 0.25).abs() < 1e-15 && (out[1][[2, 1]] - 0.75).abs() < 1e-15);
}

#[test]
fn relu_passes_nan_through() {
    // relu(NaN) = NaN (NumPy's maximum(NaN, 0) = NaN), so a NaN input is not hidden as 0.
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [3]).unwrap();
    let r = g.relu(x).unwrap();
    let l = g.leaky_relu(x, 0.1).unwrap();
    let xv = arr1(&[f64::NAN, -1.0, 2.0]).into_dyn();
    let out = eval(&g, &[r, l], &[("x", xv.view())]);
    assert!(out[0][[0]].is_nan() && out[1][[0]].is_nan());
    assert_eq!((out[0][[1]], out[0][[2]]), (0.0, 2.0));
    assert_eq!((out[1][[1]], out[1][[2]]), (-0.1, 2.0));
}

#[test]
fn contributions_are_summed() {
    // d(x·x)/dx = 2x (two operand slots of one node), and
    // d(tanh x + 3x)/dx = 1 - tanh² x + 3 (x used in two branches).
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [3]).unwrap();
    let xx = g.mul(x, x).unwrap();
    let y1 = g.sum_all(xx).unwrap();
    let t = g.tanh(x).unwrap();
    let x3 = g.scale(x, 3.0).unwrap();
    let branches = g.add(t, x3).unwrap();
    let y2 = g.sum_all(branches).unwrap();
    let d1 = grad(&mut g, y1, &[x]).unwrap();
    let d2 = grad(&mut g, y2, &[x]).unwrap();
    let xv = arr1(&[0.5, -1.0, 2.0]).into_dyn();
    let out = eval(&g, &[d1[0], d2[0]], &[("x", xv.view())]);
    assert_eq!(out[0], xv.mapv(|v| 2.0 * v));
    assert!(close(
        &out[1],
        &xv.mapv(|v| 1.0 - v.tanh().powi(2) + 3.0),
        1e-15
    ));
}

#[test]
fn gradient_of_a_gradient() {
    // d/dx x³ = 3x², d²/dx² x³ = 6x, d³/dx³ x³ = 6.
    let mut g = Graph::<f64>::new();
    let x = g.input("x", Shape::scalar()).unwrap();
    let y = g.pow(x, 3.0).unwrap();
    let d1 = grad(&mut g, y, &[x]).unwrap()[0];
    let d2 = grad(&mut g, d1, &[x]).unwrap()[0];
    let d3 = grad(&mut g, d2, &[x]).unwrap()[0];
    let xv = arr0(1.5).into_dyn();
    let out = eval(&g, &[d1, d2, d3], &[("x", xv.view())]);
    assert!((out[0].sum() - 3.0 * 2.25).abs() < 1e-14);
    assert!((out[1].sum() - 9.0).abs() < 1e-14);
    assert!((out[2].sum() - 6.0).abs() < 1e-14);
}

#[test]
fn hvp_matches_hessian_times_vector() {
    // f = Σ exp(x₀ x₁ …): H v computed by hvp and by the dense Hessian.
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [3]).unwrap();
    let v = g.input("v", [3]).unwrap();
    let p = g.mul(x, x).unwrap();
    let s = g.sum_all(p).unwrap();
    let e = g.exp(s).unwrap();
    let t = g.tanh(x).unwrap();
    let st = g.sum_all(t).unwrap();
    let f = g.mul(e, st).unwrap();
    let hv = hvp(&mut g, f, &[x], &[v]).unwrap()[0];
    let h = hessian(&mut g, f, x).unwrap();
    let vcol = g.reshape(v, [3, 1]).unwrap();
    let hv2 = g.matmul(h, vcol).unwrap();
    let hv2 = g.reshape(hv2, [3]).unwrap();
    let (xv, vv) = (
        arr1(&[0.2, -0.3, 0.5]).into_dyn(),
        arr1(&[1.0, 2.0, -1.0]).into_dyn(),
    );
    let out = eval(&g, &[hv, hv2], &[("x", xv.view()), ("v", vv.view())]);
    assert!(close(&out[0], &out[1], 1e-13), "{} vs {}", out[0], out[1]);
}

#[test]
fn dynamic_batch_gradients_with_batch_one_and_five() {
    // f = Σ_b,j (x W + b)²_bj: ∂f/∂b_j = Σ_b 2 (x W + b)_bj, the bias broadcast summed back over
    // the batch, whatever its run-time size.
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [None, Some(3)]).unwrap();
    let w = g
        .parameter(
            "w",
            arr2(&[[0.5, -1.0], [1.0, 0.2], [-0.3, 0.7]]).into_dyn(),
        )
        .unwrap();
    let b = g.parameter("b", arr1(&[0.1, -0.2]).into_dyn()).unwrap();
    let xw = g.matmul(x, w).unwrap();
    let h = g.add(xw, b).unwrap();
    let sq = g.square(h).unwrap();
    let f = g.sum_all(sq).unwrap();
    let d = grad(&mut g, f, &[b, x]).unwrap();
    for batch in [1usize, 5] {
        let xv = ArrayD::from_shape_fn(IxDyn(&[batch, 3]), |i| {
            (i[0] as f64 + 1.0) * 0.3 - i[1] as f64 * 0.2
        });
        let out = eval(&g, &[d[0], d[1], h], &[("x", xv.view())]);
        let expected_db = out[2].sum_axis(ndarray::Axis(0)).mapv(|v| 2.0 * v);
        assert!(
            close(&out[0], &expected_db, 1e-14),
            "batch {batch}: {}",
            out[0]
        );
        assert_eq!(out[1].shape(), &[batch, 3]);
        assert_gradients(
            &mut g,
            f,
            &[x, w, b],
            &[("x", xv.view())],
            &CheckConfig::default(),
        )
        .unwrap();
    }
}

#[test]
fn typed_errors_instead_of_panics() {
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [None, Some(3)]).unwrap();
    // A non-scalar output needs vjp.
    let e = g.exp(x).unwrap();
    assert!(matches!(
        grad(&mut g, e, &[x]),
        Err(AutodiffError::NonScalarOutput { .. })
    ));
    // A cotangent of the wrong shape.
    let ct = g.input("ct", [4]).unwrap();
    assert!(matches!(
        vjp(&mut g, e, &[x], ct),
        Err(AutodiffError::PairShape { .. })
    ));
    // Slicing along a dynamic axis has no derivative rule: a typed error.
    let s = g.slice(x, 0, 0, 1).unwrap();
    let y = g.sum_all(s).unwrap();
    let err = grad(&mut g, y, &[x]).unwrap_err();
    assert!(
        matches!(
            err,
            AutodiffError::Graph(GraphError::NotDifferentiable { op: "slice", .. })
        ),
        "{err}"
    );
    // Jacobians need fixed shapes.
    assert!(matches!(
        jacobian(&mut g, e, x),
        Err(AutodiffError::NeedsFixedShape { .. })
    ));
    // Through argmax, comparisons and one_hot the gradient is a documented zero.
    let am = g.argmax(x, 1).unwrap();
    let oh = g.one_hot(am, 3).unwrap();
    let gt = g.greater(x, oh).unwrap();
    let z = g.sum_all(gt).unwrap();
    let d = grad(&mut g, z, &[x]).unwrap();
    let xv = arr2(&[[0.1, 0.5, 0.2]]).into_dyn();
    assert_eq!(
        eval(&g, &d, &[("x", xv.view())])[0],
        Array2::<f64>::zeros((1, 3)).into_dyn()
    );
}
