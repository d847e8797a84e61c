//! Chapter 7: MNIST.

use super::*;

// ANCHOR: reference_program
/// The reference program: the Keras MNIST model, trained and evaluated.
fn reference_program(
    mnist: &dendrite_nn::data::Mnist,
    epochs: usize,
) -> Result<(dendrite_nn::History, dendrite_nn::Evaluation), dendrite_nn::NnError> {
    use dendrite_nn::{Activation, Adam, Dense, FitConfig, Loss, Metric, Sequential};

    let mut model = Sequential::new();
    model.add(Dense::new(32).input_dim(784).activation(Activation::Relu));
    model.add(Dense::new(10).activation(Activation::Softmax));
    model.compile(
        Adam::default(),
        Loss::SparseCategoricalCrossentropy,
        &[Metric::Accuracy],
    )?;
    println!("{}", model.summary()?);

    let history = model.fit(
        &mnist.train,
        FitConfig::default().epochs(epochs).batch_size(32),
    )?;
    let result = model.evaluate(&mnist.test, 32)?;
    Ok((history, result))
}
// ANCHOR_END: reference_program

// ANCHOR: load_data
#[test]
fn the_reference_program_learns() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite_nn::data::{load_mnist, mnist_dir_from_env, synthetic_mnist, Mnist};

    // MNIST if DENDRITE_MNIST_DIR names a directory with the four files, else synthetic digits.
    let data = match mnist_dir_from_env() {
        Some(dir) => load_mnist(&dir)?,
        None => synthetic_mnist(0)?,
    };
    // A slice of it, to keep the test quick; the example trains on all of it.
    let small = Mnist {
        train: data.train.take(3000),
        test: data.test.take(1000),
    };
    let (history, result) = reference_program(&small, 2)?;
    assert!(history.loss[1] < history.loss[0]);
    assert!(result.accuracy.unwrap_or(0.0) > 0.8, "{result:?}");
    Ok(())
}
// ANCHOR_END: load_data

// ANCHOR: summary
#[test]
fn reference_model_summary() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite_nn::{Activation, Dense, Sequential};

    let mut model = Sequential::new();
    model.add(Dense::new(32).input_dim(784).activation(Activation::Relu));
    model.add(Dense::new(10).activation(Activation::Softmax));
    let summary = model.summary()?;
    assert_eq!(summary.total_params(), 784 * 32 + 32 + 32 * 10 + 10); // 25,450
    let expected = r#"Model: "sequential"
_________________________________________________________________
 Layer (type)                Output Shape                Param #
=================================================================
 dense_1 (Dense)             (None, 32)                   25,120

 dense_2 (Dense)             (None, 10)                      330
=================================================================
Total params: 25,450
Trainable params: 25,450
Non-trainable params: 0
_________________________________________________________________"#;
    assert_eq!(summary.to_string().trim_end(), expected);
    Ok(())
}
// ANCHOR_END: summary

// ANCHOR: reference_graph
/// The reference model's training graph, and the nodes a training loop needs.
struct Reference {
    graph: dendrite_graph::Graph<f32>,
    /// The loss, then the gradients of the four parameters.
    fetches: Vec<dendrite_graph::NodeId>,
    /// The logits, for predictions.
    logits: dendrite_graph::NodeId,
}

/// Builds the reference model with the graph and autodiff crates directly.
fn reference_graph(seed: u64) -> Result<Reference, Box<dyn std::error::Error>> {
    use dendrite_autodiff::grad;
    use dendrite_graph::Graph;
    use ndarray::{Array1, Array2};

    // Glorot-uniform, as Keras initializes a Dense kernel: U(-l, l) with l = √(6 / (in + out)).
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut glorot = |rows: usize, cols: usize| {
        let limit = (6.0 / (rows + cols) as f64).sqrt();
        Array2::from_shape_fn((rows, cols), |_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32 * limit as f32
        })
    };

    let mut g = Graph::<f32>::new();
    let x = g.input("inputs", [None, Some(784)])?;
    let labels = g.input("labels", [None])?;
    let w1 = g.parameter("dense_1/kernel", glorot(784, 32).into_dyn())?;
    let b1 = g.parameter("dense_1/bias", Array1::zeros(32).into_dyn())?;
    let w2 = g.parameter("dense_2/kernel", glorot(32, 10).into_dyn())?;
    let b2 = g.parameter("dense_2/bias", Array1::zeros(10).into_dyn())?;

    let h = g.with_scope("dense_1", |g| -> dendrite_graph::Result<_> {
        let xw = g.matmul(x, w1)?;
        let z = g.add(xw, b1)?;
        g.relu(z)
    })?;
    let logits = g.with_scope("dense_2", |g| -> dendrite_graph::Result<_> {
        let hw = g.matmul(h, w2)?;
        g.add(hw, b2)
    })?;
    // Sparse categorical cross-entropy from the logits: mean over the batch of -log p_y.
    let loss = g.with_scope("loss", |g| -> dendrite_graph::Result<_> {
        let log_p = g.log_softmax(logits, 1)?;
        let target = g.one_hot(labels, 10)?;
        let picked = g.mul(target, log_p)?;
        let per_example = g.sum(picked, &[1])?;
        let mean = g.mean(per_example, &[0], false)?;
        g.neg(mean)
    })?;

    let mut fetches = vec![loss];
    fetches.extend(grad(&mut g, loss, &[w1, b1, w2, b2])?);
    Ok(Reference {
        graph: g,
        fetches,
        logits,
    })
}
// ANCHOR_END: reference_graph

// ANCHOR: by_hand
#[test]
fn training_by_hand() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite_graph::compile;
    use dendrite_nn::data::{synthetic_digits, EpochOrder};
    use dendrite_nn::{Adam, Optimizer};
    use ndarray::{ArrayView1, ArrayView2};

    let Reference {
        graph: mut g,
        fetches,
        logits,
    } = reference_graph(0)?;
    let params = g.parameters(); // kernel and bias of both layers, in the order grad used
    let mut train_step = compile(&g, &fetches)?; // loss and four gradients, one plan

    let train = synthetic_digits(3000, 1)?;
    let mut adam = Adam::<f32>::default();
    let sizes: Vec<usize> = params
        .iter()
        .map(|&p| g.value(p).map(|v| v.len()))
        .collect::<Result<_, _>>()?;
    adam.prepare(&sizes)?;

    let batch = 32;
    let mut x = vec![0.0_f32; batch * 784];
    let mut y = vec![0.0_f32; batch];
    let mut order = EpochOrder::new(train.len(), 42)?;
    let mut epoch_losses = Vec::new();
    let mut step = 0;
    for epoch in 0..3 {
        let mut total = 0.0;
        order.shuffle(epoch);
        for idx in order.batches(batch)? {
            let n = idx.len();
            train.write_images(idx, &mut x[..n * 784])?; // pixels / 255
            train.write_class_indices(idx, &mut y[..n])?;
            let xv = ArrayView2::from_shape((n, 784), &x[..n * 784])?.into_dyn();
            let yv = ArrayView1::from_shape(n, &y[..n])?.into_dyn();

            let out = train_step.run(&g, &[("inputs", xv), ("labels", yv)])?;
            total += f64::from(out.scalar(0)?) * n as f64;
            adam.begin_step(step);
            for (k, &p) in params.iter().enumerate() {
                let gradient = out.get(1 + k)?;
                let mut value = g.parameter_mut(p)?;
                let (Some(w), Some(d)) = (value.as_slice_mut(), gradient.as_slice()) else {
                    return Err("parameter buffers are contiguous".into());
                };
                adam.update(k, w, d)?; // in place: the plan reads the new values next step
            }
            step += 1;
        }
        epoch_losses.push(total / train.len() as f64);
    }
    assert!(epoch_losses[2] < epoch_losses[0]);

    // Accuracy on digits the model has not seen: argmax of the logits against the labels.
    let test = synthetic_digits(1000, 2)?;
    let prediction = g.argmax(logits, 1)?;
    let mut predict = compile(&g, &[prediction])?;
    let all: Vec<usize> = (0..test.len()).collect();
    let mut pixels = vec![0.0_f32; test.len() * 784];
    test.write_images(&all, &mut pixels)?;
    let xv = ArrayView2::from_shape((test.len(), 784), &pixels)?.into_dyn();
    let out = predict.run(&g, &[("inputs", xv)])?;
    let correct = out
        .get(0)?
        .iter()
        .zip(test.labels())
        .filter(|&(&p, &y)| p == f32::from(y))
        .count();
    let accuracy = correct as f64 / test.len() as f64;
    assert!(accuracy > 0.8, "accuracy {accuracy}");
    Ok(())
}
// ANCHOR_END: by_hand

/// Chapter 8: the execution plan, of the reference graph built above.
mod plan;
