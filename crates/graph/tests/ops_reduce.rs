//! Forward values of the reductions (`sum`, `max`, `dim_size`, `argmax`) against hand-computed
//! results: keep_dims or not, several axes, non-contiguous axis patterns, empty reductions,
//! NaN, non-contiguous feeds and dynamic axes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{arange, assert_same, run1, s, t, unary};
use dendrite_graph::{compile, Graph, Op, ReduceOp, Shape};

const INF: f64 = f64::INFINITY;
const NAN: f64 = f64::NAN;

/// x[i, j, k] = 12 i + 4 j + k, shape [2, 3, 4].
fn cube() -> ndarray::ArrayD<f64> {
    arange(&[2, 3, 4])
}

#[test]
fn sum_over_each_single_axis() {
    // Σ_i (12 i + 4 j + k) = 12 + 8 j + 2 k: the reduced axes form a prefix.
    let y = unary(&cube(), |g, x| g.sum(x, &[0]));
    let expected: Vec<f64> = (0..3)
        .flat_map(|j| (0..4).map(move |k| (12 + 8 * j + 2 * k) as f64))
        .collect();
    assert_same(&y, &t(&[3, 4], &expected));
    // Σ_j = 36 i + 12 + 3 k: a middle axis (neither prefix nor suffix).
    let y = unary(&cube(), |g, x| g.sum(x, &[1]));
    assert_same(
        &y,
        &t(&[2, 4], &[12.0, 15.0, 18.0, 21.0, 48.0, 51.0, 54.0, 57.0]),
    );
    // Σ_k = 48 i + 16 j + 6: a suffix.
    let y = unary(&cube(), |g, x| g.sum(x, &[2]));
    assert_same(&y, &t(&[2, 3], &[6.0, 22.0, 38.0, 54.0, 70.0, 86.0]));
}

#[test]
fn sum_over_several_axes_with_and_without_keep_dims() {
    // Σ_{i,k} = 32 j + 60, axes [0, 2] of rank 3: a non-contiguous pattern.
    let y = unary(&cube(), |g, x| g.sum(x, &[0, 2]));
    assert_same(&y, &t(&[3], &[60.0, 92.0, 124.0]));
    let y = unary(&cube(), |g, x| g.sum(x, &[2, 0]));
    assert_same(&y, &t(&[3], &[60.0, 92.0, 124.0]));
    let y = unary(&cube(), |g, x| g.sum_keep_dims(x, &[0, 2]));
    assert_same(&y, &t(&[1, 3, 1], &[60.0, 92.0, 124.0]));
    let y = unary(&cube(), |g, x| g.sum(x, &[1, 2]));
    assert_same(&y, &t(&[2], &[66.0, 210.0]));
    let y = unary(&cube(), |g, x| g.sum(x, &[0, 1]));
    assert_same(&y, &t(&[4], &[60.0, 66.0, 72.0, 78.0]));
    let y = unary(&cube(), |g, x| g.sum(x, &[0, 1, 2]));
    assert_same(&y, &s(276.0));
    let y = unary(&cube(), |g, x| g.sum_all(x));
    assert_same(&y, &s(276.0));
    let y = unary(&cube(), |g, x| g.reduce(ReduceOp::Sum, x, &[0, 1, 2], true));
    assert_same(&y, &t(&[1, 1, 1], &[276.0]));
}

#[test]
fn reducing_over_no_axes_is_the_identity() {
    assert_same(&unary(&cube(), |g, x| g.sum(x, &[])), &cube());
    assert_same(&unary(&cube(), |g, x| g.max(x, &[], true)), &cube());
    assert_same(&unary(&s(3.0), |g, x| g.sum(x, &[])), &s(3.0));
    assert_same(&unary(&s(3.0), |g, x| g.sum_all(x)), &s(3.0));
    assert_same(&unary(&s(3.0), |g, x| g.max(x, &[], false)), &s(3.0));
}

#[test]
fn reducing_size_1_axes() {
    let x = t(&[1, 3, 1], &[1.0, -2.0, 3.0]);
    assert_same(
        &unary(&x, |g, x| g.sum(x, &[0, 2])),
        &t(&[3], &[1.0, -2.0, 3.0]),
    );
    assert_same(
        &unary(&x, |g, x| g.max(x, &[1], true)),
        &t(&[1, 1, 1], &[3.0]),
    );
    assert_same(&unary(&x, |g, x| g.sum(x, &[1])), &t(&[1, 1], &[2.0]));
}

#[test]
fn max_over_axes() {
    // Not monotone in any axis.
    let x = t(
        &[2, 3, 2],
        &[
            5.0, -1.0, 2.0, 9.0, -3.0, 0.0, /**/ 4.0, 7.0, -8.0, 1.0, 6.0, -2.0,
        ],
    );
    let y = unary(&x, |g, x| g.max(x, &[0], false));
    assert_same(&y, &t(&[3, 2], &[5.0, 7.0, 2.0, 9.0, 6.0, 0.0]));
    let y = unary(&x, |g, x| g.max(x, &[1], false));
    assert_same(&y, &t(&[2, 2], &[5.0, 9.0, 6.0, 7.0]));
    let y = unary(&x, |g, x| g.max(x, &[2], true));
    assert_same(&y, &t(&[2, 3, 1], &[5.0, 9.0, 0.0, 7.0, 1.0, 6.0]));
    let y = unary(&x, |g, x| g.max(x, &[0, 2], false));
    assert_same(&y, &t(&[3], &[7.0, 9.0, 6.0]));
    let y = unary(&x, |g, x| g.max(x, &[0, 2], true));
    assert_same(&y, &t(&[1, 3, 1], &[7.0, 9.0, 6.0]));
    let y = unary(&x, |g, x| g.max(x, &[0, 1, 2], false));
    assert_same(&y, &s(9.0));
    // All -inf stays -inf; ties give the tied value.
    let y = unary(&t(&[2, 2], &[-INF, -INF, 3.0, 3.0]), |g, x| {
        g.max(x, &[1], false)
    });
    assert_same(&y, &t(&[2], &[-INF, 3.0]));
}

#[test]
fn max_propagates_nan_wherever_it_is() {
    let x = t(&[3, 3], &[NAN, 1.0, 2.0, 1.0, NAN, 2.0, 1.0, 2.0, NAN]);
    assert_same(
        &unary(&x, |g, x| g.max(x, &[1], false)),
        &t(&[3], &[NAN; 3]),
    );
    assert_same(
        &unary(&x, |g, x| g.max(x, &[0], false)),
        &t(&[3], &[NAN; 3]),
    );
    let y = t(&[2, 2], &[1.0, NAN, 3.0, 4.0]);
    assert_same(
        &unary(&y, |g, x| g.max(x, &[1], false)),
        &t(&[2], &[NAN, 4.0]),
    );
    assert_same(&unary(&y, |g, x| g.sum(x, &[0])), &t(&[2], &[4.0, NAN]));
}

#[test]
fn empty_reductions_give_the_identity_element() {
    // Reducing an empty axis: 0 for sum, -inf for max, whichever fast path the pattern takes.
    let suffix = t(&[3, 0], &[]);
    assert_same(&unary(&suffix, |g, x| g.sum(x, &[1])), &t(&[3], &[0.0; 3]));
    assert_same(
        &unary(&suffix, |g, x| g.max(x, &[1], false)),
        &t(&[3], &[-INF; 3]),
    );
    assert_same(&unary(&suffix, |g, x| g.sum_all(x)), &s(0.0));
    assert_same(&unary(&suffix, |g, x| g.max(x, &[0, 1], false)), &s(-INF));
    let prefix = t(&[0, 3], &[]);
    assert_same(&unary(&prefix, |g, x| g.sum(x, &[0])), &t(&[3], &[0.0; 3]));
    assert_same(
        &unary(&prefix, |g, x| g.max(x, &[0], true)),
        &t(&[1, 3], &[-INF; 3]),
    );
    let middle = t(&[2, 0, 3], &[]);
    assert_same(
        &unary(&middle, |g, x| g.sum(x, &[1])),
        &t(&[2, 3], &[0.0; 6]),
    );
    assert_same(
        &unary(&middle, |g, x| g.max(x, &[1], false)),
        &t(&[2, 3], &[-INF; 6]),
    );
    // Reducing a non-empty axis of an empty tensor gives an empty result.
    assert_eq!(unary(&suffix, |g, x| g.sum(x, &[0])).shape(), &[0]);
    assert_eq!(
        unary(&middle, |g, x| g.max(x, &[0, 2], true)).shape(),
        &[1, 0, 1]
    );
    // Through Op::evaluate as well.
    let op = Op::Reduce {
        op: ReduceOp::Max,
        axes: [1].into_iter().collect(),
        keep_dims: false,
    };
    assert_same(
        &op.evaluate("m", &[t(&[2, 0], &[]).view()]).unwrap(),
        &t(&[2], &[-INF; 2]),
    );
}

#[test]
fn reductions_read_non_contiguous_feeds() {
    // A transposed (Fortran-order) view takes the general path.
    let base = cube(); // [2, 3, 4]
    let view = base.view().permuted_axes(vec![2, 0, 1]); // [4, 2, 3]
    for axes in [
        vec![0],
        vec![1],
        vec![2],
        vec![0, 2],
        vec![1, 2],
        vec![0, 1, 2],
    ] {
        let mut g = Graph::<f64>::new();
        let x = g.input("x", [4, 2, 3]).unwrap();
        let sum = g.sum(x, &axes).unwrap();
        let max = g.max(x, &axes, true).unwrap();
        let mut plan = compile(&g, &[sum, max]).unwrap();
        let out = plan.run(&g, &[("x", view.clone())]).unwrap();
        let mut expected_sum = view.to_owned();
        let mut expected_max = view.to_owned();
        for &a in axes.iter().rev() {
            expected_sum = expected_sum.sum_axis(ndarray::Axis(a));
            expected_max = expected_max
                .map_axis(ndarray::Axis(a), |lane| lane.fold(-INF, |m, &v| m.max(v)))
                .insert_axis(ndarray::Axis(a));
        }
        assert_same(&out.get(0).unwrap().to_owned(), &expected_sum);
        assert_same(&out.get(1).unwrap().to_owned(), &expected_max);
    }
}

#[test]
fn reductions_over_a_dynamic_batch() {
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [None, Some(3)]).unwrap();
    let col_sums = g.sum(x, &[0]).unwrap();
    let row_max = g.max(x, &[1], false).unwrap();
    assert_eq!(g.shape(col_sums).unwrap(), &Shape::from([3]));
    assert_eq!(g.shape(row_max).unwrap().to_string(), "[?]");
    let mut plan = compile(&g, &[col_sums, row_max]).unwrap();
    for batch in [4, 1, 0, 2] {
        let xv = arange(&[batch, 3]);
        let out = plan.run(&g, &[("x", xv.view())]).unwrap();
        let sums: Vec<f64> = (0..3)
            .map(|j| (0..batch).map(|i| (3 * i + j) as f64).sum())
            .collect();
        assert_same(&out.get(0).unwrap().to_owned(), &t(&[3], &sums));
        let maxes: Vec<f64> = (0..batch).map(|i| (3 * i + 2) as f64).collect();
        assert_same(&out.get(1).unwrap().to_owned(), &t(&[batch], &maxes));
    }
}

#[test]
fn dim_size_counts_elements_along_axes_at_run_time() {
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [None, Some(3), Some(4)]).unwrap();
    let n0 = g.dim_size(x, &[0]).unwrap();
    let n02 = g.dim_size(x, &[2, 0]).unwrap();
    let all = g.dim_size(x, &[0, 1, 2]).unwrap();
    let none = g.dim_size(x, &[]).unwrap();
    assert_eq!(g.shape(n02).unwrap(), &Shape::scalar());
    let mut plan = compile(&g, &[n0, n02, all, none]).unwrap();
    for batch in [5, 1, 0] {
        let xv = ndarray::ArrayD::<f64>::zeros(ndarray::IxDyn(&[batch, 3, 4]));
        let out = plan.run(&g, &[("x", xv.view())]).unwrap();
        let b = batch as f64;
        assert_eq!(out.scalar(0).unwrap(), b);
        assert_eq!(out.scalar(1).unwrap(), 4.0 * b);
        assert_eq!(out.scalar(2).unwrap(), 12.0 * b);
        assert_eq!(out.scalar(3).unwrap(), 1.0);
    }
}

#[test]
fn argmax_takes_the_first_maximum_and_counts_nan_as_maximal() {
    let x = t(
        &[4, 3],
        &[
            1.0, 3.0, 3.0, /**/ 2.0, NAN, 5.0, /**/ -INF, -INF, -INF, /**/ 7.0, NAN,
            NAN,
        ],
    );
    assert_same(
        &unary(&x, |g, x| g.argmax(x, 1)),
        &t(&[4], &[1.0, 1.0, 0.0, 1.0]),
    );
    let x = t(&[2, 2], &[1.0, 5.0, 4.0, 5.0]);
    assert_same(&unary(&x, |g, x| g.argmax(x, 0)), &t(&[2], &[1.0, 0.0]));
    assert_same(&unary(&x, |g, x| g.argmax(x, 1)), &t(&[2], &[1.0, 1.0]));
    // Rank 1 gives a scalar; a single element gives 0.
    assert_same(
        &unary(&t(&[4], &[0.0, 2.0, -1.0, 2.0]), |g, x| g.argmax(x, 0)),
        &s(1.0),
    );
    assert_same(&unary(&t(&[1], &[-5.0]), |g, x| g.argmax(x, 0)), &s(0.0));
    // Middle axis of rank 3: out[i, k] = argmax_j x[i, j, k].
    let x = t(
        &[2, 3, 2],
        &[
            0.0, 9.0, 5.0, 1.0, 2.0, 9.0, /**/ 3.0, 3.0, 1.0, 4.0, 3.0, 0.0,
        ],
    );
    assert_same(
        &unary(&x, |g, x| g.argmax(x, 1)),
        &t(&[2, 2], &[1.0, 0.0, 0.0, 1.0]),
    );
    // An empty batch gives an empty result.
    assert_eq!(unary(&t(&[0, 3], &[]), |g, x| g.argmax(x, 1)).shape(), &[0]);
}

#[test]
fn argmax_of_a_non_contiguous_feed() {
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [3, 2]).unwrap();
    let y = g.argmax(x, 1).unwrap();
    let base = t(&[2, 3], &[1.0, 8.0, 3.0, 4.0, 5.0, 6.0]); // transposed: [[1,4],[8,5],[3,6]]
    let mut plan = compile(&g, &[y]).unwrap();
    let out = plan.run(&g, &[("x", base.t().into_dyn())]).unwrap();
    assert_same(&out.get(0).unwrap().to_owned(), &t(&[3], &[1.0, 0.0, 1.0]));
}

#[test]
fn reductions_in_f32() {
    let mut g = Graph::<f32>::new();
    let x = g.input("x", [2, 2]).unwrap();
    let y = g.sum(x, &[0, 1]).unwrap();
    let m = g.max(x, &[0], false).unwrap();
    let xv = ndarray::arr2(&[[1.0_f32, 2.0], [3.0, -4.0]]).into_dyn();
    assert_eq!(run1(&g, y, &[("x", &xv)])[[]], 2.0);
    assert_eq!(
        run1(&g, m, &[("x", &xv)]),
        ndarray::arr1(&[3.0_f32, 2.0]).into_dyn()
    );
}
