//! Layers: activations, the dense layer's initialization and names, custom layers, and the
//! summary.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dendrite_graph::{compile, Graph, NodeId};
use dendrite_nn::{
    Activation, Adam, Dense, FitConfig, Float, Init, Layer, LayerNodes, Loss, NnError, Sequential,
};
use dendrite_test_support::reference::reference_layers;
use ndarray::{array, Array1, Array2};

fn apply(activation: Activation, xs: &[f64]) -> Vec<f64> {
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [1, xs.len()]).unwrap();
    let y = activation.apply(&mut g, x).unwrap();
    let mut plan = compile(&g, &[y]).unwrap();
    let v = Array2::from_shape_vec((1, xs.len()), xs.to_vec())
        .unwrap()
        .into_dyn();
    plan.run(&g, &[("x", v.view())])
        .unwrap()
        .get(0)
        .unwrap()
        .iter()
        .copied()
        .collect()
}

fn close(a: &[f64], b: &[f64]) {
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() < 1e-12, "{a:?} != {b:?}");
    }
}

#[test]
fn activations_compute_their_formulas() {
    let xs = [-2.0, -0.5, 0.0, 0.5, 3.0];
    close(&apply(Activation::Linear, &xs), &xs);
    close(&apply(Activation::Relu, &xs), &[0.0, 0.0, 0.0, 0.5, 3.0]);
    close(
        &apply(Activation::LeakyRelu(0.2), &xs),
        &[-0.4, -0.1, 0.0, 0.5, 3.0],
    );
    let sig: Vec<f64> = xs.iter().map(|x| 1.0 / (1.0 + (-x).exp())).collect();
    close(&apply(Activation::Sigmoid, &xs), &sig);
    let tanh: Vec<f64> = xs.iter().map(|x| x.tanh()).collect();
    close(&apply(Activation::Tanh, &xs), &tanh);
    let total: f64 = xs.iter().map(|x| x.exp()).sum();
    let soft: Vec<f64> = xs.iter().map(|x| x.exp() / total).collect();
    close(&apply(Activation::Softmax, &xs), &soft);
    let c = (2.0 / std::f64::consts::PI).sqrt();
    let gelu_tanh: Vec<f64> = xs
        .iter()
        .map(|x| 0.5 * x * (1.0 + (c * (x + 0.044715 * x.powi(3))).tanh()))
        .collect();
    close(&apply(Activation::GeluTanh, &xs), &gelu_tanh);
    // x Φ(x), with Φ(0.5) = 0.6914624612740131 and Φ(2) = 0.9772498680518208 from normal
    // tables (Φ(3) = 0.9986501019683699), Φ(-x) = 1 - Φ(x).
    let phi = [
        1.0 - 0.9772498680518208,
        1.0 - 0.6914624612740131,
        0.5,
        0.6914624612740131,
        0.9986501019683699,
    ];
    let gelu: Vec<f64> = xs.iter().zip(phi).map(|(x, p)| x * p).collect();
    close(&apply(Activation::Gelu, &xs), &gelu);
}

#[test]
fn dense_starts_glorot_uniform_with_zero_bias() {
    let mut model = reference_layers(7);
    model.build().unwrap();
    let w = model.weights().unwrap();
    let names: Vec<&str> = w.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "dense_1/kernel",
            "dense_1/bias",
            "dense_2/kernel",
            "dense_2/bias"
        ]
    );
    let limit = (6.0_f32 / (784.0 + 32.0)).sqrt();
    let kernel = &w[0].1;
    assert_eq!(kernel.shape(), &[784, 32]);
    assert!(kernel.iter().all(|v| v.abs() <= limit));
    // Uniform: the mean is near 0 and the variance near limit² / 3.
    let n = kernel.len() as f32;
    let mean = kernel.sum() / n;
    let var = kernel.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    assert!(mean.abs() < 0.01 * limit, "{mean}");
    assert!((var / (limit * limit / 3.0) - 1.0).abs() < 0.05, "{var}");
    assert!(w[1].1.iter().all(|&b| b == 0.0));

    // Seeded: the same seed gives the same weights, another seed others.
    let again = {
        let mut m = reference_layers(7);
        m.build().unwrap();
        m.weights().unwrap()
    };
    assert_eq!(w, again);
    let other = {
        let mut m = Sequential::new().with_seed(8);
        m.add(Dense::new(32).input_dim(784));
        m.build().unwrap();
        m.weights().unwrap()
    };
    assert_ne!(w[0].1, other[0].1);
}

#[test]
fn dense_keeps_its_logits_for_the_loss() {
    let mut g = Graph::<f32>::new();
    let x = g.input("x", [None, Some(3)]).unwrap();
    let mut layer = Dense::new(4).activation(Activation::Softmax);
    let nodes = g
        .with_scope("out", |g| {
            Layer::<f32>::build(&mut layer, g, x, &[3], &mut Init::new(0))
        })
        .unwrap();
    let pre = nodes.pre_activation.unwrap();
    assert_eq!(pre.activation, Activation::Softmax);
    assert_eq!(g.name(pre.node).unwrap(), "out/add");
    assert_eq!(nodes.parameters.len(), 2);
    let linear = g
        .with_scope("lin", |g| {
            Layer::<f32>::build(&mut Dense::new(2), g, x, &[3], &mut Init::new(0))
        })
        .unwrap();
    assert!(linear.pre_activation.is_none());
}

#[test]
fn layers_are_named_by_kind_and_count() {
    let mut model = Sequential::new();
    model
        .add(Dense::new(8).input_dim(4))
        .add(Activation::Relu)
        .add(Dense::new(8).named("hidden"))
        .add(Dense::new(2))
        .add(Activation::Softmax);
    assert_eq!(
        model.layer_names(),
        [
            "dense_1",
            "activation_1",
            "hidden",
            "dense_2",
            "activation_2"
        ]
    );
    model.build().unwrap();
    let g = model.graph().unwrap();
    assert!(g.node_by_name("hidden/kernel").is_some());
    assert!(g.node_by_name("dense_2/bias").is_some());
}

#[test]
fn summary_prints_a_keras_table() {
    let mut model = Sequential::new().named("reference");
    model.add(Dense::new(32).input_dim(784).activation(Activation::Relu));
    model.add(Dense::new(10).activation(Activation::Softmax));
    let summary = model.summary().unwrap();
    assert_eq!(summary.total_params(), 25_450);
    let rows = summary.rows();
    assert_eq!((rows[0].params, rows[1].params), (25_120, 330));
    assert_eq!(rows[1].output_shape, vec![10]);
    let text = summary.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "Model: \"reference\"");
    assert!(
        lines[2].starts_with(" Layer (type)")
            && lines[2].contains("Output Shape")
            && lines[2].ends_with("Param #")
    );
    assert!(
        text.contains(" dense_1 (Dense)             (None, 32)                   25,120"),
        "{text}"
    );
    assert!(
        text.contains(" dense_2 (Dense)             (None, 10)                      330"),
        "{text}"
    );
    assert!(
        text.contains("Total params: 25,450\nTrainable params: 25,450\nNon-trainable params: 0")
    );
}

/// A user-written layer: `x * scale + shift`, one learned value per feature.
#[derive(Debug)]
struct Affine;

impl<F: Float> Layer<F> for Affine {
    fn kind(&self) -> &'static str {
        "Affine"
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, NnError> {
        Ok(input.to_vec())
    }
    fn param_count(&self, input: &[usize]) -> Option<usize> {
        input.iter().try_fold(2usize, |n, &d| n.checked_mul(d))
    }
    fn build(
        &mut self,
        g: &mut Graph<F>,
        input: NodeId,
        shape: &[usize],
        init: &mut Init,
    ) -> Result<LayerNodes, NnError> {
        let scale = g.parameter("scale", init.ones::<F>(shape)?)?;
        let shift = g.parameter("shift", init.zeros::<F>(shape)?)?;
        let scaled = g.mul(input, scale)?;
        let output = g.add(scaled, shift)?;
        Ok(LayerNodes::new(output).with_parameters(vec![scale, shift]))
    }
}

#[test]
fn custom_layers_build_train_and_summarize() {
    // Learn y = 3x - 1 with a single Affine layer.
    let x = Array2::from_shape_fn((16, 1), |(i, _)| i as f32 / 8.0 - 1.0);
    let y: Array1<f32> = x.column(0).mapv(|v| 3.0 * v - 1.0);
    let mut model = Sequential::new();
    model.add(Dense::new(1).input_dim(1).use_bias(false).named("identity"));
    model.add(Affine);
    assert_eq!(model.summary().unwrap().total_params(), 1 + 2);
    assert_eq!(model.layer_names(), ["identity", "affine_1"]);
    model
        .compile(Adam::new(0.1), Loss::MeanSquaredError, &[])
        .unwrap();
    let history = model
        .fit(
            &(x.view(), y.view()),
            FitConfig::default().epochs(200).batch_size(16).verbosity(0),
        )
        .unwrap();
    assert!(
        history.loss.last().unwrap() < &1e-3,
        "{:?}",
        history.loss.last()
    );
    let p = model.predict(&array![[0.5_f32]].view(), 1).unwrap();
    assert!((p[[0, 0]] - 0.5).abs() < 0.05, "{p}");
    let names: Vec<String> = model
        .weights()
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        names,
        ["identity/kernel", "affine_1/scale", "affine_1/shift"]
    );
}
