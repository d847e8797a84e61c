//! Property-based first- and second-order gradient checks of the composite ops (built from
//! primitives, so these check the composition and its numerics).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{cubed, first, prop, second, R};
use dendrite_autodiff::strategies::{away_from_zero, shape, shape_with_rank, tensor, values_in};
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
