//! One training step of the reference model (Dense 784->32 relu, Dense 32->10, softmax
//! cross-entropy), forward and backward through a compiled plan, at batch 32 and 128; plus
//! compiling that plan. Built from the graph and autodiff crates directly, so it measures the
//! executor and kernels without the nn crate's bookkeeping.

#![allow(clippy::expect_used, missing_docs)] // a bench aborts on a broken setup; criterion macros generate undocumented items

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use dendrite_graph::compile;
use dendrite_test_support::reference::{reference_model, reference_training_graph};
use ndarray::{Array1, Array2};
use std::hint::black_box;

fn training_step(c: &mut Criterion) {
    let (g, fetches) = reference_training_graph().expect("the reference graph is well-formed");
    let mut group = c.benchmark_group("reference step (forward + backward)");
    for batch in [32usize, 128] {
        let mut plan = compile(&g, &fetches).expect("valid fetches");
        let x = Array2::from_shape_fn((batch, 784), |(i, j)| ((i * 784 + j) % 255) as f32 / 255.0)
            .into_dyn();
        let y = Array1::from_shape_fn(batch, |i| (i % 10) as f32).into_dyn();
        group.bench_with_input(BenchmarkId::from_parameter(batch), &batch, |b, _| {
            b.iter(|| {
                let out = plan
                    .run(&g, &[("x", x.view()), ("y", y.view())])
                    .expect("valid feeds");
                black_box(out.scalar(0).expect("scalar loss"));
            })
        });
    }
    group.finish();
    c.bench_function("compile reference training plan", |b| {
        b.iter(|| black_box(compile(&g, &fetches).expect("valid fetches").step_count()))
    });
}

/// The whole step as users run it: `Sequential::fit` over ten batches of synthetic digits
/// (batch writing, forward, backward, Adam, metrics), reported per ten steps.
fn sequential_fit(c: &mut Criterion) {
    use dendrite_nn::data::synthetic_digits;
    use dendrite_nn::FitConfig;
    let mut group = c.benchmark_group("Sequential::fit, ten steps");
    for batch in [32usize, 128] {
        let data = synthetic_digits(batch * 10, 0).expect("synthetic digits");
        let mut model = reference_model(0).expect("the reference model compiles");
        group.bench_with_input(BenchmarkId::from_parameter(batch), &batch, |b, &batch| {
            b.iter(|| {
                let config = FitConfig::default()
                    .epochs(1)
                    .batch_size(batch)
                    .verbosity(0);
                black_box(
                    model
                        .fit(&data, config)
                        .expect("finite training")
                        .loss
                        .len(),
                )
            })
        });
    }
    group.finish();
}

criterion_group!(benches, training_step, sequential_fit);
criterion_main!(benches);
