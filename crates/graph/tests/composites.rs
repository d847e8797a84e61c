//! Forward values of the composite ops (relu, leaky_relu, sigmoid, softplus, gelu, gelu_tanh,
//! softmax, log_softmax, logsumexp, mean, variance, and the small helpers), including the
//! numerically hard inputs they are written to survive.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{arange, assert_close, assert_same, run1, s, t, unary};
use dendrite_graph::{compile, Graph, Shape};
use std::f64::consts::LN_2;

const INF: f64 = f64::INFINITY;
const NAN: f64 = f64::NAN;

#[test]
fn relu_and_leaky_relu() {
    let x = t(&[5], &[-2.0, -0.0, 0.0, 0.5, 3.0]);
    assert_same(
        &unary(&x, |g, x| g.relu(x)),
        &t(&[5], &[0.0, 0.0, 0.0, 0.5, 3.0]),
    );
    assert_same(
        &unary(&x, |g, x| g.leaky_relu(x, 0.25)),
        &t(&[5], &[-0.5, 0.0, 0.0, 0.5, 3.0]),
    );
    assert_same(&unary(&s(-4.0), |g, x| g.relu(x)), &s(0.0));
    assert_eq!(unary(&t(&[0, 2], &[]), |g, x| g.relu(x)).shape(), &[0, 2]);
    // NaN: `x > 0` is false, so relu gives 0 and leaky_relu gives alpha * NaN.
    assert_same(
        &unary(&t(&[1], &[NAN]), |g, x| g.leaky_relu(x, 0.1)),
        &t(&[1], &[NAN]),
    );
}

#[test]
fn sigmoid_is_exact_at_known_points_and_saturates_without_nan() {
    // sigmoid(ln 3) = 3/4, sigmoid(-ln 3) = 1/4.
    let x = t(&[3], &[0.0, 3.0_f64.ln(), -(3.0_f64.ln())]);
    assert_close(
        &unary(&x, |g, x| g.sigmoid(x)),
        &t(&[3], &[0.5, 0.75, 0.25]),
        1e-15,
    );
    let extreme = t(&[4], &[1000.0, -1000.0, INF, -INF]);
    let y = unary(&extreme, |g, x| g.sigmoid(x));
    assert_same(&y, &t(&[4], &[1.0, 0.0, 1.0, 0.0]));
    // And in f32.
    let mut g = Graph::<f32>::new();
    let xi = g.input("x", [2]).unwrap();
    let y = g.sigmoid(xi).unwrap();
    let xv = ndarray::arr1(&[1000.0_f32, -1000.0]).into_dyn();
    let out = run1(&g, y, &[("x", &xv)]);
    assert_eq!(out, ndarray::arr1(&[1.0_f32, 0.0]).into_dyn());
}

#[test]
fn softplus_is_stable_for_large_inputs() {
    // softplus(0) = ln 2, softplus(ln 3) = ln 4, softplus(-ln 3) = ln(4/3).
    let x = t(&[3], &[0.0, 3.0_f64.ln(), -(3.0_f64.ln())]);
    let y = unary(&x, |g, x| g.softplus(x));
    assert_close(
        &y,
        &t(&[3], &[LN_2, 4.0_f64.ln(), (4.0_f64 / 3.0).ln()]),
        1e-15,
    );
    let y = unary(&t(&[4], &[1000.0, -1000.0, 50.0, -50.0]), |g, x| {
        g.softplus(x)
    });
    assert_close(&y, &t(&[4], &[1000.0, 0.0, 50.0, (-50.0_f64).exp()]), 1e-15);
    assert!(y.iter().all(|v| v.is_finite()));
}

#[test]
fn gelu_tanh_approximation() {
    // Reference values of ½ x (1 + tanh(√(2/π) (x + 0.044715 x³))), computed independently.
    let x = t(&[5], &[0.0, 1.0, -1.0, 2.0, 100.0]);
    let y = unary(&x, |g, x| g.gelu_tanh(x));
    let expected = t(
        &[5],
        &[
            0.0,
            0.8411919906082768,
            -0.15880800939172324,
            1.954597694087775,
            100.0,
        ],
    );
    assert_close(&y, &expected, 1e-14);
    let y = unary(&t(&[1], &[-100.0]), |g, x| g.gelu_tanh(x));
    assert!(y[[0]].abs() < 1e-12, "{y}");
}

#[test]
fn gelu_is_x_times_the_normal_cdf() {
    // x Φ(x) with Φ(1) = 0.8413447460685429, Φ(2) = 0.9772498680518208 (normal tables,
    // to 16 digits), Φ(-x) = 1 - Φ(x).
    let x = t(&[6], &[0.0, 1.0, -1.0, 2.0, 100.0, -100.0]);
    let y = unary(&x, |g, x| g.gelu(x));
    let expected = t(
        &[6],
        &[
            0.0,
            0.8413447460685429,
            -(1.0 - 0.8413447460685429),
            2.0 * 0.9772498680518208,
            100.0,
            -0.0,
        ],
    );
    assert_close(&y, &expected, 1e-15);
    // The tanh form stays within 0.0005 of it over the range where they differ.
    let xs: Vec<f64> = (0..=800).map(|i| -8.0 + i as f64 * 0.02).collect();
    let exact = unary(&t(&[801], &xs), |g, x| g.gelu(x));
    let approx = unary(&t(&[801], &xs), |g, x| g.gelu_tanh(x));
    let worst = exact
        .iter()
        .zip(approx.iter())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(worst < 5e-4, "{worst}");
}

#[test]
fn softmax_rows_sum_to_one_and_survive_huge_logits() {
    let x = t(&[3, 2], &[0.0, 3.0_f64.ln(), 1e4, 1e4, 1e4, -1e4]);
    let p = unary(&x, |g, x| g.softmax(x, 1));
    assert_close(&p, &t(&[3, 2], &[0.25, 0.75, 0.5, 0.5, 1.0, 0.0]), 1e-15);
    for row in p.outer_iter() {
        assert!((row.sum() - 1.0).abs() < 1e-15);
    }
    // Along axis 0 of the same values.
    let p = unary(&x, |g, x| g.softmax(x, 0));
    assert!(p.iter().all(|v| v.is_finite()));
    for col in p.axis_iter(ndarray::Axis(1)) {
        assert!((col.sum() - 1.0).abs() < 1e-15);
    }
    assert_close(
        &p.index_axis(ndarray::Axis(1), 0).to_owned(),
        &t(&[3], &[0.0, 0.5, 0.5]),
        1e-15,
    );
    // A single class is certain.
    assert_same(
        &unary(&t(&[2, 1], &[-5.0, 1e4]), |g, x| g.softmax(x, 1)),
        &t(&[2, 1], &[1.0, 1.0]),
    );
}

#[test]
fn log_softmax_is_finite_for_huge_logits() {
    let x = t(&[2, 3], &[1e4, 0.0, -1e4, 2.0, 2.0, 2.0]);
    let y = unary(&x, |g, x| g.log_softmax(x, 1));
    let third = -(3.0_f64.ln());
    assert_close(
        &y,
        &t(&[2, 3], &[0.0, -1e4, -2e4, third, third, third]),
        1e-15,
    );
    assert!(y.iter().all(|v| v.is_finite()));
    // exp(log_softmax) rows sum to 1.
    let p = y.mapv(f64::exp);
    for row in p.outer_iter() {
        assert!((row.sum() - 1.0).abs() < 1e-15);
    }
}

#[test]
fn softmax_family_in_f32_with_logits_of_1e4() {
    let mut g = Graph::<f32>::new();
    let x = g.input("logits", [None, Some(3)]).unwrap();
    let p = g.softmax(x, 1).unwrap();
    let lp = g.log_softmax(x, 1).unwrap();
    let lse = g.logsumexp(x, &[1], false).unwrap();
    let mut plan = compile(&g, &[p, lp, lse]).unwrap();
    let xv = ndarray::arr2(&[[1e4_f32, 1e4, -1e4], [0.0, 0.0, 0.0]]).into_dyn();
    let out = plan.run(&g, &[("logits", xv.view())]).unwrap();
    let p = out.get(0).unwrap();
    let lp = out.get(1).unwrap();
    let lse = out.get(2).unwrap();
    assert!(p
        .iter()
        .chain(lp.iter())
        .chain(lse.iter())
        .all(|v| v.is_finite()));
    for row in p.outer_iter() {
        assert!((row.sum() - 1.0).abs() < 1e-6);
    }
    assert!((p[[0, 0]] - 0.5).abs() < 1e-6 && p[[0, 2]] == 0.0);
    assert!((lse[[0]] - (1e4 + std::f32::consts::LN_2)).abs() < 1e-2);
    assert!((lse[[1]] - 3.0_f32.ln()).abs() < 1e-6);
}

#[test]
fn logsumexp_over_axes() {
    let x = t(&[2, 2], &[0.0, 3.0_f64.ln(), 1e4, 1e4]);
    let y = unary(&x, |g, x| g.logsumexp(x, &[1], false));
    assert_close(&y, &t(&[2], &[4.0_f64.ln(), 1e4 + LN_2]), 1e-15);
    let y = unary(&x, |g, x| g.logsumexp(x, &[1], true));
    assert_close(&y, &t(&[2, 1], &[4.0_f64.ln(), 1e4 + LN_2]), 1e-15);
    // Over both axes: log(1 + 3 + 2 e^{1e4}) = 1e4 + ln 2 up to rounding.
    let y = unary(&x, |g, x| g.logsumexp(x, &[0, 1], false));
    assert_eq!(y.shape(), &[] as &[usize]);
    assert_close(&y, &s(1e4 + LN_2), 1e-15);
    let y = unary(&t(&[2, 3], &[0.0; 6]), |g, x| g.logsumexp(x, &[0], false));
    assert_close(&y, &t(&[3], &[LN_2; 3]), 1e-15);
}

#[test]
fn mean_over_fixed_axes() {
    let x = arange(&[2, 3]);
    assert_close(
        &unary(&x, |g, x| g.mean(x, &[0], false)),
        &t(&[3], &[1.5, 2.5, 3.5]),
        1e-15,
    );
    assert_close(
        &unary(&x, |g, x| g.mean(x, &[1], true)),
        &t(&[2, 1], &[1.0, 4.0]),
        1e-15,
    );
    assert_close(&unary(&x, |g, x| g.mean(x, &[0, 1], false)), &s(2.5), 1e-15);
    assert_close(&unary(&x, |g, x| g.mean_all(x)), &s(2.5), 1e-15);
    assert_same(&unary(&x, |g, x| g.mean(x, &[], false)), &x);
    assert_same(&unary(&s(4.0), |g, x| g.mean_all(x)), &s(4.0));
    // The mean of nothing is NaN (0 / 0), as in NumPy.
    assert_same(
        &unary(&t(&[0, 2], &[]), |g, x| g.mean(x, &[0], false)),
        &t(&[2], &[NAN, NAN]),
    );
}

#[test]
fn mean_over_a_dynamic_axis_divides_by_the_run_time_count() {
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [None, Some(2)]).unwrap();
    let per_feature = g.mean(x, &[0], false).unwrap();
    let per_row = g.mean(x, &[1], false).unwrap();
    let all = g.mean_all(x).unwrap();
    assert_eq!(g.shape(per_feature).unwrap(), &Shape::from([2]));
    assert_eq!(g.shape(per_row).unwrap().to_string(), "[?]");
    let mut plan = compile(&g, &[per_feature, per_row, all]).unwrap();
    for batch in [4, 1, 3] {
        let xv = arange(&[batch, 2]);
        let out = plan.run(&g, &[("x", xv.view())]).unwrap();
        let b = batch as f64;
        // Column means of 2i and 2i + 1: b - 1 and b.
        assert_close(
            &out.get(0).unwrap().to_owned(),
            &t(&[2], &[b - 1.0, b]),
            1e-15,
        );
        let rows: Vec<f64> = (0..batch).map(|i| 2.0 * i as f64 + 0.5).collect();
        assert_close(&out.get(1).unwrap().to_owned(), &t(&[batch], &rows), 1e-15);
        assert_close(&out.get(2).unwrap().to_owned(), &s(b - 0.5), 1e-15);
    }
}

#[test]
fn variance_is_the_population_variance() {
    let x = t(&[2, 4], &[1.0, 2.0, 3.0, 4.0, 5.0, 5.0, 5.0, 5.0]);
    assert_close(
        &unary(&x, |g, x| g.variance(x, &[1], false)),
        &t(&[2], &[1.25, 0.0]),
        1e-15,
    );
    assert_close(
        &unary(&x, |g, x| g.variance(x, &[1], true)),
        &t(&[2, 1], &[1.25, 0.0]),
        1e-15,
    );
    // Over axis 0: pairs (1,5), (2,5), (3,5), (4,5) -> ((a - b) / 2)².
    assert_close(
        &unary(&x, |g, x| g.variance(x, &[0], false)),
        &t(&[4], &[4.0, 2.25, 1.0, 0.25]),
        1e-15,
    );
    // Over everything: mean 3.75, Σ(x - m)² = 7.5625 + 3.0625 + 0.5625 + 0.0625 + 4 · 1.5625 =
    // 17.5.
    assert_close(
        &unary(&x, |g, x| g.variance(x, &[0, 1], false)),
        &s(17.5 / 8.0),
        1e-15,
    );
    // Dynamic batch.
    let mut g = Graph::<f64>::new();
    let xi = g.input("x", [None, Some(2)]).unwrap();
    let v = g.variance(xi, &[0], false).unwrap();
    let mut plan = compile(&g, &[v]).unwrap();
    let xv = t(&[2, 2], &[0.0, 1.0, 2.0, 1.0]);
    let out = plan.run(&g, &[("x", xv.view())]).unwrap();
    assert_close(
        &out.get(0).unwrap().to_owned(),
        &t(&[2], &[1.0, 0.0]),
        1e-15,
    );
}

#[test]
fn small_helpers() {
    let x = t(&[4], &[-3.0, 0.0, -0.0, 2.0]);
    assert_same(
        &unary(&x, |g, x| g.square(x)),
        &t(&[4], &[9.0, 0.0, 0.0, 4.0]),
    );
    assert_same(
        &unary(&x, |g, x| g.scale(x, -2.0)),
        &t(&[4], &[6.0, 0.0, 0.0, -4.0]),
    );
    assert_same(
        &unary(&x, |g, x| g.sign(x)),
        &t(&[4], &[-1.0, 0.0, 0.0, 1.0]),
    );
    assert_same(&unary(&x, |g, x| g.ones_like(x)), &t(&[4], &[1.0; 4]));
    assert_same(&unary(&s(5.0), |g, x| g.zeros_like(x)), &s(0.0));
}
