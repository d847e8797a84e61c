//! The graph's bookkeeping: names and scopes, operand slots, leaves, and handles.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::t;
use dendrite_graph::{Dim, Graph, Op, Shape, UnaryOp};

#[test]
fn auto_names_are_unique_and_scoped() {
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [2]).unwrap();
    let ids: Vec<_> = (0..3).map(|_| g.exp(x).unwrap()).collect();
    let names: Vec<&str> = ids.iter().map(|&n| g.name(n).unwrap()).collect();
    assert_eq!(names, ["exp", "exp_1", "exp_2"]);
    let a = g.with_scope("dense_1", |g| g.exp(x)).unwrap();
    let b = g.with_scope("dense_1", |g| g.exp(x)).unwrap();
    let c = g
        .with_scope("outer", |g| g.with_scope("inner", |g| g.input("w", [1])))
        .unwrap();
    assert_eq!(g.name(a).unwrap(), "dense_1/exp");
    assert_eq!(g.name(b).unwrap(), "dense_1/exp_1");
    assert_eq!(g.name(c).unwrap(), "outer/inner/w");
    // The scope is popped afterwards.
    let d = g.neg(x).unwrap();
    assert_eq!(g.name(d).unwrap(), "neg");
    // An auto name skips a name the user took.
    g.input("neg_1", [1]).unwrap();
    let e = g.neg(x).unwrap();
    assert_eq!(g.name(e).unwrap(), "neg_2");
    for id in g.nodes() {
        assert_eq!(g.node_by_name(g.name(id).unwrap()), Some(id));
    }
}

#[test]
fn operands_keep_their_slots() {
    let mut g = Graph::<f64>::new();
    let a = g.input("a", [2]).unwrap();
    let b = g.input("b", [2]).unwrap();
    let c = g.input("c", [2]).unwrap();
    let sq = g.mul(a, a).unwrap();
    let ba = g.sub(b, a).unwrap();
    let sel = g.select(c, b, a).unwrap();
    let cat = g.concat(&[c, a, c, b], 0).unwrap();
    assert_eq!(g.operands(sq).unwrap().as_slice(), &[a, a]);
    assert_eq!(g.operands(ba).unwrap().as_slice(), &[b, a]);
    assert_eq!(g.operands(sel).unwrap().as_slice(), &[c, b, a]);
    assert_eq!(g.operands(cat).unwrap().as_slice(), &[c, a, c, b]);
    assert!(g.operands(a).unwrap().is_empty());
    // b - a, not a - b.
    let out = common::run1(
        &g,
        ba,
        &[("a", &t(&[2], &[1.0, 2.0])), ("b", &t(&[2], &[10.0, 20.0]))],
    );
    assert_eq!(out, t(&[2], &[9.0, 18.0]));
}

#[test]
fn leaves_are_listed_and_typed() {
    let mut g = Graph::<f32>::new();
    let x = g.input("x", [None, Some(3)]).unwrap();
    let w = g
        .parameter("w", ndarray::ArrayD::zeros(ndarray::IxDyn(&[3, 2])))
        .unwrap();
    let c = g.scalar(2.0);
    let y = g.matmul(x, w).unwrap();
    assert_eq!(g.inputs(), vec![x]);
    assert_eq!(g.parameters(), vec![w]);
    assert_eq!(g.nodes().collect::<Vec<_>>(), vec![x, w, c, y]);
    assert_eq!(g.op(x).unwrap(), &Op::Input);
    assert!(g.op(c).unwrap().is_leaf() && !g.op(y).unwrap().is_leaf());
    assert_eq!(g.shape(x).unwrap().dims(), &[Dim::Dynamic, Dim::Fixed(3)]);
    assert_eq!(g.shape(c).unwrap(), &Shape::scalar());
    assert_eq!(g.value(c).unwrap()[[]], 2.0);
    let e = g.exp(x).unwrap();
    assert_eq!(g.node(e).unwrap().op(), &Op::Unary(UnaryOp::Exp));
    assert_eq!(g.node(e).unwrap().shape().to_string(), "[?, 3]");
    // Handles are ordered by insertion and carry their graph.
    assert!(x < y && x.index() == 0 && y.index() == 3);
    assert_eq!(y.graph_id(), g.id());
}

#[test]
fn every_primitive_name_is_an_op_name() {
    let names = Op::<f64>::primitive_names();
    let mut sorted = names.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), names.len(), "names repeat");
    for op in [
        UnaryOp::Neg,
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Sqrt,
        UnaryOp::Tanh,
        UnaryOp::Abs,
        UnaryOp::Erf,
    ] {
        assert!(names.contains(&op.name()));
    }
    assert!(names.contains(&Op::<f64>::StopGradient.name()));
}
