//! Simplification keeps values: random DAGs with their gradients and the reference MLP give
//! the same outputs before and after; each rewrite fires where it should, and not where the
//! shapes forbid it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dendrite_autodiff::strategies::{dag_with_values, RandomDag};
use dendrite_autodiff::{grad, hessian, simplify, Simplified};
use dendrite_graph::{compile, Graph, NodeId, Op};
use ndarray::{arr1, arr2, Array1, ArrayD, ArrayViewD, IxDyn};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

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

/// Values equal up to rounding (a sum of n copies may become a product by n).
fn same_values(a: &[ArrayD<f64>], b: &[ArrayD<f64>]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.shape() == y.shape()
                && x.iter().zip(y).all(|(p, q)| {
                    (p - q).abs() <= 1e-12 * (1.0 + p.abs()) || (p.is_nan() && q.is_nan())
                })
        })
}

/// Simplifies `outputs` and checks values before and after on `feeds`.
fn simplify_and_compare(
    g: &mut Graph<f64>,
    outputs: &[NodeId],
    feeds: &[(&str, ArrayViewD<'_, f64>)],
) -> Simplified {
    let before = eval(g, outputs, feeds);
    let s = simplify(g, outputs).unwrap();
    let after = eval(g, &s.outputs, feeds);
    assert!(
        same_values(&before, &after),
        "before {before:?}\nafter {after:?}"
    );
    assert!(s.stats.after <= s.stats.before, "{:?}", s.stats);
    s
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn simplified_random_dags_and_gradients_keep_their_values(
        (dag, values) in dag_with_values(2..=30)
    ) {
        let mut g = Graph::<f64>::new();
        let (inputs, output) = dag.build(&mut g).unwrap();
        let grads = grad(&mut g, output, &inputs).unwrap();
        let names: Vec<String> = (0..inputs.len()).map(RandomDag::input_name).collect();
        let feeds: Vec<_> = names
            .iter()
            .zip(&values)
            .map(|(n, v)| (n.as_str(), v.view()))
            .collect();
        let fetches: Vec<NodeId> = std::iter::once(output).chain(grads).collect();
        simplify_and_compare(&mut g, &fetches, &feeds);
    }
}

/// The reference MLP of the issue: returns the loss and `[W1, b1, W2, b2]`.
fn mlp(g: &mut Graph<f64>, rng: &mut ChaCha8Rng) -> (NodeId, Vec<NodeId>) {
    let mut init = |shape: &[usize], scale: f64| {
        ArrayD::from_shape_simple_fn(IxDyn(shape), || rng.gen_range(-scale..scale))
    };
    let x = g.input("x", [None, Some(784)]).unwrap();
    let labels = g.input("labels", [None]).unwrap();
    let w1 = g.parameter("W1", init(&[784, 32], 0.05)).unwrap();
    let b1 = g.parameter("b1", init(&[32], 0.1)).unwrap();
    let w2 = g.parameter("W2", init(&[32, 10], 0.3)).unwrap();
    let b2 = g.parameter("b2", init(&[10], 0.1)).unwrap();
    let h = g.matmul(x, w1).unwrap();
    let h = g.add(h, b1).unwrap();
    let h = g.relu(h).unwrap();
    let logits = g.matmul(h, w2).unwrap();
    let logits = g.add(logits, b2).unwrap();
    let log_p = g.log_softmax(logits, 1).unwrap();
    let targets = g.one_hot(labels, 10).unwrap();
    let picked = g.mul(targets, log_p).unwrap();
    let per_example = g.sum(picked, &[1]).unwrap();
    let mean = g.mean(per_example, &[0], false).unwrap();
    (g.neg(mean).unwrap(), vec![w1, b1, w2, b2])
}

#[test]
fn the_mlp_training_graph_shrinks_and_keeps_its_values() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut g = Graph::<f64>::new();
    let (loss, params) = mlp(&mut g, &mut rng);
    let grads = grad(&mut g, loss, &params).unwrap();
    let fetches: Vec<NodeId> = std::iter::once(loss).chain(grads).collect();
    for batch in [1usize, 7] {
        let xv = ArrayD::from_shape_simple_fn(IxDyn(&[batch, 784]), || rng.gen_range(0.0..1.0));
        let yv =
            Array1::from_shape_simple_fn(batch, || f64::from(rng.gen_range(0u8..10))).into_dyn();
        let s = simplify_and_compare(&mut g, &fetches, &[("x", xv.view()), ("labels", yv.view())]);
        println!(
            "MLP training graph: {} nodes before simplify, {} after",
            s.stats.before, s.stats.after
        );
        assert!(s.stats.after < s.stats.before, "{:?}", s.stats);
    }
}

/// Builds `f(x)` for an input `x` of `shape`, simplifies it, and returns the graph, the new
/// output and the stats (after checking values on `x = value`).
fn simplified(
    shape: &[usize],
    value: ArrayD<f64>,
    f: impl Fn(&mut Graph<f64>, NodeId) -> NodeId,
) -> (Graph<f64>, NodeId, Simplified) {
    let mut g = Graph::<f64>::new();
    let x = g.input("x", shape).unwrap();
    let y = f(&mut g, x);
    let s = simplify_and_compare(&mut g, &[y], &[("x", value.view())]);
    let out = s.outputs[0];
    (g, out, s)
}

#[test]
fn multiplying_by_one_and_adding_zero_vanish_when_the_shape_is_kept() {
    let xv = arr2(&[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]).into_dyn();
    let (_, out, s) = simplified(&[2, 3], xv.clone(), |g, x| {
        let one = g.scalar(1.0);
        let zeros = g.constant(ArrayD::zeros(IxDyn(&[3])));
        let a = g.mul(one, x).unwrap();
        let b = g.add(a, zeros).unwrap();
        let c = g.sub(b, zeros).unwrap();
        g.div(c, one).unwrap()
    });
    assert_eq!(out.index(), 0, "everything reduces to x itself");
    assert_eq!(s.stats.after, 1);
    // x · ones[2, 3] with x: [3] broadcasts x up: it is not x.
    let (g, out, _) = simplified(&[3], arr1(&[1.0, 2.0, 3.0]).into_dyn(), |g, x| {
        let ones = g.constant(ArrayD::ones(IxDyn(&[2, 3])));
        g.mul(x, ones).unwrap()
    });
    assert_eq!(g.shape(out).unwrap().to_string(), "[2, 3]");
    assert!(!matches!(g.op(out).unwrap(), Op::Input));
}

#[test]
fn common_subexpressions_merge_and_constants_fold() {
    let xv = arr1(&[0.5, -1.0]).into_dyn();
    let (g, out, s) = simplified(&[2], xv, |g, x| {
        let a = g.tanh(x).unwrap();
        let b = g.tanh(x).unwrap();
        let two = g.scalar(2.0);
        let three = g.scalar(3.0);
        let six = g.mul(two, three).unwrap();
        let s = g.add(a, b).unwrap();
        g.mul(s, six).unwrap()
    });
    assert!(s.stats.merged >= 1 && s.stats.folded >= 1, "{:?}", s.stats);
    // x, tanh, add, the folded 6, mul.
    assert_eq!(s.stats.after, 5, "{:?}", s.stats);
    let six = g.operands(out).unwrap()[1];
    assert_eq!(g.value(six).unwrap().sum(), 6.0);
}

#[test]
fn huge_constants_are_not_folded() {
    let (g, out, s) = simplified(&[1], arr1(&[1.0]).into_dyn(), |g, x| {
        let big = g.constant(ArrayD::ones(IxDyn(&[1 << 9, 1 << 8])));
        let doubled = g.scale(big, 2.0).unwrap();
        let total = g.sum_all(doubled).unwrap();
        g.mul(x, total).unwrap()
    });
    // 2 · ones(2¹⁷) stays a mul; its sum (a scalar) could fold only from a constant operand.
    assert_eq!(s.stats.folded, 0, "{:?}", s.stats);
    assert!(matches!(g.op(out).unwrap(), Op::Binary(_)));
}

#[test]
fn double_negation_and_transposes_cancel() {
    let xv = ArrayD::from_shape_fn(IxDyn(&[2, 3, 4]), |i| (i[0] * 12 + i[1] * 4 + i[2]) as f64);
    let (_, out, _) = simplified(&[2, 3, 4], xv.clone(), |g, x| {
        let n = g.neg(x).unwrap();
        let nn = g.neg(n).unwrap();
        let p = g.permute(nn, &[2, 0, 1]).unwrap();
        let q = g.permute(p, &[1, 2, 0]).unwrap(); // inverse of [2, 0, 1]
        let t = g.transpose(q).unwrap();
        g.transpose(t).unwrap()
    });
    assert_eq!(out.index(), 0);
    // A composition that is not the identity becomes one permute.
    let (g, out, s) = simplified(&[2, 3, 4], xv, |g, x| {
        let p = g.permute(x, &[2, 0, 1]).unwrap();
        g.permute(p, &[2, 0, 1]).unwrap()
    });
    assert_eq!(
        g.op(out).unwrap(),
        &Op::Layout(dendrite_graph::LayoutOp::Permute(
            [1, 2, 0].into_iter().collect()
        ))
    );
    assert_eq!(s.stats.after, 2);
}

#[test]
fn reshapes_of_reshapes_collapse() {
    let xv = ArrayD::from_shape_fn(IxDyn(&[2, 6]), |i| (i[0] * 6 + i[1]) as f64);
    let (g, out, s) = simplified(&[2, 6], xv.clone(), |g, x| {
        let a = g.reshape(x, [3, 4]).unwrap();
        let b = g.reshape(a, [12]).unwrap();
        g.reshape(b, [4, 3]).unwrap()
    });
    assert_eq!(s.stats.after, 2);
    assert_eq!(g.operands(out).unwrap()[0].index(), 0);
    let (_, out, _) = simplified(&[2, 6], xv, |g, x| {
        let a = g.reshape(x, [12]).unwrap();
        g.reshape(a, [2, 6]).unwrap()
    });
    assert_eq!(out.index(), 0);
}

#[test]
fn broadcasts_to_the_same_fixed_shape_vanish_but_dynamic_ones_stay() {
    let xv = arr2(&[[1.0, 2.0]]).into_dyn();
    let (_, out, _) = simplified(&[1, 2], xv.clone(), |g, x| {
        let like = g.zeros_like(x).unwrap();
        let b = g.broadcast_like(x, like).unwrap();
        let s = g.sum_like(b, x).unwrap();
        g.broadcast_to(s, [1, 2]).unwrap()
    });
    assert_eq!(out.index(), 0);
    // [?, 2] like [?, 2]: x may be stretched from 1 at run time, so the broadcast stays.
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [None, Some(2)]).unwrap();
    let y = g.input("y", [None, Some(2)]).unwrap();
    let b = g.broadcast_like(x, y).unwrap();
    let yv = arr2(&[[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]]).into_dyn();
    let s = simplify_and_compare(&mut g, &[b], &[("x", xv.view()), ("y", yv.view())]);
    assert_eq!(
        g.op(s.outputs[0]).unwrap(),
        &Op::Broadcast(dendrite_graph::BroadcastOp::Like)
    );
}

#[test]
fn a_sum_of_a_broadcast_becomes_a_scale_by_the_count() {
    let xv = arr1(&[1.0, -2.0, 0.5]).into_dyn();
    let (g, out, _) = simplified(&[3], xv, |g, x| {
        let b = g.broadcast_to(x, [4, 2, 3]).unwrap();
        g.sum_like(b, x).unwrap()
    });
    assert!(matches!(
        g.op(out).unwrap(),
        Op::Binary(dendrite_graph::BinaryOp::Mul)
    ));
    let n = g.operands(out).unwrap()[1];
    assert_eq!(g.value(n).unwrap().sum(), 8.0);
}

#[test]
fn stop_gradient_of_a_constant_and_trivial_layout_ops_vanish() {
    let xv = arr2(&[[1.0, 2.0], [3.0, 4.0]]).into_dyn();
    let (g, out, s) = simplified(&[2, 2], xv, |g, x| {
        let c = g.constant(arr2(&[[1.0, 0.0], [0.0, 1.0]]).into_dyn());
        let sc = g.stop_gradient(c).unwrap();
        let p = g.mul(x, sc).unwrap();
        let e = g.expand_dims(p, &[]).unwrap();
        let r = g.sum_keep_dims(e, &[]).unwrap();
        let k = g.expand_dims(r, &[0]).unwrap();
        let m = g.max(k, &[0], true).unwrap();
        let m = g.reshape(m, [2, 2]).unwrap();
        let s = g.slice(m, 1, 0, 2).unwrap();
        let s = g.pad(s, 0, 0, 0).unwrap();
        g.concat(&[s], 1).unwrap()
    });
    // Only x · I remains.
    assert!(matches!(
        g.op(out).unwrap(),
        Op::Binary(dendrite_graph::BinaryOp::Mul)
    ));
    assert_eq!(g.operands(out).unwrap()[0].index(), 0);
    assert_eq!(s.stats.after, 3, "{:?}", s.stats);
}

#[test]
fn simplifying_a_hessian_shrinks_it() {
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [3]).unwrap();
    let t = g.tanh(x).unwrap();
    let p = g.mul(t, x).unwrap();
    let f = g.sum_all(p).unwrap();
    let h = hessian(&mut g, f, x).unwrap();
    let xv = arr1(&[0.1, -0.5, 1.0]).into_dyn();
    let s = simplify_and_compare(&mut g, &[h], &[("x", xv.view())]);
    println!("hessian: {:?}", s.stats);
    assert!(s.stats.after * 2 < s.stats.before, "{:?}", s.stats);
}

/// `loss = Σ w ⊙ max_pool2d(x + b)` for a bias `b` shaped `bias_shape` (broadcast over the
/// NHWC image `x` [2, 4, 6, 3]); returns the simplified gradient wrt `b` and whether it
/// still sums a scattered gradient.
fn bias_gradient_under_a_pool(bias_shape: &[usize]) -> (bool, Simplified) {
    use dendrite_graph::ops::{Pool2d, PoolOp};
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [2, 4, 6, 3]).unwrap();
    let b = g.input("b", bias_shape).unwrap();
    let z = g.add(x, b).unwrap();
    let y = g.max_pool2d(z, Pool2d::new([2, 2])).unwrap();
    let w = g.input("w", [2, 2, 3, 3]).unwrap();
    let wy = g.mul(w, y).unwrap();
    let loss = g.sum_all(wy).unwrap();
    let db = grad(&mut g, loss, &[b]).unwrap()[0];
    let value = |n: usize, shape: &[usize]| {
        ArrayD::from_shape_fn(IxDyn(shape), |i| {
            let k = ndarray::Dimension::slice(&i)
                .iter()
                .fold(n, |a, &d| a * 7 + d);
            ((k * 37) % 29) as f64 / 9.0 - 1.6
        })
    };
    let (xv, bv, wv) = (
        value(1, &[2, 4, 6, 3]),
        value(2, bias_shape),
        value(3, &[2, 2, 3, 3]),
    );
    let feeds = [("x", xv.view()), ("b", bv.view()), ("w", wv.view())];
    let s = simplify_and_compare(&mut g, &[db], &feeds);
    let out = s.outputs[0];
    let of_scatter = matches!(
        g.op(out).unwrap(),
        Op::Broadcast(dendrite_graph::BroadcastOp::SumLike)
    ) && matches!(
        g.op(g.operands(out).unwrap()[0]).unwrap(),
        Op::Pool(PoolOp::MaxScatter(_))
    );
    (of_scatter, s)
}

#[test]
fn a_channel_bias_gradient_under_a_max_pool_sums_the_pooled_gradient() {
    // A per-channel bias (Conv2D's): the sum skips the scatter, whatever the rank of `b`.
    for shape in [&[3][..], &[1, 1, 3], &[1, 1, 1, 3], &[1]] {
        let (of_scatter, s) = bias_gradient_under_a_pool(shape);
        assert!(!of_scatter, "{shape:?}: {:?}", s.stats);
    }
    // A bias that varies along the width keeps the scatter: its sum is per pixel column.
    let (of_scatter, _) = bias_gradient_under_a_pool(&[6, 3]);
    assert!(of_scatter);
}
