//! Functional models of several inputs and outputs: hand-computed predictions, the loss as the
//! weighted sum of each output's loss (checked against losses computed here from the
//! predictions), an output of weight 0 that training leaves alone, target checks per output,
//! construction errors, model files (a user's layer inside the Functional block included).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dendrite_graph::{Graph, NodeId};
use dendrite_nn::data::synthetic_digits;
use dendrite_nn::{
    Activation, Adam, ConfigError, Dense, FitConfig, Float, Functional, Init, Initializer, Inputs,
    Layer, LayerNodes, LayerRegistry, Loss, Metric, Model, MultiData, NnError, OutputLoss, Sgd,
};
use dendrite_test_support::scratch::Scratch;
use ndarray::{array, s, Array1, Array2, ArrayD};
use serde_json::Value;

fn constant_dense(units: usize, value: f64) -> Dense {
    Dense::new(units)
        .kernel_initializer(Initializer::Constant(value))
        .bias_initializer(Initializer::Zeros)
}

/// a = [1, 2], b = [3]: concatenated [1, 2, 3]; `both` = Dense(2) with weights 0.5 gives
/// [3, 3]; `from_a` = Dense(1) with weights 1 on a gives [3].
#[test]
fn two_inputs_and_two_outputs_compute_by_hand() {
    let mut f = Functional::<f32>::new();
    let (a, b) = (f.input([2]).unwrap(), f.input([1]).unwrap());
    let joined = f.concatenate(&[a, b], -1).unwrap();
    let both = f
        .apply(constant_dense(2, 0.5).named("both"), joined)
        .unwrap();
    let from_a = f.apply(constant_dense(1, 1.0).named("from_a"), a).unwrap();
    let mut model = Model::new(f, [a, b], [both, from_a]).unwrap();
    assert_eq!(model.input_names(), ["input_1", "input_2"]);
    assert_eq!(model.output_names(), ["both", "from_a"]);
    model.build().unwrap();
    let (xa, xb) = (array![[1.0_f32, 2.0], [0.0, 0.0]], array![3.0_f32, 1.0]);
    let inputs = Inputs::new(vec![xa.view().into_dyn(), xb.view().into_dyn()]).unwrap();
    let out = model.predict_outputs(&inputs, 8).unwrap();
    assert_eq!(out[0], array![[3.0_f32, 3.0], [0.5, 0.5]].into_dyn());
    assert_eq!(out[1], array![[3.0_f32], [0.0]].into_dyn());
    let table = model.summary().unwrap().to_string();
    assert!(table.contains("input_1, input_2"), "{table}");
}

/// A classifier head (3 classes, softmax) and a regression head (1 value) on one trunk.
fn two_heads(seed: u64) -> (Functional<f64>, [dendrite_nn::Tensor; 3]) {
    let mut f = Functional::<f64>::new();
    let x = f.input([4]).unwrap();
    let h = f
        .apply(Dense::new(6).activation(Activation::Tanh), x)
        .unwrap();
    let class = f
        .apply(
            Dense::new(3).activation(Activation::Softmax).named("class"),
            h,
        )
        .unwrap();
    let value = f.apply(Dense::new(1).named("value"), h).unwrap();
    let _ = seed;
    (f, [x, class, value])
}

fn regression_data(n: usize) -> (Array2<f64>, Array1<f64>, Array2<f64>) {
    let x = Array2::from_shape_fn((n, 4), |(i, j)| ((i * 5 + j * 3) % 7) as f64 / 7.0 - 0.4);
    let class = Array1::from_shape_fn(n, |i| (i % 3) as f64);
    let value = Array2::from_shape_fn((n, 1), |(i, _)| x[[i, 0]] - 2.0 * x[[i, 3]]);
    (x, class, value)
}

/// `evaluate`'s loss is `1·L_class + 0.5·L_value`, and each output's loss and accuracy are
/// what the predictions give when computed here: `-mean log p[label]` and `mean (p - y)²`.
#[test]
fn the_loss_is_the_weighted_sum_of_each_outputs_loss() {
    let (f, [x, class, value]) = two_heads(0);
    let mut model = Model::new(f, x, [class, value]).unwrap().with_seed(3);
    model
        .compile_outputs(
            Adam::default(),
            &[
                OutputLoss::new(Loss::SparseCategoricalCrossentropy).metrics(&[Metric::Accuracy]),
                OutputLoss::new(Loss::MeanSquaredError).weight(0.5),
            ],
        )
        .unwrap();
    let (xs, labels, values) = regression_data(37);
    let data = MultiData::new(
        vec![xs.view().into_dyn()],
        vec![labels.view().into_dyn(), values.view().into_dyn()],
    )
    .unwrap();
    let result = model.evaluate(&data, 16).unwrap();
    let p = model.predict_outputs(&xs.view(), 16).unwrap();
    let n = xs.nrows() as f64;
    let ce: f64 = (0..xs.nrows())
        .map(|i| -p[0][[i, labels[i] as usize]].ln())
        .sum::<f64>()
        / n;
    let mse: f64 = (0..xs.nrows())
        .map(|i| (p[1][[i, 0]] - values[[i, 0]]).powi(2))
        .sum::<f64>()
        / n;
    let hits = (0..xs.nrows())
        .filter(|&i| {
            let row = p[0].slice(s![i, ..]);
            let best = (0..3).fold(0, |b, c| if row[c] > row[b] { c } else { b });
            best == labels[i] as usize
        })
        .count() as f64;
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * (1.0 + b.abs());
    assert!(
        close(result.metric("class_loss").unwrap(), ce),
        "{result:?} {ce}"
    );
    assert!(
        close(result.metric("value_loss").unwrap(), mse),
        "{result:?} {mse}"
    );
    assert!(close(result.metric("class_accuracy").unwrap(), hits / n));
    assert!(
        close(result.loss, ce + 0.5 * mse),
        "{} vs {}",
        result.loss,
        ce + 0.5 * mse
    );
    assert_eq!(result.accuracy, result.metric("class_accuracy"));
}

/// With weight 0 the value head gets no gradient: plain SGD leaves its weights exactly as
/// they were, while the class head and the trunk move; the class loss falls.
#[test]
fn an_output_of_weight_zero_is_not_trained() {
    let (f, [x, class, value]) = two_heads(0);
    let mut model = Model::new(f, x, [class, value]).unwrap().with_seed(5);
    model
        .compile_outputs(
            Sgd::new(0.5),
            &[
                OutputLoss::new(Loss::SparseCategoricalCrossentropy),
                OutputLoss::new(Loss::MeanSquaredError).weight(0.0),
            ],
        )
        .unwrap();
    let before = model.get_weights().unwrap();
    let (xs, labels, values) = regression_data(64);
    let data = MultiData::new(
        vec![xs.view().into_dyn()],
        vec![labels.view().into_dyn(), values.view().into_dyn()],
    )
    .unwrap();
    let config = FitConfig::default().epochs(5).batch_size(16).verbosity(0);
    let history = model.fit(&data, config).unwrap();
    let after = model.get_weights().unwrap();
    // Weights in layer order: trunk kernel, bias; class kernel, bias; value kernel, bias.
    assert_eq!(before[4], after[4], "the value head's kernel moved");
    assert_eq!(before[5], after[5], "the value head's bias moved");
    assert_ne!(before[0], after[0], "the trunk did not move");
    assert_ne!(before[2], after[2], "the class head did not move");
    let class_loss = &history
        .metrics
        .iter()
        .find(|(n, _)| *n == "class_loss")
        .unwrap()
        .1;
    assert!(class_loss[4] < class_loss[0], "{class_loss:?}");
    assert_eq!(
        history.loss, *class_loss,
        "weight 0: the loss is the class loss"
    );
}

/// Two inputs (the top and bottom halves of a digit), two outputs (the digit, and whether it
/// is even, by binary cross-entropy on a sigmoid): it trains, and its file brings back the
/// same predictions, losses and per-output metrics.
fn halves_model() -> Model {
    let mut f = Functional::new();
    let (top, bottom) = (f.input([392]).unwrap(), f.input([392]).unwrap());
    let t = f
        .apply(Dense::new(16).activation(Activation::Relu), top)
        .unwrap();
    let b = f
        .apply(Dense::new(16).activation(Activation::Relu), bottom)
        .unwrap();
    let h = f.concatenate(&[t, b], -1).unwrap();
    let digit = f
        .apply(
            Dense::new(10)
                .activation(Activation::Softmax)
                .named("digit"),
            h,
        )
        .unwrap();
    let even = f
        .apply(
            Dense::new(1).activation(Activation::Sigmoid).named("even"),
            h,
        )
        .unwrap();
    let mut model = Model::new(f, [top, bottom], [digit, even]).unwrap();
    model
        .compile_outputs(
            Adam::new(3e-3),
            &[
                OutputLoss::new(Loss::SparseCategoricalCrossentropy).metrics(&[Metric::Accuracy]),
                OutputLoss::new(Loss::BinaryCrossentropy)
                    .weight(0.5)
                    .metrics(&[Metric::Accuracy]),
            ],
        )
        .unwrap();
    model
}

fn halves() -> (Array2<f32>, Array2<f32>, Array1<f32>, Array2<f32>) {
    let digits = synthetic_digits(256, 1).unwrap();
    let mut pixels = Array2::<f32>::zeros((digits.len(), 784));
    let all: Vec<usize> = (0..digits.len()).collect();
    dendrite_nn::Features::<f32>::write_features(&digits, &all, pixels.as_slice_mut().unwrap())
        .unwrap();
    let labels: Array1<f32> = digits.labels().iter().map(|&l| f32::from(l)).collect();
    let even = labels
        .mapv(|l| f32::from(l % 2.0 == 0.0))
        .insert_axis(ndarray::Axis(1));
    let top = pixels.slice(s![.., ..392]).to_owned();
    let bottom = pixels.slice(s![.., 392..]).to_owned();
    (top, bottom, labels, even)
}

#[test]
fn a_model_of_two_inputs_and_outputs_trains_saves_and_loads() {
    let mut model = halves_model();
    let (top, bottom, labels, even) = halves();
    let data = MultiData::new(
        vec![top.view().into_dyn(), bottom.view().into_dyn()],
        vec![labels.view().into_dyn(), even.view().into_dyn()],
    )
    .unwrap();
    let config = FitConfig::default().epochs(4).batch_size(32).verbosity(0);
    let history = model.fit(&data, config).unwrap();
    assert!(history.loss[3] < history.loss[0], "{:?}", history.loss);
    let names: Vec<&str> = history.metrics.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        ["digit_accuracy", "even_accuracy", "digit_loss", "even_loss"]
    );
    let evaluated = model.evaluate(&data, 64).unwrap();
    let sum =
        evaluated.metric("digit_loss").unwrap() + 0.5 * evaluated.metric("even_loss").unwrap();
    assert!((evaluated.loss - sum).abs() < 1e-5, "{evaluated:?}");
    let inputs = Inputs::new(vec![top.view().into_dyn(), bottom.view().into_dyn()]).unwrap();
    let predicted = model.predict_outputs(&inputs, 64).unwrap();
    let dir = Scratch::new("multi-halves");
    let path = dir.file("halves.safetensors");
    model.save(&path).unwrap();
    let mut loaded = Model::<f32>::load(&path).unwrap();
    assert_eq!(loaded.predict_outputs(&inputs, 64).unwrap(), predicted);
    let again = loaded.evaluate(&data, 64).unwrap();
    assert_eq!(again.loss, evaluated.loss);
    assert_eq!(again.metrics, evaluated.metrics);
    assert_eq!(loaded.output_names(), ["digit", "even"]);
}

/// Each output's targets are checked for its own loss before any step.
#[test]
fn targets_are_checked_per_output() {
    let mut model = halves_model();
    let (top, bottom, mut labels, mut even) = halves();
    labels[7] = 10.0;
    let bad_label = MultiData::new(
        vec![top.view().into_dyn(), bottom.view().into_dyn()],
        vec![labels.view().into_dyn(), even.view().into_dyn()],
    )
    .unwrap();
    let err = model.evaluate(&bad_label, 64).unwrap_err();
    assert!(
        matches!(
            err,
            NnError::LabelOutOfRange {
                index: 7,
                classes: 10,
                ..
            }
        ),
        "{err}"
    );
    labels[7] = 3.0;
    even[[9, 0]] = 2.0;
    let bad_binary = MultiData::new(
        vec![top.view().into_dyn(), bottom.view().into_dyn()],
        vec![labels.view().into_dyn(), even.view().into_dyn()],
    )
    .unwrap();
    let err = model.evaluate(&bad_binary, 64).unwrap_err();
    assert!(
        matches!(
            err,
            NnError::TargetOutOfRange {
                sample: 9,
                index: 1,
                ..
            }
        ),
        "{err}"
    );
    // One target array too few: the widths do not match the losses.
    let short = MultiData::new(
        vec![top.view().into_dyn(), bottom.view().into_dyn()],
        vec![labels.view().into_dyn()],
    )
    .unwrap();
    assert!(matches!(
        model.evaluate(&short, 64),
        Err(NnError::TargetMismatch { .. })
    ));
    // Arrays of different lengths.
    let fewer = labels.slice(s![..10]).to_owned();
    let err = MultiData::new(
        vec![top.view().into_dyn(), bottom.view().into_dyn()],
        vec![fewer.view().into_dyn(), even.view().into_dyn()],
    )
    .unwrap_err();
    assert!(matches!(err, NnError::LengthMismatch { .. }), "{err}");
}

#[test]
fn construction_and_compile_errors_name_what_is_wrong() {
    let mut f = Functional::<f32>::new();
    let (a, b) = (f.input([2]).unwrap(), f.input([2]).unwrap());
    let y = f.apply(Dense::new(2), a).unwrap();
    let z = f.add(&[a, b]).unwrap();
    let disconnected = |r: dendrite_nn::Result<Model>, needle: &str| match r {
        Err(NnError::Disconnected { name, reason }) => {
            assert!(
                name.contains(needle) || reason.contains(needle),
                "{name}: {reason}"
            )
        }
        other => panic!("expected Disconnected, got {other:?}"),
    };
    let mut f2 = Functional::<f32>::new();
    let a2 = f2.input([2]).unwrap();
    let y2 = f2.apply(Dense::new(2), a2).unwrap();
    disconnected(Model::new(f2, [a2, a2], y2), "twice");
    let mut f3 = Functional::<f32>::new();
    let a3 = f3.input([2]).unwrap();
    let y3 = f3.apply(Dense::new(2), a3).unwrap();
    disconnected(Model::new(f3, a3, [y3, y3]), "twice");
    disconnected(Model::new(f, [a], [y, z]), "input_2");
    let mut f = Functional::<f32>::new();
    let (a, b) = (f.input([2]).unwrap(), f.input([2]).unwrap());
    let y = f.apply(Dense::new(2), a).unwrap();
    let w = f.apply(Dense::new(3), a).unwrap();
    disconnected(
        Model::new(Functional::<f32>::new(), Vec::new(), Vec::new()),
        "at least one",
    );
    let mut model = Model::new(f, a, [y, w]).unwrap();
    let _ = b;
    let one = [OutputLoss::new(Loss::MeanSquaredError)];
    assert!(matches!(
        model.compile_outputs(Adam::default(), &one),
        Err(NnError::LossOutput { .. })
    ));
    let negative = [
        OutputLoss::new(Loss::MeanSquaredError),
        OutputLoss::new(Loss::MeanSquaredError).weight(-1.0),
    ];
    assert!(matches!(
        model.compile_outputs(Adam::default(), &negative),
        Err(NnError::LossOutput { .. })
    ));
    // One loss for both outputs, as Keras allows.
    model
        .compile(
            Adam::default(),
            Loss::MeanSquaredError,
            &[Metric::MeanAbsoluteError],
        )
        .unwrap();
}

/// A layer of the user's own: multiplies by a factor.
#[derive(Debug)]
struct Scale(f64);

impl<F: Float> Layer<F> for Scale {
    fn kind(&self) -> &'static str {
        "Scale"
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, NnError> {
        Ok(input.to_vec())
    }
    fn param_count(&self, _input: &[usize]) -> Option<usize> {
        Some(0)
    }
    fn build(
        &mut self,
        g: &mut Graph<F>,
        input: NodeId,
        _shape: &[usize],
        _init: &mut Init,
    ) -> Result<LayerNodes, NnError> {
        let c = g.scalar(self.0);
        Ok(LayerNodes::new(g.mul(input, c)?))
    }
    fn config(&self) -> Result<Value, ConfigError> {
        Ok(serde_json::json!({ "factor": self.0 }))
    }
}

fn scale_factory<F: Float>(config: &Value) -> Result<Box<dyn Layer<F>>, ConfigError> {
    let factor = config["factor"]
        .as_f64()
        .ok_or_else(|| ConfigError::new("factor", "must be a number"))?;
    Ok(Box::new(Scale(factor)))
}

/// A Functional model holding a user's layer loads through the registry it is registered in,
/// and names the unknown type without it.
#[test]
fn user_layers_inside_a_functional_model_load_through_a_registry() {
    let mut f = Functional::<f32>::new();
    let x = f.input([3]).unwrap();
    let h = f.apply(constant_dense(2, 1.0), x).unwrap();
    let y = f.apply(Scale(0.25), h).unwrap();
    let mut model = Model::new(f, x, y).unwrap();
    model.build().unwrap();
    let dir = Scratch::new("multi-registry");
    let path = dir.file("scaled.safetensors");
    model.save(&path).unwrap();
    let err = Model::<f32>::load(&path).unwrap_err().to_string();
    assert!(err.contains("Scale"), "{err}");
    let mut registry = LayerRegistry::<f32>::default();
    registry.register("Scale", scale_factory::<f32>);
    let mut loaded = Model::load_with(&path, &registry).unwrap();
    let p: ArrayD<f32> = loaded
        .predict(&array![[1.0_f32, 2.0, 5.0]].view(), 4)
        .unwrap()
        .into_dyn();
    assert_eq!(p, array![[2.0_f32, 2.0]].into_dyn()); // (1 + 2 + 5) · 0.25
}
