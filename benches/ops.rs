//! Each op family forward and backward at the reference model's shapes (batch 32; the
//! convnet's convolutions and pool at batch 128): one plan
//! per op holding the op alone (forward) or the op and its vector-Jacobian product (backward).

#![allow(clippy::expect_used, missing_docs)] // a bench aborts on a broken setup; criterion macros generate undocumented items

use criterion::{criterion_group, criterion_main, Criterion};
use dendrite_autodiff::vjp;
use dendrite_graph::{compile, Graph, NodeId, Result};
use ndarray::{ArrayD, Dimension, IxDyn};
use std::hint::black_box;

type Build = fn(&mut Graph<f32>, &[NodeId]) -> Result<NodeId>;

/// (name, operand shapes, builder)
fn cases() -> Vec<(&'static str, Vec<Vec<usize>>, Build)> {
    vec![
        (
            "matmul [32,784]x[784,32]",
            vec![vec![32, 784], vec![784, 32]],
            |g, x| g.matmul(x[0], x[1]),
        ),
        (
            "matmul [32,32]x[32,10]",
            vec![vec![32, 32], vec![32, 10]],
            |g, x| g.matmul(x[0], x[1]),
        ),
        (
            "add bias [32,32]+[32]",
            vec![vec![32, 32], vec![32]],
            |g, x| g.add(x[0], x[1]),
        ),
        ("relu [32,32]", vec![vec![32, 32]], |g, x| g.relu(x[0])),
        ("exp [32,10]", vec![vec![32, 10]], |g, x| g.exp(x[0])),
        ("log_softmax [32,10]", vec![vec![32, 10]], |g, x| {
            g.log_softmax(x[0], 1)
        }),
        ("sum axis 0 [32,10]", vec![vec![32, 10]], |g, x| {
            g.sum(x[0], &[0])
        }),
        ("max axis 1 [32,10]", vec![vec![32, 10]], |g, x| {
            g.max(x[0], &[1], true)
        }),
        ("transpose [784,32]", vec![vec![784, 32]], |g, x| {
            g.transpose(x[0])
        }),
        // The Keras MNIST convnet's convolutions and first pool, batch 128.
        (
            "conv2d [128,28,28,1]*[3,3,1,32]",
            vec![vec![128, 28, 28, 1], vec![3, 3, 1, 32]],
            |g, x| g.conv2d(x[0], x[1], Default::default()),
        ),
        (
            "conv2d [128,13,13,32]*[3,3,32,64]",
            vec![vec![128, 13, 13, 32], vec![3, 3, 32, 64]],
            |g, x| g.conv2d(x[0], x[1], Default::default()),
        ),
        (
            "max_pool2d 2x2 [128,26,26,32]",
            vec![vec![128, 26, 26, 32]],
            |g, x| g.max_pool2d(x[0], dendrite_graph::ops::Pool2d::new([2, 2])),
        ),
        (
            "relu [128,26,26,32]",
            vec![vec![128, 26, 26, 32]],
            |g, x| g.relu(x[0]),
        ),
    ]
}

fn ops(c: &mut Criterion) {
    for (name, shapes, build) in cases() {
        let mut g = Graph::<f32>::new();
        let inputs: Vec<NodeId> = shapes
            .iter()
            .enumerate()
            .map(|(i, s)| g.input(&format!("x{i}"), s.as_slice()))
            .collect::<Result<_>>()
            .expect("fresh names");
        let y = build(&mut g, &inputs).expect("shapes fit");
        let y_bar = g.ones_like(y).expect("any shape");
        let grads = vjp(&mut g, y, &inputs, y_bar).expect("differentiable op");
        let values: Vec<ArrayD<f32>> = shapes
            .iter()
            .map(|s| {
                ArrayD::from_shape_fn(IxDyn(s), |i| {
                    (i.as_array_view().sum() % 7) as f32 * 0.1 - 0.3
                })
            })
            .collect();
        let names: Vec<String> = (0..shapes.len()).map(|i| format!("x{i}")).collect();
        let feeds: Vec<(&str, _)> = names
            .iter()
            .map(|n| n.as_str())
            .zip(values.iter().map(|v| v.view()))
            .collect();
        let mut forward = compile(&g, &[y]).expect("valid fetch");
        c.bench_function(&format!("forward {name}"), |b| {
            b.iter(|| black_box(forward.run(&g, &feeds).expect("valid feeds").len()))
        });
        let mut backward = compile(&g, &grads).expect("valid fetches");
        c.bench_function(&format!("forward+backward {name}"), |b| {
            b.iter(|| black_box(backward.run(&g, &feeds).expect("valid feeds").len()))
        });
        // A convolution's two gradients apart: the first layer of a network needs only the
        // kernel's (its input is data).
        if name.starts_with("conv2d") {
            for (wrt, grad) in ["input", "kernel"].iter().zip(&grads) {
                let mut one = compile(&g, &[y, *grad]).expect("valid fetches");
                c.bench_function(&format!("forward+{wrt} grad {name}"), |b| {
                    b.iter(|| black_box(one.run(&g, &feeds).expect("valid feeds").len()))
                });
            }
        }
    }
}

criterion_group!(benches, ops);
criterion_main!(benches);
