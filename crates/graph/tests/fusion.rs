//! The plan's fusion of a one-channel 3×3 convolution into the 2×2 max pool over it (and a
//! ReLU after the pool) and into its kernel gradient through the pool's scatter
//! (`plan/fuse.rs`): the fused steps give the unfused steps' bits, and fusion happens only
//! where nothing else reads the convolution.

use dendrite_graph::ops::{Conv2d, Pool2d};
use dendrite_graph::{compile, Graph, NodeId, Plan};
use ndarray::{Array, ArrayD, IxDyn};

type Outcome<T> = Result<T, Box<dyn std::error::Error>>;

/// The graph of one case: `p = max_pool2d(conv(x, k) (+ b))` and
/// `k̄ = conv2d_kernel_grad(x, max_pool2d_scatter(y, v̄))`; with a ReLU, also `r = relu(p)`
/// and its backward select `select(r's mask, 0, r̄)`.
struct Case {
    g: Graph<f32>,
    y: NodeId,
    s: NodeId,
    p: NodeId,
    k_bar: NodeId,
    relu: Option<[NodeId; 2]>,
}

/// How one case is built and fed.
#[derive(Debug, Clone, Copy)]
struct Setup {
    hw: [usize; 2],
    filters: usize,
    conv: Conv2d,
    bias: bool,
    relu: bool,
    batch: usize,
    special: bool,
}

fn case(c: Setup) -> Outcome<Case> {
    let mut g = Graph::<f32>::new();
    let x = g.input("x", [None, Some(c.hw[0]), Some(c.hw[1]), Some(1)])?;
    let k = g.input("k", [3, 3, 1, c.filters])?;
    let y = match c.bias {
        true => {
            let b = g.input("b", [c.filters])?;
            g.conv2d_bias(x, k, b, c.conv)?
        }
        false => g.conv2d(x, k, c.conv)?,
    };
    let pool = Pool2d::new([2, 2]);
    let p = g.max_pool2d(y, pool)?;
    let v_bar = g.input("v_bar", g.shape(p)?.clone())?;
    let s = g.max_pool2d_scatter(y, v_bar, pool)?;
    let k_bar = g.conv2d_kernel_grad(x, s, c.conv, [3, 3])?;
    let relu = match c.relu {
        true => {
            let r = g.relu(p)?;
            let mask = g.operands(r)?[0];
            let r_bar = g.input("r_bar", g.shape(p)?.clone())?;
            let zero = g.scalar(0.0);
            Some([r, g.select(mask, zero, r_bar)?])
        }
        false => None,
    };
    Ok(Case {
        g,
        y,
        s,
        p,
        k_bar,
        relu,
    })
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

/// The feeds of a case: the image, the kernel, the bias and the two cotangents.
fn feeds(c: &Setup, pooled: &[usize]) -> Vec<(&'static str, ArrayD<f32>)> {
    let x = image(c.batch, c.hw, c.special);
    let k = Array::from_shape_fn(IxDyn(&[3, 3, 1, c.filters]), |i| {
        ((i[0] * 5 + i[1] * 3 + i[3]) % 7) as f32 * 0.25 - 0.75
    });
    let b = Array::from_shape_fn(IxDyn(&[c.filters]), |i| (i[0] % 3) as f32 - 1.0);
    let v_bar = Array::from_shape_fn(IxDyn(&[c.batch, pooled[0], pooled[1], pooled[2]]), |i| {
        (i[0] + i[1] * 3 + i[2] * 5 + i[3]) as f32 * 0.125 - 1.0
    });
    let r_bar = v_bar.mapv(|v| 0.5 - v);
    let mut feeds = vec![("x", x), ("k", k), ("v_bar", v_bar)];
    if c.relu {
        feeds.push(("r_bar", r_bar));
    }
    if c.bias {
        feeds.push(("b", b));
    }
    feeds
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

/// Fetching only the pool (or the ReLU after it) and the kernel gradient fuses; fetching the
/// convolution, the scatter and the pool too keeps every step. The two plans agree bit for
/// bit on ties, NaNs, infinities, odd sizes (a last row and column in no window), strides and
/// dilation, with and without a bias or a ReLU (and the ReLU's backward select, which reads
/// its mask), for batches over several of the kernel gradient's groups, at 1 and 2 threads.
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
    let setup = |hw, filters, conv, (bias, relu), batch, special| Setup {
        hw,
        filters,
        conv,
        bias,
        relu,
        batch,
        special,
    };
    let setups = [
        setup([28, 28], 32, plain, (true, true), 9, false),
        setup([28, 28], 32, plain, (true, false), 4, true),
        setup([27, 29], 8, plain, (true, true), 5, true),
        setup([12, 11], 16, strided, (false, false), 3, true),
        setup([13, 14], 48, dilated, (true, true), 1, false),
        setup([10, 10], 24, plain, (false, true), 37, true),
    ];
    for s in setups {
        let c = case(s)?;
        let pooled: Option<Vec<usize>> = c.g.shape(c.p)?.dims()[1..]
            .iter()
            .map(|d| d.fixed())
            .collect();
        let feeds = feeds(&s, &pooled.ok_or("pooled shape")?);
        // With the ReLU the pool's value is read only through it, so the ReLU fuses too.
        let fetches = match c.relu {
            Some([r, back]) => vec![r, c.k_bar, back],
            None => vec![c.p, c.k_bar],
        };
        let mut fused = compile(&c.g, &fetches)?;
        let everything: Vec<NodeId> = fetches.iter().copied().chain([c.p, c.y, c.s]).collect();
        let mut whole = compile(&c.g, &everything)?;
        let removed = whole.step_count() - fused.step_count();
        let fusions = if fused_kernels_run_here(s.filters) {
            2 + usize::from(s.relu)
        } else {
            0
        };
        assert_eq!(removed, fusions, "{s:?}");
        let want = run(&mut whole, &c.g, &feeds)?;
        for threads in [1, 2] {
            fused.set_threads(threads);
            let got = run(&mut fused, &c.g, &feeds)?;
            let what = ["pool or relu", "kernel grad", "relu's backward"];
            for (i, what) in what.iter().enumerate().take(fetches.len()) {
                assert_eq!(
                    bits(&got[i]),
                    bits(&want[i]),
                    "{what}, {s:?}, {threads} threads"
                );
            }
        }
    }
    Ok(())
}

/// A convolution another op also reads, a pool of another size, and an `f64` graph are not
/// fused; neither is a ReLU whose input is fetched.
#[test]
fn fusion_needs_the_pool_to_be_the_only_reader() -> Outcome<()> {
    let setup = Setup {
        hw: [28, 28],
        filters: 32,
        conv: Conv2d::default(),
        bias: true,
        relu: true,
        batch: 2,
        special: false,
    };
    let c = case(setup)?;
    let Some([r, back]) = c.relu else {
        return Err("the case has a ReLU".into());
    };
    let mut g = c.g;
    let fused = if fused_kernels_run_here(32) { 3 } else { 0 };
    let other = g.sum_all(c.y)?;
    let (with, without) = (
        compile(&g, &[r, c.k_bar, back, other])?,
        compile(&g, &[r, c.k_bar, back])?,
    );
    assert_eq!(with.step_count(), without.step_count() + 1 + fused);
    let pool_fetched = compile(&g, &[r, c.k_bar, back, c.p])?;
    assert_eq!(
        pool_fetched.step_count(),
        without.step_count() + usize::from(fused > 0)
    );

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
