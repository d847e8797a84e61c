//! Determinism and threads: the same seed gives the same bits (initial weights, epoch orders,
//! losses, final weights, predictions), whatever thread count `fit` uses, and whether models
//! train one after the other or on two threads at once; models, graphs and plans are `Send`.

use crate::common::{f64_bits, quiet, weight_bits};
use dendrite_graph::{compile, Graph, Plan};
use dendrite_nn::data::{shuffled_indices, synthetic_digits, Dataset};
use dendrite_nn::{Activation, Adam, Dense, Loss, Metric, Sequential};
use std::sync::Barrier;

// ANCHOR: send
// Checked when the test compiles: each of these can move to another thread.
const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<Sequential<f32>>();
    assert_send::<Sequential<f64>>();
    assert_send::<Graph<f32>>();
    assert_send::<Plan<f32>>();
    assert_send::<Dataset>();
};
// ANCHOR_END: send

/// Everything a run produces, as bit patterns.
#[derive(Debug, PartialEq, Eq)]
struct Run {
    initial: Vec<(String, Vec<u32>)>,
    orders: Vec<Vec<usize>>,
    losses: Vec<u64>,
    val_losses: Vec<u64>,
    trained: Vec<(String, Vec<u32>)>,
    predictions: Vec<u32>,
}

/// A small MNIST-shaped classifier trained for two shuffled epochs with a validation split,
/// `fit` using its default thread count.
fn run(seed: u64, data: &Dataset) -> Run {
    run_with_threads(seed, data, 0)
}

/// [`run`] with `fit` on `threads` threads (0: the default).
fn run_with_threads(seed: u64, data: &Dataset, threads: usize) -> Run {
    let mut model = Sequential::new().with_seed(seed);
    model.add(Dense::new(16).input_dim(784).activation(Activation::Relu));
    model.add(Dense::new(10).activation(Activation::Softmax));
    model
        .compile(
            Adam::default(),
            Loss::SparseCategoricalCrossentropy,
            &[Metric::Accuracy],
        )
        .unwrap();
    let initial = weight_bits(&model);
    let epochs = 2;
    let config = quiet()
        .epochs(epochs)
        .batch_size(32)
        .seed(seed)
        .validation_split(0.2)
        .threads(threads);
    let history = model.fit(data, config).unwrap();
    // The orders `fit` used: epoch e of a run seeded s is `shuffled_indices(n, s, e)`.
    let train_len = data.len() * 4 / 5;
    let orders = (0..epochs as u64)
        .map(|e| shuffled_indices(train_len, seed, e).unwrap())
        .collect();
    let predictions = model.predict(&data.take(50), 64).unwrap();
    Run {
        initial,
        orders,
        losses: f64_bits(&history.loss),
        val_losses: f64_bits(&history.val_loss),
        trained: weight_bits(&model),
        predictions: predictions.iter().map(|v| v.to_bits()).collect(),
    }
}

// ANCHOR: determinism
#[test]
fn same_seed_gives_bit_identical_runs() {
    let data = synthetic_digits(1000, 3).unwrap();
    let a = run(7, &data);
    let b = run(7, &data);
    assert_eq!(a, b);
    // The orders are permutations, and differ from epoch to epoch.
    let mut sorted = a.orders[0].clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..800).collect::<Vec<_>>());
    assert_ne!(a.orders[0], a.orders[1]);
    // Another seed changes everything.
    let c = run(8, &data);
    assert_ne!(a.initial, c.initial);
    assert_ne!(a.orders, c.orders);
    assert_ne!(a.losses, c.losses);
}

#[test]
fn thread_count_does_not_change_a_bit() {
    // With 2 threads a second thread gathers each batch's bytes one step ahead (the default
    // path, when the machine has 2 cores); with 1 the training thread does it all. The floats
    // must not notice, the ragged last batch included (808 = 25 * 32 + 8 training samples).
    let data = synthetic_digits(1010, 9).unwrap();
    let one = run_with_threads(11, &data, 1);
    let two = run_with_threads(11, &data, 2);
    let three = run_with_threads(11, &data, 3);
    assert_eq!(one, two);
    assert_eq!(one, three);
}

#[test]
fn two_models_on_two_threads_match_one_after_the_other() {
    let data = synthetic_digits(1000, 4).unwrap();
    let seeds = [5, 6];
    let one_after_the_other: Vec<Run> = seeds.iter().map(|&s| run(s, &data)).collect();
    let barrier = Barrier::new(seeds.len());
    let at_once: Vec<Run> = std::thread::scope(|scope| {
        let handles: Vec<_> = seeds
            .iter()
            .map(|&seed| {
                let (data, barrier) = (&data, &barrier);
                scope.spawn(move || {
                    barrier.wait(); // both start together
                    run(seed, data)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(at_once, one_after_the_other);
}
// ANCHOR_END: determinism

#[test]
fn models_and_plans_move_to_other_threads() {
    let mut g = Graph::<f32>::new();
    let x = g.input("x", [None, Some(2)]).unwrap();
    let w = g
        .parameter("w", ndarray::array![[1.0_f32, -1.0], [0.5, 2.0]].into_dyn())
        .unwrap();
    let xw = g.matmul(x, w).unwrap();
    let y = g.tanh(xw).unwrap();
    let mut plan = compile(&g, &[y]).unwrap();
    let feed = ndarray::array![[0.25_f32, -0.75], [1.0, 2.0]].into_dyn();
    let here: Vec<u32> = plan
        .run(&g, &[("x", feed.view())])
        .unwrap()
        .get(0)
        .unwrap()
        .iter()
        .map(|v| v.to_bits())
        .collect();
    let there = std::thread::spawn(move || {
        let out = plan.run(&g, &[("x", feed.view())]).unwrap();
        out.get(0)
            .unwrap()
            .iter()
            .map(|v| v.to_bits())
            .collect::<Vec<u32>>()
    })
    .join()
    .unwrap();
    assert_eq!(here, there);

    // A compiled model moves too, and comes back with its weights.
    let mut model = Sequential::new().with_seed(3);
    model.add(Dense::new(2).input_dim(2));
    model.build().unwrap();
    let before = weight_bits(&model);
    let model = std::thread::spawn(move || model).join().unwrap();
    assert_eq!(weight_bits(&model), before);
}
