//! Losses and metrics against hand-computed values, and the stability of the cross-entropies
//! at extreme logits.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dendrite_autodiff::grad;
use dendrite_graph::{compile, Graph, NodeId};
use dendrite_nn::{Activation, LayerNodes, Loss, Mean, Metric};
use ndarray::{array, ArrayD};

/// Runs `loss` on predictions `p` (or logits through `activation`) against `y`; returns the
/// loss and its gradient with respect to the fed predictions/logits.
fn run_loss(
    loss: Loss,
    activation: Option<Activation>,
    p: ArrayD<f64>,
    y: ArrayD<f64>,
) -> (f64, ArrayD<f64>) {
    let mut g = Graph::<f64>::new();
    let width = p.shape()[1];
    let z = g.input("z", [None, Some(width)]).unwrap();
    let y_node = if y.ndim() == 1 {
        g.input("y", [None]).unwrap()
    } else {
        g.input("y", [None, Some(y.shape()[1])]).unwrap()
    };
    let nodes = match activation {
        Some(a) => a.nodes(&mut g, z).unwrap(),
        None => LayerNodes::new(z),
    };
    let l = loss.build(&mut g, &nodes, y_node).unwrap();
    let dz = grad(&mut g, l, &[z]).unwrap();
    let mut plan = compile(&g, &[l, dz[0]]).unwrap();
    let out = plan.run(&g, &[("z", p.view()), ("y", y.view())]).unwrap();
    (out.scalar(0).unwrap(), out.get(1).unwrap().to_owned())
}

fn close(a: f64, b: f64) {
    assert!((a - b).abs() <= 1e-12 * (1.0 + b.abs()), "{a} != {b}");
}

#[test]
fn mean_squared_and_absolute_error() {
    let p = array![[1.0, 2.0], [0.0, 0.0]].into_dyn();
    let y = array![[0.0, 0.0], [0.0, 2.0]].into_dyn();
    let (mse, d_mse) = run_loss(Loss::MeanSquaredError, None, p.clone(), y.clone());
    close(mse, (1.0 + 4.0 + 0.0 + 4.0) / 4.0);
    // d/dp mean (p - y)² = 2 (p - y) / 4
    assert_eq!(d_mse, array![[0.5, 1.0], [0.0, -1.0]].into_dyn());
    let (mae, d_mae) = run_loss(Loss::MeanAbsoluteError, None, p, y);
    close(mae, (1.0 + 2.0 + 0.0 + 2.0) / 4.0);
    assert_eq!(d_mae, array![[0.25, 0.25], [0.0, -0.25]].into_dyn());
}

#[test]
fn binary_crossentropy_from_probabilities_and_logits() {
    let p = array![[0.9], [0.2]].into_dyn();
    let y = array![[1.0], [0.0]].into_dyn();
    let (bce, _) = run_loss(Loss::BinaryCrossentropy, None, p, y.clone());
    close(bce, -(0.9_f64.ln() + 0.8_f64.ln()) / 2.0);

    // From logits (the output is a sigmoid): the same value as through the probabilities.
    let z = array![[0.5], [-1.0]].into_dyn();
    let (from_logits, dz) = run_loss(Loss::BinaryCrossentropy, Some(Activation::Sigmoid), z, y);
    let s = |x: f64| 1.0 / (1.0 + (-x).exp());
    close(from_logits, -(s(0.5).ln() + (1.0 - s(-1.0)).ln()) / 2.0);
    // d/dz = (σ(z) - y) / batch
    close(dz[[0, 0]], (s(0.5) - 1.0) / 2.0);
    close(dz[[1, 0]], s(-1.0) / 2.0);
}

#[test]
fn probabilities_are_clipped_like_keras() {
    let p = array![[0.0], [1.0]].into_dyn();
    let y = array![[1.0], [0.0]].into_dyn();
    let (bce, _) = run_loss(Loss::BinaryCrossentropy, None, p, y);
    let hi = 1.0 - 1e-7_f64;
    close(bce, -((1e-7_f64).ln() + (1.0 - hi).ln()) / 2.0);
}

#[test]
fn categorical_crossentropy_from_probabilities_and_logits() {
    let p = array![[0.2, 0.3, 0.5], [0.1, 0.8, 0.1]].into_dyn();
    let y = array![[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]].into_dyn();
    let (ce, _) = run_loss(Loss::CategoricalCrossentropy, None, p, y.clone());
    close(ce, -(0.5_f64.ln() + 0.8_f64.ln()) / 2.0);

    let z = array![[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]].into_dyn();
    let lse = (1f64.exp() + 2f64.exp() + 3f64.exp()).ln();
    let expected = ((lse - 3.0) + 3f64.ln()) / 2.0;
    let (ce, dz) = run_loss(
        Loss::CategoricalCrossentropy,
        Some(Activation::Softmax),
        z.clone(),
        y,
    );
    close(ce, expected);
    // d/dz = (softmax(z) - y) / batch
    close(dz[[0, 2]], ((3.0 - lse).exp() - 1.0) / 2.0);
    close(dz[[1, 0]], (1.0 / 3.0) / 2.0);

    let labels = array![2.0, 1.0].into_dyn();
    let (sparse, dz_sparse) = run_loss(
        Loss::SparseCategoricalCrossentropy,
        Some(Activation::Softmax),
        z,
        labels,
    );
    close(sparse, expected);
    close(dz_sparse[[0, 2]], dz[[0, 2]]);
}

#[test]
fn sparse_crossentropy_from_probabilities() {
    let p = array![[0.25, 0.75]].into_dyn();
    let (l, _) = run_loss(
        Loss::SparseCategoricalCrossentropy,
        None,
        p,
        array![0.0].into_dyn(),
    );
    close(l, -(0.25_f64.ln()));
}

#[test]
fn logits_of_1e4_give_finite_loss_and_gradients_in_f32() {
    // Softmax + sparse cross-entropy: softmax(z)[2] is exactly 0 in f32, log_softmax is not.
    let mut g = Graph::<f32>::new();
    let z = g.input("z", [None, Some(3)]).unwrap();
    let labels = g.input("labels", [None]).unwrap();
    let nodes = Activation::Softmax.nodes(&mut g, z).unwrap();
    let loss = Loss::SparseCategoricalCrossentropy
        .build(&mut g, &nodes, labels)
        .unwrap();
    let dz = grad(&mut g, loss, &[z]).unwrap();
    let mut plan = compile(&g, &[loss, dz[0]]).unwrap();
    let zv = array![[1e4_f32, 0.0, -1e4], [-1e4, 1e4, 0.0]].into_dyn();
    let lv = array![2.0_f32, 1.0].into_dyn();
    let out = plan
        .run(&g, &[("z", zv.view()), ("labels", lv.view())])
        .unwrap();
    let l = out.scalar(0).unwrap();
    assert_eq!(l, 1e4); // (2e4 + 0) / 2
    assert!(out.get(1).unwrap().iter().all(|v| v.is_finite()));

    // The same through one-hot targets.
    let mut g = Graph::<f32>::new();
    let z = g.input("z", [None, Some(3)]).unwrap();
    let y = g.input("y", [None, Some(3)]).unwrap();
    let nodes = Activation::Softmax.nodes(&mut g, z).unwrap();
    let loss = Loss::CategoricalCrossentropy
        .build(&mut g, &nodes, y)
        .unwrap();
    let dz = grad(&mut g, loss, &[z]).unwrap();
    let mut plan = compile(&g, &[loss, dz[0]]).unwrap();
    let yv = array![[0.0_f32, 0.0, 1.0], [0.0, 1.0, 0.0]].into_dyn();
    let out = plan.run(&g, &[("z", zv.view()), ("y", yv.view())]).unwrap();
    assert_eq!(out.scalar(0).unwrap(), 1e4);
    assert!(out.get(1).unwrap().iter().all(|v| v.is_finite()));

    // Sigmoid + binary cross-entropy: σ(1e4) = 1 exactly, yet the loss is 1e4, not inf.
    let mut g = Graph::<f32>::new();
    let z = g.input("z", [None, Some(1)]).unwrap();
    let y = g.input("y", [None, Some(1)]).unwrap();
    let nodes = Activation::Sigmoid.nodes(&mut g, z).unwrap();
    let loss = Loss::BinaryCrossentropy.build(&mut g, &nodes, y).unwrap();
    let dz = grad(&mut g, loss, &[z]).unwrap();
    let mut plan = compile(&g, &[loss, dz[0]]).unwrap();
    let zv = array![[1e4_f32], [-1e4]].into_dyn();
    let yv = array![[0.0_f32], [1.0]].into_dyn();
    let out = plan.run(&g, &[("z", zv.view()), ("y", yv.view())]).unwrap();
    assert_eq!(out.scalar(0).unwrap(), 1e4);
    let d = out.get(1).unwrap();
    assert!(d.iter().all(|v| v.is_finite()));
    assert_eq!(d[[0, 0]], 0.5); // (σ(z) - y) / 2
    assert_eq!(d[[1, 0]], -0.5);
}

#[test]
fn targets_of_the_wrong_shape_are_rejected() {
    let mut g = Graph::<f32>::new();
    let z = g.input("z", [None, Some(3)]).unwrap();
    let y = g.input("y", [None, Some(2)]).unwrap();
    let err = Loss::MeanSquaredError
        .build(&mut g, &LayerNodes::new(z), y)
        .unwrap_err();
    assert!(matches!(
        err,
        dendrite_nn::NnError::TargetMismatch {
            expected: 3,
            actual: 2,
            ..
        }
    ));
}

/// Runs a metric's correct count.
fn count(metric: Metric, p: ArrayD<f32>, y: ArrayD<f32>) -> f32 {
    let mut g = Graph::<f32>::new();
    let pn = g.input("p", [None, Some(p.shape()[1])]).unwrap();
    let yn: NodeId = if y.ndim() == 1 {
        g.input("y", [None]).unwrap()
    } else {
        g.input("y", [None, Some(y.shape()[1])]).unwrap()
    };
    let c = metric.build(&mut g, &LayerNodes::new(pn), yn).unwrap();
    let mut plan = compile(&g, &[c]).unwrap();
    let out = plan.run(&g, &[("p", p.view()), ("y", y.view())]).unwrap();
    out.scalar(0).unwrap()
}

#[test]
fn accuracies_count_correct_predictions() {
    let p = array![[0.1_f32, 0.9], [0.8, 0.2], [0.3, 0.7]].into_dyn();
    let onehot = array![[0.0_f32, 1.0], [0.0, 1.0], [0.0, 1.0]].into_dyn();
    assert_eq!(count(Metric::CategoricalAccuracy, p.clone(), onehot), 2.0);
    let labels = array![1.0_f32, 0.0, 0.0].into_dyn();
    assert_eq!(count(Metric::SparseCategoricalAccuracy, p, labels), 2.0);
    let probs = array![[0.7_f32], [0.4], [0.6], [0.5]].into_dyn();
    let truth = array![[1.0_f32], [1.0], [0.0], [0.0]].into_dyn();
    // 0.7 > 0.5 right, 0.4 wrong, 0.6 wrong, 0.5 is not > 0.5 so predicts 0: right.
    assert_eq!(count(Metric::BinaryAccuracy, probs, truth), 2.0);
    // Ties go to the first maximum, as argmax does.
    let tied = array![[0.5_f32, 0.5]].into_dyn();
    assert_eq!(
        count(
            Metric::SparseCategoricalAccuracy,
            tied,
            array![0.0_f32].into_dyn()
        ),
        1.0
    );
}

#[test]
fn mean_is_weighted_by_batch_size() {
    let mut loss = Mean::default();
    loss.update(0.5, 32.0);
    loss.update(2.0, 8.0);
    assert_eq!(loss.result(), Some((0.5 * 32.0 + 2.0 * 8.0) / 40.0));
    let mut acc = Mean::default();
    acc.add_sum(30.0, 32.0);
    acc.add_sum(8.0, 8.0);
    assert_eq!(acc.result(), Some(38.0 / 40.0));
}

#[test]
fn names_match_keras() {
    assert_eq!(
        Loss::CategoricalCrossentropy.name(),
        "categorical_crossentropy"
    );
    assert_eq!(Loss::MeanAbsoluteError.name(), "mean_absolute_error");
    assert_eq!(Metric::Accuracy.name(), "accuracy");
    assert_eq!(Activation::Gelu.name(), "gelu");
    assert_eq!(Activation::GeluTanh.name(), "gelu_tanh");
}
