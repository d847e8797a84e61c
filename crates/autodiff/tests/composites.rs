//! Property-based first- and second-order gradient checks of the composite ops (built from
//! primitives, so these check the composition and its numerics).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{cubed, first, prop, second, R};
use dendrite_autodiff::strategies::{away_from_zero, shape, shape_with_rank, tensor, values_in};
use dendrite_graph::ops::{Padding, Pool2d};
use dendrite_graph::{Graph, GraphError, NodeId};
use ndarray::ArrayD;
use proptest::prelude::*;

type Build = Box<dyn Fn(&mut Graph<f64>, &[NodeId]) -> Result<NodeId, GraphError>>;

/// First- and second-order checks of `f` with respect to its one input.
fn both(x: &ArrayD<f64>, f: Build) -> R {
    let vals = vec![x.clone()];
    first(&vals, &[0], &f)?;
    second(&vals, &[0], &f)
}

/// A rank 1-4 tensor and an axis of it.
fn with_axis() -> impl Strategy<Value = (ArrayD<f64>, usize)> {
    (shape_with_rank(1..=4), any::<usize>()).prop_flat_map(|(s, a)| {
        let axis = a % s.len();
        (tensor(s), Just(axis))
    })
}

/// A tensor, a subset of its axes and `keep_dims`.
fn with_axes() -> impl Strategy<Value = (ArrayD<f64>, Vec<usize>, bool)> {
    (
        shape(),
        proptest::collection::vec(any::<bool>(), 4),
        any::<bool>(),
    )
        .prop_flat_map(|(s, pick, keep)| {
            let axes: Vec<usize> = (0..s.len()).filter(|&i| pick[i]).collect();
            (tensor(s), Just(axes), Just(keep))
        })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn relu(x in shape().prop_flat_map(away_from_zero)) {
        let vals = vec![x];
        prop(first(&vals, &[0], |g, x| g.relu(x[0])))?;
        prop(second(&vals, &[0], cubed(|g, x| g.relu(x[0]))))?;
    }

    #[test]
    fn leaky_relu(x in shape().prop_flat_map(away_from_zero), alpha in 0.0..0.5f64) {
        let vals = vec![x];
        prop(first(&vals, &[0], |g, x| g.leaky_relu(x[0], alpha)))?;
        prop(second(&vals, &[0], cubed(|g, x| g.leaky_relu(x[0], alpha))))?;
    }

    #[test]
    fn sigmoid(x in shape().prop_flat_map(|s| values_in(s, -6.0..6.0))) {
        prop(both(&x, Box::new(|g, x| g.sigmoid(x[0]))))?;
    }

    #[test]
    fn softplus(x in shape().prop_flat_map(|s| values_in(s, -6.0..6.0))) {
        prop(both(&x, Box::new(|g, x| g.softplus(x[0]))))?;
    }

    #[test]
    fn gelu(x in shape().prop_flat_map(|s| values_in(s, -4.0..4.0))) {
        prop(both(&x, Box::new(|g, x| g.gelu(x[0]))))?;
    }

    #[test]
    fn gelu_tanh(x in shape().prop_flat_map(|s| values_in(s, -4.0..4.0))) {
        prop(both(&x, Box::new(|g, x| g.gelu_tanh(x[0]))))?;
    }

    #[test]
    fn softmax((x, axis) in with_axis()) {
        prop(both(&x, Box::new(move |g, x| g.softmax(x[0], axis))))?;
    }

    #[test]
    fn log_softmax((x, axis) in with_axis()) {
        prop(both(&x, Box::new(move |g, x| g.log_softmax(x[0], axis))))?;
    }

    #[test]
    fn logsumexp((x, axes, keep) in with_axes()) {
        prop(both(&x, Box::new(move |g, x| g.logsumexp(x[0], &axes, keep))))?;
    }

    #[test]
    fn mean((x, axes, keep) in with_axes()) {
        let vals = vec![x];
        let f = move |g: &mut Graph<f64>, x: &[NodeId]| g.mean(x[0], &axes, keep);
        prop(first(&vals, &[0], &f))?;
        prop(second(&vals, &[0], cubed(&f)))?;
    }

    #[test]
    fn variance((x, axes, keep) in with_axes()) {
        prop(both(&x, Box::new(move |g, x| g.variance(x[0], &axes, keep))))?;
    }

    #[test]
    fn square(x in shape().prop_flat_map(tensor)) {
        prop(both(&x, Box::new(|g, x| g.square(x[0]))))?;
    }

    #[test]
    fn logsumexp_of_large_logits_is_stable(
        x in shape_with_rank(1..=2).prop_flat_map(|s| values_in(s, 500.0..600.0))
    ) {
        // exp(600) overflows; the stopped max keeps values and gradients finite and right.
        let last = x.ndim() - 1;
        prop(both(&x, Box::new(move |g, x| g.logsumexp(x[0], &[last], false))))?;
    }
}

/// `max_pool2d(relu(z))` is built as `relu(max_pool2d(z))` (see `Graph::max_pool2d`): its
/// values and its gradient (and the gradient of that gradient's sum) equal, exactly, those of
/// the same pool over `leaky_relu(z, 0)`, which is not rewritten, on values with many ties and
/// zeros, for tiling, overlapping and padded pools.
fn pool_of_relu_matches_unrewritten(x: &ArrayD<f64>, weights: &ArrayD<f64>, pool: Pool2d) -> R {
    let build = |rewritten: bool| -> Result<Vec<ArrayD<f64>>, common::Fail> {
        let mut g = Graph::<f64>::new();
        let xn = g.input("x", x.shape())?;
        let a = match rewritten {
            true => g.relu(xn)?,
            false => g.leaky_relu(xn, 0.0)?,
        };
        let y = g.max_pool2d(a, pool)?;
        let is_select = matches!(g.op(y)?, dendrite_graph::Op::Select);
        common::ensure(is_select == rewritten, || {
            format!(
                "rewritten: {rewritten}, but the pool's node is a {}",
                g.op(y).map_or("?", |o| o.name())
            )
        })?;
        let w = g.constant(weights.clone());
        let weighted = g.mul(y, w)?;
        let loss = g.sum_all(weighted)?;
        let x_bar = dendrite_autodiff::grad(&mut g, loss, &[xn])?[0];
        let squared = g.mul(x_bar, x_bar)?;
        let again = g.sum_all(squared)?;
        let x_bar2 = dendrite_autodiff::grad(&mut g, again, &[xn])?[0];
        let mut plan = dendrite_graph::compile(&g, &[y, x_bar, x_bar2])?;
        Ok(plan.run(&g, &[("x", x.view())])?.to_vec()?)
    };
    let (fast, plain) = (build(true)?, build(false)?);
    for (k, (a, b)) in fast.iter().zip(&plain).enumerate() {
        common::ensure(a == b, || format!("fetch {k}: {a} against {b}"))?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 128,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn max_pool_of_a_relu_is_the_relu_of_the_pool(
        (x, weights) in (1usize..3, 2usize..7, 2usize..7, 1usize..4).prop_flat_map(|(n, h, w, c)| {
            let ints = |len| proptest::collection::vec(-2i32..=2, len);
            (ints(n * h * w * c), ints(n * h * w * c)).prop_map(move |(v, u)| {
                let at = |v: Vec<i32>| ArrayD::from_shape_vec(vec![n, h, w, c], v.into_iter().map(f64::from).collect());
                (at(v).unwrap(), at(u).unwrap())
            })
        }),
        pick in 0usize..4,
    ) {
        let pool = [
            Pool2d::new([2, 2]),
            Pool2d { size: [2, 2], strides: [1, 1], padding: Padding::Valid },
            Pool2d { size: [2, 3], strides: [2, 1], padding: Padding::Same },
            Pool2d::new([1, 2]),
        ][pick];
        // The weights are shaped like the image; a pool's output is smaller, so slice them.
        let mut g = Graph::<f64>::new();
        let xn = g.input("x", x.shape()).unwrap();
        let y = g.max_pool2d(xn, pool).unwrap();
        let shape = g.shape(y).unwrap().concrete().unwrap();
        let weights = weights
            .slice_each_axis(|ax| ndarray::Slice::from(0..shape[ax.axis.index()].min(ax.len)))
            .to_owned();
        prop_assume!(weights.shape() == shape.as_slice());
        prop(pool_of_relu_matches_unrewritten(&x, &weights, pool))?;
    }
}
