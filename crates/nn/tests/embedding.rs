//! Embedding: hand-derived lookups and gradients, gradients checked in f64 over random tables
//! and indices, parameter counts, index errors naming the sample and position through
//! `predict`, `fit` and `evaluate`, training, model files.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dendrite_autodiff::check::{check_gradients, check_second_order, CheckConfig};
use dendrite_autodiff::strategies::values_in;
use dendrite_graph::{compile, Graph};
use dendrite_nn::{
    Activation, Adam, Dense, Embedding, FitConfig, Flatten, Init, Initializer, Layer, Loss, Metric,
    NnError, Sequential,
};
use ndarray::{Array1, Array2, ArrayD, IxDyn};
use proptest::prelude::*;

/// A model whose table row `i` is `[i, 10 i]`, looking up samples of three indices.
fn table_model() -> Sequential<f64> {
    let mut m = Sequential::<f64>::default();
    m.add(Embedding::new(4, 2).input_length(3));
    m.add(Flatten::new());
    m.build().unwrap();
    let table = Array2::from_shape_fn((4, 2), |(i, k)| i as f64 * [1.0, 10.0][k]);
    m.set_weights(&[table.into_dyn()]).unwrap();
    m
}

/// Indices [3, 0, 3] pick rows 3, 0 and 3: [3, 30], [0, 0], [3, 30]; [1, 2, 1] gives
/// [1, 10], [2, 20], [1, 10].
#[test]
fn each_index_picks_its_row() {
    let mut m = table_model();
    let x = ndarray::arr2(&[[3.0, 0.0, 3.0], [1.0, 2.0, 1.0]]);
    let p = m.predict(&x.view(), 2).unwrap();
    assert_eq!(
        p,
        ndarray::arr2(&[
            [3.0, 30.0, 0.0, 0.0, 3.0, 30.0],
            [1.0, 10.0, 2.0, 20.0, 1.0, 10.0]
        ])
    );
}

/// `L = sum(y)` over the lookups of [[3, 0, 3]]: dL/dE[i, k] counts how often row i was read
/// (the gradient is a scatter-add of ones): row 3 twice, row 0 once, rows 1 and 2 never.
#[test]
fn the_gradient_counts_each_row_s_lookups() {
    let mut g = Graph::<f64>::new();
    let ids = g.input("ids", [None, Some(3)]).unwrap();
    let nodes = g
        .with_scope("embedding", |g| {
            Embedding::new(4, 2).build(g, ids, &[3], &mut Init::new(0))
        })
        .unwrap();
    let loss = g.sum_all(nodes.output).unwrap();
    let grads = dendrite_autodiff::grad(&mut g, loss, &nodes.parameters).unwrap();
    let mut plan = compile(&g, &grads).unwrap();
    let x = ndarray::arr2(&[[3.0, 0.0, 3.0]]).into_dyn();
    let out = plan.run(&g, &[("ids", x.view())]).unwrap();
    assert_eq!(
        out.get(0).unwrap().iter().copied().collect::<Vec<_>>(),
        [1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 2.0, 2.0]
    );
}

#[test]
fn the_summary_counts_the_table() {
    let mut m = Sequential::<f32>::default();
    m.add(Embedding::new(1000, 64).input_length(10));
    m.add(Flatten::new());
    m.add(Dense::new(1));
    let s = m.summary().unwrap();
    assert_eq!(s.total_params(), 64_000 + 640 + 1);
    let text = s.to_string();
    assert!(text.contains("(None, 10, 64)"), "{text}");
    assert!(text.contains("64,000") || text.contains("64000"), "{text}");
    assert_eq!(
        Layer::<f32>::output_shape(&Embedding::new(5, 3), &[2, 4]).unwrap(),
        vec![2, 4, 3]
    );
    assert_eq!(
        Layer::<f32>::param_count(&Embedding::new(usize::MAX, 2), &[1]),
        None
    );
    for bad in [Embedding::new(0, 2), Embedding::new(3, 0)] {
        assert!(Layer::<f32>::output_shape(&bad, &[3]).is_err());
    }
    assert!(Layer::<f32>::output_shape(&Embedding::new(3, 2), &[0]).is_err());
}

/// The default table is Keras' uniform in [-0.05, 0.05), drawn from the model's seed.
#[test]
fn the_table_starts_small_and_seeded() {
    let weights = |seed| {
        let mut m = Sequential::<f32>::default().with_seed(seed);
        m.add(Embedding::new(50, 8).input_length(2));
        m.add(Flatten::new());
        m.build().unwrap();
        m.get_weights().unwrap().remove(0)
    };
    let w = weights(1);
    assert_eq!(w.shape(), &[50, 8]);
    assert!(w.iter().all(|v| (-0.05..0.05).contains(v)));
    assert!(w.iter().any(|v| v.abs() > 0.02));
    assert_eq!(w, weights(1));
    assert_ne!(w, weights(2));
}

fn expect_index_error(err: NnError, sample: usize, position: usize, value: f64) {
    match err {
        NnError::EmbeddingIndex {
            layer,
            sample: s,
            position: p,
            value: v,
            input_dim,
        } => {
            assert_eq!(
                (layer.as_str(), s, p, input_dim),
                ("tokens", sample, position, 4)
            );
            assert_eq!(v.to_bits(), value.to_bits());
        }
        other => panic!("unexpected {other:?}"),
    }
}

/// Negative, fractional and too large indices stop predict, evaluate and fit with an error
/// naming the layer, the sample's row in the batch and the position within the sample.
#[test]
fn bad_indices_are_typed_errors_naming_sample_and_position() {
    let mut m = Sequential::<f32>::default();
    m.add(Embedding::new(4, 2).input_length(3).named("tokens"));
    m.add(Flatten::new());
    m.add(Dense::new(2).activation(Activation::Softmax));
    m.compile(
        Adam::default(),
        Loss::SparseCategoricalCrossentropy,
        &[Metric::Accuracy],
    )
    .unwrap();
    let y = Array1::<f32>::zeros(3);
    for (bad, at) in [(4.0, 1), (-1.0, 2), (1.5, 0), (100.0, 2)] {
        let mut x = Array2::<f32>::from_elem((3, 3), 1.0);
        x[[2, at]] = bad;
        let err = m.predict(&x.view(), 8).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "layer `tokens`: sample 2 of the batch holds {bad} at position {at}, which is not an index in 0..4"
            )
        );
        expect_index_error(err, 2, at, f64::from(bad));
        // In batches of two, sample 2 is row 0 of the second batch.
        expect_index_error(m.predict(&x.view(), 2).unwrap_err(), 0, at, f64::from(bad));
        let err = m.evaluate(&(x.view(), y.view()), 8).unwrap_err();
        expect_index_error(err, 2, at, f64::from(bad));
        let fit = FitConfig::default()
            .epochs(1)
            .batch_size(8)
            .shuffle(false)
            .verbosity(0);
        let err = m.fit(&(x.view(), y.view()), fit).unwrap_err();
        expect_index_error(err, 2, at, f64::from(bad));
    }
}

fn case() -> impl Strategy<Value = (usize, usize, ArrayD<f64>, ArrayD<f64>, u64)> {
    (1usize..=5, 1usize..=3, 1usize..=3, 1usize..=4, any::<u64>()).prop_flat_map(
        |(input_dim, output_dim, batch, length, seed)| {
            let ids = proptest::collection::vec(0..input_dim, batch * length).prop_map(move |v| {
                ArrayD::from_shape_vec(
                    IxDyn(&[batch, length]),
                    v.into_iter().map(|i| i as f64).collect(),
                )
                .unwrap()
            });
            (
                Just(input_dim),
                Just(output_dim),
                ids,
                values_in(vec![input_dim, output_dim], -1.0..1.0),
                Just(seed),
            )
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, failure_persistence: None, ..ProptestConfig::default() })]

    /// Gradients of `tanh(lookup)` (a non-linear function of the table, so that second order
    /// means something) with respect to the table, first and second order, against central
    /// differences in f64, for random tables and indices (repeats included).
    #[test]
    fn gradients_pass_the_checker((input_dim, output_dim, ids, table, seed) in case()) {
        for order in [1, 2] {
            let mut g = Graph::<f64>::new();
            let xi = g.input("ids", ids.shape()).unwrap();
            let mut layer = Embedding::new(input_dim, output_dim)
                .embeddings_initializer(Initializer::Zeros);
            let nodes = layer.build(&mut g, xi, &ids.shape()[1..], &mut Init::new(seed)).unwrap();
            g.set_parameter(nodes.parameters[0], table.view()).unwrap();
            let y = g.tanh(nodes.output).unwrap();
            let feeds = [("ids", ids.view())];
            let config = CheckConfig::default().with_seed(seed);
            let report = match order {
                1 => check_gradients(&mut g, y, &nodes.parameters, &feeds, &config),
                _ => check_second_order(&mut g, y, &nodes.parameters, &feeds, &config),
            }
            .unwrap();
            prop_assert!(report.passed(), "order {order}: {report}");
        }
    }
}

/// Samples of three tokens out of ten, labelled by whether the first token is below 5: an
/// embedding, a flatten and a softmax learn it, the loss falls.
#[test]
fn a_model_with_an_embedding_trains() {
    let n = 256;
    let x = Array2::from_shape_fn((n, 3), |(i, j)| ((i * 7 + j * 3 + i / 10) % 10) as f32);
    let y = Array1::from_shape_fn(n, |i| f32::from(u8::from(x[[i, 0]] < 5.0)));
    let mut m = Sequential::<f32>::default().with_seed(4);
    m.add(Embedding::new(10, 4).input_length(3));
    m.add(Flatten::new());
    m.add(Dense::new(2).activation(Activation::Softmax));
    m.compile(
        Adam::new(1e-2),
        Loss::SparseCategoricalCrossentropy,
        &[Metric::Accuracy],
    )
    .unwrap();
    let h = m
        .fit(
            &(x.view(), y.view()),
            FitConfig::default().epochs(5).batch_size(32).verbosity(0),
        )
        .unwrap();
    let loss = h.metric("loss").unwrap();
    assert!(loss[4] < loss[0], "loss did not fall: {loss:?}");
}

#[test]
fn embedding_round_trips_through_a_model_file() {
    let mut m = Sequential::<f32>::default().with_seed(6);
    m.add(
        Embedding::new(7, 3)
            .input_length(4)
            .embeddings_initializer(Initializer::RandomUniform {
                minval: -1.0,
                maxval: 1.0,
            })
            .named("e"),
    );
    m.add(Flatten::new());
    m.add(Dense::new(2));
    m.build().unwrap();
    let x = Array2::from_shape_fn((5, 4), |(i, j)| ((i * 3 + j) % 7) as f32);
    dendrite_test_support::scratch::assert_round_trip(&mut m, &x, "nn-emb");
}
