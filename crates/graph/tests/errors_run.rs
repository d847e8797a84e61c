//! Every `GraphError` variant, produced through the public API, with its message checked
//! exactly: the errors of running a plan (see `errors_build.rs` for building a graph).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{s, t};
use dendrite_graph::{compile, Graph, GraphError, Op, Shape};

#[test]
fn incompatible_shapes_at_run_time() {
    // Dynamic dimensions are trusted when building and checked when running.
    let mut g = Graph::<f64>::new();
    let a = g.input("a", [None, Some(3)]).unwrap();
    let w = g.input("w", [None, Some(2)]).unwrap();
    let y = g.matmul(a, w).unwrap();
    let mut plan = compile(&g, &[y]).unwrap();
    let (av, wv) = (t(&[1, 3], &[0.0; 3]), t(&[4, 2], &[0.0; 8]));
    let err = plan
        .run(&g, &[("a", av.view()), ("w", wv.view())])
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "matmul `matmul`: inner dimensions differ: lhs [1, 3] vs rhs [4, 2]"
    );
}

#[test]
fn a_dynamic_dimension_fed_as_1_must_not_broadcast() {
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [None, Some(3)]).unwrap();
    let y = g.input("y", [4, 3]).unwrap();
    let z = g.add(x, y).unwrap();
    assert_eq!(g.shape(z).unwrap(), &Shape::from([4, 3]));
    let mut plan = compile(&g, &[z]).unwrap();
    let (xv, yv) = (t(&[1, 3], &[1.0; 3]), t(&[4, 3], &[0.0; 12]));
    let err = plan
        .run(&g, &[("x", xv.view()), ("y", yv.view())])
        .unwrap_err();
    assert_eq!(
        err,
        GraphError::IncompatibleShapes {
            op: "add",
            node: "add".into(),
            reason: "a dynamic dimension would be broadcast",
            lhs: Shape::from([1, 3]),
            rhs: Shape::from([4, 3]),
        }
    );
    assert_eq!(
        err.to_string(),
        "add `add`: a dynamic dimension would be broadcast: lhs [1, 3] vs rhs [4, 3]"
    );
    // Fed as 4 it runs.
    let xv = t(&[4, 3], &[1.0; 12]);
    assert!(plan.run(&g, &[("x", xv.view()), ("y", yv.view())]).is_ok());
    // Two dynamic dimensions, one fed as 1 and the other as n: the same error, from select too.
    let mut g = Graph::<f64>::new();
    let a = g.input("a", [None]).unwrap();
    let b = g.input("b", [None]).unwrap();
    let c = g.input("c", [None]).unwrap();
    let sel = g.select(a, b, c).unwrap();
    let mut plan = compile(&g, &[sel]).unwrap();
    let (one, three) = (t(&[1], &[1.0]), t(&[3], &[1.0; 3]));
    let err = plan
        .run(
            &g,
            &[("a", three.view()), ("b", three.view()), ("c", one.view())],
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "select `select`: a dynamic dimension would be broadcast: lhs [1] vs rhs [3]"
    );
    // A fixed 1 against a dynamic n is ordinary broadcasting.
    let mut g = Graph::<f64>::new();
    let a = g.input("a", [None]).unwrap();
    let b = g.input("b", [1]).unwrap();
    let c = g.mul(a, b).unwrap();
    let mut plan = compile(&g, &[c]).unwrap();
    let out = plan
        .run(&g, &[("a", three.view()), ("b", t(&[1], &[2.0]).view())])
        .unwrap();
    assert_eq!(out.get(0).unwrap().to_owned(), t(&[3], &[2.0; 3]));
}

#[test]
fn missing_feed() {
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [None, Some(3)]).unwrap();
    let unused = g.input("unused", [1]).unwrap();
    let y = g.exp(x).unwrap();
    let mut plan = compile(&g, &[y]).unwrap();
    let err = plan.run(&g, &[]).unwrap_err();
    assert_eq!(
        err,
        GraphError::MissingFeed {
            input: "x".into(),
            expected: Shape::from([None, Some(3)])
        }
    );
    assert_eq!(
        err.to_string(),
        "missing feed for input `x` of shape [?, 3]"
    );
    // An input the fetches do not need may be left out (or fed).
    let xv = t(&[2, 3], &[0.0; 6]);
    assert!(plan.run(&g, &[("x", xv.view())]).is_ok());
    let _ = unused;
}

#[test]
fn unknown_feed() {
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [1]).unwrap();
    let y = g.neg(x).unwrap();
    let mut plan = compile(&g, &[y]).unwrap();
    let v = t(&[1], &[1.0]);
    let err = plan
        .run(&g, &[("x", v.view()), ("typo", v.view())])
        .unwrap_err();
    assert_eq!(
        err,
        GraphError::UnknownFeed {
            name: "typo".into()
        }
    );
    assert_eq!(
        err.to_string(),
        "feed `typo` matches no input of this graph"
    );
    // Only inputs can be fed: not parameters, not op nodes.
    let err = plan.run(&g, &[("neg", v.view())]).unwrap_err();
    assert_eq!(err.to_string(), "feed `neg` matches no input of this graph");
}

#[test]
fn feed_shape() {
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [None, Some(2)]).unwrap();
    let y = g.neg(x).unwrap();
    let mut plan = compile(&g, &[y]).unwrap();
    let cases = [
        (
            t(&[4, 3], &[0.0; 12]),
            "feed for input `x` has shape [4, 3], expected [?, 2]",
        ),
        (
            t(&[2], &[0.0; 2]),
            "feed for input `x` has shape [2], expected [?, 2]",
        ),
        (s(0.0), "feed for input `x` has shape [], expected [?, 2]"),
        (
            t(&[1, 1, 2], &[0.0; 2]),
            "feed for input `x` has shape [1, 1, 2], expected [?, 2]",
        ),
    ];
    for (value, message) in cases {
        let err = plan.run(&g, &[("x", value.view())]).unwrap_err();
        assert!(matches!(err, GraphError::FeedShape { .. }), "{err:?}");
        assert_eq!(err.to_string(), message);
    }
}

#[test]
fn non_finite_feed() {
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [2, 2]).unwrap();
    let y = g.neg(x).unwrap();
    let bad = t(&[2, 2], &[0.0, 1.0, f64::NAN, f64::INFINITY]);
    // Off by default.
    let mut plan = compile(&g, &[y]).unwrap();
    assert!(plan.run(&g, &[("x", bad.view())]).is_ok());
    let mut plan = plan.check_finite_feeds(true);
    let err = plan.run(&g, &[("x", bad.view())]).unwrap_err();
    assert!(matches!(
        err,
        GraphError::NonFiniteFeed { ref input, index: 2, value } if input == "x" && value.is_nan()
    ));
    assert_eq!(
        err.to_string(),
        "feed for input `x` holds a non-finite value NaN at flat index 2"
    );
    let bad = t(&[2, 2], &[0.0, 1.0, 2.0, f64::NEG_INFINITY]);
    let err = plan.run(&g, &[("x", bad.view())]).unwrap_err();
    assert_eq!(
        err,
        GraphError::NonFiniteFeed {
            input: "x".into(),
            index: 3,
            value: f64::NEG_INFINITY
        }
    );
    assert_eq!(
        err.to_string(),
        "feed for input `x` holds a non-finite value -inf at flat index 3"
    );
    // The flat index is row-major even for a transposed view.
    let base = t(&[2, 2], &[0.0, f64::INFINITY, 2.0, 3.0]);
    let err = plan.run(&g, &[("x", base.t().into_dyn())]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "feed for input `x` holds a non-finite value inf at flat index 2"
    );
}

#[test]
fn index_out_of_range() {
    let mut g = Graph::<f64>::new();
    let table = g.input("table", [3, 2]).unwrap();
    let ids = g.input("ids", [None]).unwrap();
    let rows = g
        .with_scope("embedding", |g| g.gather(table, ids, 0))
        .unwrap();
    let mut plan = compile(&g, &[rows]).unwrap();
    let tv = t(&[3, 2], &[0.0; 6]);
    let cases = [
        (
            t(&[3], &[0.0, 1.0, 3.0]),
            "gather `embedding/gather`: index 3 at flat position 2 is not an integer in 0..3",
        ),
        (
            t(&[2], &[-1.0, 0.0]),
            "gather `embedding/gather`: index -1 at flat position 0 is not an integer in 0..3",
        ),
        (
            t(&[2], &[0.0, 1.5]),
            "gather `embedding/gather`: index 1.5 at flat position 1 is not an integer in 0..3",
        ),
    ];
    for (ids, message) in cases {
        let err = plan
            .run(&g, &[("table", tv.view()), ("ids", ids.view())])
            .unwrap_err();
        assert!(matches!(err, GraphError::IndexOutOfRange { .. }), "{err:?}");
        assert_eq!(err.to_string(), message);
    }
    // A batch of index rows: the error carries the index tensor's shape, so flat position 5 of
    // a [2, 3] tensor is row 1, place 2.
    let ids2 = g.input("ids2", [None, Some(3)]).unwrap();
    let rows2 = g.gather(table, ids2, 0).unwrap();
    let mut plan2 = compile(&g, &[rows2]).unwrap();
    let bad = t(&[2, 3], &[0.0, 1.0, 2.0, 2.0, 1.0, 7.0]);
    let err = plan2
        .run(&g, &[("table", tv.view()), ("ids2", bad.view())])
        .unwrap_err();
    match err {
        GraphError::IndexOutOfRange {
            position,
            indices_shape,
            value,
            ..
        } => assert_eq!((position, indices_shape, value), (5, vec![2, 3], 7.0)),
        other => panic!("unexpected {other:?}"),
    }
    let err = Op::Index(dendrite_graph::IndexOp::ScatterAdd(0))
        .evaluate(
            "sa",
            &[
                t(&[1, 2], &[0.0; 2]).view(),
                t(&[1], &[5.0]).view(),
                tv.view(),
            ],
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "scatter_add `sa`: index 5 at flat position 0 is not an integer in 0..3"
    );
    let err = Op::Index(dendrite_graph::IndexOp::OneHot(4))
        .evaluate("oh", &[t(&[1], &[f64::NAN]).view()])
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "one_hot `oh`: index NaN at flat position 0 is not an integer in 0..4"
    );
}

#[test]
fn plan_graph_mismatch() {
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [1]).unwrap();
    let y = g.neg(x).unwrap();
    let mut plan = compile(&g, &[y]).unwrap();
    let mut other = Graph::<f64>::new();
    other.input("x", [1]).unwrap();
    let v = t(&[1], &[1.0]);
    let err = plan.run(&other, &[("x", v.view())]).unwrap_err();
    assert_eq!(
        err,
        GraphError::PlanGraphMismatch {
            plan_graph: g.id(),
            graph: other.id()
        }
    );
    assert_eq!(
        err.to_string(),
        format!(
            "plan was compiled from graph {} but run with graph {}",
            g.id(),
            other.id()
        )
    );
}

#[test]
fn a_dynamic_batch_dimension_fed_as_1_must_not_broadcast_in_matmul() {
    // Both batch axes are declared dynamic, so the declared shapes of `a` and of its cotangent
    // agree ([?, 2, 3]) and the reverse sweep sums nothing back. If `a` were fed with batch 1
    // and `b` with batch 4, the cotangent would come out [4, 2, 3] for an operand of shape
    // [1, 2, 3]; the plan refuses the stretch instead, as it does for elementwise ops.
    let mut g = Graph::<f64>::new();
    let a = g.input("a", [None, Some(2), Some(3)]).unwrap();
    let b = g.input("b", [None, Some(3), Some(5)]).unwrap();
    let c = g.matmul(a, b).unwrap();
    assert_eq!(g.shape(c).unwrap().to_string(), "[?, 2, 5]");
    let c_bar = g.input("c_bar", [None, Some(2), Some(5)]).unwrap();
    let a_bar = g.local_vjp(c, c_bar).unwrap()[0].unwrap();
    assert_eq!(g.shape(a_bar).unwrap(), g.shape(a).unwrap());
    let mut plan = compile(&g, &[c]).unwrap();
    let (a1, b4) = (t(&[1, 2, 3], &[1.0; 6]), t(&[4, 3, 5], &[1.0; 60]));
    let err = plan
        .run(&g, &[("a", a1.view()), ("b", b4.view())])
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "matmul `matmul`: a dynamic dimension would be broadcast: lhs [1, 2, 3] vs rhs [4, 2, 5]"
    );
    // The same batch on both sides runs; so does a fixed batch of 1 against a dynamic one, and
    // a rank-2 operand against a batch.
    let a4 = t(&[4, 2, 3], &[1.0; 24]);
    let out = plan.run(&g, &[("a", a4.view()), ("b", b4.view())]).unwrap();
    assert_eq!(out.get(0).unwrap().to_owned(), t(&[4, 2, 5], &[3.0; 40]));
    let mut g = Graph::<f64>::new();
    let a = g.input("a", [1, 2, 3]).unwrap();
    let m = g.input("m", [2, 3]).unwrap();
    let b = g.input("b", [None, Some(3), Some(5)]).unwrap();
    let c = g.matmul(a, b).unwrap();
    let d = g.matmul(m, b).unwrap();
    let mut plan = compile(&g, &[c, d]).unwrap();
    let (a1, m2) = (t(&[1, 2, 3], &[1.0; 6]), t(&[2, 3], &[1.0; 6]));
    let out = plan
        .run(&g, &[("a", a1.view()), ("m", m2.view()), ("b", b4.view())])
        .unwrap();
    assert_eq!(out.get(0).unwrap().shape(), &[4, 2, 5]);
    assert_eq!(out.get(1).unwrap().shape(), &[4, 2, 5]);
    // A batch size that changes between runs is checked again.
    let mut g = Graph::<f64>::new();
    let a = g.input("a", [None, Some(2), Some(3)]).unwrap();
    let b = g.input("b", [None, Some(3), Some(5)]).unwrap();
    let c = g.matmul(a, b).unwrap();
    let mut plan = compile(&g, &[c]).unwrap();
    assert!(plan.run(&g, &[("a", a4.view()), ("b", b4.view())]).is_ok());
    assert!(plan.run(&g, &[("a", a1.view()), ("b", b4.view())]).is_err());
}

#[test]
fn the_dynamic_stretch_check_runs_again_when_the_batch_size_changes() {
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [None, Some(3)]).unwrap();
    let y = g.input("y", [None, Some(3)]).unwrap();
    let z = g.mul(x, y).unwrap();
    let mut plan = compile(&g, &[z]).unwrap();
    let (four, one) = (t(&[4, 3], &[1.0; 12]), t(&[1, 3], &[1.0; 3]));
    assert!(plan
        .run(&g, &[("x", four.view()), ("y", four.view())])
        .is_ok());
    let err = plan
        .run(&g, &[("x", four.view()), ("y", one.view())])
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "mul `mul`: a dynamic dimension would be broadcast: lhs [1, 3] vs rhs [4, 3]"
    );
    assert!(plan
        .run(&g, &[("x", one.view()), ("y", one.view())])
        .is_ok());
}
