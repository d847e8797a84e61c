//! Executor overhead: a chain of 1,000 tiny ops (per-node cost of `Plan::run`), and plan
//! compilation of a 10,000-node chain.

#![allow(clippy::expect_used, missing_docs)] // a bench aborts on a broken setup; criterion macros generate undocumented items

use criterion::{criterion_group, criterion_main, Criterion};
use dendrite_graph::{compile, Graph, NodeId};
use std::hint::black_box;

fn chain(len: usize) -> (Graph<f32>, NodeId) {
    let mut g = Graph::<f32>::new();
    let mut x = g.input("x", [4]).expect("fresh graph");
    for i in 0..len {
        x = if i % 2 == 0 { g.neg(x) } else { g.tanh(x) }.expect("shape-preserving op");
    }
    (g, x)
}

fn executor_overhead(c: &mut Criterion) {
    let (g, y) = chain(1_000);
    let mut plan = compile(&g, &[y]).expect("valid fetch");
    let x = ndarray::arr1(&[0.1_f32, 0.2, 0.3, 0.4]).into_dyn();
    c.bench_function("run chain of 1000 tiny ops", |b| {
        b.iter(|| {
            let out = plan.run(&g, &[("x", x.view())]).expect("valid feeds");
            black_box(out.scalar(0).expect("one element"));
        })
    });
    let (g, y) = chain(10_000);
    c.bench_function("compile chain of 10000 ops", |b| {
        b.iter(|| black_box(compile(&g, &[y]).expect("valid fetch").step_count()))
    });
}

criterion_group!(benches, executor_overhead);
criterion_main!(benches);
