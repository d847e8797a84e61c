//! Forward values of the elementwise primitives (unary, pow, binary, comparisons, select) and of
//! the explicit broadcasting ops, against hand-computed results. Edge shapes throughout: rank 0,
//! size-1 axes, empty tensors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{assert_close, assert_same, binary, run1, s, t, unary};
use dendrite_graph::{compile, BinaryOp, CompareOp, Graph, Op, Shape, UnaryOp};
use std::f64::consts::{E, LN_2};

const INF: f64 = f64::INFINITY;
const NAN: f64 = f64::NAN;

#[test]
fn neg() {
    let y = unary(&t(&[2, 2], &[-2.0, 0.5, 0.0, INF]), |g, x| g.neg(x));
    assert_same(&y, &t(&[2, 2], &[2.0, -0.5, 0.0, -INF]));
}

#[test]
fn exp() {
    let y = unary(&t(&[5], &[0.0, 1.0, -1.0, 2.0, -INF]), |g, x| g.exp(x));
    assert_close(&y, &t(&[5], &[1.0, E, 1.0 / E, E * E, 0.0]), 1e-15);
    let big = unary(&t(&[1], &[1000.0]), |g, x| g.exp(x));
    assert_same(&big, &t(&[1], &[INF]));
}

#[test]
fn log() {
    let y = unary(&t(&[5], &[1.0, E, E * E, 0.0, -1.0]), |g, x| g.log(x));
    assert_close(&y, &t(&[5], &[0.0, 1.0, 2.0, -INF, NAN]), 1e-15);
}

#[test]
fn sqrt() {
    let y = unary(&t(&[6], &[0.0, 1.0, 4.0, 9.0, 2.25, -1.0]), |g, x| {
        g.sqrt(x)
    });
    assert_same(&y, &t(&[6], &[0.0, 1.0, 2.0, 3.0, 1.5, NAN]));
}

#[test]
fn tanh() {
    // tanh(ln 2) = (4 - 1) / (4 + 1)
    let y = unary(&t(&[5], &[0.0, LN_2, -LN_2, INF, -INF]), |g, x| g.tanh(x));
    assert_close(&y, &t(&[5], &[0.0, 0.6, -0.6, 1.0, -1.0]), 1e-15);
    let saturated = unary(&t(&[2], &[1000.0, -1000.0]), |g, x| g.tanh(x));
    assert_same(&saturated, &t(&[2], &[1.0, -1.0]));
}

#[test]
fn abs() {
    let y = unary(&t(&[5], &[-2.0, -0.0, 3.0, -INF, NAN]), |g, x| g.abs(x));
    assert_same(&y, &t(&[5], &[2.0, 0.0, 3.0, INF, NAN]));
}

#[test]
fn erf() {
    // Reference values from the series erf x = (2/√π) Σ (-1)^n x^(2n+1) / (n! (2n+1)), summed
    // in f64 for |x| <= 2 (it converges fast there); erf is odd, tends to ±1, keeps NaN.
    fn series(x: f64) -> f64 {
        let (mut term, mut sum) = (x, x);
        for n in 1..60 {
            term *= -x * x / n as f64;
            sum += term / (2 * n + 1) as f64;
        }
        sum * std::f64::consts::FRAC_2_SQRT_PI
    }
    let xs = [0.0, 0.1, 0.5, 1.0, -1.0, 1.5, -2.0];
    let want: Vec<f64> = xs.iter().map(|&x| series(x)).collect();
    let y = unary(&t(&[7], &xs), |g, x| g.erf(x));
    assert_close(&y, &t(&[7], &want), 1e-15);
    assert!((want[3] - 0.842_700_792_949_715).abs() < 1e-15);
    let tails = unary(&t(&[5], &[6.0, -6.0, INF, -INF, NAN]), |g, x| g.erf(x));
    assert_same(&tails, &t(&[5], &[1.0, -1.0, 1.0, -1.0, NAN]));
}

#[test]
fn pow_and_powi() {
    let x = t(&[4], &[-2.0, 3.0, 0.5, 0.0]);
    assert_same(
        &unary(&x, |g, x| g.pow(x, 3.0)),
        &t(&[4], &[-8.0, 27.0, 0.125, 0.0]),
    );
    assert_same(
        &unary(&x, |g, x| g.powi(x, 2)),
        &t(&[4], &[4.0, 9.0, 0.25, 0.0]),
    );
    // x^0 = 1 everywhere, 0^0 included.
    assert_same(&unary(&x, |g, x| g.pow(x, 0.0)), &t(&[4], &[1.0; 4]));
    assert_same(
        &unary(&x, |g, x| g.powi(x, -1)),
        &t(&[4], &[-0.5, 1.0 / 3.0, 2.0, INF]),
    );
    // A fractional exponent goes through powf: NaN for a negative base.
    let y = unary(&t(&[3], &[4.0, 9.0, -8.0]), |g, x| g.pow(x, 0.5));
    assert_same(&y, &t(&[3], &[2.0, 3.0, NAN]));
    let y = unary(&t(&[2], &[8.0, 0.25]), |g, x| g.pow(x, -1.5));
    assert_close(&y, &t(&[2], &[1.0 / (8.0 * 8.0_f64.sqrt()), 8.0]), 1e-15);
}

#[test]
fn unary_ops_on_rank_0_and_empty_tensors() {
    assert_same(&unary(&s(-3.0), |g, x| g.abs(x)), &s(3.0));
    assert_same(&unary(&s(0.0), |g, x| g.exp(x)), &s(1.0));
    assert_same(&unary(&s(2.0), |g, x| g.pow(x, 2.0)), &s(4.0));
    for build in [
        UnaryOp::Neg,
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Sqrt,
        UnaryOp::Tanh,
        UnaryOp::Abs,
        UnaryOp::Erf,
    ] {
        let y = Op::Unary(build)
            .evaluate("y", &[t(&[0, 3], &[]).view()])
            .unwrap();
        assert_eq!(y.shape(), &[0, 3]);
        assert_eq!(
            build.apply(4.0_f64),
            Op::Unary(build).evaluate("y", &[s(4.0).view()]).unwrap()[[]]
        );
    }
    let y = unary(&t(&[2, 0, 1], &[]), |g, x| g.pow(x, 3.0));
    assert_eq!(y.shape(), &[2, 0, 1]);
}

#[test]
fn unary_ops_read_non_contiguous_feeds() {
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [3, 2]).unwrap();
    let y = g.neg(x).unwrap();
    let base = t(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let mut plan = compile(&g, &[y]).unwrap();
    let out = plan.run(&g, &[("x", base.t().into_dyn())]).unwrap();
    assert_same(
        &out.get(0).unwrap().to_owned(),
        &t(&[3, 2], &[-1.0, -4.0, -2.0, -5.0, -3.0, -6.0]),
    );
}

#[test]
fn add_sub_mul_div_same_shape() {
    let a = t(&[2, 2], &[1.0, 2.0, 3.0, 4.0]);
    let b = t(&[2, 2], &[10.0, 20.0, 0.0, -8.0]);
    assert_same(
        &binary(&a, &b, |g, a, b| g.add(a, b)),
        &t(&[2, 2], &[11.0, 22.0, 3.0, -4.0]),
    );
    assert_same(
        &binary(&a, &b, |g, a, b| g.sub(a, b)),
        &t(&[2, 2], &[-9.0, -18.0, 3.0, 12.0]),
    );
    assert_same(
        &binary(&a, &b, |g, a, b| g.mul(a, b)),
        &t(&[2, 2], &[10.0, 40.0, 0.0, -32.0]),
    );
    assert_same(
        &binary(&a, &b, |g, a, b| g.div(a, b)),
        &t(&[2, 2], &[0.1, 0.1, INF, -0.5]),
    );
    let zero = t(&[1], &[0.0]);
    assert_same(
        &binary(&zero, &zero, |g, a, b| g.div(a, b)),
        &t(&[1], &[NAN]),
    );
}

#[test]
fn binary_ops_broadcast() {
    let m = t(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let row = t(&[3], &[10.0, 20.0, 30.0]);
    let col = t(&[2, 1], &[100.0, 200.0]);
    assert_same(
        &binary(&m, &row, |g, a, b| g.add(a, b)),
        &t(&[2, 3], &[11.0, 22.0, 33.0, 14.0, 25.0, 36.0]),
    );
    // The broadcast operand on the left of a non-commutative op.
    assert_same(
        &binary(&row, &m, |g, a, b| g.sub(a, b)),
        &t(&[2, 3], &[9.0, 18.0, 27.0, 6.0, 15.0, 24.0]),
    );
    assert_same(
        &binary(&col, &m, |g, a, b| g.div(a, b)),
        &t(
            &[2, 3],
            &[100.0, 50.0, 100.0 / 3.0, 50.0, 40.0, 200.0 / 6.0],
        ),
    );
    // [3, 1] against [1, 4]: both stretched (an outer product).
    let c = t(&[3, 1], &[1.0, 2.0, 3.0]);
    let r = t(&[1, 4], &[1.0, 10.0, 100.0, 1000.0]);
    let outer = binary(&c, &r, |g, a, b| g.mul(a, b));
    assert_same(
        &outer,
        &t(
            &[3, 4],
            &[
                1.0, 10.0, 100.0, 1000.0, 2.0, 20.0, 200.0, 2000.0, 3.0, 30.0, 300.0, 3000.0,
            ],
        ),
    );
    // Rank 3 against rank 2 with size-1 axes on both sides: [2, 1, 3] + [4, 1] -> [2, 4, 3].
    let a = common::arange(&[2, 1, 3]);
    let b = t(&[4, 1], &[0.0, 10.0, 20.0, 30.0]);
    let y = binary(&a, &b, |g, a, b| g.add(a, b));
    assert_eq!(y.shape(), &[2, 4, 3]);
    for i in 0..2 {
        for j in 0..4 {
            for k in 0..3 {
                assert_eq!(y[[i, j, k]], (3 * i + k) as f64 + 10.0 * j as f64);
            }
        }
    }
}

#[test]
fn binary_ops_with_scalars_on_either_side() {
    let v = t(&[3], &[1.0, 2.0, 4.0]);
    let two = s(2.0);
    assert_same(
        &binary(&v, &two, |g, a, b| g.sub(a, b)),
        &t(&[3], &[-1.0, 0.0, 2.0]),
    );
    assert_same(
        &binary(&two, &v, |g, a, b| g.sub(a, b)),
        &t(&[3], &[1.0, 0.0, -2.0]),
    );
    assert_same(
        &binary(&two, &v, |g, a, b| g.div(a, b)),
        &t(&[3], &[2.0, 1.0, 0.5]),
    );
    // A shape-[1] operand (not rank 0) broadcasts too.
    let one_elem = t(&[1], &[3.0]);
    let m = t(&[2, 2], &[1.0, 2.0, 3.0, 4.0]);
    assert_same(
        &binary(&one_elem, &m, |g, a, b| g.sub(a, b)),
        &t(&[2, 2], &[2.0, 1.0, 0.0, -1.0]),
    );
    // Rank 0 with rank 0 stays rank 0.
    assert_same(&binary(&two, &s(5.0), |g, a, b| g.mul(a, b)), &s(10.0));
    // A graph scalar constant.
    let y = unary(&v, |g, x| {
        let c = g.scalar(0.5);
        g.mul(x, c)
    });
    assert_same(&y, &t(&[3], &[0.5, 1.0, 2.0]));
}

#[test]
fn binary_ops_on_empty_tensors() {
    let e = t(&[0, 3], &[]);
    let row = t(&[1, 3], &[1.0, 2.0, 3.0]);
    let y = binary(&e, &row, |g, a, b| g.add(a, b));
    assert_eq!(y.shape(), &[0, 3]);
    let y = binary(&t(&[0], &[]), &s(1.0), |g, a, b| g.maximum(a, b));
    assert_eq!(y.shape(), &[0]);
    // [2, 1] against [0]: the 1 stretches to 0.
    let y = binary(&t(&[2, 1], &[1.0, 2.0]), &t(&[0], &[]), |g, a, b| {
        g.mul(a, b)
    });
    assert_eq!(y.shape(), &[2, 0]);
}

#[test]
fn maximum_and_minimum_with_ties_and_nan() {
    let a = t(&[5], &[1.0, 5.0, 2.0, NAN, 1.0]);
    let b = t(&[5], &[3.0, 4.0, 2.0, 0.0, NAN]);
    assert_same(
        &binary(&a, &b, |g, a, b| g.maximum(a, b)),
        &t(&[5], &[3.0, 5.0, 2.0, NAN, NAN]),
    );
    assert_same(
        &binary(&a, &b, |g, a, b| g.minimum(a, b)),
        &t(&[5], &[1.0, 4.0, 2.0, NAN, NAN]),
    );
    // Broadcast against a scalar, infinities included.
    let x = t(&[4], &[-INF, -1.0, 0.0, INF]);
    assert_same(
        &binary(&x, &s(0.0), |g, a, b| g.maximum(a, b)),
        &t(&[4], &[0.0, 0.0, 0.0, INF]),
    );
    assert_same(
        &binary(&s(0.0), &x, |g, a, b| g.minimum(a, b)),
        &t(&[4], &[-INF, -1.0, 0.0, 0.0]),
    );
    assert!(BinaryOp::Maximum.apply(NAN, 1.0_f64).is_nan());
    assert!(BinaryOp::Minimum.apply(1.0_f32, f32::NAN).is_nan());
}

#[test]
fn comparisons_give_one_or_zero_with_ieee_nan_semantics() {
    let a = t(&[4], &[1.0, 2.0, 3.0, NAN]);
    let b = t(&[4], &[2.0, 2.0, 2.0, NAN]);
    let cases = [
        (CompareOp::Eq, [0.0, 1.0, 0.0, 0.0]),
        (CompareOp::Ne, [1.0, 0.0, 1.0, 1.0]),
        (CompareOp::Lt, [1.0, 0.0, 0.0, 0.0]),
        (CompareOp::Le, [1.0, 1.0, 0.0, 0.0]),
        (CompareOp::Gt, [0.0, 0.0, 1.0, 0.0]),
        (CompareOp::Ge, [0.0, 1.0, 1.0, 0.0]),
    ];
    for (op, expected) in cases {
        let y = binary(&a, &b, |g, a, b| g.compare(op, a, b));
        assert_same(&y, &t(&[4], &expected));
        let direct = Op::Compare(op)
            .evaluate("c", &[a.view(), b.view()])
            .unwrap();
        assert_same(&direct, &t(&[4], &expected));
    }
    assert_same(
        &binary(&a, &b, |g, a, b| g.equal(a, b)),
        &t(&[4], &[0.0, 1.0, 0.0, 0.0]),
    );
    assert_same(
        &binary(&a, &b, |g, a, b| g.greater(a, b)),
        &t(&[4], &[0.0, 0.0, 1.0, 0.0]),
    );
    assert_same(
        &binary(&a, &b, |g, a, b| g.less(a, b)),
        &t(&[4], &[1.0, 0.0, 0.0, 0.0]),
    );
}

#[test]
fn comparisons_broadcast() {
    let col = t(&[3, 1], &[1.0, 2.0, 3.0]);
    let row = t(&[3], &[1.0, 2.0, 3.0]);
    let y = binary(&col, &row, |g, a, b| g.compare(CompareOp::Ge, a, b));
    assert_same(
        &y,
        &t(&[3, 3], &[1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0]),
    );
    let y = binary(&row, &s(2.0), |g, a, b| g.compare(CompareOp::Ne, a, b));
    assert_same(&y, &t(&[3], &[1.0, 0.0, 1.0]));
}

#[test]
fn select_picks_where_condition_is_nonzero() {
    let mut g = Graph::<f64>::new();
    let c = g.input("c", [5]).unwrap();
    let a = g.input("a", [5]).unwrap();
    let b = g.input("b", [5]).unwrap();
    let y = g.select(c, a, b).unwrap();
    let cv = t(&[5], &[1.0, 0.0, 2.0, -1.0, NAN]);
    let av = t(&[5], &[1.0, 2.0, 3.0, 4.0, 5.0]);
    let bv = t(&[5], &[-1.0, -2.0, -3.0, -4.0, -5.0]);
    // NaN is not zero, so a NaN condition picks `a`; -0.0 is zero.
    let out = run1(&g, y, &[("c", &cv), ("a", &av), ("b", &bv)]);
    assert_same(&out, &t(&[5], &[1.0, -2.0, 3.0, 4.0, 5.0]));
    let cv = t(&[5], &[-0.0, 0.0, 0.0, 0.0, 1.0]);
    let out = run1(&g, y, &[("c", &cv), ("a", &av), ("b", &bv)]);
    assert_same(&out, &t(&[5], &[-1.0, -2.0, -3.0, -4.0, 5.0]));
}

#[test]
fn select_broadcasts_all_three_operands() {
    let mut g = Graph::<f64>::new();
    let c = g.input("c", [2, 1]).unwrap();
    let a = g.input("a", [3]).unwrap();
    let zero = g.scalar(0.0);
    let y = g.select(c, a, zero).unwrap();
    assert_eq!(g.shape(y).unwrap(), &Shape::from([2, 3]));
    let out = run1(
        &g,
        y,
        &[
            ("c", &t(&[2, 1], &[0.0, 1.0])),
            ("a", &t(&[3], &[1.0, 2.0, 3.0])),
        ],
    );
    assert_same(&out, &t(&[2, 3], &[0.0, 0.0, 0.0, 1.0, 2.0, 3.0]));
    // A rank-0 condition.
    let out = Op::<f64>::Select
        .evaluate(
            "sel",
            &[s(0.0).view(), t(&[2], &[1.0, 2.0]).view(), s(7.0).view()],
        )
        .unwrap();
    assert_same(&out, &t(&[2], &[7.0, 7.0]));
}

#[test]
fn broadcast_to() {
    let v = t(&[3], &[1.0, 2.0, 3.0]);
    let y = unary(&v, |g, x| g.broadcast_to(x, [2, 3]));
    assert_same(&y, &t(&[2, 3], &[1.0, 2.0, 3.0, 1.0, 2.0, 3.0]));
    let col = t(&[2, 1], &[1.0, 2.0]);
    let y = unary(&col, |g, x| g.broadcast_to(x, [2, 3]));
    assert_same(&y, &t(&[2, 3], &[1.0, 1.0, 1.0, 2.0, 2.0, 2.0]));
    let y = unary(&s(4.0), |g, x| g.broadcast_to(x, [2, 2]));
    assert_same(&y, &t(&[2, 2], &[4.0; 4]));
    // To a scalar shape and to itself.
    assert_same(
        &unary(&s(4.0), |g, x| g.broadcast_to(x, Shape::scalar())),
        &s(4.0),
    );
    assert_same(&unary(&v, |g, x| g.broadcast_to(x, [3])), &v);
    // A size-1 axis stretched to 0.
    let y = unary(&t(&[1], &[5.0]), |g, x| g.broadcast_to(x, [2, 0]));
    assert_eq!(y.shape(), &[2, 0]);
}

#[test]
fn broadcast_to_with_a_dynamic_target_axis_takes_the_operand_size() {
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [None, Some(1)]).unwrap();
    let y = g.broadcast_to(x, [None, Some(3)]).unwrap();
    assert_eq!(g.shape(y).unwrap().to_string(), "[?, 3]");
    let mut plan = compile(&g, &[y]).unwrap();
    for batch in [2, 1, 0, 4] {
        let xv = common::arange(&[batch, 1]);
        let out = plan.run(&g, &[("x", xv.view())]).unwrap();
        let expected = xv
            .broadcast(ndarray::IxDyn(&[batch, 3]))
            .unwrap()
            .to_owned();
        assert_same(&out.get(0).unwrap().to_owned(), &expected);
    }
}

#[test]
fn broadcast_like_uses_the_run_time_shape() {
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [None, Some(3)]).unwrap();
    let bias = g.input("bias", [3]).unwrap();
    let y = g.broadcast_like(bias, x).unwrap();
    let ones = g.ones_like(x).unwrap();
    let zeros = g.zeros_like(x).unwrap();
    let mut plan = compile(&g, &[y, ones, zeros]).unwrap();
    let bv = t(&[3], &[1.0, 2.0, 3.0]);
    for batch in [2, 5, 0] {
        let xv = common::arange(&[batch, 3]);
        let out = plan
            .run(&g, &[("x", xv.view()), ("bias", bv.view())])
            .unwrap();
        let y = out.get(0).unwrap();
        assert_eq!(y.shape(), &[batch, 3]);
        for row in y.outer_iter() {
            assert_eq!(row.to_owned(), bv.view());
        }
        assert!(out.get(1).unwrap().iter().all(|&v| v == 1.0));
        assert!(out.get(2).unwrap().iter().all(|&v| v == 0.0));
        assert_eq!(out.get(2).unwrap().shape(), &[batch, 3]);
    }
}

#[test]
fn sum_like_sums_down_to_the_reference_shape() {
    let m = t(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let cases: [(&[usize], &[f64]); 6] = [
        (&[3], &[5.0, 7.0, 9.0]),
        (&[1, 3], &[5.0, 7.0, 9.0]),
        (&[2, 1], &[6.0, 15.0]),
        (&[1, 1], &[21.0]),
        (&[], &[21.0]),
        (&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
    ];
    for (shape, expected) in cases {
        let like = ndarray::ArrayD::<f64>::zeros(ndarray::IxDyn(shape));
        let y = binary(&m, &like, |g, a, b| g.sum_like(a, b));
        assert_same(&y, &t(shape, expected));
    }
    // An empty axis sums to zero.
    let y = binary(&t(&[0, 3], &[]), &t(&[3], &[9.0; 3]), |g, a, b| {
        g.sum_like(a, b)
    });
    assert_same(&y, &t(&[3], &[0.0; 3]));
    // Over a dynamic batch.
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [None, Some(2)]).unwrap();
    let like = g.input("like", [1, 2]).unwrap();
    let y = g.sum_like(x, like).unwrap();
    let mut plan = compile(&g, &[y]).unwrap();
    let lv = t(&[1, 2], &[0.0, 0.0]);
    for batch in [3, 1, 0] {
        let xv = common::arange(&[batch, 2]);
        let out = plan
            .run(&g, &[("x", xv.view()), ("like", lv.view())])
            .unwrap();
        let expected = xv.sum_axis(ndarray::Axis(0)).insert_axis(ndarray::Axis(0));
        assert_same(&out.get(0).unwrap().to_owned(), &expected);
    }
}

#[test]
fn expand_dims() {
    let m = t(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let cases: [(&[usize], &[usize]); 5] = [
        (&[0], &[1, 2, 3]),
        (&[1], &[2, 1, 3]),
        (&[2], &[2, 3, 1]),
        (&[0, 3], &[1, 2, 3, 1]),
        (&[3, 0], &[1, 2, 3, 1]),
    ];
    for (axes, shape) in cases {
        let y = unary(&m, |g, x| g.expand_dims(x, axes));
        assert_same(&y, &t(shape, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));
    }
    assert_same(
        &unary(&s(2.0), |g, x| g.expand_dims(x, &[0, 1])),
        &t(&[1, 1], &[2.0]),
    );
    let y = unary(&t(&[0], &[]), |g, x| g.expand_dims(x, &[1]));
    assert_eq!(y.shape(), &[0, 1]);
}

#[test]
fn stop_gradient_is_the_identity_forward() {
    let x = t(&[2, 2], &[1.0, NAN, -INF, 4.0]);
    assert_same(&unary(&x, |g, x| g.stop_gradient(x)), &x);
    assert_same(&unary(&s(3.0), |g, x| g.stop_gradient(x)), &s(3.0));
}

#[test]
fn elementwise_ops_in_f32() {
    let mut g = Graph::<f32>::new();
    let x = g.input("x", [3]).unwrap();
    let e = g.exp(x).unwrap();
    let l = g.log(e).unwrap();
    let m = g.maximum(l, x).unwrap();
    let xv = ndarray::arr1(&[0.0_f32, 1.0, -2.0]).into_dyn();
    let out = run1(&g, m, &[("x", &xv)]);
    for (a, b) in out.iter().zip(xv.iter()) {
        assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    }
}

#[test]
fn binary_ops_broadcast_rows_and_columns_into_empty_outputs() {
    // A column [n, 1] against an empty last axis, and a row against an empty batch.
    let y = binary(&t(&[2, 0], &[]), &t(&[2, 1], &[1.0, 2.0]), |g, a, b| {
        g.add(a, b)
    });
    assert_eq!(y.shape(), &[2, 0]);
    let y = binary(&t(&[0, 3], &[]), &t(&[3], &[1.0, 2.0, 3.0]), |g, a, b| {
        g.sub(a, b)
    });
    assert_eq!(y.shape(), &[0, 3]);
    let y = binary(&t(&[1, 2, 0], &[]), &t(&[2, 1], &[1.0, 2.0]), |g, a, b| {
        g.mul(a, b)
    });
    assert_eq!(y.shape(), &[1, 2, 0]);
}

#[test]
fn binary_ops_broadcast_rows_and_columns() {
    // The layouts of a dense layer's bias and of softmax's shift, with size-1 axes around them.
    let m = common::arange(&[2, 3, 2]);
    let cases: [(&[usize], &[f64]); 5] = [
        (&[2], &[10.0, 20.0]),
        (&[1, 3, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
        (&[3, 1], &[100.0, 200.0, 300.0]),
        (&[2, 3, 1], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
        (&[1, 1, 3, 1], &[7.0, 8.0, 9.0]),
    ];
    for (shape, data) in cases {
        let b = t(shape, data);
        let expected = &m - &b;
        assert_same(&binary(&m, &b, |g, a, b| g.sub(a, b)), &expected);
        let expected = &b - &m;
        assert_same(&binary(&b, &m, |g, a, b| g.sub(a, b)), &expected);
    }
}

/// Distance in units in the last place between two finite `f32` of the same sign.
fn ulps(a: f32, b: f32) -> u32 {
    a.to_bits().abs_diff(b.to_bits())
}

/// `f32` exp is a vectorized polynomial (the crate's `vexp`), not the C library's: it must stay
/// within 2 ulp of the correctly rounded `e^x` wherever that is a normal float, and get the
/// edges exactly right: overflow to `inf`, underflow to 0 or a subnormal, NaN kept, `e^0 = 1`.
#[test]
fn f32_exp_is_within_two_ulp_everywhere() {
    let (lo, hi) = (-87.3_f64, 88.7_f64);
    let count = 200_000;
    let xs: Vec<f32> = (0..count)
        .map(|i| (lo + (hi - lo) * i as f64 / (count - 1) as f64) as f32)
        .chain([0.0, -0.0, 1.0, -1.0, 1e-8, -1e-8, 0.5, 10.0, -10.0])
        .collect();
    let mut g = Graph::<f32>::new();
    let x = g.input("x", [xs.len()]).unwrap();
    let y = g.exp(x).unwrap();
    let mut plan = compile(&g, &[y]).unwrap();
    let feed = ndarray::Array1::from(xs.clone()).into_dyn();
    let out = plan.run(&g, &[("x", feed.view())]).unwrap();
    let ys = out.get(0).unwrap();
    let mut worst = (0, 0.0_f32);
    for (&x, &y) in xs.iter().zip(ys.iter()) {
        let want = (f64::from(x)).exp() as f32;
        let d = ulps(y, want);
        if d > worst.0 {
            worst = (d, x);
        }
    }
    assert!(worst.0 <= 2, "{} ulp at x = {}", worst.0, worst.1);
    assert_eq!(ys[xs.len() - 9], 1.0);
    // One definition: the scalar `apply` gives the kernel's bits.
    for (&x, &y) in xs.iter().zip(ys.iter()) {
        assert_eq!(UnaryOp::Exp.apply(x).to_bits(), y.to_bits(), "exp({x})");
    }

    let edges = [
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        89.0,
        88.8,
        200.0,
        -104.0,
        -103.0,
        -100.0,
        -90.0,
        -1000.0,
        f32::MAX,
        f32::MIN,
    ];
    let mut g = Graph::<f32>::new();
    let x = g.input("x", [edges.len()]).unwrap();
    let y = g.exp(x).unwrap();
    let mut plan = compile(&g, &[y]).unwrap();
    let feed = ndarray::Array1::from(edges.to_vec()).into_dyn();
    let out = plan.run(&g, &[("x", feed.view())]).unwrap();
    for (&x, &y) in edges.iter().zip(out.get(0).unwrap().iter()) {
        let want = (f64::from(x)).exp() as f32;
        if want.is_nan() {
            assert!(y.is_nan(), "exp({x}) = {y}");
        } else if want == 0.0 || want.is_infinite() {
            assert_eq!(y, want, "exp({x})");
        } else {
            // Subnormal results keep their absolute accuracy (a few subnormal steps).
            assert!(ulps(y, want) <= 2, "exp({x}) = {y}, want {want}");
        }
    }
}
