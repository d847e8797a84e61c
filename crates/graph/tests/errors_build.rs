//! Every `GraphError` variant, produced through the public API, with its message checked
//! exactly: the errors of building a graph (see `errors_run.rs` for running one).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{s, t};
use dendrite_graph::{compile, Graph, GraphError, NodeId, Op, ReduceOp, Shape, UnaryOp};

#[test]
fn incompatible_shapes_names_the_scoped_node_and_both_shapes() {
    // The issue's example: a Dense layer built under a name scope.
    let mut g = Graph::<f32>::new();
    let x = g.input("x", [None, Some(784)]).unwrap();
    let w = g
        .with_scope("dense_1", |g| g.input("kernel", [32, 10]))
        .unwrap();
    assert_eq!(g.name(w).unwrap(), "dense_1/kernel");
    let err = g.with_scope("dense_1", |g| g.matmul(x, w)).unwrap_err();
    assert_eq!(
        err,
        GraphError::IncompatibleShapes {
            op: "matmul",
            node: "dense_1/matmul".into(),
            reason: "inner dimensions differ",
            lhs: Shape::from([None, Some(784)]),
            rhs: Shape::from([32, 10]),
        }
    );
    assert_eq!(
        err.to_string(),
        "matmul `dense_1/matmul`: inner dimensions differ: lhs [?, 784] vs rhs [32, 10]"
    );
    // Nested scopes join with '/'.
    let err = g
        .with_scope("model", |g| g.with_scope("dense_1", |g| g.matmul(x, w)))
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("matmul `model/dense_1/matmul`: "),
        "{err}"
    );
    // A failed build adds nothing.
    assert_eq!(g.node_count(), 2);
}

#[test]
fn incompatible_shapes_from_other_ops() {
    let mut g = Graph::<f64>::new();
    let a = g.input("a", [2, 3]).unwrap();
    let b = g.input("b", [4]).unwrap();
    let v = g.input("v", [3]).unwrap();
    let cases = [
        (
            g.add(a, b).unwrap_err(),
            "add `add`: shapes do not broadcast: lhs [2, 3] vs rhs [4]",
        ),
        (
            g.less(a, b).unwrap_err(),
            "lt `lt`: shapes do not broadcast: lhs [2, 3] vs rhs [4]",
        ),
        (
            g.matmul(a, v).unwrap_err(),
            "matmul `matmul`: both operands need at least two axes: lhs [2, 3] vs rhs [3]",
        ),
        (
            g.reshape(a, [4]).unwrap_err(),
            "reshape `reshape`: element counts differ: lhs [2, 3] vs rhs [4]",
        ),
        (
            g.reshape(a, [None, Some(4)]).unwrap_err(),
            "reshape `reshape`: element counts differ: lhs [2, 3] vs rhs [?, 4]",
        ),
        (
            g.broadcast_to(a, [3, 3]).unwrap_err(),
            "broadcast_to `broadcast_to`: operand does not broadcast to the target: lhs [2, 3] vs \
             rhs [3, 3]",
        ),
        (
            g.broadcast_to(a, [3]).unwrap_err(),
            "broadcast_to `broadcast_to`: operand has more axes than the target: lhs [2, 3] vs \
             rhs [3]",
        ),
        (
            g.sum_like(v, a).unwrap_err(),
            "sum_like `sum_like`: reference shape does not broadcast to the operand: lhs [3] vs \
             rhs [2, 3]",
        ),
        (
            g.concat(&[a, b], 0).unwrap_err(),
            "concat `concat`: operands differ off the concatenation axis: lhs [2, 3] vs rhs [4]",
        ),
    ];
    for (err, message) in cases {
        assert!(
            matches!(err, GraphError::IncompatibleShapes { .. }),
            "{err:?}"
        );
        assert_eq!(err.to_string(), message);
    }
    let c = g.input("c", [2, 1]).unwrap();
    let err = g.select(b, a, c).unwrap_err();
    assert_eq!(
        err.to_string(),
        "select `select`: condition does not broadcast against the values: lhs [4] vs rhs [2, 3]"
    );
    let l = g.input("l", [5, 2]).unwrap();
    let m = g.input("m", [3, 2, 2]).unwrap();
    let err = g.matmul(m, g.node_by_name("l").unwrap()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "matmul `matmul`: inner dimensions differ: lhs [3, 2, 2] vs rhs [5, 2]"
    );
    let n = g.input("n", [4, 2, 2]).unwrap();
    let err = g.matmul(m, n).unwrap_err();
    assert_eq!(
        err.to_string(),
        "matmul `matmul`: batch dimensions do not broadcast: lhs [3, 2, 2] vs rhs [4, 2, 2]"
    );
    let _ = l;
}

#[test]
fn invalid_shape() {
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [4]).unwrap();
    let cases = [
        (
            g.reshape(x, [None, None]).unwrap_err(),
            "reshape `reshape`: a reshape target may have at most one dynamic dimension: got \
             shape [?, ?]",
        ),
        (
            g.slice(x, 0, 2, 5).unwrap_err(),
            "slice `slice`: range 2..5 does not fit axis 0: got shape [4]",
        ),
        (
            g.slice(x, 0, 3, 2).unwrap_err(),
            "slice `slice`: range 3..2 does not fit axis 0: got shape [4]",
        ),
        (
            g.permute(x, &[0, 0]).unwrap_err(),
            "permute `permute`: [0, 0] is not a permutation of the operand's axes: got shape [4]",
        ),
        (
            g.one_hot(x, 0).unwrap_err(),
            "one_hot `one_hot`: depth must be at least 1: got shape [4]",
        ),
        (
            g.transpose(x).unwrap_err(),
            "permute `x`: transpose needs at least two axes: got shape [4]",
        ),
    ];
    for (err, message) in cases {
        assert!(matches!(err, GraphError::InvalidShape { .. }), "{err:?}");
        assert_eq!(err.to_string(), message);
    }
    let e = g.input("e", [3, 0]).unwrap();
    let err = g.argmax(e, 1).unwrap_err();
    assert_eq!(
        err.to_string(),
        "argmax `argmax`: argmax over axis 1, which is empty: got shape [3, 0]"
    );
    // Leaves have no shape rule, so they cannot be evaluated.
    let err = Op::<f64>::Input.evaluate("x", &[]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "input `x`: leaves carry their own shape: got shape []"
    );
    // An empty value has no scalar.
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [None]).unwrap();
    let y = g.neg(x).unwrap();
    let mut plan = compile(&g, &[y]).unwrap();
    let empty = t(&[0], &[]);
    let out = plan.run(&g, &[("x", empty.view())]).unwrap();
    assert_eq!(
        out.scalar(0).unwrap_err().to_string(),
        "fetch `fetch #0`: an empty value has no scalar: got shape [0]"
    );
}

#[test]
fn repeated_axis_is_reported_as_repeated() {
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [2, 3, 4]).unwrap();
    let cases = [
        (
            g.sum(x, &[1, 1]).unwrap_err(),
            "sum `sum`: axis 1 is repeated",
        ),
        (
            g.sum(x, &[2, 0, 2]).unwrap_err(),
            "sum `sum`: axis 2 is repeated",
        ),
        (
            g.max(x, &[0, 0], true).unwrap_err(),
            "max `max`: axis 0 is repeated",
        ),
        (
            g.mean(x, &[1, 1], false).unwrap_err(),
            "sum `sum`: axis 1 is repeated",
        ),
        (
            g.dim_size(x, &[0, 0]).unwrap_err(),
            "dim_size `dim_size`: axis 0 is repeated",
        ),
        (
            g.expand_dims(x, &[0, 0]).unwrap_err(),
            "expand_dims `expand_dims`: axis 0 is repeated",
        ),
    ];
    for (err, message) in cases {
        assert!(matches!(err, GraphError::RepeatedAxis { .. }), "{err:?}");
        assert_eq!(err.to_string(), message);
    }
    // Unsorted distinct axes are fine.
    let summed = g.sum(x, &[2, 0]).unwrap();
    assert_eq!(g.shape(summed).unwrap(), &Shape::from([3]));
}

#[test]
fn invalid_axis() {
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [2, 3]).unwrap();
    let cases = [
        (
            g.sum(x, &[2]).unwrap_err(),
            "sum `sum`: axis 2 is invalid for an operand of rank 2",
        ),
        (
            g.max(x, &[5], true).unwrap_err(),
            "max `max`: axis 5 is invalid for an operand of rank 2",
        ),
        (
            g.dim_size(x, &[2]).unwrap_err(),
            "dim_size `dim_size`: axis 2 is invalid for an operand of rank 2",
        ),
        (
            g.argmax(x, 2).unwrap_err(),
            "argmax `argmax`: axis 2 is invalid for an operand of rank 2",
        ),
        (
            g.slice(x, 3, 0, 1).unwrap_err(),
            "slice `slice`: axis 3 is invalid for an operand of rank 2",
        ),
        (
            g.pad(x, 2, 1, 1).unwrap_err(),
            "pad `pad`: axis 2 is invalid for an operand of rank 2",
        ),
        (
            g.concat(&[x, x], 2).unwrap_err(),
            "concat `concat`: axis 2 is invalid for an operand of rank 2",
        ),
        (
            g.gather(x, x, 2).unwrap_err(),
            "gather `gather`: axis 2 is invalid for an operand of rank 2",
        ),
        // expand_dims reports the rank of its output (2 + number of new axes).
        (
            g.expand_dims(x, &[3]).unwrap_err(),
            "expand_dims `expand_dims`: axis 3 is invalid for an operand of rank 3",
        ),
        (
            g.mean(x, &[2], false).unwrap_err(),
            "sum `sum`: axis 2 is invalid for an operand of rank 2",
        ),
        (
            g.softmax(x, 2).unwrap_err(),
            "log_softmax `log_softmax`: axis 2 is invalid for an operand of rank 2",
        ),
    ];
    for (err, message) in cases {
        assert!(matches!(err, GraphError::InvalidAxis { .. }), "{err:?}");
        assert_eq!(err.to_string(), message);
    }
    let scalar = g.scalar(1.0);
    let err = g.sum(scalar, &[0]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "sum `sum`: axis 0 is invalid for an operand of rank 0"
    );
    let err = g.scatter_add(x, x, scalar, 0).unwrap_err();
    assert_eq!(
        err.to_string(),
        "scatter_add `scatter_add`: axis 0 is invalid for an operand of rank 0"
    );
}

#[test]
fn arity() {
    // The typed builders fix the operand count; concat takes a slice, and Op::evaluate and
    // Op::infer_shape take any number of operands.
    let mut g = Graph::<f64>::new();
    let err = g.concat(&[], 0).unwrap_err();
    assert_eq!(
        err,
        GraphError::Arity {
            op: "concat",
            node: "concat".into(),
            expected: "at least one operand",
            actual: 0
        }
    );
    assert_eq!(
        err.to_string(),
        "concat `concat`: expects at least one operand, got 0"
    );
    let err = Op::<f64>::Unary(UnaryOp::Exp)
        .evaluate("e", &[])
        .unwrap_err();
    assert_eq!(err.to_string(), "exp `e`: expects 1 operand, got 0");
    let two = s(2.0);
    let err = Op::<f64>::MatMul {
        transpose_lhs: false,
        transpose_rhs: false,
    }
    .evaluate("mm", &[two.view()])
    .unwrap_err();
    assert_eq!(err.to_string(), "matmul `mm`: expects 2 operands, got 1");
    let err = Op::<f64>::Select
        .infer_shape("sel", &[&Shape::scalar(); 2])
        .unwrap_err();
    assert_eq!(err.to_string(), "select `sel`: expects 3 operands, got 2");
    let reduce = Op::<f64>::Reduce {
        op: ReduceOp::Sum,
        axes: Default::default(),
        keep_dims: false,
    };
    let err = reduce.infer_shape("r", &[&Shape::scalar(); 2]).unwrap_err();
    assert_eq!(err.to_string(), "sum `r`: expects 1 operand, got 2");
    let err = Op::<f64>::Constant
        .infer_shape("c", &[&Shape::scalar()])
        .unwrap_err();
    assert_eq!(err.to_string(), "constant `c`: expects no operands, got 1");
}

#[test]
fn foreign_node() {
    let mut g = Graph::<f64>::new();
    let mut h = Graph::<f64>::new();
    let x = g.input("x", [2]).unwrap();
    let y = h.input("y", [2]).unwrap();
    let expected = format!(
        "node #0 belongs to graph {}, not to graph {}",
        g.id(),
        h.id()
    );
    let err = h.neg(x).unwrap_err();
    assert_eq!(
        err,
        GraphError::ForeignNode {
            index: 0,
            node_graph: g.id(),
            graph: h.id()
        }
    );
    assert_eq!(err.to_string(), expected);
    // Mixed handles, lookups, compile and DOT export all check.
    assert_eq!(h.add(y, x).unwrap_err().to_string(), expected);
    assert_eq!(h.shape(x).unwrap_err().to_string(), expected);
    assert_eq!(compile(&h, &[x]).unwrap_err().to_string(), expected);
    assert_eq!(
        dendrite_graph::to_dot(&h, Some(&[x]))
            .unwrap_err()
            .to_string(),
        expected
    );
    assert_eq!(h.local_vjp(x, y).unwrap_err().to_string(), expected);
    // A failed build adds nothing to h.
    assert_eq!(h.node_count(), 1);
}

#[test]
fn unknown_node() {
    // Fetch positions past the end.
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [1]).unwrap();
    let y = g.neg(x).unwrap();
    let mut plan = compile(&g, &[y]).unwrap();
    let xv = t(&[1], &[1.0]);
    let out = plan.run(&g, &[("x", xv.view())]).unwrap();
    let err = out.get(1).unwrap_err();
    assert_eq!(
        err,
        GraphError::NoSuchFetch {
            index: 1,
            fetches: 1
        }
    );
    assert_eq!(
        err.to_string(),
        "fetch #1 does not exist: the plan has 1 fetches"
    );
    assert_eq!(
        out.scalar(7).unwrap_err().to_string(),
        "fetch #7 does not exist: the plan has 1 fetches"
    );
    // A clone gets an id of its own: the two graphs diverge, so a handle of one is foreign to
    // the other (found again by name).
    let snapshot = g.clone();
    assert_ne!(snapshot.id(), g.id());
    let z = g.exp(y).unwrap();
    assert!(matches!(
        snapshot.node(z).unwrap_err(),
        GraphError::ForeignNode { .. }
    ));
    assert!(matches!(
        snapshot.node(y).unwrap_err(),
        GraphError::ForeignNode { .. }
    ));
    let y_in_snapshot = snapshot.node_by_name(g.name(y).unwrap()).unwrap();
    assert_eq!(snapshot.node(y_in_snapshot).unwrap().op(), g.op(y).unwrap());
}

#[test]
fn duplicate_name() {
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [2]).unwrap();
    let err = g.input("x", [3]).unwrap_err();
    assert_eq!(err, GraphError::DuplicateName { name: "x".into() });
    assert_eq!(
        err.to_string(),
        "a node named `x` already exists in this graph"
    );
    let err = g.parameter("x", t(&[1], &[0.0])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "a node named `x` already exists in this graph"
    );
    // Auto-generated names count too, and scoped names are full paths.
    let e = g.exp(x).unwrap();
    assert_eq!(g.name(e).unwrap(), "exp");
    assert_eq!(
        g.input("exp", [1]).unwrap_err().to_string(),
        "a node named `exp` already exists in this graph"
    );
    g.with_scope("s", |g| g.input("x", [1])).unwrap();
    let err = g.with_scope("s", |g| g.input("x", [1])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "a node named `s/x` already exists in this graph"
    );
    let err = g.rename(e, "x").unwrap_err();
    assert_eq!(
        err.to_string(),
        "a node named `x` already exists in this graph"
    );
    // Renaming a node to its own name is fine; the old name becomes free.
    g.rename(e, "exp").unwrap();
    g.rename(e, "activation").unwrap();
    assert!(g.input("exp", [1]).is_ok());
}

#[test]
fn wrong_node_kind() {
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [1]).unwrap();
    let c = g.scalar(2.0);
    let y = g.neg(x).unwrap();
    let err = g.value(x).unwrap_err();
    assert_eq!(
        err,
        GraphError::WrongNodeKind {
            node: "x".into(),
            expected: "parameter or constant",
            actual: "input"
        }
    );
    assert_eq!(
        err.to_string(),
        "`x` is a node of kind input, but this needs a parameter or constant"
    );
    assert_eq!(
        g.value(y).unwrap_err().to_string(),
        "`neg` is a node of kind neg, but this needs a parameter or constant"
    );
    let err = g.parameter_mut(c).unwrap_err();
    assert_eq!(
        err.to_string(),
        "`constant` is a node of kind constant, but this needs a parameter"
    );
    let err = g.set_parameter(x, s(1.0).view()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "`x` is a node of kind input, but this needs a parameter"
    );
}

#[test]
fn value_shape() {
    let mut g = Graph::<f64>::new();
    let w = g.parameter("w", t(&[1], &[0.0])).unwrap();
    let err = g.set_parameter(w, t(&[2], &[1.0, 2.0]).view()).unwrap_err();
    assert_eq!(
        err,
        GraphError::ValueShape {
            node: "w".into(),
            expected: Shape::from([1]),
            actual: Shape::from([2])
        }
    );
    assert_eq!(err.to_string(), "value for `w` has shape [2], expected [1]");
    let err = g.set_parameter(w, s(1.0).view()).unwrap_err();
    assert_eq!(err.to_string(), "value for `w` has shape [], expected [1]");
    // The failed update left the value alone.
    assert_eq!(g.value(w).unwrap().to_owned(), t(&[1], &[0.0]));
}

#[test]
fn not_differentiable() {
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [None, None]).unwrap();
    let flat = g.reshape(x, [None]).unwrap();
    let y_bar = g.input("y_bar", [None]).unwrap();
    let err = g.local_vjp(flat, y_bar).unwrap_err();
    assert_eq!(
        err,
        GraphError::NotDifferentiable {
            op: "reshape",
            node: "reshape".into(),
            reason:
                "the operand has more than one dynamic dimension, so its shape cannot be restored",
        }
    );
    assert_eq!(
        err.to_string(),
        "reshape `reshape`: not differentiable: the operand has more than one dynamic dimension, \
         so its shape cannot be restored"
    );
    let v = g.input("v", [None]).unwrap();
    let sliced = g.slice(v, 0, 1, 2).unwrap();
    let s_bar = g.input("s_bar", [1]).unwrap();
    let err = g.local_vjp(sliced, s_bar).unwrap_err();
    assert_eq!(
        err.to_string(),
        "slice `slice`: not differentiable: the derivative needs a fixed size along the axis"
    );
    let padded = g.pad(v, 0, 1, 0).unwrap();
    let err = g.local_vjp(padded, y_bar).unwrap_err();
    assert_eq!(
        err.to_string(),
        "pad `pad`: not differentiable: the derivative needs a fixed size along the axis"
    );
    let fixed = g.input("fixed", [2]).unwrap();
    let cat = g.concat(&[fixed, v], 0).unwrap();
    let err = g.local_vjp(cat, y_bar).unwrap_err();
    assert_eq!(
        err.to_string(),
        "concat `concat`: not differentiable: the derivative needs a fixed size along the axis"
    );
}

#[test]
fn errors_are_std_errors_and_clone_and_compare() {
    fn assert_error<E: std::error::Error + Send + Sync + 'static>(_: &E) {}
    let err = GraphError::UnknownFeed { name: "a".into() };
    assert_error(&err);
    assert_eq!(err.clone(), err);
    let boxed: Box<dyn std::error::Error> = Box::new(err);
    assert_eq!(boxed.to_string(), "feed `a` matches no input of this graph");
}

/// Shape arithmetic is checked: sizes that overflow `usize` are typed errors naming the op,
/// never a panic (debug) or a wrapped size (release).
#[test]
fn shape_arithmetic_never_overflows() {
    let huge = 12_297_829_382_473_034_411_usize; // 3 × this wraps to exactly 1
    assert_eq!(Shape::from([3, huge]).size(), None);
    let mut g = Graph::<f64>::new();
    let err = g.input("x", [3, huge]).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("input `x`: the element count overflows usize: got shape [3, {huge}]")
    );
    let x = g.input("v", [3]).unwrap();
    let err = g.pad(x, 0, usize::MAX, 0).unwrap_err();
    assert!(err.to_string().starts_with("pad `pad`: padding"), "{err}");
    let big = g.input("big", [usize::MAX]).unwrap();
    let err = g.concat(&[big, x], 0).unwrap_err();
    assert!(err.to_string().contains("overflow"), "{err}");
    let err = g.reshape(x, [huge, 3]).unwrap_err();
    assert!(err.to_string().contains("element counts differ"), "{err}");
    let wide = g.input("wide", [1 << 40]).unwrap();
    let err = g.broadcast_to(wide, [1 << 40, 1 << 40]).unwrap_err();
    assert!(err.to_string().contains("overflows"), "{err}");
    let err = g.one_hot(wide, 1 << 40).unwrap_err();
    assert!(err.to_string().contains("overflows"), "{err}");
    // The graph is unchanged by the refusals: only the three inputs are in it.
    assert_eq!(g.nodes().count(), 3);
}

/// Every builder, with `x` as its main operand and `other` as a second one where it takes one.
type Builder = fn(&mut Graph<f64>, NodeId, NodeId) -> Result<NodeId, GraphError>;

fn every_builder() -> Vec<(&'static str, Builder)> {
    vec![
        ("square", |g, x, _| g.square(x)),
        ("scale", |g, x, _| g.scale(x, 2.0)),
        ("ones_like", |g, x, _| g.ones_like(x)),
        ("zeros_like", |g, x, _| g.zeros_like(x)),
        ("sign", |g, x, _| g.sign(x)),
        ("relu", |g, x, _| g.relu(x)),
        ("leaky_relu", |g, x, _| g.leaky_relu(x, 0.1)),
        ("gelu", |g, x, _| g.gelu(x)),
        ("gelu_tanh", |g, x, _| g.gelu_tanh(x)),
        ("sigmoid", |g, x, _| g.sigmoid(x)),
        ("softplus", |g, x, _| g.softplus(x)),
        ("softmax", |g, x, _| g.softmax(x, 1)),
        ("log_softmax", |g, x, _| g.log_softmax(x, 1)),
        ("logsumexp", |g, x, _| g.logsumexp(x, &[1], false)),
        ("mean", |g, x, _| g.mean(x, &[1], false)),
        ("mean_all", |g, x, _| g.mean_all(x)),
        ("variance", |g, x, _| g.variance(x, &[0], true)),
        ("sum_all", |g, x, _| g.sum_all(x)),
        ("powi", |g, x, _| g.powi(x, 3)),
        ("pow", |g, x, _| g.pow(x, 0.5)),
        ("add", |g, x, y| g.add(x, y)),
        ("add (rhs)", |g, x, y| g.add(y, x)),
        ("power", |g, x, y| g.power(y, x)),
        ("greater", |g, x, y| g.greater(x, y)),
        ("select", |g, x, y| g.select(y, y, x)),
        ("matmul", |g, x, y| g.matmul_t(y, x, true, false)),
        ("transpose", |g, x, _| g.transpose(x)),
        ("reshape", |g, x, _| g.reshape(x, [6])),
        ("expand_dims", |g, x, _| g.expand_dims(x, &[0])),
        ("broadcast_like", |g, x, y| g.broadcast_like(y, x)),
        ("sum_like", |g, x, y| g.sum_like(y, x)),
        ("slice", |g, x, _| g.slice(x, 0, 0, 1)),
        ("pad", |g, x, _| g.pad(x, 0, 1, 1)),
        ("concat", |g, x, y| g.concat(&[y, x], 0)),
        ("cumsum", |g, x, _| g.cumsum(x, 0, false)),
        ("argmax", |g, x, _| g.argmax(x, 1)),
        ("stop_gradient", |g, x, _| g.stop_gradient(x)),
    ]
}

#[test]
fn a_refused_builder_leaves_the_graph_unchanged() {
    for (name, build) in every_builder() {
        let mut g = Graph::<f64>::new();
        let mine = g.input("x", [2, 3]).unwrap();
        let mut other = Graph::<f64>::new();
        let foreign = other.input("f", [2, 3]).unwrap();
        let before = (g.node_count(), dendrite_graph::to_dot(&g, None).unwrap());
        let err = build(&mut g, foreign, mine).unwrap_err();
        assert!(
            matches!(err, GraphError::ForeignNode { .. }),
            "{name}: {err:?}"
        );
        assert_eq!(
            (g.node_count(), dendrite_graph::to_dot(&g, None).unwrap()),
            before,
            "{name}"
        );
        // The graph still works: the builder now succeeds on a node of its own.
        build(&mut g, mine, mine).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn a_composite_refused_part_way_leaves_the_graph_unchanged() {
    // These fail after they have added nodes (the axis is checked by the second primitive).
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [2, 3]).unwrap();
    let before = g.node_count();
    assert!(g.mean(x, &[5], false).is_err());
    assert!(g.variance(x, &[0, 0], false).is_err());
    assert!(g.softmax(x, 2).is_err());
    assert!(g.logsumexp(x, &[7], true).is_err());
    assert_eq!(g.node_count(), before);
}

#[test]
fn a_handle_that_escapes_a_rolled_back_builder_is_refused_as_stale() {
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [2]).unwrap();
    let mut leaked = None;
    let refused: Result<NodeId, GraphError> = g.atomically(|g| {
        leaked = Some(g.scalar(1.0));
        g.sum(x, &[3])
    });
    assert!(refused.is_err());
    let leaked = leaked.unwrap();
    // The index is given out again, to a new node; the old handle must not reach it.
    let fresh = g.neg(x).unwrap();
    assert_eq!(fresh.index(), leaked.index());
    let err = g.exp(leaked).unwrap_err();
    assert_eq!(
        err,
        GraphError::StaleNode {
            graph: g.id(),
            index: leaked.index()
        }
    );
    assert_eq!(
        err.to_string(),
        format!(
            "node #1 of graph {} was removed when the builder that made it failed",
            g.id()
        )
    );
    assert!(g.exp(fresh).is_ok());
}
