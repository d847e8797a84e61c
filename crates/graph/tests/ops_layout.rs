//! Forward values of the ops that move elements: reshape, permute/transpose, slice, pad,
//! concat, gather, scatter_add and one_hot (matmul is in `ops_matmul.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{arange, assert_same, binary, run1, s, t, unary};
use dendrite_graph::{compile, Graph, GraphError, Op, Shape};
use ndarray::Axis;

#[test]
fn reshape_keeps_row_major_order() {
    let x = arange(&[2, 3]);
    assert_same(&unary(&x, |g, x| g.reshape(x, [3, 2])), &arange(&[3, 2]));
    assert_same(&unary(&x, |g, x| g.reshape(x, [6])), &arange(&[6]));
    assert_same(
        &unary(&x, |g, x| g.reshape(x, [1, 6, 1])),
        &arange(&[1, 6, 1]),
    );
    // A dynamic target dimension is solved from the element count.
    let x = arange(&[2, 3, 4]);
    let mut g = Graph::<f64>::new();
    let xi = g.input("x", [2, 3, 4]).unwrap();
    let y = g.reshape(xi, [None, Some(4)]).unwrap();
    assert_eq!(g.shape(y).unwrap(), &Shape::from([6, 4]));
    assert_same(&run1(&g, y, &[("x", &x)]), &arange(&[6, 4]));
    // To and from rank 0.
    assert_same(
        &unary(&t(&[1, 1], &[7.0]), |g, x| g.reshape(x, Shape::scalar())),
        &s(7.0),
    );
    assert_same(
        &unary(&s(7.0), |g, x| g.reshape(x, [1, 1, 1])),
        &t(&[1, 1, 1], &[7.0]),
    );
    // Empty tensors reshape among empty shapes.
    assert_eq!(
        unary(&t(&[0, 3], &[]), |g, x| g.reshape(x, [3, 0, 2])).shape(),
        &[3, 0, 2]
    );
    assert_eq!(
        unary(&t(&[2, 0], &[]), |g, x| g.reshape(x, [None, Some(3)])).shape(),
        &[0, 3]
    );
}

#[test]
fn reshape_with_a_dynamic_batch() {
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [None, Some(6)]).unwrap();
    let y = g.reshape(x, [None, Some(2), Some(3)]).unwrap();
    let flat = g.reshape(x, [None]).unwrap();
    assert_eq!(g.shape(y).unwrap().to_string(), "[?, 2, 3]");
    let mut plan = compile(&g, &[y, flat]).unwrap();
    for batch in [3, 1, 0, 2] {
        let xv = arange(&[batch, 6]);
        let out = plan.run(&g, &[("x", xv.view())]).unwrap();
        assert_same(&out.get(0).unwrap().to_owned(), &arange(&[batch, 2, 3]));
        assert_same(&out.get(1).unwrap().to_owned(), &arange(&[batch * 6]));
    }
}

#[test]
fn reshape_of_a_non_contiguous_feed_uses_logical_order() {
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [3, 2]).unwrap();
    let y = g.reshape(x, [6]).unwrap();
    let base = arange(&[2, 3]);
    let mut plan = compile(&g, &[y]).unwrap();
    let out = plan.run(&g, &[("x", base.t().into_dyn())]).unwrap();
    assert_same(
        &out.get(0).unwrap().to_owned(),
        &t(&[6], &[0.0, 3.0, 1.0, 4.0, 2.0, 5.0]),
    );
}

#[test]
fn permute_and_transpose() {
    let x = arange(&[2, 3, 4]);
    let y = unary(&x, |g, x| g.permute(x, &[2, 0, 1]));
    assert_eq!(y.shape(), &[4, 2, 3]);
    for a in 0..4 {
        for b in 0..2 {
            for c in 0..3 {
                assert_eq!(y[[a, b, c]], x[[b, c, a]]);
            }
        }
    }
    assert_same(&unary(&x, |g, x| g.permute(x, &[0, 1, 2])), &x);
    let m = arange(&[2, 3]);
    assert_same(
        &unary(&m, |g, x| g.transpose(x)),
        &t(&[3, 2], &[0.0, 3.0, 1.0, 4.0, 2.0, 5.0]),
    );
    // transpose of rank 3 swaps the last two axes.
    let y = unary(&x, |g, x| g.transpose(x));
    assert_same(&y, &x.view().permuted_axes(vec![0, 2, 1]).to_owned());
    // Rank 0 and empty.
    assert_same(&unary(&s(1.0), |g, x| g.permute(x, &[])), &s(1.0));
    assert_eq!(
        unary(&t(&[0, 2], &[]), |g, x| g.transpose(x)).shape(),
        &[2, 0]
    );
}

#[test]
fn slice_along_each_axis() {
    let x = arange(&[4, 3]);
    assert_same(
        &unary(&x, |g, x| g.slice(x, 0, 1, 3)),
        &t(&[2, 3], &[3.0, 4.0, 5.0, 6.0, 7.0, 8.0]),
    );
    assert_same(
        &unary(&x, |g, x| g.slice(x, 1, 2, 3)),
        &t(&[4, 1], &[2.0, 5.0, 8.0, 11.0]),
    );
    assert_same(&unary(&x, |g, x| g.slice(x, 1, 0, 3)), &x);
    assert_eq!(unary(&x, |g, x| g.slice(x, 1, 2, 2)).shape(), &[4, 0]);
    assert_eq!(unary(&x, |g, x| g.slice(x, 0, 4, 4)).shape(), &[0, 3]);
    // Along a dynamic axis, checked against the run-time size.
    let mut g = Graph::<f64>::new();
    let xi = g.input("x", [None]).unwrap();
    let y = g.slice(xi, 0, 1, 3).unwrap();
    assert_eq!(g.shape(y).unwrap(), &Shape::from([2]));
    let mut plan = compile(&g, &[y]).unwrap();
    let xv = arange(&[5]);
    let out = plan.run(&g, &[("x", xv.view())]).unwrap();
    assert_same(&out.get(0).unwrap().to_owned(), &t(&[2], &[1.0, 2.0]));
    let short = arange(&[2]);
    let err = plan.run(&g, &[("x", short.view())]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "slice `slice`: range 1..3 does not fit axis 0: got shape [2]"
    );
}

#[test]
fn pad_with_zeros() {
    let x = t(&[2, 2], &[1.0, 2.0, 3.0, 4.0]);
    let y = unary(&x, |g, x| g.pad(x, 1, 1, 2));
    assert_same(
        &y,
        &t(&[2, 5], &[0.0, 1.0, 2.0, 0.0, 0.0, 0.0, 3.0, 4.0, 0.0, 0.0]),
    );
    let y = unary(&x, |g, x| g.pad(x, 0, 0, 1));
    assert_same(&y, &t(&[3, 2], &[1.0, 2.0, 3.0, 4.0, 0.0, 0.0]));
    assert_same(&unary(&x, |g, x| g.pad(x, 0, 0, 0)), &x);
    assert_same(
        &unary(&t(&[0], &[]), |g, x| g.pad(x, 0, 2, 1)),
        &t(&[3], &[0.0; 3]),
    );
    // A dynamic axis stays dynamic and is padded at run time; the buffer is re-zeroed each run.
    let mut g = Graph::<f64>::new();
    let xi = g.input("x", [None]).unwrap();
    let y = g.pad(xi, 0, 1, 1).unwrap();
    assert_eq!(g.shape(y).unwrap().to_string(), "[?]");
    let mut plan = compile(&g, &[y]).unwrap();
    let long = t(&[3], &[7.0, 8.0, 9.0]);
    plan.run(&g, &[("x", long.view())]).unwrap();
    let short = t(&[1], &[5.0]);
    let out = plan.run(&g, &[("x", short.view())]).unwrap();
    assert_same(&out.get(0).unwrap().to_owned(), &t(&[3], &[0.0, 5.0, 0.0]));
}

#[test]
fn concat_along_each_axis() {
    let a = t(&[2, 2], &[1.0, 2.0, 3.0, 4.0]);
    let b = t(&[1, 2], &[5.0, 6.0]);
    let y = binary(&a, &b, |g, a, b| g.concat(&[a, b, a], 0));
    assert_same(
        &y,
        &t(&[5, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 1.0, 2.0, 3.0, 4.0]),
    );
    let c = t(&[2, 1], &[9.0, 10.0]);
    let y = binary(&a, &c, |g, a, c| g.concat(&[c, a], 1));
    assert_same(&y, &t(&[2, 3], &[9.0, 1.0, 2.0, 10.0, 3.0, 4.0]));
    // An empty operand, and a single operand.
    let y = binary(&a, &t(&[0, 2], &[]), |g, a, e| g.concat(&[e, a, e], 0));
    assert_same(&y, &a);
    assert_same(&unary(&a, |g, x| g.concat(&[x], 1)), &a);
    // Rank 1.
    let y = binary(&t(&[2], &[1.0, 2.0]), &t(&[1], &[3.0]), |g, a, b| {
        g.concat(&[a, b], 0)
    });
    assert_same(&y, &t(&[3], &[1.0, 2.0, 3.0]));
    // A dynamic concatenation axis.
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [None, Some(2)]).unwrap();
    let one = g.input("one", [1, 2]).unwrap();
    let y = g.concat(&[one, x], 0).unwrap();
    assert_eq!(g.shape(y).unwrap().to_string(), "[?, 2]");
    let mut plan = compile(&g, &[y]).unwrap();
    let ov = t(&[1, 2], &[-1.0, -2.0]);
    for batch in [2, 0] {
        let xv = arange(&[batch, 2]);
        let out = plan
            .run(&g, &[("x", xv.view()), ("one", ov.view())])
            .unwrap();
        let expected = ndarray::concatenate(Axis(0), &[ov.view(), xv.view()]).unwrap();
        assert_same(&out.get(0).unwrap().to_owned(), &expected);
    }
}

#[test]
fn gather_along_axis_0_and_1() {
    let table = t(&[4, 2], &[0.0, 1.0, 10.0, 11.0, 20.0, 21.0, 30.0, 31.0]);
    let idx = t(&[3], &[3.0, 0.0, 3.0]);
    let y = binary(&table, &idx, |g, x, i| g.gather(x, i, 0));
    assert_same(&y, &t(&[3, 2], &[30.0, 31.0, 0.0, 1.0, 30.0, 31.0]));
    // A rank-2 index tensor gives shape [2, 2, 2].
    let idx2 = t(&[2, 2], &[1.0, 2.0, 2.0, 1.0]);
    let y = binary(&table, &idx2, |g, x, i| g.gather(x, i, 0));
    assert_same(
        &y,
        &t(
            &[2, 2, 2],
            &[10.0, 11.0, 20.0, 21.0, 20.0, 21.0, 10.0, 11.0],
        ),
    );
    // Axis 1: y[r, j] = x[r, idx[j]].
    let x = t(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let y = binary(&x, &t(&[2], &[2.0, 0.0]), |g, x, i| g.gather(x, i, 1));
    assert_same(&y, &t(&[2, 2], &[3.0, 1.0, 6.0, 4.0]));
    // Axis 1 of rank 3 with a rank-2 index: [2, 3, 2] gathered by [1, 2] -> [2, 1, 2, 2].
    let x3 = arange(&[2, 3, 2]);
    let y = binary(&x3, &t(&[1, 2], &[2.0, 2.0]), |g, x, i| g.gather(x, i, 1));
    assert_same(
        &y,
        &t(&[2, 1, 2, 2], &[4.0, 5.0, 4.0, 5.0, 10.0, 11.0, 10.0, 11.0]),
    );
    // A rank-0 index drops the axis; an empty index gives an empty result.
    assert_same(
        &binary(&x, &s(1.0), |g, x, i| g.gather(x, i, 1)),
        &t(&[2], &[2.0, 5.0]),
    );
    assert_eq!(
        binary(&x, &t(&[0], &[]), |g, x, i| g.gather(x, i, 0)).shape(),
        &[0, 3]
    );
}

#[test]
fn gather_rejects_indices_that_are_not_integers_in_range() {
    let x = arange(&[3, 2]);
    for (bad, position) in [
        (3.0, 1),
        (-1.0, 1),
        (0.5, 1),
        (f64::NAN, 1),
        (f64::INFINITY, 1),
    ] {
        let idx = t(&[2], &[0.0, bad]);
        let err = Op::Index(dendrite_graph::IndexOp::Gather(0))
            .evaluate("lookup", &[x.view(), idx.view()])
            .unwrap_err();
        match err {
            GraphError::IndexOutOfRange {
                op,
                node,
                value,
                position: p,
                bound,
                indices_shape,
            } => {
                assert_eq!(
                    (op, node.as_str(), p, bound, indices_shape),
                    ("gather", "lookup", position, 3, vec![2])
                );
                assert!(value.to_bits() == bad.to_bits() || (value.is_nan() && bad.is_nan()));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn scatter_add_accumulates_repeated_indices() {
    let mut g = Graph::<f64>::new();
    let src = g.input("src", [3, 2]).unwrap();
    let idx = g.input("idx", [3]).unwrap();
    let like = g.input("like", [3, 2]).unwrap();
    let y = g.scatter_add(src, idx, like, 0).unwrap();
    let sv = t(&[3, 2], &[1.0, 2.0, 10.0, 20.0, 100.0, 200.0]);
    let iv = t(&[3], &[1.0, 1.0, 0.0]);
    let lv = t(&[3, 2], &[9.0; 6]); // only its shape matters
    let out = run1(&g, y, &[("src", &sv), ("idx", &iv), ("like", &lv)]);
    assert_same(&out, &t(&[3, 2], &[100.0, 200.0, 11.0, 22.0, 0.0, 0.0]));
    // Axis 1: out[r, idx[j]] += src[r, j].
    let x = t(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let y = Op::Index(dendrite_graph::IndexOp::ScatterAdd(1))
        .evaluate(
            "s",
            &[
                x.view(),
                t(&[3], &[0.0, 0.0, 1.0]).view(),
                t(&[2, 2], &[0.0; 4]).view(),
            ],
        )
        .unwrap();
    assert_same(&y, &t(&[2, 2], &[3.0, 3.0, 9.0, 6.0]));
    // An empty source leaves zeros.
    let y = Op::Index(dendrite_graph::IndexOp::ScatterAdd(0))
        .evaluate(
            "s",
            &[
                t(&[0, 2], &[]).view(),
                t(&[0], &[]).view(),
                t(&[2, 2], &[5.0; 4]).view(),
            ],
        )
        .unwrap();
    assert_same(&y, &t(&[2, 2], &[0.0; 4]));
}

#[test]
fn scatter_add_is_the_adjoint_of_gather() {
    // <gather(x, i), y> = <x, scatter_add(y, i, x)> for any x, y.
    let x = arange(&[4, 3]).mapv(|v| v.sin());
    let idx = t(&[5], &[3.0, 1.0, 3.0, 0.0, 3.0]);
    let y = arange(&[5, 3]).mapv(|v| (v * 0.7).cos());
    let gx = Op::Index(dendrite_graph::IndexOp::Gather(0))
        .evaluate("g", &[x.view(), idx.view()])
        .unwrap();
    let sy = Op::Index(dendrite_graph::IndexOp::ScatterAdd(0))
        .evaluate("s", &[y.view(), idx.view(), x.view()])
        .unwrap();
    let lhs: f64 = (&gx * &y).sum();
    let rhs: f64 = (&x * &sy).sum();
    assert!((lhs - rhs).abs() < 1e-12, "{lhs} vs {rhs}");
}

#[test]
fn one_hot_encodes_labels() {
    let y = unary(&t(&[3], &[0.0, 2.0, 1.0]), |g, x| g.one_hot(x, 3));
    assert_same(
        &y,
        &t(&[3, 3], &[1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0]),
    );
    assert_same(
        &unary(&s(1.0), |g, x| g.one_hot(x, 2)),
        &t(&[2], &[0.0, 1.0]),
    );
    let y = unary(&t(&[2, 1], &[3.0, 0.0]), |g, x| g.one_hot(x, 4));
    assert_same(
        &y,
        &t(&[2, 1, 4], &[0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0]),
    );
    assert_eq!(
        unary(&t(&[0], &[]), |g, x| g.one_hot(x, 5)).shape(),
        &[0, 5]
    );
    // A dynamic batch of labels; the buffer is re-zeroed between runs.
    let mut g = Graph::<f64>::new();
    let labels = g.input("labels", [None]).unwrap();
    let y = g.one_hot(labels, 3).unwrap();
    let mut plan = compile(&g, &[y]).unwrap();
    let first = t(&[2], &[2.0, 2.0]);
    plan.run(&g, &[("labels", first.view())]).unwrap();
    let second = t(&[2], &[0.0, 1.0]);
    let out = plan.run(&g, &[("labels", second.view())]).unwrap();
    assert_same(
        &out.get(0).unwrap().to_owned(),
        &t(&[2, 3], &[1.0, 0.0, 0.0, 0.0, 1.0, 0.0]),
    );
}

#[test]
fn one_hot_label_out_of_range_is_an_error() {
    let mut g = Graph::<f64>::new();
    let labels = g.input("labels", [None]).unwrap();
    let y = g.one_hot(labels, 3).unwrap();
    let mut plan = compile(&g, &[y]).unwrap();
    let bad = t(&[3], &[0.0, 3.0, 1.0]);
    let err = plan.run(&g, &[("labels", bad.view())]).unwrap_err();
    assert_eq!(
        err,
        GraphError::IndexOutOfRange {
            op: "one_hot",
            node: "one_hot".into(),
            value: 3.0,
            position: 1,
            bound: 3,
            indices_shape: vec![3],
        }
    );
    assert_eq!(
        err.to_string(),
        "one_hot `one_hot`: index 3 at flat position 1 is not an integer in 0..3"
    );
    // The plan still works afterwards.
    let good = t(&[1], &[2.0]);
    let out = plan.run(&g, &[("labels", good.view())]).unwrap();
    assert_same(
        &out.get(0).unwrap().to_owned(),
        &t(&[1, 3], &[0.0, 0.0, 1.0]),
    );
}
