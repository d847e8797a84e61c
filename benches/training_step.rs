//! One training step of the reference model (Dense 784->32 relu, Dense 32->10, softmax
//! cross-entropy), forward and backward through a compiled plan, at batch 32 and 128; plus
//! compiling that plan. Built from the graph and autodiff crates directly, so it measures the
//! executor and kernels without the nn crate's bookkeeping.

#![allow(clippy::expect_used, missing_docs)] // a bench aborts on a broken setup; criterion macros generate undocumented items

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use dendrite_autodiff::grad;
use dendrite_graph::{compile, Graph, NodeId};
use ndarray::{Array1, Array2};
use std::hint::black_box;

fn reference_graph() -> (Graph<f32>, Vec<NodeId>) {
    let mut g = Graph::<f32>::new();
    let build = |g: &mut Graph<f32>| -> Result<Vec<NodeId>, Box<dyn std::error::Error>> {
        let x = g.input("x", [None, Some(784)])?;
        let y = g.input("y", [None])?;
        let w1 = g.parameter(
            "w1",
            Array2::from_shape_fn((784, 32), |(i, j)| {
                ((i * 31 + j * 17) % 13) as f32 * 0.01 - 0.06
            })
            .into_dyn(),
        )?;
        let b1 = g.parameter("b1", Array1::zeros(32).into_dyn())?;
        let w2 = g.parameter(
            "w2",
            Array2::from_shape_fn((32, 10), |(i, j)| {
                ((i * 7 + j * 5) % 11) as f32 * 0.05 - 0.25
            })
            .into_dyn(),
        )?;
        let b2 = g.parameter("b2", Array1::zeros(10).into_dyn())?;
        let z1 = g.matmul(x, w1)?;
        let z1 = g.add(z1, b1)?;
        let h = g.relu(z1)?;
        let z2 = g.matmul(h, w2)?;
        let logits = g.add(z2, b2)?;
        let log_p = g.log_softmax(logits, 1)?;
        let target = g.one_hot(y, 10)?;
        let picked = g.mul(target, log_p)?;
        let per_example = g.sum(picked, &[1])?;
        let mean = g.mean_all(per_example)?;
        let loss = g.neg(mean)?;
        let mut fetches = vec![loss];
        fetches.extend(grad(g, loss, &[w1, b1, w2, b2])?);
        Ok(fetches)
    };
    let fetches = build(&mut g).expect("the reference graph is well-formed");
    (g, fetches)
}

fn training_step(c: &mut Criterion) {
    let (g, fetches) = reference_graph();
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
    use dendrite_nn::{Activation, Adam, Dense, FitConfig, Loss, Metric, Sequential};
    let mut group = c.benchmark_group("Sequential::fit, ten steps");
    for batch in [32usize, 128] {
        let data = synthetic_digits(batch * 10, 0);
        let mut model = Sequential::new();
        model.add(Dense::new(32).input_dim(784).activation(Activation::Relu));
        model.add(Dense::new(10).activation(Activation::Softmax));
        model
            .compile(
                Adam::default(),
                Loss::SparseCategoricalCrossentropy,
                &[Metric::Accuracy],
            )
            .expect("the reference model compiles");
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
