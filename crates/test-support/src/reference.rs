//! The reference model (Dense 784->32 relu, Dense 32->10, softmax cross-entropy), built in
//! one place for the benches, the profiling example and the allocation tests, so that they
//! measure the same model: [`reference_training_graph`] with the graph and autodiff crates
//! alone, [`reference_model`] as a compiled [`Sequential`].

use dendrite_autodiff::{grad, AutodiffError};
use dendrite_graph::ops::{Conv2d, Pool2d};
use dendrite_graph::{Graph, NodeId};
use dendrite_nn::{
    Activation, Adam, Conv2D, Dense, Flatten, Loss, MaxPooling2D, Metric, NnError, Sequential,
};
use ndarray::{Array1, Array2};

/// The graph and its fetches: the loss, then the gradients of `w1`, `b1`, `w2`, `b2`.
/// Feeds: `x` of shape `[batch, 784]` and `y` of shape `[batch]` (class indices).
pub fn reference_training_graph() -> Result<(Graph<f32>, Vec<NodeId>), AutodiffError> {
    let mut g = Graph::<f32>::new();
    let x = g.input("x", [None, Some(784)])?;
    let y = g.input("y", [None])?;
    let w1 = Array2::from_shape_fn((784, 32), |(i, j)| {
        ((i * 31 + j * 17) % 13) as f32 * 0.01 - 0.06
    });
    let w1 = g.parameter("w1", w1.into_dyn())?;
    let b1 = g.parameter("b1", Array1::zeros(32).into_dyn())?;
    let w2 = Array2::from_shape_fn((32, 10), |(i, j)| {
        ((i * 7 + j * 5) % 11) as f32 * 0.05 - 0.25
    });
    let w2 = g.parameter("w2", w2.into_dyn())?;
    let b2 = g.parameter("b2", Array1::zeros(10).into_dyn())?;
    let z1 = g.matmul(x, w1)?;
    let z1 = g.add(z1, b1)?;
    let h = g.relu(z1)?;
    let z2 = g.matmul(h, w2)?;
    let logits = g.add(z2, b2)?;
    let loss = sparse_cross_entropy(&mut g, logits, y)?;
    let mut fetches = vec![loss];
    fetches.extend(grad(&mut g, loss, &[w1, b1, w2, b2])?);
    Ok((g, fetches))
}

/// keras.io's convnet as a training graph of the graph and autodiff crates alone, for the
/// profiling example: Conv2D 32 relu, MaxPooling2D, Conv2D 64 relu, MaxPooling2D, Flatten,
/// Dropout 0.5, Dense 10, softmax cross-entropy. Fetches: the loss, then the gradients of
/// the six parameters. Feeds: `x` of shape `[batch, 28, 28, 1]`, `y` of shape `[batch]`
/// (class indices) and `step`, a scalar (the dropout mask's counter). The fetches are
/// simplified, as `Sequential::compile` simplifies a model's, so the profile is of the steps
/// training runs.
pub fn convnet_training_graph() -> Result<(Graph<f32>, Vec<NodeId>), AutodiffError> {
    let mut g = Graph::<f32>::new();
    let x = g.input("x", [None, Some(28), Some(28), Some(1)])?;
    let y = g.input("y", [None])?;
    let step = g.input("step", dendrite_graph::Shape::scalar())?;
    let mut params = Vec::new();
    let mut h = x;
    for (k, (c_in, c_out)) in [(1, 32), (32, 64)].into_iter().enumerate() {
        let w = ndarray::Array4::from_shape_fn((3, 3, c_in, c_out), |(i, j, c, o)| {
            ((i * 7 + j * 5 + c * 3 + o) % 11) as f32 * 0.02 - 0.1
        });
        let w = g.parameter(&format!("w{k}"), w.into_dyn())?;
        let b = g.parameter(&format!("b{k}"), Array1::zeros(c_out).into_dyn())?;
        let z = g.conv2d_bias(h, w, b, Conv2d::default())?;
        let a = g.relu(z)?;
        h = g.max_pool2d(a, Pool2d::new([2, 2]))?;
        params.extend([w, b]);
    }
    let flat = g.reshape(h, [None, Some(1600)])?;
    let mask = g.bernoulli(flat, step, 7, 0.5)?;
    let kept = g.mul(flat, mask)?;
    let half = g.scalar(0.5);
    let dropped = g.div(kept, half)?;
    let w = Array2::from_shape_fn((1600, 10), |(i, j)| ((i * 3 + j) % 7) as f32 * 0.01 - 0.03);
    let w = g.parameter("w2", w.into_dyn())?;
    let b = g.parameter("b2", Array1::zeros(10).into_dyn())?;
    let logits = g.matmul(dropped, w)?;
    let logits = g.add(logits, b)?;
    params.extend([w, b]);
    let loss = sparse_cross_entropy(&mut g, logits, y)?;
    let mut fetches = vec![loss];
    fetches.extend(grad(&mut g, loss, &params)?);
    let fetches = dendrite_autodiff::simplify(&mut g, &fetches)?.outputs;
    Ok((g, fetches))
}

/// The mean sparse categorical cross-entropy of ten-class `logits` against integer labels
/// `y`, built from primitives: `-mean(Σ_c one_hot(y)_c · log_softmax(logits)_c)`.
fn sparse_cross_entropy(
    g: &mut Graph<f32>,
    logits: NodeId,
    y: NodeId,
) -> Result<NodeId, dendrite_graph::GraphError> {
    let log_p = g.log_softmax(logits, 1)?;
    let target = g.one_hot(y, 10)?;
    let picked = g.mul(target, log_p)?;
    let per_example = g.sum(picked, &[1])?;
    let mean = g.mean_all(per_example)?;
    g.neg(mean)
}

/// The reference model's layers (Dense 784->32 relu, Dense 32->10 softmax) with the seed of
/// its initial weights, not yet compiled: for tests that build or export it themselves.
pub fn reference_layers(seed: u64) -> Sequential {
    let mut model = Sequential::new().with_seed(seed);
    model.add(Dense::new(32).input_dim(784).activation(Activation::Relu));
    model.add(Dense::new(10).activation(Activation::Softmax));
    model
}

/// keras.io's "Simple MNIST convnet" without its Dropout (which has no parameters), with the
/// seed of its initial weights, not yet compiled: Conv2D 32 relu, MaxPooling2D, Conv2D 64
/// relu, MaxPooling2D, Flatten, Dense 10 softmax on `[28, 28, 1]` images.
pub fn keras_convnet_layers(seed: u64) -> Sequential {
    let mut m = Sequential::new().with_seed(seed);
    m.add(
        Conv2D::new(32, [3, 3])
            .activation(Activation::Relu)
            .input_shape([28, 28, 1]),
    );
    m.add(MaxPooling2D::new([2, 2]));
    m.add(Conv2D::new(64, [3, 3]).activation(Activation::Relu));
    m.add(MaxPooling2D::new([2, 2]));
    m.add(Flatten::new());
    m.add(Dense::new(10).activation(Activation::Softmax));
    m
}

/// The reference model as a Keras-like [`Sequential`], compiled as `examples/mnist.rs` compiles
/// it: Adam with its defaults, sparse categorical cross-entropy, accuracy.
///
/// # Errors
/// Those of [`Sequential::compile`] (none for this architecture).
pub fn reference_model(seed: u64) -> Result<Sequential, NnError> {
    let mut model = reference_layers(seed);
    model.compile(
        Adam::default(),
        Loss::SparseCategoricalCrossentropy,
        &[Metric::Accuracy],
    )?;
    Ok(model)
}
