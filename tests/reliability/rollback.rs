//! A refused step, load or build leaves no trace: the optimizer's state is put back with the
//! weights, a checkpoint holding NaN loads nothing, a checkpoint longer than its tensors'
//! entries can make it is refused unread, and a loss or metric refused half-way adds no node.

use crate::common::{quiet, weight_bits, Scratch};
use dendrite_graph::Graph;
use dendrite_nn::{Activation, Adam, Dense, LayerNodes, Loss, Metric, NnError, Sequential};
use ndarray::{Array1, Array2};
use std::error::Error;

type TestResult = Result<(), Box<dyn Error>>;

fn regressor(seed: u64) -> Sequential {
    let mut model = Sequential::new().with_seed(seed);
    model.add(Dense::new(1).input_dim(2));
    model
        .compile(Adam::new(0.01), Loss::MeanAbsoluteError, &[])
        .unwrap();
    model
}

fn good_data() -> (Array2<f32>, Array1<f32>) {
    let x = Array2::from_shape_fn((6, 2), |(i, j)| (i + 2 * j) as f32 / 6.0 - 0.4);
    let y = Array1::from_shape_fn(6, |i| i as f32 / 3.0);
    (x, y)
}

#[test]
fn failed_step_restores_the_optimizer_state() -> TestResult {
    // Features of 1e20: the loss (mean absolute error, ~1e20) and the gradient (~1e20) are
    // finite in f32, but Adam's second moment takes g² = 1e40, which is not: v becomes
    // infinite while the update m/(√v + ε) = 0 leaves the weights finite. The step must be
    // refused and v put back, or every later step of these weights would be frozen at 0.
    let (x, y) = good_data();
    let mut reference = regressor(3);
    reference.fit(&(x.view(), y.view()), quiet().shuffle(false).epochs(2))?;

    let mut model = regressor(3);
    let before = weight_bits(&model);
    let huge = Array2::from_elem((1, 2), 1e20_f32);
    let target = Array1::from_elem(1, 0.0_f32);
    let err = model
        .fit(&(huge.view(), target.view()), quiet().batch_size(1))
        .unwrap_err();
    assert!(
        matches!(
            &err,
            NnError::NonFiniteParameter {
                in_optimizer_state: true,
                epoch: 1,
                step: 1,
                value,
                ..
            } if value.is_infinite()
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("(its optimizer state)"), "{err}");
    assert_eq!(weight_bits(&model), before);
    assert_eq!(model.steps_taken(), 0);
    // Training on from the refused step gives the bits of a model that never took it: the
    // moments hold nothing of the failed step.
    model.fit(&(x.view(), y.view()), quiet().shuffle(false).epochs(2))?;
    assert_eq!(weight_bits(&model), weight_bits(&reference));
    Ok(())
}

/// The bytes of a safetensors file holding `tensors` (f32, little-endian) with `metadata`.
fn safetensors_bytes(
    tensors: &[(&str, Vec<usize>, Vec<f32>)],
    metadata: Option<std::collections::HashMap<String, String>>,
) -> Vec<u8> {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let views = tensors.iter().zip(&bytes).map(|((name, shape, _), b)| {
        let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), b)
            .unwrap();
        (*name, view)
    });
    safetensors::serialize(views, &metadata).unwrap()
}

#[test]
fn checkpoint_with_nan_loads_nothing() -> TestResult {
    let dir = Scratch::new("ckpt-nan");
    let mut model = regressor(1);
    let before = weight_bits(&model);
    for (bad, shown) in [(f32::NAN, "NaN"), (f32::NEG_INFINITY, "-inf")] {
        let file = safetensors_bytes(
            &[
                ("dense_1/kernel", vec![2, 1], vec![0.5, bad]),
                ("dense_1/bias", vec![1], vec![0.0]),
            ],
            None,
        );
        let path = dir.write("bad.safetensors", &file);
        let err = model.load_weights(&path).unwrap_err();
        assert!(
            matches!(&err, NnError::NonFiniteCheckpoint { name, index: 1, .. } if name == "dense_1/kernel"),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "{}: tensor `dense_1/kernel` holds {shown} at element 1 (row-major); a checkpoint \
                 must hold finite weights, nothing was loaded",
                path.display()
            )
        );
        assert_eq!(weight_bits(&model), before);
    }
    Ok(())
}

#[test]
fn checkpoint_longer_than_its_tensors_can_make_it_is_refused_unread() -> TestResult {
    let dir = Scratch::new("ckpt-long-header");
    let mut model = regressor(1);
    let tensors = [
        ("dense_1/kernel", vec![2, 1], vec![0.5, 0.25]),
        ("dense_1/bias", vec![1], vec![0.0]),
    ];
    // Foreign metadata of ordinary size (PyTorch writes {"format": "pt"}) is accepted...
    let small = [("format".to_owned(), "pt".to_owned())].into();
    let path = dir.write("pt.safetensors", &safetensors_bytes(&tensors, Some(small)));
    model.load_weights(&path)?;
    // ...but a header of 1 MB for two tensors of 3 numbers is refused before it is read.
    let huge = [("padding".to_owned(), "x".repeat(1 << 20))].into();
    let path = dir.write("long.safetensors", &safetensors_bytes(&tensors, Some(huge)));
    let before = weight_bits(&model);
    let err = model.load_weights(&path).unwrap_err();
    assert!(
        matches!(&err, NnError::CorruptCheckpoint { reason, .. }
            if reason.starts_with("the header claims 10487") && reason.contains("more than the 659")),
        "{err:?}"
    );
    // ...and so is a checkpoint whose data runs on past what the model's tensors take.
    let mut long = safetensors_bytes(&tensors, None);
    let exact = long.len() as u64;
    long.extend_from_slice(&[0; 4]);
    let path = dir.write("trailing.safetensors", &long);
    let err = model.load_weights(&path).unwrap_err();
    assert!(
        matches!(&err, NnError::FileTooLarge { len, limit, .. } if *len == exact + 4 && *limit == exact),
        "{err:?}"
    );
    assert_eq!(weight_bits(&model), before);
    Ok(())
}

#[test]
fn refused_loss_or_metric_adds_no_node() -> TestResult {
    let mut g = Graph::<f32>::new();
    let z = g.input("z", [None, Some(3)])?;
    let probs = Activation::Softmax.apply(&mut g, z)?;
    let labels = g.input("labels", [None])?;
    // Logits from another graph (far past this graph's nodes): the sparse cross-entropy
    // adds its one-hot of the labels before it reaches them, and is refused there.
    let mut other = Graph::<f32>::new();
    let mut foreign = other.input("x0", [None, Some(3)])?;
    for i in 1..50 {
        foreign = other.input(&format!("x{i}"), [None, Some(3)])?;
    }
    let nodes = LayerNodes::new(probs).with_pre_activation(foreign, Activation::Softmax);
    let count = g.node_count();
    let err = Loss::SparseCategoricalCrossentropy
        .build(&mut g, &nodes, labels)
        .unwrap_err();
    assert!(matches!(err, NnError::Graph(_)), "{err:?}");
    assert_eq!(g.node_count(), count, "the refused loss left nodes behind");
    // Binary accuracy adds its threshold and comparison before it meets the foreign target.
    let plain = LayerNodes::new(probs);
    let err = Metric::BinaryAccuracy
        .build(&mut g, &plain, foreign)
        .unwrap_err();
    assert!(matches!(err, NnError::Graph(_)), "{err:?}");
    assert_eq!(
        g.node_count(),
        count,
        "the refused metric left nodes behind"
    );
    Ok(())
}
