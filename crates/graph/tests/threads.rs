//! A plan gives the same bits at any thread count: the convolutions split by groups of
//! images (the kernel gradient into a fixed number of partial sums), the elementwise and
//! pooling steps of at least 2¹⁷ elements by rows. The batches are odd, so the groups, the
//! partials and the row blocks come out uneven.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dendrite_graph::ops::{Conv2d, Pool2d};
use dendrite_graph::{compile, Graph, NodeId, Plan};
use ndarray::{Array, ArrayD, IxDyn};

/// Values in [-1, 1) with many repeats (so max pooling meets ties), from a hash of the index.
fn pseudo(shape: &[usize], salt: usize) -> ArrayD<f32> {
    let mut k = 0usize;
    Array::from_shape_simple_fn(IxDyn(shape), || {
        k += 1;
        ((k * 7919 + salt * 104_729) % 64) as f32 / 32.0 - 1.0
    })
}

/// Values fed by input name.
type Feeds = Vec<(&'static str, ArrayD<f32>)>;

/// A convnet-shaped graph: conv2d, bias, relu, 2x2 max pooling, a second conv2d, and the
/// derivative maps (both convolution gradients, the pool's scatter), on `[batch, 26, 26, 8]`
/// images (200,000 and more elements: every elementwise step is split).
fn graph(batch: usize) -> (Graph<f32>, Vec<NodeId>, Feeds) {
    let mut g = Graph::<f32>::new();
    let x = g.input("x", [None, Some(26), Some(26), Some(8)]).unwrap();
    let w = g.parameter("w", pseudo(&[3, 3, 8, 16], 1)).unwrap();
    let b = g.parameter("b", pseudo(&[16], 2)).unwrap();
    let w2 = g.parameter("w2", pseudo(&[3, 3, 16, 4], 3)).unwrap();
    let y_bar = g
        .input("y_bar", [None, Some(24), Some(24), Some(16)])
        .unwrap();
    let conv = Conv2d::default();
    let z = g.conv2d(x, w, conv).unwrap();
    let z = g.add(z, b).unwrap();
    let a = g.relu(z).unwrap();
    let pooled = g.max_pool2d(a, Pool2d::new([2, 2])).unwrap();
    let z2 = g.conv2d(pooled, w2, conv).unwrap();
    let pool_bar = g.ones_like(pooled).unwrap();
    let fetches = vec![
        z,
        a,
        pooled,
        z2,
        g.conv2d_input_grad(y_bar, w, conv, [26, 26]).unwrap(),
        g.conv2d_kernel_grad(x, y_bar, conv, [3, 3]).unwrap(),
        g.max_pool2d_scatter(z, pool_bar, Pool2d::new([2, 2]))
            .unwrap(),
        g.mul(z, z).unwrap(),
    ];
    let feeds = vec![
        ("x", pseudo(&[batch, 26, 26, 8], 4)),
        ("y_bar", pseudo(&[batch, 24, 24, 16], 5)),
    ];
    (g, fetches, feeds)
}

fn run(
    plan: &mut Plan<f32>,
    g: &Graph<f32>,
    feeds: &[(&'static str, ArrayD<f32>)],
) -> Vec<Vec<u32>> {
    let views: Vec<_> = feeds.iter().map(|(n, v)| (*n, v.view())).collect();
    let out = plan.run(g, &views).unwrap().to_vec().unwrap();
    out.iter()
        .map(|a| a.iter().map(|v| v.to_bits()).collect())
        .collect()
}

#[test]
fn every_split_step_gives_the_same_bits_at_any_thread_count() {
    for batch in [1, 7, 37] {
        let (g, fetches, feeds) = graph(batch);
        let mut plan = compile(&g, &fetches).unwrap();
        let alone = run(&mut plan, &g, &feeds);
        for threads in [2, 3, 8] {
            plan.set_threads(threads);
            for repeat in 0..3 {
                let shared = run(&mut plan, &g, &feeds);
                for (k, (a, b)) in alone.iter().zip(&shared).enumerate() {
                    assert!(
                        a == b,
                        "batch {batch}, {threads} threads, run {repeat}: fetch {k}"
                    );
                }
            }
        }
    }
}

/// Two plans running at once on two threads: one finds the helpers busy and works alone, and
/// both still give the one-thread bits.
#[test]
fn plans_running_at_once_on_several_threads_agree() {
    let (g, fetches, feeds) = graph(9);
    let mut plan = compile(&g, &fetches).unwrap();
    let alone = run(&mut plan, &g, &feeds);
    plan.set_threads(2);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            let mut plan = plan.clone();
            let (g, feeds, alone) = (&g, &feeds, &alone);
            scope.spawn(move || {
                for _ in 0..5 {
                    assert!(&run(&mut plan, g, feeds) == alone);
                }
            });
        }
    });
}

#[test]
fn the_thread_count_is_clamped_and_kept_by_clones() {
    let (g, fetches, _) = graph(1);
    let mut plan = compile(&g, &fetches).unwrap();
    assert_eq!(plan.threads(), 1);
    plan.set_threads(0);
    assert_eq!(plan.threads(), 1);
    plan.set_threads(1000);
    assert_eq!(plan.threads(), dendrite_graph::MAX_THREADS);
    assert_eq!(plan.clone().threads(), dendrite_graph::MAX_THREADS);
}

/// Random draws of several chunks (the team's tasks) give the same bits at 1 and 2 threads,
/// and those of one ChaCha8 keystream read in order: element `i` is word `i` (uniform) or
/// words `2i`, `2i + 1` (normal) whatever chunk it falls in.
#[test]
fn random_draws_split_into_chunks_read_one_keystream() {
    use rand_chacha::rand_core::{RngCore, SeedableRng};
    let (n, seed, step) = (70_001, 11, 3);
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [n]).unwrap();
    let s = g.input("step", dendrite_graph::Shape::scalar()).unwrap();
    let u = g.random_uniform(x, s, seed).unwrap();
    let z = g.random_normal(x, s, seed).unwrap();
    let mut plan = compile(&g, &[u, z]).unwrap();
    let xs = ArrayD::<f64>::zeros(IxDyn(&[n]));
    let steps = ndarray::arr0(step as f64).into_dyn();
    let mut draw = |threads: usize| {
        plan.set_threads(threads);
        let out = plan
            .run(&g, &[("x", xs.view()), ("step", steps.view())])
            .unwrap();
        out.to_vec().unwrap()
    };
    let (one, two) = (draw(1), draw(2));
    assert_eq!(one, two);
    let keystream = || {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(step);
        rng
    };
    let mut rng = keystream();
    for (i, &v) in one[0].iter().enumerate() {
        let want = f64::from(rng.next_u32() >> 8) / 16_777_216.0;
        assert_eq!(v, want, "uniform {i}");
    }
    let mut rng = keystream();
    for (i, &v) in one[1].iter().enumerate() {
        let u1 = (f64::from(rng.next_u32()) + 0.5) / 4_294_967_296.0;
        let u2 = f64::from(rng.next_u32()) / 4_294_967_296.0;
        let want = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        assert_eq!(v, want, "normal {i}");
    }
}
