//! Hostile sizes through every builder, and what would abort the process run in a child.
//!
//! - Property tests give builders dimensions and arguments near `usize::MAX`, products that
//!   overflow, and zeros, and assert a typed error or a correct result: never a panic, never a
//!   wrapped size.
//! - Allocations that cannot be had (a broadcast to 8 TiB, a one-hot of depth 2^40, the
//!   Jacobian of a large output, a fold of a huge shape-only operand) and very deep graphs
//!   run in a child process (this test binary again, told by an environment variable which
//!   case to run), so that an abort would show as the child's exit status instead of taking
//!   the test runner down. The parent asserts a normal exit and the typed error it printed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dendrite_autodiff::{grad, hessian, jacobian, simplify, AutodiffError};
use dendrite_graph::{compile, to_dot, Graph, GraphError, NodeId, Shape};
use ndarray::{arr0, ArrayD, IxDyn};
use proptest::prelude::*;
use std::process::Command;

const CHILD: &str = "DENDRITE_HOSTILE_CASE";

/// Runs `case` in a child process and returns what it printed, asserting a normal exit.
fn in_child(case: &str) -> String {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args([
            "child_process_entry",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, case)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "case {case}: child exited with {:?}\n{stdout}\n{stderr}",
        out.status
    );
    stdout
}

/// The child's side: runs the case named by the environment and prints its outcome.
#[test]
fn child_process_entry() {
    let Ok(case) = std::env::var(CHILD) else {
        return; // run directly by the test runner: nothing to do
    };
    let outcome = match case.as_str() {
        "broadcast" => broadcast_to_eight_tebibytes(),
        "one_hot" => one_hot_of_depth_two_to_the_forty(),
        "evaluate" => evaluate_huge(),
        "jacobian" => jacobian_of_a_large_output(),
        "hessian" => hessian_of_a_large_input(),
        "fold" => fold_of_a_huge_shape_only_operand(),
        "deep" => deep_chain(),
        other => panic!("unknown case {other}"),
    };
    println!("outcome: {outcome}");
}

fn scalar_feed() -> ArrayD<f32> {
    arr0(1.0_f32).into_dyn()
}

fn broadcast_to_eight_tebibytes() -> String {
    let mut g = Graph::<f32>::new();
    let x = g.input("x", Shape::scalar()).unwrap();
    let huge = g.broadcast_to(x, [1 << 21, 1 << 20]).unwrap();
    let mut plan = compile(&g, &[huge]).unwrap();
    let v = scalar_feed();
    format!("{:?}", plan.run(&g, &[("x", v.view())]).unwrap_err())
}

fn one_hot_of_depth_two_to_the_forty() -> String {
    let mut g = Graph::<f32>::new();
    let labels = g.input("labels", [None]).unwrap();
    let hot = g.one_hot(labels, 1 << 40).unwrap();
    let mut plan = compile(&g, &[hot]).unwrap();
    let v = ndarray::arr1(&[0.0_f32, 3.0]).into_dyn();
    format!("{:?}", plan.run(&g, &[("labels", v.view())]).unwrap_err())
}

fn evaluate_huge() -> String {
    let op = dendrite_graph::Op::Broadcast(dendrite_graph::BroadcastOp::To(Shape::from([
        1usize << 30,
        1 << 30,
    ])));
    let v = scalar_feed();
    format!("{:?}", op.evaluate("huge", &[v.view()]).unwrap_err())
}

fn jacobian_of_a_large_output() -> String {
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [1 << 20]).unwrap();
    let y = g.exp(x).unwrap();
    let before = g.node_count();
    let err = jacobian(&mut g, y, x).unwrap_err();
    assert_eq!(g.node_count(), before, "a refused jacobian adds nothing");
    format!("{err:?}")
}

fn hessian_of_a_large_input() -> String {
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [1 << 17, 1 << 10]).unwrap();
    let y = g.sum_all(x).unwrap();
    format!("{:?}", hessian(&mut g, y, x).unwrap_err())
}

fn fold_of_a_huge_shape_only_operand() -> String {
    let mut g = Graph::<f32>::new();
    let one = g.scalar(1.0);
    let huge = g.broadcast_to(one, [1 << 21, 1 << 20]).unwrap();
    let rows = g.dim_size(huge, &[0]).unwrap();
    let simplified = simplify(&mut g, &[rows]).unwrap();
    // Not folded; running it still materializes the operand, which the limit refuses.
    let mut plan = compile(&g, &simplified.outputs).unwrap();
    format!("simplified, then {:?}", plan.run(&g, &[]).unwrap_err())
}

/// A chain of 200,000 nodes: every pass over the graph must be iterative.
fn deep_chain() -> String {
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [2]).unwrap();
    let mut y = x;
    for _ in 0..200_000 {
        y = g.sin(y).unwrap();
    }
    let total = g.sum_all(y).unwrap();
    let dx = grad(&mut g, total, &[x]).unwrap()[0];
    let simplified = simplify(&mut g, &[total, dx]).unwrap();
    let mut plan = compile(&g, &simplified.outputs).unwrap();
    let v = ndarray::arr1(&[0.5, -0.5]).into_dyn();
    let out = plan.run(&g, &[("x", v.view())]).unwrap();
    let sum = out.scalar(0).unwrap();
    let dot = to_dot(&g, Some(&[total])).unwrap();
    drop(g);
    format!("sum = {sum}, dot bytes = {}", dot.len())
}

#[test]
fn unallocatable_tensors_are_typed_errors_in_a_child_that_exits_normally() {
    for case in ["broadcast", "one_hot", "evaluate"] {
        let out = in_child(case);
        assert!(out.contains("outcome: TensorTooLarge"), "{case}: {out}");
    }
    for case in ["jacobian", "hessian"] {
        let out = in_child(case);
        assert!(out.contains("outcome: TooLarge"), "{case}: {out}");
    }
    // Folding is skipped rather than allocating the operand's stand-in.
    let out = in_child("fold");
    assert!(
        out.contains("outcome: simplified, then TensorTooLarge"),
        "{out}"
    );
}

#[test]
fn a_chain_of_two_hundred_thousand_nodes_is_built_derived_simplified_run_and_dropped() {
    let out = in_child("deep");
    assert!(out.contains("outcome: sum = "), "{out}");
}

#[test]
fn the_error_names_the_node_the_shape_and_the_limit() {
    let mut g = Graph::<f32>::new();
    let x = g.input("x", Shape::scalar()).unwrap();
    let huge = g.broadcast_to(x, [1 << 21, 1 << 20]).unwrap();
    g.rename(huge, "everything").unwrap();
    let mut plan = compile(&g, &[huge]).unwrap();
    let v = scalar_feed();
    let err = plan.run(&g, &[("x", v.view())]).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "broadcast_to `everything`: a tensor of shape [2097152, 1048576] needs 8796093022208 \
             bytes, over the per-tensor limit of {} (raise it with `limits::set_max_tensor_bytes`)",
            dendrite_graph::limits::max_tensor_bytes()
        )
    );
}

/// Dimensions a hostile caller might pass.
fn hostile_dim() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(0usize),
        Just(1),
        Just(2),
        Just(3),
        Just(usize::MAX),
        Just(usize::MAX - 1),
        Just(usize::MAX / 2 + 1),
        Just(1 << 32),
        Just(1 << 40),
        Just(12_297_829_382_473_034_411),
        0usize..8,
    ]
}

/// A node's declared shape never hides an overflow: its fixed dimensions multiply within
/// `usize` (so `size()` is `None` only for a dynamic dimension).
fn assert_representable(g: &Graph<f32>, node: NodeId) {
    let shape = g.shape(node).unwrap();
    assert!(!shape.fixed_size_overflows(), "{shape}");
    if shape.concrete().is_some() {
        assert!(shape.size().is_some(), "{shape}");
    }
}

/// Applies one builder with hostile arguments; any result but a panic is acceptable, and an
/// accepted node must be representable.
fn build_one(g: &mut Graph<f32>, x: NodeId, which: usize, a: usize, b: usize) {
    let result: Result<NodeId, GraphError> = match which {
        0 => g.pad(x, 0, a, b),
        1 => g.slice(x, 0, a, b),
        2 => g.broadcast_to(x, [a, b]),
        3 => g.reshape(x, [a, b]),
        4 => g.reshape(x, [Some(a), None]),
        5 => g.one_hot(x, a),
        6 => g.concat(&[x, x], a % 3),
        7 => g.expand_dims(x, &[a % 4, b % 4]),
        8 => g.sum(x, &[a % 3, b % 3]),
        9 => g.cumsum(x, a % 3, b.is_multiple_of(2)),
        10 => g.matmul(x, x),
        11 => g.transpose(x),
        12 => g.permute(x, &[a % 3, b % 3]),
        13 => g.softmax(x, a % 3),
        14 => g.argmax(x, a % 3),
        _ => g.relu(x),
    };
    if let Ok(node) = result {
        assert_representable(g, node);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn hostile_sizes_give_a_typed_error_or_a_representable_node(
        dims in proptest::collection::vec(hostile_dim(), 0..4),
        which in 0usize..16,
        a in hostile_dim(),
        b in hostile_dim(),
    ) {
        let mut g = Graph::<f32>::new();
        match g.input("x", dims.clone()) {
            Err(e) => prop_assert!(matches!(e, GraphError::InvalidShape { .. }), "{e:?}"),
            Ok(x) => {
                assert_representable(&g, x);
                build_one(&mut g, x, which, a, b);
            }
        }
    }

    #[test]
    fn hostile_arguments_on_small_values_run_or_refuse_with_a_typed_error(
        which in 0usize..16,
        a in hostile_dim(),
        b in hostile_dim(),
    ) {
        let mut g = Graph::<f32>::new();
        let x = g.input("x", [2, 3]).unwrap();
        let before = g.node_count();
        build_one(&mut g, x, which, a, b);
        if g.node_count() > before {
            let last = g.nodes().last().unwrap();
            let mut plan = compile(&g, &[last]).unwrap();
            let v = ArrayD::<f32>::zeros(IxDyn(&[2, 3]));
            match plan.run(&g, &[("x", v.view())]) {
                Ok(out) => {
                    let declared = g.shape(last).unwrap();
                    prop_assert!(declared.accepts(out.get(0).unwrap().shape()));
                }
                Err(e) => prop_assert!(
                    matches!(
                        e,
                        GraphError::TensorTooLarge { .. }
                            | GraphError::IndexOutOfRange { .. }
                            | GraphError::IncompatibleShapes { .. }
                            | GraphError::InvalidShape { .. }
                    ),
                    "{e:?}"
                ),
            }
        }
    }
}

#[test]
fn autodiff_errors_for_sizes_are_typed() {
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [1 << 20]).unwrap();
    let y = g.exp(x).unwrap();
    let err = jacobian(&mut g, y, x).unwrap_err();
    assert!(
        matches!(
            err,
            AutodiffError::TooLarge {
                what: "jacobian",
                rows: 1048576,
                columns: 1048576,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().starts_with(
        "jacobian of `exp`: 1048576 rows of 1048576 elements each is too large: the result would \
         not fit"
    ));
}
