//! User losses and metrics, the new built-in metrics, what `History` records, `Box<dyn
//! Optimizer>`, and `get_weights` / `set_weights`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dendrite_graph::{compile, Graph, NodeId};
use dendrite_nn::{
    Activation, Adam, Dense, EarlyStopping, FitConfig, Float, LayerNodes, Loss, LossFn, Metric,
    MetricFn, Monitor, NnError, Optimizer, Sequential, Sgd, Targets,
};
use ndarray::{array, Array1, Array2, ArrayD};

/// Mean squared error written by hand, as a user would: it must train exactly like the
/// built-in one.
#[derive(Debug)]
struct HandMse;

impl LossFn for HandMse {
    fn name(&self) -> &'static str {
        "hand_mse"
    }
    fn per_sample<F: Float>(
        &self,
        g: &mut Graph<F>,
        nodes: &LayerNodes,
        targets: NodeId,
    ) -> Result<NodeId, NnError> {
        let d = g.sub(nodes.output, targets)?;
        let d2 = g.square(d)?;
        Ok(g.mean(d2, &[1], false)?)
    }
}

/// Mean absolute error per sample, as a user's metric.
#[derive(Debug)]
struct HandMae;

impl MetricFn for HandMae {
    fn name(&self) -> &'static str {
        "hand_mae"
    }
    fn per_sample<F: Float>(
        &self,
        g: &mut Graph<F>,
        nodes: &LayerNodes,
        targets: NodeId,
    ) -> Result<NodeId, NnError> {
        let d = g.sub(nodes.output, targets)?;
        let a = g.abs(d)?;
        Ok(g.mean(a, &[1], false)?)
    }
}

/// A metric that insists on class indices.
#[derive(Debug)]
struct NeedsLabels;

impl MetricFn for NeedsLabels {
    fn name(&self) -> &'static str {
        "needs_labels"
    }
    fn targets(&self, width: usize) -> Option<Targets> {
        Some(Targets::ClassIndices { classes: width })
    }
    fn per_sample<F: Float>(
        &self,
        g: &mut Graph<F>,
        nodes: &LayerNodes,
        _targets: NodeId,
    ) -> Result<NodeId, NnError> {
        Ok(g.sum(nodes.output, &[1])?)
    }
}

/// A metric whose values are not one per sample.
#[derive(Debug)]
struct WrongShape;

impl MetricFn for WrongShape {
    fn name(&self) -> &'static str {
        "wrong_shape"
    }
    fn per_sample<F: Float>(
        &self,
        _g: &mut Graph<F>,
        nodes: &LayerNodes,
        _targets: NodeId,
    ) -> Result<NodeId, NnError> {
        Ok(nodes.output)
    }
}

fn regression() -> (Array2<f32>, Array2<f32>) {
    let x = Array2::from_shape_fn((64, 3), |(i, j)| ((i * 7 + j * 3) % 11) as f32 / 11.0 - 0.5);
    let y = Array2::from_shape_fn((64, 2), |(i, j)| {
        x[[i, 0]] * 2.0 - x[[i, 1]] + j as f32 * x[[i, 2]]
    });
    (x, y)
}

fn regressor(seed: u64) -> Sequential {
    let mut model = Sequential::new().with_seed(seed);
    model.add(Dense::new(8).input_dim(3).activation(Activation::Tanh));
    model.add(Dense::new(2));
    model
}

fn quiet() -> FitConfig<'static> {
    FitConfig::default()
        .epochs(3)
        .batch_size(16)
        .verbosity(0)
        .threads(1)
}

#[test]
fn a_custom_loss_trains_exactly_like_the_built_in_it_restates() {
    let (x, y) = regression();
    let data = (x.view(), y.view());
    let mut built_in = regressor(3);
    built_in
        .compile(Adam::new(0.01), Loss::MeanSquaredError, &[])
        .unwrap();
    let mut custom = regressor(3);
    custom
        .compile(Adam::new(0.01), Loss::custom(HandMse), &[])
        .unwrap();
    let a = built_in.fit(&data, quiet()).unwrap();
    let b = custom.fit(&data, quiet()).unwrap();
    assert_eq!(a.loss, b.loss);
    assert!(a.loss[2] < a.loss[0]);
    assert_eq!(
        built_in.get_weights().unwrap(),
        custom.get_weights().unwrap()
    );
    assert_eq!(custom.loss().map(|l| l.name()), Some("hand_mse"));
}

#[test]
fn a_custom_metric_is_reported_under_its_name_everywhere() {
    let (x, y) = regression();
    let data = (x.view(), y.view());
    let mut model = regressor(0);
    let metrics = [Metric::custom(HandMae), Metric::MeanAbsoluteError];
    model
        .compile(Sgd::new(0.05), Loss::MeanSquaredError, &metrics)
        .unwrap();
    let history = model.fit(&data, quiet().validation_data(&data)).unwrap();
    let hand = history.metric("hand_mae").unwrap();
    let built_in = history.metric("mean_absolute_error").unwrap();
    assert_eq!(hand.len(), 3);
    for (a, b) in hand.iter().zip(built_in) {
        assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    }
    assert_eq!(history.metric("val_hand_mae").map(<[f64]>::len), Some(3));
    assert_eq!(history.accuracy, hand, "accuracy holds the first metric");
    let result = model.evaluate(&data, 16).unwrap();
    assert_eq!(result.metrics[0].0, "hand_mae");
    // The validation pass after the last epoch and evaluate see the same weights and data.
    let val_last = *history.metric("val_hand_mae").unwrap().last().unwrap();
    assert_eq!(result.metric("hand_mae"), Some(val_last));
}

#[test]
fn custom_metrics_are_checked_at_compile_time() {
    let mut model = regressor(0);
    let err = model
        .compile(
            Sgd::new(0.1),
            Loss::MeanSquaredError,
            &[Metric::custom(NeedsLabels)],
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            NnError::MetricMismatch {
                metric: "needs_labels",
                loss: "mean_squared_error",
                ..
            }
        ),
        "{err}"
    );
    let err = model
        .compile(
            Sgd::new(0.1),
            Loss::MeanSquaredError,
            &[Metric::custom(WrongShape)],
        )
        .unwrap_err();
    let NnError::Metric { metric, source, .. } = err else {
        panic!("expected a metric error, got {err}");
    };
    assert_eq!(metric, "wrong_shape");
    assert!(matches!(
        *source,
        NnError::MetricShape {
            metric: "wrong_shape",
            ..
        }
    ));
}

/// Each metric's value on a batch with known answers, through `evaluate`.
#[test]
fn built_in_metrics_give_their_definitions() {
    // A linear layer with fixed weights: predictions are the inputs.
    let x = array![
        [1.0_f32, 0.0, 0.0],
        [0.3, 0.5, 0.2],
        [0.1, 0.2, 0.7],
        [0.4, 0.4, 0.2]
    ];
    let labels = array![0.0_f32, 0.0, 2.0, 2.0];
    let one_hot = Array2::from_shape_fn((4, 3), |(i, j)| f32::from(labels[i] as usize == j));
    let identity = |model: &mut Sequential| {
        model.build().unwrap();
        let eye = ndarray::Array2::<f32>::eye(3).into_dyn();
        model.set_weights(&[eye, ArrayD::zeros(vec![3])]).unwrap();
    };
    let mut sparse = Sequential::new();
    sparse.add(Dense::new(3).input_dim(3));
    identity(&mut sparse);
    sparse
        .compile(
            Sgd::new(0.1),
            Loss::custom(SparseZero),
            &[
                Metric::SparseCategoricalAccuracy,
                Metric::SparseTopKCategoricalAccuracy { k: 2 },
            ],
        )
        .unwrap();
    let r = sparse.evaluate(&(x.view(), labels.view()), 3).unwrap();
    // argmax: 0, 1, 2, 0 or 1 -> right for samples 1 and 3; top 2: sample 2 ranks class 0
    // second (0.3 after 0.5), sample 4 ranks class 2 last.
    assert_eq!(r.metric("sparse_categorical_accuracy"), Some(0.5));
    assert_eq!(r.metric("sparse_top_k_categorical_accuracy"), Some(0.75));

    let mut dense = Sequential::new();
    dense.add(Dense::new(3).input_dim(3));
    identity(&mut dense);
    let metrics = [
        Metric::CategoricalAccuracy,
        Metric::TopKCategoricalAccuracy { k: 1 },
        Metric::TopKCategoricalAccuracy { k: 3 },
        Metric::MeanAbsoluteError,
        Metric::MeanSquaredError,
        Metric::RootMeanSquaredError,
    ];
    dense
        .compile(Sgd::new(0.1), Loss::MeanSquaredError, &metrics)
        .unwrap();
    let r = dense.evaluate(&(x.view(), one_hot.view()), 3).unwrap();
    let d = &x - &one_hot;
    let mae = d.mapv(|v| f64::from(v.abs())).mean().unwrap();
    let mse = d.mapv(|v| f64::from(v * v)).mean().unwrap();
    let values: Vec<f64> = r.metrics.iter().map(|&(_, v)| v).collect();
    assert_eq!(&values[..3], &[0.5, 0.5, 1.0]);
    assert!((values[3] - mae).abs() < 1e-6, "{} vs {mae}", values[3]);
    assert!((values[4] - mse).abs() < 1e-6, "{} vs {mse}", values[4]);
    assert!((values[5] - mse.sqrt()).abs() < 1e-6);
    assert!((r.loss - mse).abs() < 1e-6);
}

/// A loss on class indices that is always zero (the sparse metrics need class-index targets,
/// and the built-in sparse loss needs a softmax to be meaningful; this one keeps the
/// predictions equal to the inputs).
#[derive(Debug)]
struct SparseZero;

impl LossFn for SparseZero {
    fn name(&self) -> &'static str {
        "sparse_zero"
    }
    fn targets(&self, width: usize) -> Targets {
        Targets::ClassIndices { classes: width }
    }
    fn per_sample<F: Float>(
        &self,
        g: &mut Graph<F>,
        nodes: &LayerNodes,
        targets: NodeId,
    ) -> Result<NodeId, NnError> {
        let zero = g.scalar(0.0);
        let t = g.mul(targets, zero)?;
        let s = g.sum(nodes.output, &[1])?;
        let s = g.mul(s, zero)?;
        Ok(g.add(s, t)?)
    }
}

#[test]
fn top_k_counts_ties_with_the_true_class_in_its_favour() {
    let mut g = Graph::<f64>::new();
    let p = g.input("p", [None, Some(3)]).unwrap();
    let y = g.input("y", [None]).unwrap();
    let top1 = Metric::SparseTopKCategoricalAccuracy { k: 1 }
        .build(&mut g, &LayerNodes::new(p), y)
        .unwrap();
    let mut plan = compile(&g, &[top1]).unwrap();
    let pv = array![[0.4, 0.4, 0.2], [0.4, 0.4, 0.2]].into_dyn();
    let yv = array![0.0, 1.0].into_dyn();
    let out = plan.run(&g, &[("p", pv.view()), ("y", yv.view())]).unwrap();
    assert_eq!(out.scalar(0).unwrap(), 2.0);
}

#[test]
fn top_k_needs_k_of_at_least_one_and_the_right_targets() {
    let mut model = Sequential::new();
    model.add(Dense::new(4).input_dim(2).activation(Activation::Softmax));
    let refused = [
        (
            Loss::SparseCategoricalCrossentropy,
            Metric::SparseTopKCategoricalAccuracy { k: 0 },
        ),
        (
            Loss::SparseCategoricalCrossentropy,
            Metric::TopKCategoricalAccuracy { k: 2 },
        ),
        (
            Loss::CategoricalCrossentropy,
            Metric::SparseTopKCategoricalAccuracy { k: 2 },
        ),
        (
            Loss::SparseCategoricalCrossentropy,
            Metric::MeanAbsoluteError,
        ),
    ];
    for (loss, metric) in refused {
        let err = model
            .compile(Adam::default(), loss.clone(), std::slice::from_ref(&metric))
            .unwrap_err();
        assert!(
            matches!(err, NnError::MetricMismatch { .. }),
            "{loss:?} {metric:?}: {err}"
        );
    }
    model
        .compile(
            Adam::default(),
            Loss::CategoricalCrossentropy,
            &[
                Metric::TopKCategoricalAccuracy { k: 2 },
                Metric::MeanSquaredError,
            ],
        )
        .unwrap();
}

#[test]
fn history_records_every_metric_and_the_best_epoch() {
    let (x, y) = regression();
    let data = (x.view(), y.view());
    let mut model = regressor(1);
    model
        .compile(
            Adam::new(0.02),
            Loss::MeanSquaredError,
            &[Metric::MeanAbsoluteError, Metric::RootMeanSquaredError],
        )
        .unwrap();
    let config = quiet()
        .epochs(6)
        .validation_split(0.25)
        .early_stopping(EarlyStopping::new(Monitor::ValLoss).patience(10));
    let h = model.fit(&data, config).unwrap();
    let names: Vec<&str> = h.metrics.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, ["mean_absolute_error", "root_mean_squared_error"]);
    let val_names: Vec<&str> = h.val_metrics.iter().map(|(n, _)| *n).collect();
    assert_eq!(val_names, names);
    assert!(h
        .metrics
        .iter()
        .chain(&h.val_metrics)
        .all(|(_, v)| v.len() == 6));
    let best = h.best_epoch.unwrap();
    let min = h.val_loss.iter().copied().fold(f64::INFINITY, f64::min);
    assert_eq!(h.val_loss[best - 1], min);
    assert!(h.regularization.is_empty(), "no regularizer, no penalty");
}

#[test]
fn an_optimizer_chosen_at_run_time_trains_like_the_same_optimizer() {
    let (x, y) = regression();
    let data = (x.view(), y.view());
    let mut direct = regressor(2);
    direct
        .compile(Sgd::new(0.05).momentum(0.9), Loss::MeanSquaredError, &[])
        .unwrap();
    let boxed: Box<dyn Optimizer<f32>> = Box::new(Sgd::new(0.05).momentum(0.9));
    let mut chosen = regressor(2);
    chosen.compile(boxed, Loss::MeanSquaredError, &[]).unwrap();
    assert_eq!(
        direct.fit(&data, quiet()).unwrap().loss,
        chosen.fit(&data, quiet()).unwrap().loss
    );
}

#[test]
fn set_weights_checks_everything_before_writing_anything() {
    let mut model = regressor(0);
    assert!(matches!(model.get_weights(), Err(NnError::NotBuilt { .. })));
    model.build().unwrap();
    let before = model.get_weights().unwrap();
    assert_eq!(before.len(), 4);

    let mut wrong_shape = before.clone();
    wrong_shape[2] = ArrayD::zeros(vec![2, 8]);
    let err = model.set_weights(&wrong_shape).unwrap_err();
    assert!(
        matches!(&err, NnError::WeightShape { name, expected, actual }
            if name == "dense_2/kernel" && expected == &[8, 2] && actual == &[2, 8]),
        "{err}"
    );
    let mut non_finite = before.clone();
    non_finite[0] = non_finite[0].mapv(|v| v * 2.0);
    non_finite[3] = Array1::from(vec![0.0, f32::NAN]).into_dyn();
    let err = model.set_weights(&non_finite).unwrap_err();
    assert!(
        matches!(&err, NnError::NonFiniteWeight { name, index: 1, .. } if name == "dense_2/bias"),
        "{err}"
    );
    assert!(matches!(
        model.set_weights(&before[..3]),
        Err(NnError::WeightCount {
            expected: 4,
            actual: 3
        })
    ));
    assert_eq!(
        model.get_weights().unwrap(),
        before,
        "a refused call changes nothing"
    );

    let doubled: Vec<_> = before.iter().map(|w| w.mapv(|v| v * 2.0)).collect();
    model.set_weights(&doubled).unwrap();
    assert_eq!(model.get_weights().unwrap(), doubled);
}
