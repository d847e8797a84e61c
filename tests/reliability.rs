//! Reliability as a tested property: every class of bad input gets a clear, typed error and
//! loses nothing; files are validated before they are trusted and written atomically; the same
//! seed gives the same bits on one thread or two.
//!
//! Each test is a row of the table in the book's chapter "Reliability"
//! (`docs/src/reliability.md`), under the same name. Each checks the error's variant *and* its
//! message. This file holds the rows about graphs, feeds, training data and configuration, and
//! a loss that stops being finite; the modules hold the rest:
//!
//! - `reliability/files.rs`: checkpoints, IDX and gzip files, the data directory, and the
//!   `mnist` example given bad data;
//! - `reliability/disk.rs`: atomic checkpoint writes;
//! - `reliability/determinism.rs`: bit-identical runs, two threads at once, `Send`;
//! - `reliability/fuzz.rs`: random and mutated bytes for the IDX and checkpoint readers,
//!   random feeds for a plan; readers allocate no more than the file justifies;
//! - `reliability/hardening.rs`: the model's side of issue 12: parameter counts that overflow,
//!   layers too large for memory, NaN and infinities in data and weights;
//! - `reliability/rollback.rs`: a refused step restores the optimizer's state, a checkpoint
//!   holding NaN or a header longer than its tensors' entries loads nothing, a refused loss or
//!   metric adds no node;
//! - `reliability/configuration.rs`: configuration and metrics checked where they are given,
//!   binary cross-entropy targets, errors in validation data.
//!
//! Run with `cargo test --release --test reliability`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::result_large_err
)]

// A crate root finds its modules beside it, so the helpers under `reliability/` are named by
// path (a `reliability/main.rs` would make Cargo build a second test target).
#[path = "reliability/common.rs"]
mod common;
#[path = "reliability/configuration.rs"]
mod configuration;
#[path = "reliability/determinism.rs"]
mod determinism;
#[path = "reliability/disk.rs"]
mod disk;
#[path = "reliability/files.rs"]
mod files;
#[path = "reliability/fuzz.rs"]
mod fuzz;
#[path = "reliability/hardening.rs"]
mod hardening;
#[path = "reliability/rollback.rs"]
mod rollback;

/// Records the largest single allocation, for the tests of files that lie about their size.
#[global_allocator]
static ALLOCATOR: dendrite_test_support::alloc::Tracking = dendrite_test_support::alloc::Tracking;

use common::{classifier, idx_labels, quiet, weight_bits};
use dendrite_graph::{compile, Graph, GraphError};
use dendrite_nn::data::{parse_idx_labels, synthetic_digits, DataError, Dataset, EpochOrder};
use dendrite_nn::{Activation, Dense, Loss, NnError, Sequential, Sgd};
use ndarray::{array, s, Array1, Array2};
use std::error::Error;

type TestResult = Result<(), Box<dyn Error>>;

// ---------------------------------------------------------------------------------------------
// Building and running graphs.

#[test]
fn shape_mismatch_when_building() -> TestResult {
    let mut g = Graph::<f32>::new();
    let x = g.input("x", [None, Some(784)])?;
    let w = g.input("w", [32, 10])?;
    let nodes = g.node_count();
    let err = g.with_scope("dense_1", |g| g.matmul(x, w)).unwrap_err();
    assert!(
        matches!(&err, GraphError::IncompatibleShapes { op: "matmul", node, .. } if node == "dense_1/matmul"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "matmul `dense_1/matmul`: inner dimensions differ: lhs [?, 784] vs rhs [32, 10]"
    );
    let a = g.input("a", [2, 3])?;
    let b = g.input("b", [4])?;
    let err = g.add(a, b).unwrap_err();
    assert_eq!(
        err.to_string(),
        "add `add`: shapes do not broadcast: lhs [2, 3] vs rhs [4]"
    );
    // A refused node is not added.
    assert_eq!(g.node_count(), nodes + 2);
    Ok(())
}

#[test]
fn node_from_another_graph() -> TestResult {
    let mut a = Graph::<f32>::new();
    let x = a.input("x", [3])?;
    let y = a.exp(x)?;
    let mut b = Graph::<f32>::new();
    let err = b.exp(x).unwrap_err();
    assert_eq!(
        err,
        GraphError::ForeignNode {
            index: 0,
            node_graph: a.id(),
            graph: b.id()
        }
    );
    assert_eq!(
        err.to_string(),
        format!(
            "node #0 belongs to graph {}, not to graph {}",
            a.id(),
            b.id()
        )
    );
    // Compiling a foreign fetch, or running a plan with another graph, is refused too.
    assert!(matches!(
        compile(&b, &[y]),
        Err(GraphError::ForeignNode { index: 1, .. })
    ));
    let mut plan = compile(&a, &[y])?;
    let err = plan.run(&b, &[]).unwrap_err();
    assert!(matches!(err, GraphError::PlanGraphMismatch { .. }));
    assert_eq!(
        err.to_string(),
        format!(
            "plan was compiled from graph {} but run with graph {}",
            a.id(),
            b.id()
        )
    );
    Ok(())
}

/// `x + y` for two inputs of shape `[?, 3]`, and a plan for it.
fn sum_graph() -> Result<(Graph<f32>, dendrite_graph::Plan<f32>), GraphError> {
    let mut g = Graph::<f32>::new();
    let x = g.input("x", [None, Some(3)])?;
    let y = g.input("y", [None, Some(3)])?;
    let sum = g.add(x, y)?;
    let plan = compile(&g, &[sum])?;
    Ok((g, plan))
}

#[test]
fn missing_feed() -> TestResult {
    let (g, mut plan) = sum_graph()?;
    let two = Array2::<f32>::zeros((2, 3)).into_dyn();
    let err = plan.run(&g, &[("x", two.view())]).unwrap_err();
    assert!(matches!(&err, GraphError::MissingFeed { input, .. } if input == "y"));
    assert_eq!(
        err.to_string(),
        "missing feed for input `y` of shape [?, 3]"
    );
    Ok(())
}

#[test]
fn unknown_feed_name() -> TestResult {
    let (g, mut plan) = sum_graph()?;
    let two = Array2::<f32>::zeros((2, 3)).into_dyn();
    let feeds = [("x", two.view()), ("Y", two.view())];
    let err = plan.run(&g, &feeds).unwrap_err();
    assert!(matches!(&err, GraphError::UnknownFeed { name } if name == "Y"));
    assert_eq!(err.to_string(), "feed `Y` matches no input of this graph");
    Ok(())
}

#[test]
fn feed_of_the_wrong_shape() -> TestResult {
    let (g, mut plan) = sum_graph()?;
    let two = Array2::<f32>::zeros((2, 3)).into_dyn();
    let wide = Array2::<f32>::zeros((2, 4)).into_dyn();
    let flat = Array1::<f32>::zeros(3).into_dyn();
    let err = plan
        .run(&g, &[("x", wide.view()), ("y", two.view())])
        .unwrap_err();
    assert!(matches!(&err, GraphError::FeedShape { input, .. } if input == "x"));
    assert_eq!(
        err.to_string(),
        "feed for input `x` has shape [2, 4], expected [?, 3]"
    );
    let err = plan
        .run(&g, &[("x", two.view()), ("y", flat.view())])
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "feed for input `y` has shape [3], expected [?, 3]"
    );
    // Two feeds that fit their declarations but not each other are caught when the op runs.
    let four = Array2::<f32>::zeros((4, 3)).into_dyn();
    let err = plan
        .run(&g, &[("x", two.view()), ("y", four.view())])
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "add `add`: shapes do not broadcast: lhs [2, 3] vs rhs [4, 3]"
    );
    Ok(())
}

#[test]
fn non_finite_feed_when_checked() -> TestResult {
    let (g, plan) = sum_graph()?;
    let ok = Array2::<f32>::zeros((2, 3)).into_dyn();
    let mut nan = ok.clone();
    nan[[1, 1]] = f32::NAN;
    let mut inf = ok.clone();
    inf[[0, 2]] = f32::NEG_INFINITY;

    // Off by default: NaN flows through, as in every framework.
    let mut unchecked = plan.clone();
    let out = unchecked.run(&g, &[("x", nan.view()), ("y", ok.view())])?;
    assert!(out.get(0)?[[1, 1]].is_nan());

    let mut checked = plan.check_finite_feeds(true);
    let err = checked
        .run(&g, &[("x", nan.view()), ("y", ok.view())])
        .unwrap_err();
    assert!(
        matches!(&err, GraphError::NonFiniteFeed { input, index: 4, value } if input == "x" && value.is_nan())
    );
    assert_eq!(
        err.to_string(),
        "feed for input `x` holds a non-finite value NaN at flat index 4"
    );
    let err = checked
        .run(&g, &[("x", ok.view()), ("y", inf.view())])
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "feed for input `y` holds a non-finite value -inf at flat index 2"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Training data and configuration. A refused `fit` trains nothing.

#[test]
fn labels_out_of_range() -> TestResult {
    let mut model = classifier(0, 2, 4, 3);
    let before = weight_bits(&model);
    let x = Array2::<f32>::zeros((4, 2));
    let y = array![0.0_f32, 2.0, 3.0, 1.0];
    let err = model.fit(&(x.view(), y.view()), quiet()).unwrap_err();
    assert!(matches!(
        err,
        NnError::LabelOutOfRange {
            index: 2,
            label: 3.0,
            classes: 3
        }
    ));
    assert_eq!(
        err.to_string(),
        "label 3 at sample 2 is not a class index in 0..3"
    );
    let fractional = array![0.0_f32, 1.5, 0.0, 1.0];
    let err = model
        .fit(&(x.view(), fractional.view()), quiet())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "label 1.5 at sample 1 is not a class index in 0..3"
    );
    assert_eq!(weight_bits(&model), before);
    assert_eq!(model.steps_taken(), 0);

    // In a label file, and in a dataset built by hand.
    let err = parse_idx_labels(&idx_labels(3, &[1, 10, 2])).unwrap_err();
    assert!(matches!(
        err,
        DataError::LabelOutOfRange {
            index: 1,
            value: 10,
            classes: 10,
            ..
        }
    ));
    assert_eq!(
        err.to_string(),
        "<memory>: label 10 at index 1 is out of range (must be < 10)"
    );
    let err = Dataset::new(vec![0; 2], vec![0, 2], 1, 1, 2).unwrap_err();
    assert_eq!(
        err.to_string(),
        "<memory>: label 2 at index 1 is out of range (must be < 2)"
    );
    Ok(())
}

#[test]
fn x_and_y_of_different_lengths() -> TestResult {
    let mut model = classifier(0, 2, 4, 2);
    let before = weight_bits(&model);
    let x = Array2::<f32>::zeros((5, 2));
    let y = Array1::<f32>::zeros(4);
    let err = model.fit(&(x.view(), y.view()), quiet()).unwrap_err();
    assert!(matches!(err, NnError::LengthMismatch { x: 5, y: 4 }));
    assert_eq!(
        err.to_string(),
        "x has 5 samples but y has 4: they must have one target per sample"
    );
    assert!(matches!(
        model.evaluate(&(x.view(), y.view()), 8),
        Err(NnError::LengthMismatch { x: 5, y: 4 })
    ));
    assert_eq!(weight_bits(&model), before);

    // Images and labels of a dataset.
    let err = Dataset::new(vec![0; 6], vec![0, 1], 1, 2, 2).unwrap_err();
    assert!(matches!(
        err,
        DataError::CountMismatch {
            images: 3,
            labels: 2,
            ..
        }
    ));
    assert_eq!(
        err.to_string(),
        "<memory> holds 3 images but <memory> holds 2 labels"
    );
    Ok(())
}

#[test]
fn empty_dataset() -> TestResult {
    let mut model = classifier(0, 2, 4, 2);
    let x = Array2::<f32>::zeros((0, 2));
    let y = Array1::<f32>::zeros(0);
    let empty = (x.view(), y.view());
    let err = model.fit(&empty, quiet()).unwrap_err();
    assert!(matches!(err, NnError::EmptyDataset { what: "training" }));
    assert_eq!(
        err.to_string(),
        "the training data are empty: at least one sample is needed"
    );
    let err = model.evaluate(&empty, 8).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the evaluation data are empty: at least one sample is needed"
    );
    let (xs, ys) = (Array2::<f32>::zeros((4, 2)), Array1::<f32>::zeros(4));
    let err = model
        .fit(&(xs.view(), ys.view()), quiet().validation_data(&empty))
        .unwrap_err();
    assert!(matches!(err, NnError::EmptyDataset { what: "validation" }));

    // An empty `Dataset` (here a slice of none of the synthetic digits).
    let mut digits = classifier(0, 784, 4, 10);
    let err = digits
        .fit(&synthetic_digits(10, 0)?.take(0), quiet())
        .unwrap_err();
    assert!(matches!(err, NnError::EmptyDataset { what: "training" }));
    assert_eq!(model.steps_taken() + digits.steps_taken(), 0);
    Ok(())
}

#[test]
fn batch_size_zero() -> TestResult {
    let mut model = classifier(0, 2, 4, 2);
    let (x, y) = (Array2::<f32>::zeros((4, 2)), Array1::<f32>::zeros(4));
    let data = (x.view(), y.view());
    let err = model.fit(&data, quiet().batch_size(0)).unwrap_err();
    assert!(matches!(err, NnError::ZeroBatchSize));
    assert_eq!(err.to_string(), "batch size must be at least 1, got 0");
    assert!(matches!(
        model.evaluate(&data, 0),
        Err(NnError::ZeroBatchSize)
    ));
    assert!(matches!(
        model.predict(&x.view(), 0),
        Err(NnError::ZeroBatchSize)
    ));
    // The batching of the data module says the same.
    let err = EpochOrder::new(4, 0)?.batches(0).unwrap_err();
    assert!(matches!(err, DataError::ZeroBatchSize));
    assert_eq!(err.to_string(), "batch size must be at least 1, got 0");
    assert_eq!(model.steps_taken(), 0);
    Ok(())
}

#[test]
fn epochs_zero() -> TestResult {
    let mut model = classifier(0, 2, 4, 2);
    let before = weight_bits(&model);
    let (x, y) = (Array2::<f32>::zeros((4, 2)), Array1::<f32>::zeros(4));
    let err = model
        .fit(&(x.view(), y.view()), quiet().epochs(0))
        .unwrap_err();
    assert!(matches!(err, NnError::ZeroEpochs));
    assert_eq!(err.to_string(), "epochs must be at least 1, got 0");
    assert_eq!(weight_bits(&model), before);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// A loss that stops being finite.

// ANCHOR: non_finite_loss
/// Linear regression that plain SGD with learning rate 1 makes diverge: with x = 1 each step
/// multiplies the residual by -3, so the squared error grows 9-fold per step until it
/// overflows f32, many epochs in, from perfectly finite data.
fn diverging() -> Sequential {
    let mut model = Sequential::new().with_seed(4);
    model.add(Dense::new(1).input_dim(1));
    model
        .compile(Sgd::new(1.0), Loss::MeanSquaredError, &[])
        .unwrap();
    model
}

#[test]
fn non_finite_loss_stops_fit() -> TestResult {
    let (x, y) = (
        Array2::<f32>::ones((4, 1)),
        Array1::<f32>::from_elem(4, 2.0),
    );
    let config = || quiet().epochs(100).batch_size(1).shuffle(false);
    let mut model = diverging();
    let err = model.fit(&(x.view(), y.view()), config()).unwrap_err();
    let NnError::NonFiniteLoss { epoch, step, value } = err else {
        panic!("expected NonFiniteLoss, got {err}");
    };
    assert!(epoch > 1 && value == f64::INFINITY, "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "loss became inf at epoch {epoch}, step {step}; training stopped and the weights \
                 are those after the last finite step"
        )
    );
    // Every finite step was taken, and the failing one was not applied...
    let finite_steps = (epoch - 1) * 4 + (step - 1);
    assert_eq!(model.steps_taken(), finite_steps as u64);
    // ...so replaying exactly those steps on a fresh model gives the same bits.
    let mut replay = diverging();
    if epoch > 1 {
        replay.fit(&(x.view(), y.view()), config().epochs(epoch - 1))?;
    }
    if step > 1 {
        let (xs, ys) = (x.slice(s![..step - 1, ..]), y.slice(s![..step - 1]));
        replay.fit(&(xs, ys), config().epochs(1))?;
    }
    assert_eq!(replay.steps_taken(), model.steps_taken());
    assert_eq!(weight_bits(&replay), weight_bits(&model));
    assert!(model
        .weights()?
        .iter()
        .all(|(_, w)| w.iter().all(|v| v.is_finite())));
    Ok(())
}
// ANCHOR_END: non_finite_loss

#[test]
fn nan_loss_names_epoch_and_step() -> TestResult {
    // Sample 2 holds a NaN: with the data check off (it would refuse the data before any
    // step), the third step (batch size 1, no shuffling) fails.
    let x = array![[1.0_f32], [0.0], [f32::NAN], [1.0]];
    let y = array![1.0_f32, 0.0, 1.0, 0.0];
    let mut model = Sequential::new().with_seed(1).with_finite_check(false);
    model.add(Dense::new(1).input_dim(1).activation(Activation::Sigmoid));
    model.compile(Sgd::new(0.1), Loss::BinaryCrossentropy, &[])?;
    let config = quiet().epochs(3).batch_size(1).shuffle(false);
    let err = model.fit(&(x.view(), y.view()), config).unwrap_err();
    assert!(matches!(err, NnError::NonFiniteLoss { epoch: 1, step: 3, value } if value.is_nan()));
    assert_eq!(
        err.to_string(),
        "loss became NaN at epoch 1, step 3; training stopped and the \
                                 weights are those after the last finite step"
    );
    assert_eq!(model.steps_taken(), 2);
    Ok(())
}
