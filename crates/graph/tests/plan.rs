//! Compiling and running plans: deep chains without recursion, buffer reuse, repeated runs,
//! dynamic batch sizes, fetching leaves, a graph that grows after compiling, thread safety, and
//! a randomized comparison of plans against a naive interpreter that keeps every value.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{arange, assert_same, t};
use dendrite_graph::{compile, to_dot, Graph, GraphError, NodeId, Op, Plan};
use ndarray::ArrayD;
use proptest::prelude::*;
use std::collections::HashMap;

const DEPTH: usize = 100_000;

#[test]
fn a_chain_of_100_000_nodes_compiles_runs_and_exports() {
    let mut g = Graph::<f32>::new();
    let x = g.input("x", [None, Some(2)]).unwrap();
    let mut y = x;
    for i in 0..DEPTH - 1 {
        y = if i % 2 == 0 {
            g.neg(y).unwrap()
        } else {
            g.abs(y).unwrap()
        };
    }
    assert_eq!(g.node_count(), DEPTH);
    let mut plan = compile(&g, &[y]).unwrap();
    assert_eq!(plan.step_count(), DEPTH - 1);
    assert_eq!(plan.buffer_count(), 2);
    let xv = ndarray::arr2(&[[1.0_f32, -2.0], [3.0, -0.5]]).into_dyn();
    let out = plan.run(&g, &[("x", xv.view())]).unwrap();
    // An odd number of ops ending in neg after abs: -|x|.
    assert_eq!(out.get(0).unwrap(), xv.mapv(|v| -v.abs()).view());
    let dot = to_dot(&g, Some(&[y])).unwrap();
    assert_eq!(dot.matches(" -> ").count(), DEPTH - 1);
    assert!(dot.contains(&format!("n{} [label=", DEPTH - 1)));
    let whole = to_dot(&g, None).unwrap();
    assert_eq!(whole, dot);
}

#[test]
fn a_deep_chain_with_a_long_lived_value() {
    // x is read by the first and by the last node, so its value must survive 50,000 steps
    // while the chain in between reuses two buffers.
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [3]).unwrap();
    let e = g.exp(x).unwrap();
    let mut y = e;
    for _ in 0..50_000 {
        y = g.neg(y).unwrap();
    }
    let z = g.sub(y, e).unwrap();
    let mut plan = compile(&g, &[z]).unwrap();
    assert_eq!(plan.buffer_count(), 3);
    let xv = t(&[3], &[0.0, 1.0, -1.0]);
    let out = plan.run(&g, &[("x", xv.view())]).unwrap();
    assert_same(
        &out.get(0).unwrap().to_owned(),
        &ArrayD::zeros(ndarray::IxDyn(&[3])),
    );
}

/// A small classifier: softmax(relu(x W1 + b1) W2 + b2) and its mean log-likelihood.
fn classifier() -> (Graph<f32>, Vec<NodeId>) {
    let mut g = Graph::<f32>::new();
    let x = g.input("x", [None, Some(4)]).unwrap();
    let labels = g.input("labels", [None]).unwrap();
    let w1 = g
        .parameter(
            "w1",
            ArrayD::from_shape_fn(ndarray::IxDyn(&[4, 8]), |i| {
                ((i[0] * 8 + i[1]) as f32 * 0.37).sin()
            }),
        )
        .unwrap();
    let b1 = g
        .parameter("b1", ArrayD::from_elem(ndarray::IxDyn(&[8]), 0.1))
        .unwrap();
    let w2 = g
        .parameter(
            "w2",
            ArrayD::from_shape_fn(ndarray::IxDyn(&[8, 3]), |i| {
                ((i[0] * 3 + i[1]) as f32 * 0.71).cos()
            }),
        )
        .unwrap();
    let h = g.matmul(x, w1).unwrap();
    let h = g.add(h, b1).unwrap();
    let h = g.relu(h).unwrap();
    let logits = g.matmul(h, w2).unwrap();
    let p = g.softmax(logits, 1).unwrap();
    let lp = g.log_softmax(logits, 1).unwrap();
    let targets = g.one_hot(labels, 3).unwrap();
    let picked = g.mul(lp, targets).unwrap();
    let ll = g.sum(picked, &[1]).unwrap();
    let loss = g.mean_all(ll).unwrap();
    let loss = g.neg(loss).unwrap();
    (g, vec![p, loss])
}

fn batch(n: usize) -> (ArrayD<f32>, ArrayD<f32>) {
    let x = ArrayD::from_shape_fn(ndarray::IxDyn(&[n, 4]), |i| {
        ((i[0] * 4 + i[1]) as f32 * 0.13).tan()
    });
    let labels = ArrayD::from_shape_fn(ndarray::IxDyn(&[n]), |i| (i[0] % 3) as f32);
    (x, labels)
}

#[test]
fn a_plan_run_100_times_gives_identical_results_and_keeps_its_memory() {
    let (g, fetches) = classifier();
    let mut plan = compile(&g, &fetches).unwrap();
    assert!(
        plan.buffer_count() < plan.step_count(),
        "{} buffers for {} steps",
        plan.buffer_count(),
        plan.step_count()
    );
    assert_eq!(plan.buffer_capacity(), 0);
    let (x, labels) = batch(16);
    let first: Vec<Vec<u32>> = {
        let out = plan
            .run(&g, &[("x", x.view()), ("labels", labels.view())])
            .unwrap();
        (0..out.len())
            .map(|i| out.get(i).unwrap().iter().map(|v| v.to_bits()).collect())
            .collect()
    };
    let capacity = plan.buffer_capacity();
    assert!(capacity > 0);
    for _ in 0..99 {
        let out = plan
            .run(&g, &[("x", x.view()), ("labels", labels.view())])
            .unwrap();
        for (i, expected) in first.iter().enumerate() {
            let bits: Vec<u32> = out.get(i).unwrap().iter().map(|v| v.to_bits()).collect();
            assert_eq!(&bits, expected);
        }
        assert_eq!(plan.buffer_capacity(), capacity);
    }
    // Smaller batches reuse the same memory.
    for n in [1, 7, 0, 16] {
        let (x, labels) = batch(n);
        plan.run(&g, &[("x", x.view()), ("labels", labels.view())])
            .unwrap();
        assert_eq!(plan.buffer_capacity(), capacity);
    }
    // A fresh plan computes the same thing.
    let mut fresh = compile(&g, &fetches).unwrap();
    let out = fresh
        .run(&g, &[("x", x.view()), ("labels", labels.view())])
        .unwrap();
    let bits: Vec<u32> = out.get(1).unwrap().iter().map(|v| v.to_bits()).collect();
    assert_eq!(bits, first[1]);
}

#[test]
fn different_batch_sizes_through_the_same_plan_match_fresh_plans() {
    let (g, fetches) = classifier();
    let mut plan = compile(&g, &fetches).unwrap();
    for n in [5, 1, 0, 32, 3] {
        let (x, labels) = batch(n);
        let out = plan
            .run(&g, &[("x", x.view()), ("labels", labels.view())])
            .unwrap()
            .to_vec()
            .unwrap();
        let mut fresh = compile(&g, &fetches).unwrap();
        let expected = fresh
            .run(&g, &[("x", x.view()), ("labels", labels.view())])
            .unwrap()
            .to_vec()
            .unwrap();
        assert_eq!(out[0].shape(), &[n, 3]);
        for (a, b) in out.iter().zip(&expected) {
            assert_eq!(a.shape(), b.shape());
            assert!(a
                .iter()
                .zip(b.iter())
                .all(|(u, v)| u.to_bits() == v.to_bits()));
        }
        for row in out[0].outer_iter() {
            assert!((row.sum() - 1.0).abs() < 1e-5);
        }
        if n > 0 {
            assert!(out[1][[]].is_finite() && out[1][[]] > 0.0);
        } else {
            assert!(out[1][[]].is_nan()); // the mean over an empty batch is 0/0
        }
    }
}

#[test]
fn buffers_are_reused_along_chains() {
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [4]).unwrap();
    let mut y = x;
    for _ in 0..10 {
        y = g.exp(y).unwrap();
        y = g.neg(y).unwrap();
    }
    let plan = compile(&g, &[y]).unwrap();
    assert_eq!(plan.step_count(), 20);
    assert_eq!(plan.buffer_count(), 2);
    // Two fetched values each keep their buffer.
    let z = g.tanh(y).unwrap();
    let w = g.exp(z).unwrap();
    let plan = compile(&g, &[z, w]).unwrap();
    assert_eq!(plan.step_count(), 22);
    assert!(plan.buffer_count() <= 3);
}

#[test]
fn only_what_the_fetches_need_is_compiled() {
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [2]).unwrap();
    let other = g.input("other", [2]).unwrap();
    let a = g.exp(x).unwrap();
    let _unused = g.mul(a, other).unwrap();
    let b = g.neg(a).unwrap();
    let mut plan = compile(&g, &[b]).unwrap();
    assert_eq!(plan.step_count(), 2);
    // `other` is not needed, so it need not be fed.
    let xv = t(&[2], &[0.0, 0.0]);
    let out = plan.run(&g, &[("x", xv.view())]).unwrap();
    assert_same(&out.get(0).unwrap().to_owned(), &t(&[2], &[-1.0, -1.0]));
    // Nothing fetched: an empty plan.
    let mut empty = compile(&g, &[]).unwrap();
    assert_eq!(empty.step_count(), 0);
    assert!(empty.run(&g, &[]).unwrap().is_empty());
}

#[test]
fn leaves_and_repeated_nodes_can_be_fetched() {
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [2]).unwrap();
    let w = g.parameter("w", t(&[2], &[3.0, 4.0])).unwrap();
    let c = g.scalar(5.0);
    let y = g.mul(x, w).unwrap();
    let mut plan = compile(&g, &[x, w, c, y, y, x]).unwrap();
    let xv = t(&[2], &[1.0, 2.0]);
    let out = plan.run(&g, &[("x", xv.view())]).unwrap();
    assert_eq!(out.len(), 6);
    let values = out.to_vec().unwrap();
    assert_same(&values[0], &xv);
    assert_same(&values[1], &t(&[2], &[3.0, 4.0]));
    assert_same(&values[2], &common::s(5.0));
    assert_same(&values[3], &t(&[2], &[3.0, 8.0]));
    assert_same(&values[4], &values[3]);
    assert_same(&values[5], &xv);
    assert_eq!(out.scalar(2).unwrap(), 5.0);
}

#[test]
fn parameter_updates_are_seen_by_the_next_run() {
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [2]).unwrap();
    let w = g.parameter("w", t(&[2], &[1.0, 1.0])).unwrap();
    let y = g.mul(x, w).unwrap();
    let mut plan = compile(&g, &[y]).unwrap();
    let xv = t(&[2], &[2.0, 3.0]);
    assert_same(
        &plan
            .run(&g, &[("x", xv.view())])
            .unwrap()
            .get(0)
            .unwrap()
            .to_owned(),
        &xv,
    );
    g.set_parameter(w, t(&[2], &[10.0, -1.0]).view()).unwrap();
    assert_same(
        &plan
            .run(&g, &[("x", xv.view())])
            .unwrap()
            .get(0)
            .unwrap()
            .to_owned(),
        &t(&[2], &[20.0, -3.0]),
    );
    g.parameter_mut(w).unwrap()[[1]] = 0.5;
    assert_same(
        &plan
            .run(&g, &[("x", xv.view())])
            .unwrap()
            .get(0)
            .unwrap()
            .to_owned(),
        &t(&[2], &[20.0, 1.5]),
    );
}

#[test]
fn a_plan_stays_valid_as_its_graph_grows() {
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [2]).unwrap();
    let y = g.exp(x).unwrap();
    let mut plan = compile(&g, &[y]).unwrap();
    for _ in 0..10 {
        let z = g.neg(y).unwrap();
        g.input(&format!("late_{}", z.index()), [1]).unwrap();
    }
    let xv = t(&[2], &[0.0, 0.0]);
    let out = plan.run(&g, &[("x", xv.view())]).unwrap();
    assert_same(&out.get(0).unwrap().to_owned(), &t(&[2], &[1.0, 1.0]));
}

#[test]
fn feeds_may_be_given_in_any_order_but_each_only_once() {
    let mut g = Graph::<f64>::new();
    let a = g.input("a", [1]).unwrap();
    let b = g.input("b", [1]).unwrap();
    let y = g.sub(a, b).unwrap();
    let mut plan = compile(&g, &[y]).unwrap();
    let (one, two, ten) = (t(&[1], &[1.0]), t(&[1], &[2.0]), t(&[1], &[10.0]));
    let out = plan
        .run(&g, &[("b", two.view()), ("a", one.view())])
        .unwrap();
    assert_eq!(out.scalar(0).unwrap(), -1.0);
    let err = plan
        .run(
            &g,
            &[("b", two.view()), ("a", one.view()), ("a", ten.view())],
        )
        .unwrap_err();
    assert_eq!(
        err,
        GraphError::DuplicateFeed {
            input: "a".to_owned()
        }
    );
    assert_eq!(
        err.to_string(),
        "input `a` is fed twice: give each input one value per run"
    );
}

#[test]
fn a_plan_follows_renames_made_after_it_was_compiled() {
    let mut g = Graph::<f64>::new();
    let a = g.input("a", [1]).unwrap();
    let y = g.neg(a).unwrap();
    let mut plan = compile(&g, &[y]).unwrap();
    g.rename(a, "features").unwrap();
    let one = t(&[1], &[1.0]);
    let err = plan.run(&g, &[("a", one.view())]).unwrap_err();
    assert_eq!(
        err,
        GraphError::UnknownFeed {
            name: "a".to_owned()
        }
    );
    let out = plan.run(&g, &[("features", one.view())]).unwrap();
    assert_eq!(out.scalar(0).unwrap(), -1.0);
    // Step names follow too, so run-time errors name the node as it is called now.
    g.rename(y, "negated").unwrap();
    let profile = plan.profile(&g, &[("features", one.view())], 1).unwrap();
    assert_eq!(profile[0].node, "negated");
}

#[test]
fn twenty_thousand_feeds_each_reach_their_input() {
    // A feed is matched to its input by hashing its name (one lookup per feed), where a scan
    // of the inputs per feed made 2e8 string comparisons here. Speed is not asserted; this
    // checks that the index sends every feed to its own input.
    let mut g = Graph::<f64>::new();
    let inputs: Vec<_> = (0..20_000)
        .map(|i| g.input(&format!("x{i}"), [1]).unwrap())
        .collect();
    let mut total = inputs[0];
    for &x in &inputs[1..] {
        total = g.add(total, x).unwrap();
    }
    let mut plan = compile(&g, &[total]).unwrap();
    let names: Vec<String> = (0..20_000).map(|i| format!("x{i}")).collect();
    let values: Vec<_> = (0..20_000).map(|i| t(&[1], &[i as f64])).collect();
    let feeds: Vec<_> = names
        .iter()
        .zip(&values)
        .map(|(n, v)| (n.as_str(), v.view()))
        .collect();
    let out = plan.run(&g, &feeds).unwrap();
    assert_eq!(out.scalar(0).unwrap(), (0..20_000).sum::<usize>() as f64);
}

#[test]
fn plans_are_send_and_graphs_are_send_and_sync() {
    fn send<T: Send>() {}
    fn sync<T: Sync>() {}
    send::<Plan<f32>>();
    send::<Plan<f64>>();
    send::<Graph<f32>>();
    sync::<Graph<f32>>();
    send::<Graph<f64>>();
    sync::<Graph<f64>>();
    send::<dendrite_graph::GraphError>();
    sync::<dendrite_graph::GraphError>();
    // And they really move: build here, run on another thread.
    let (g, fetches) = classifier();
    let plan = compile(&g, &fetches).unwrap();
    let loss = std::thread::spawn(move || {
        let mut plan = plan;
        let (x, labels) = batch(4);
        let out = plan
            .run(&g, &[("x", x.view()), ("labels", labels.view())])
            .unwrap();
        out.scalar(1).unwrap()
    })
    .join()
    .unwrap();
    assert!(loss.is_finite());
}

// ----- randomized: plans against a naive interpreter ------------------------------------------

/// Evaluates every node in insertion order with `Op::evaluate`, keeping all values.
fn interpret(g: &Graph<f64>, feeds: &HashMap<&str, ArrayD<f64>>) -> Vec<ArrayD<f64>> {
    let mut values: Vec<ArrayD<f64>> = Vec::with_capacity(g.node_count());
    for id in g.nodes() {
        let node = g.node(id).unwrap();
        let value = match node.op() {
            Op::Input => feeds[node.name()].clone(),
            Op::Parameter | Op::Constant => g.value(id).unwrap().to_owned(),
            op => {
                let operands = g.operands(id).unwrap();
                let views: Vec<_> = operands.iter().map(|o| values[o.index()].view()).collect();
                op.evaluate(node.name(), &views).unwrap()
            }
        };
        values.push(value);
    }
    values
}

/// Appends one random op to `g` over random existing nodes; every node has rank 2 and a shape
/// that broadcasts against [2, 3].
fn push_random_op(g: &mut Graph<f64>, nodes: &mut Vec<NodeId>, choice: u8, i: usize, j: usize) {
    let a = nodes[i % nodes.len()];
    let b = nodes[j % nodes.len()];
    let y = match choice % 12 {
        0 => g.add(a, b),
        1 => g.mul(a, b),
        2 => g.sub(a, a),
        3 => g.tanh(a),
        4 => g.maximum(a, b),
        5 => g.neg(a),
        6 => g.softmax(a, 1),
        7 => g.sum_keep_dims(a, &[0]),
        8 => g.max(a, &[1], true),
        9 => {
            let c = g.greater(a, b).unwrap();
            g.select(c, a, b)
        }
        10 => {
            let tr = g.transpose(a).unwrap();
            let sq = g.matmul(a, tr).unwrap(); // [2, 2] (or [2,1]x[1,2] ...)
            let sq = g.scale(sq, 0.1).unwrap();
            let first = g.sum_keep_dims(sq, &[1]).unwrap(); // [2, 1]
            g.add(a, first)
        }
        _ => g.stop_gradient(a),
    };
    nodes.push(y.unwrap());
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn plans_agree_with_a_naive_interpreter(
        ops in prop::collection::vec((any::<u8>(), any::<usize>(), any::<usize>()), 1..40),
        fetch_picks in prop::collection::vec(any::<usize>(), 1..5),
        values in prop::collection::vec(-3.0_f64..3.0, 12),
    ) {
        let mut g = Graph::<f64>::new();
        let x = g.input("x", [2, 3]).unwrap();
        let y = g.input("y", [2, 3]).unwrap();
        let w = g.parameter("w", t(&[1, 3], &values[..3])).unwrap();
        let c = g.constant(t(&[2, 1], &[0.5, -0.5]));
        let mut nodes = vec![x, y, w, c];
        for &(choice, i, j) in &ops {
            push_random_op(&mut g, &mut nodes, choice, i, j);
        }
        let fetches: Vec<NodeId> = fetch_picks.iter().map(|&k| nodes[k % nodes.len()]).collect();
        let mut feeds = HashMap::new();
        feeds.insert("x", t(&[2, 3], &values[..6]));
        feeds.insert("y", t(&[2, 3], &values[6..]));
        let expected = interpret(&g, &feeds);
        let mut plan = compile(&g, &fetches).unwrap();
        prop_assert!(plan.buffer_count() <= plan.step_count().max(1));
        for _ in 0..2 {
            let out = plan.run(&g, &[("x", feeds["x"].view()), ("y", feeds["y"].view())]).unwrap();
            for (k, f) in fetches.iter().enumerate() {
                let got = out.get(k).unwrap();
                let want = &expected[f.index()];
                prop_assert_eq!(got.shape(), want.shape());
                for (u, v) in got.iter().zip(want.iter()) {
                    let same = u.to_bits() == v.to_bits() || (u.is_nan() && v.is_nan());
                    prop_assert!(same, "{} vs {}", u, v);
                }
            }
        }
    }
}

#[test]
fn arange_helper_sanity() {
    assert_eq!(arange(&[2, 2]), t(&[2, 2], &[0.0, 1.0, 2.0, 3.0]));
}

#[test]
fn parameters_and_constants_of_any_memory_layout() {
    // A column-major parameter and a constant built from a transposed view: every kernel must
    // read them in logical order.
    let logical = t(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let fortran = logical.t().as_standard_layout().to_owned().reversed_axes();
    assert_eq!(fortran, logical);
    assert!(fortran.as_slice().is_none());
    let mut g = Graph::<f64>::new();
    let w = g.parameter("w", fortran.clone()).unwrap();
    let c = g.constant(fortran);
    let x = g.input("x", [None, Some(2)]).unwrap();
    let xw = g.matmul(x, w).unwrap();
    let flat = g.reshape(w, [6]).unwrap();
    let sums = g.sum(c, &[1]).unwrap();
    let ids = g.scalar(1.0);
    let row = g.gather(w, ids, 0).unwrap();
    let e = g.exp(c).unwrap();
    let both = g.add(w, c).unwrap();
    let mut plan = compile(&g, &[xw, flat, sums, row, e, both, w]).unwrap();
    let xv = t(&[1, 2], &[1.0, 1.0]);
    let out = plan.run(&g, &[("x", xv.view())]).unwrap().to_vec().unwrap();
    assert_same(&out[0], &t(&[1, 3], &[5.0, 7.0, 9.0]));
    assert_same(&out[1], &t(&[6], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));
    assert_same(&out[2], &t(&[2], &[6.0, 15.0]));
    assert_same(&out[3], &t(&[3], &[4.0, 5.0, 6.0]));
    assert_same(&out[4], &logical.mapv(f64::exp));
    assert_same(&out[5], &logical.mapv(|v| 2.0 * v));
    assert_same(&out[6], &logical);
}
