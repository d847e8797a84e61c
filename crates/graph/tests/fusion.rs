//! The plan's fusion of a one-channel 3×3 convolution into the 2×2 max pool over it and into
//! its kernel gradient through the pool's scatter (`plan/fuse.rs`): the fused steps give the
//! unfused steps' bits, and fusion happens only where nothing else reads the convolution.

use dendrite_graph::ops::{Conv2d, Pool2d};
use dendrite_graph::{compile, Graph, NodeId, Plan};
use ndarray::{Array, ArrayD, IxDyn};

type Outcome<T> = Result<T, Box<dyn std::error::Error>>;

/// The graph of one case: `p = max_pool2d(conv(x, k) (+ b))` and
/// `k̄ = conv2d_kernel_grad(x, max_pool2d_scatter(y, v̄))`.
struct Case {
    g: Graph<f32>,
    y: NodeId,
    s: NodeId,
    p: NodeId,
    k_bar: NodeId,
}

fn case(hw: [usize; 2], filters: usize, conv: Conv2d, bias: bool) -> Outcome<Case> {
    let mut g = Graph::<f32>::new();
    let x = g.input("x", [None, Some(hw[0]), Some(hw[1]), Some(1)])?;
    let k = g.input("k", [3, 3, 1, filters])?;
    let y = match bias {
        true => {
            let b = g.input("b", [filters])?;
            g.conv2d_bias(x, k, b, conv)?
        }
        false => g.conv2d(x, k, conv)?,
    };
    let pool = Pool2d::new([2, 2]);
    let p = g.max_pool2d(y, pool)?;
    let v_bar = g.input("v_bar", g.shape(p)?.clone())?;
    let s = g.max_pool2d_scatter(y, v_bar, pool)?;
    let k_bar = g.conv2d_kernel_grad(x, s, conv, [3, 3])?;
    Ok(Case { g, y, s, p, k_bar })
}

/// Values with many ties: whole rows of zeros (every window there equals the bias),
/// repeated small integers, and in `special` cases NaNs and infinities.
fn image(n: usize, hw: [usize; 2], special: bool) -> ArrayD<f32> {
    Array::from_shape_fn(IxDyn(&[n, hw[0], hw[1], 1]), |i| {
        let v = ((i[0] * 13 + i[1] * 7 + i[2] * 3) % 9) as f32 * 0.5 - 2.0;
        match (i[1] % 5, special, (i[0] + i[1] * 3 + i[2]) % 23) {
            (0, _, _) => 0.0,
            (_, true, 0) => f32::NAN,
            (_, true, 1) => f32::INFINITY,
            _ => v,
        }
    })
}

fn bits(a: &ArrayD<f32>) -> Vec<u32> {
    a.iter().map(|v| v.to_bits()).collect()
}

fn run(
    plan: &mut Plan<f32>,
    g: &Graph<f32>,
    feeds: &[(&str, ArrayD<f32>)],
) -> Outcome<Vec<ArrayD<f32>>> {
    let views: Vec<_> = feeds.iter().map(|(n, v)| (*n, v.view())).collect();
    Ok(plan.run(g, &views)?.to_vec()?)
}

fn fused_kernels_run_here(filters: usize) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
        let avx512 = is_x86_feature_detected!("avx512f");
        (avx2 && filters.is_multiple_of(8)) || (avx512 && filters.is_multiple_of(16))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = filters;
        false
    }
}

/// Fetching only the pool and the kernel gradient fuses; fetching the convolution and the
/// scatter too keeps every step. The two plans agree bit for bit on ties, NaNs, infinities,
/// odd sizes (a last row and column in no window), strides and dilation, with and without a
/// bias, for batches over several of the kernel gradient's groups, at 1 and 2 threads.
#[test]
fn fused_pooled_convolutions_give_the_unfused_bits() -> Outcome<()> {
    let plain = Conv2d::default();
    let strided = Conv2d {
        strides: [2, 1],
        ..plain
    };
    let dilated = Conv2d {
        dilation: [1, 2],
        ..plain
    };
    let cases = [
        ([28, 28], 32, plain, true, 9, false),
        ([27, 29], 8, plain, true, 5, true),
        ([12, 11], 16, strided, false, 3, true),
        ([13, 14], 48, dilated, true, 1, false),
        ([10, 10], 24, plain, false, 37, true),
    ];
    for (hw, filters, conv, bias, n, special) in cases {
        let c = case(hw, filters, conv, bias)?;
        let x = image(n, hw, special);
        let k = Array::from_shape_fn(IxDyn(&[3, 3, 1, filters]), |i| {
            ((i[0] * 5 + i[1] * 3 + i[3]) % 7) as f32 * 0.25 - 0.75
        });
        let b = Array::from_shape_fn(IxDyn(&[filters]), |i| (i[0] % 3) as f32 - 1.0);
        let pooled = c.g.shape(c.p)?.dims()[1..]
            .iter()
            .map(|d| d.fixed())
            .collect::<Option<Vec<_>>>();
        let pooled = pooled.ok_or("pooled shape")?;
        let v_bar = Array::from_shape_fn(IxDyn(&[n, pooled[0], pooled[1], pooled[2]]), |i| {
            (i[0] + i[1] * 3 + i[2] * 5 + i[3]) as f32 * 0.125 - 1.0
        });
        let mut feeds = vec![("x", x), ("k", k), ("v_bar", v_bar)];
        if bias {
            feeds.push(("b", b));
        }
        let mut fused = compile(&c.g, &[c.p, c.k_bar])?;
        let mut whole = compile(&c.g, &[c.p, c.k_bar, c.y, c.s])?;
        let label = format!("{hw:?} {filters} filters {conv:?} bias {bias} batch {n}");
        let removed = whole.step_count() - fused.step_count();
        assert_eq!(
            removed,
            if fused_kernels_run_here(filters) {
                2
            } else {
                0
            },
            "{label}"
        );
        let want = run(&mut whole, &c.g, &feeds)?;
        for threads in [1, 2] {
            fused.set_threads(threads);
            let got = run(&mut fused, &c.g, &feeds)?;
            assert_eq!(
                bits(&got[0]),
                bits(&want[0]),
                "pool, {label}, {threads} threads"
            );
            assert_eq!(
                bits(&got[1]),
                bits(&want[1]),
                "kernel grad, {label}, {threads} threads"
            );
        }
    }
    Ok(())
}

/// A convolution another op also reads, a pool of another size, and an `f64` graph are not
/// fused.
#[test]
fn fusion_needs_the_pool_to_be_the_only_reader() -> Outcome<()> {
    let c = case([28, 28], 32, Conv2d::default(), true)?;
    let mut g = c.g;
    let other = g.sum_all(c.y)?;
    let (with, without) = (
        compile(&g, &[c.p, c.k_bar, other])?,
        compile(&g, &[c.p, c.k_bar])?,
    );
    let fused = if fused_kernels_run_here(32) { 2 } else { 0 };
    assert_eq!(with.step_count(), without.step_count() + 1 + fused);

    let mut g = Graph::<f32>::new();
    let x = g.input("x", [None, Some(28), Some(28), Some(1)])?;
    let k = g.input("k", [3, 3, 1, 32])?;
    let y = g.conv2d(x, k, Conv2d::default())?;
    let p = g.max_pool2d(y, Pool2d::new([3, 3]))?;
    assert_eq!(compile(&g, &[p])?.step_count(), 2);

    let mut g = Graph::<f64>::new();
    let x = g.input("x", [None, Some(28), Some(28), Some(1)])?;
    let k = g.input("k", [3, 3, 1, 32])?;
    let y = g.conv2d(x, k, Conv2d::default())?;
    let p = g.max_pool2d(y, Pool2d::new([2, 2]))?;
    assert_eq!(compile(&g, &[p])?.step_count(), 2);
    Ok(())
}
