//! Convolution, pooling and random draws: hand-computed values and gradients, shape rules
//! (hostile sizes included), the max-pool tie rule, and the random draws' determinism and
//! statistics. Property-based gradient checks are in `dendrite-autodiff`'s `tests/primitives.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::run;
use dendrite_graph::ops::{Conv2d, Padding, Pool2d};
use dendrite_graph::{compile, Graph, GraphError, NodeId};
use ndarray::{arr0, Array, ArrayD, IxDyn};

/// `[1, h, w, 1]` from rows.
fn image(rows: &[&[f64]]) -> ArrayD<f64> {
    let (h, w) = (rows.len(), rows[0].len());
    let flat: Vec<f64> = rows.iter().flat_map(|r| r.iter().copied()).collect();
    Array::from_shape_vec(IxDyn(&[1, h, w, 1]), flat).unwrap()
}

/// Values and gradients of `sum(conv2d(x, w))` with respect to `x` and `w`.
fn conv_and_grads(x: &ArrayD<f64>, w: &ArrayD<f64>, conv: Conv2d) -> Vec<ArrayD<f64>> {
    run(&[x, w], |g, v| {
        let y = g.conv2d(v[0], v[1], conv)?;
        let ones = g.ones_like(y)?;
        let x_bar = g.local_vjp(y, ones)?;
        Ok(vec![y, x_bar[0].unwrap(), x_bar[1].unwrap()])
    })
}

fn kernel_2x2() -> ArrayD<f64> {
    Array::from_shape_vec(IxDyn(&[2, 2, 1, 1]), vec![1.0, 2.0, 3.0, 4.0]).unwrap()
}

fn x_3x3() -> ArrayD<f64> {
    image(&[&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0], &[7.0, 8.0, 9.0]])
}

/// x = [[1,2,3],[4,5,6],[7,8,9]], w = [[1,2],[3,4]], valid, stride 1:
/// y[i,j] = x[i,j] + 2x[i,j+1] + 3x[i+1,j] + 4x[i+1,j+1] = [[37,47],[67,77]].
/// For L = Σy: ∂L/∂x[h,v] sums the taps that read (h,v): the corners get one tap each
/// (1, 2, 3, 4), the edges two, the centre all four: [[1,3,2],[4,10,6],[3,7,4]].
/// ∂L/∂w[p,q] = Σ_{i,j} x[i+p, j+q]: [[1+2+4+5, 2+3+5+6],[4+5+7+8, 5+6+8+9]] = [[12,16],[24,28]].
#[test]
fn conv2d_by_hand_valid() {
    let out = conv_and_grads(&x_3x3(), &kernel_2x2(), Conv2d::default());
    assert_eq!(
        out[0].iter().copied().collect::<Vec<_>>(),
        [37.0, 47.0, 67.0, 77.0]
    );
    assert_eq!(
        out[1].iter().copied().collect::<Vec<_>>(),
        [1.0, 3.0, 2.0, 4.0, 10.0, 6.0, 3.0, 7.0, 4.0]
    );
    assert_eq!(
        out[2].iter().copied().collect::<Vec<_>>(),
        [12.0, 16.0, 24.0, 28.0]
    );
}

/// `conv2d_bias` on the image and kernel above with b = [10]: y = conv2d(x, w) + 10 =
/// [[37+10, 47+10], [67+10, 77+10]] = [[47,57],[77,87]]. For L = Σy the bias is read once per output pixel, so
/// ∂L/∂b = Σ_{i,j} 1 = 4; x̄ and w̄ are those of `conv2d` ([[1,3,2],[4,10,6],[3,7,4]] and
/// [[12,16],[24,28]]), the bias adding a constant.
#[test]
fn conv2d_bias_by_hand() {
    let b = Array::from_shape_vec(IxDyn(&[1]), vec![10.0]).unwrap();
    let out = run(&[&x_3x3(), &kernel_2x2(), &b], |g, v| {
        let y = g.conv2d_bias(v[0], v[1], v[2], Conv2d::default())?;
        let ones = g.ones_like(y)?;
        let bars = g.local_vjp(y, ones)?;
        Ok(vec![
            y,
            bars[0].unwrap(),
            bars[1].unwrap(),
            bars[2].unwrap(),
        ])
    });
    let flat = |k: usize| out[k].iter().copied().collect::<Vec<_>>();
    assert_eq!(flat(0), [47.0, 57.0, 77.0, 87.0]);
    assert_eq!(flat(1), [1.0, 3.0, 2.0, 4.0, 10.0, 6.0, 3.0, 7.0, 4.0]);
    assert_eq!(flat(2), [12.0, 16.0, 24.0, 28.0]);
    assert_eq!(flat(3), [4.0]);
}

/// The fused bias gives `add(conv2d(x, w), b)` bit for bit, in `f32` (the AVX2 product where
/// the CPU has it) and `f64`, over a batch of several image groups at 1 and 2 threads.
#[test]
fn conv2d_bias_is_the_add_of_a_bias_bit_for_bit() {
    fn check<F: dendrite_graph::Element>() {
        // f32 to f64 is exact, so equal f64 bits are equal F bits.
        let bits = |v: F| v.to_f64().map(f64::to_bits);
        let mut g = Graph::<F>::new();
        let x = g.input("x", [None, Some(28), Some(28), Some(3)]).unwrap();
        let w = g.input("w", [3, 3, 3, 5]).unwrap();
        let b = g.input("b", [5]).unwrap();
        let conv = Conv2d::default();
        let fused = g.conv2d_bias(x, w, b, conv).unwrap();
        let z = g.conv2d(x, w, conv).unwrap();
        let added = g.add(z, b).unwrap();
        let value = |k: usize| F::of(((k * 7919) % 1000) as f64 / 250.0 - 2.0);
        let xs = Array::from_shape_fn(IxDyn(&[7, 28, 28, 3]), |i| {
            value(i[1] * 97 + i[2] + i[0] * 31 + i[3])
        });
        let ws = Array::from_shape_fn(IxDyn(&[3, 3, 3, 5]), |i| {
            value(i[0] * 45 + i[1] * 15 + i[2] * 5 + i[3])
        });
        let bs = Array::from_shape_fn(IxDyn(&[5]), |i| value(i[0] + 3));
        for threads in [1, 2] {
            let mut plan = compile(&g, &[fused, added]).unwrap();
            plan.set_threads(threads);
            let feeds = [("x", xs.view()), ("w", ws.view()), ("b", bs.view())];
            let out = plan.run(&g, &feeds).unwrap().to_vec().unwrap();
            assert!(
                out[0]
                    .iter()
                    .zip(out[1].iter())
                    .all(|(a, b)| bits(*a) == bits(*b)),
                "{threads} threads"
            );
        }
    }
    check::<f32>();
    check::<f64>();
}

/// `same` with a 2x2 kernel on 3x3: total padding (3-1)·1 + 2 - 3 = 1, all of it after (the
/// bottom row and right column). y[0,2] = 1·x[0,2] + 3·x[1,2] = 3 + 18 = 21, y[2,2] = 1·x[2,2] = 9,
/// y[2,0] = 1·7 + 2·8 = 23. The gradient for L = Σy: x[0,0] is read by tap (0,0) only (1);
/// x[2,2] by all four windows that reach it: 1+2+3+4 = 10; w[1,1] reads x[1..3, 1..3]: 5+6+8+9 =
/// 28,
/// w[0,0] reads every pixel: 45.
#[test]
fn conv2d_by_hand_same() {
    let same = Conv2d {
        padding: Padding::Same,
        ..Conv2d::default()
    };
    let out = conv_and_grads(&x_3x3(), &kernel_2x2(), same);
    assert_eq!(out[0].shape(), &[1, 3, 3, 1]);
    assert_eq!(out[0][[0, 0, 2, 0]], 21.0);
    assert_eq!(out[0][[0, 2, 2, 0]], 9.0);
    assert_eq!(out[0][[0, 2, 0, 0]], 23.0);
    assert_eq!(out[1][[0, 0, 0, 0]], 1.0);
    assert_eq!(out[1][[0, 2, 2, 0]], 10.0);
    assert_eq!(out[2][[0, 0, 0, 0]], 45.0);
    assert_eq!(out[2][[1, 1, 0, 0]], 28.0);
}

/// Stride 2 and dilation 2 on a 5x5 ramp x[h,v] = 5h + v with a 2x2 kernel of ones:
/// dilated taps are 2 apart (span 3), so valid gives out = (5-3)/2 + 1 = 2 and
/// y[i,j] = x[2i,2j] + x[2i,2j+2] + x[2i+2,2j] + x[2i+2,2j+2] = 4·x[2i+1, 2j+1] (the ramp is
/// linear).
#[test]
fn conv2d_strided_dilated() {
    let x = Array::from_shape_fn(IxDyn(&[1, 5, 5, 1]), |d| (5 * d[1] + d[2]) as f64);
    let w = ArrayD::from_elem(IxDyn(&[2, 2, 1, 1]), 1.0);
    let conv = Conv2d {
        strides: [2, 2],
        dilation: [2, 2],
        padding: Padding::Valid,
    };
    let y = &conv_and_grads(&x, &w, conv)[0];
    assert_eq!(y.shape(), &[1, 2, 2, 1]);
    for (i, j) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
        assert_eq!(y[[0, i, j, 0]], 4.0 * x[[0, 2 * i + 1, 2 * j + 1, 0]]);
    }
}

/// Channels: with 2 input and 3 output channels, conv2d agrees with a direct sum.
#[test]
fn conv2d_matches_direct_sum() {
    let x = Array::from_shape_fn(IxDyn(&[2, 4, 5, 2]), |d| {
        ((d[0] * 7 + d[1] * 3 + d[2] * 5 + d[3]) % 11) as f64 - 5.0
    });
    let w = Array::from_shape_fn(IxDyn(&[3, 2, 2, 3]), |d| {
        ((d[0] * 5 + d[1] * 2 + d[2] * 3 + d[3]) % 7) as f64 - 3.0
    });
    let conv = Conv2d {
        strides: [1, 2],
        padding: Padding::Same,
        ..Conv2d::default()
    };
    let y = &conv_and_grads(&x, &w, conv)[0];
    // same: heights 4 → 4 (pad total 2, top 1), widths 5 → 3 (pad total (3-1)·2 + 2 - 5 = 1, left
    // 0).
    assert_eq!(y.shape(), &[2, 4, 3, 3]);
    for n in 0..2 {
        for i in 0..4 {
            for j in 0..3 {
                for o in 0..3 {
                    let mut sum = 0.0;
                    for p in 0..3 {
                        for q in 0..2 {
                            let (h, v) = ((i + p) as isize - 1, (2 * j + q) as isize);
                            if (0..4).contains(&h) && (0..5).contains(&v) {
                                for c in 0..2 {
                                    sum += x[[n, h as usize, v as usize, c]] * w[[p, q, c, o]];
                                }
                            }
                        }
                    }
                    assert_eq!(y[[n, i, j, o]], sum, "at {n} {i} {j} {o}");
                }
            }
        }
    }
}

#[test]
fn conv2d_shape_rules() {
    let mut g = Graph::<f32>::new();
    let x = g.input("x", [None, Some(28), Some(28), Some(1)]).unwrap();
    let w = g.input("w", [3, 3, 1, 32]).unwrap();
    let bad_w = g.input("bad_w", [3, 3, 2, 32]).unwrap();
    let y = g.conv2d(x, w, Conv2d::default()).unwrap();
    assert_eq!(g.shape(y).unwrap().to_string(), "[?, 26, 26, 32]");
    let err = g.conv2d(x, bad_w, Conv2d::default()).unwrap_err();
    assert!(
        matches!(err, GraphError::IncompatibleShapes { op: "conv2d", .. }),
        "{err}"
    );
    // Kernel larger than a valid image.
    let big = g.input("big", [29, 1, 1, 1]).unwrap();
    let err = g.conv2d(x, big, Conv2d::default()).unwrap_err();
    assert!(err.to_string().contains("height axis"), "{err}");
    // Zero stride.
    let zero = Conv2d {
        strides: [0, 1],
        ..Conv2d::default()
    };
    assert!(matches!(
        g.conv2d(x, w, zero).unwrap_err(),
        GraphError::InvalidShape { .. }
    ));
    // Rank and unknown sizes.
    let flat = g.input("flat", [None, Some(784)]).unwrap();
    assert!(g.conv2d(flat, w, Conv2d::default()).is_err());
    let dynamic_hw = g.input("dyn", [None, None, Some(28), Some(1)]).unwrap();
    assert!(g.conv2d(dynamic_hw, w, Conv2d::default()).is_err());
    // Same padding with a stride: ⌈28/3⌉ = 10.
    let s3 = Conv2d {
        strides: [3, 3],
        padding: Padding::Same,
        ..Conv2d::default()
    };
    let z = g.conv2d(x, w, s3).unwrap();
    assert_eq!(g.shape(z).unwrap().to_string(), "[?, 10, 10, 32]");
    // Gradients need the cotangent in the output's shape.
    let wrong = g
        .input("wrong", [None, Some(25), Some(26), Some(32)])
        .unwrap();
    let err = g
        .conv2d_input_grad(wrong, w, Conv2d::default(), [28, 28])
        .unwrap_err();
    assert!(
        matches!(
            err,
            GraphError::IncompatibleShapes {
                op: "conv2d_input_grad",
                ..
            }
        ),
        "{err}"
    );
    // The bias is one value per filter: [32], not [31] nor [1, 32].
    for bad in [vec![31], vec![1, 32]] {
        let b = g.input(&format!("b{}", bad.len()), bad.as_slice()).unwrap();
        let err = g.conv2d_bias(x, w, b, Conv2d::default()).unwrap_err();
        assert!(
            matches!(
                err,
                GraphError::IncompatibleShapes {
                    op: "conv2d_bias",
                    ..
                }
            ),
            "{err}"
        );
    }
}

/// Sizes whose arithmetic would overflow are typed errors, not panics or wrapped values.
#[test]
fn conv2d_hostile_sizes() {
    let mut g = Graph::<f32>::new();
    let x = g.input("x", [None, Some(8), Some(8), Some(1)]).unwrap();
    let w = g.input("w", [3, 3, 1, 1]).unwrap();
    let dilated = Conv2d {
        dilation: [usize::MAX, 1],
        ..Conv2d::default()
    };
    let err = g.conv2d(x, w, dilated).unwrap_err();
    assert!(err.to_string().contains("overflows"), "{err}");
    let huge_stride = Conv2d {
        strides: [usize::MAX, usize::MAX],
        padding: Padding::Same,
        ..Conv2d::default()
    };
    let y = g.conv2d(x, w, huge_stride).unwrap();
    assert_eq!(g.shape(y).unwrap().to_string(), "[?, 1, 1, 1]");
    // An im2col of 2^40 rows by 2^40 columns.
    let wide = g
        .input("wide", [None, Some(1 << 20), Some(1 << 20), Some(1)])
        .unwrap();
    let same = Conv2d {
        padding: Padding::Same,
        ..Conv2d::default()
    };
    let err = g
        .conv2d_kernel_grad(wide, wide, same, [1 << 20, 1 << 20])
        .unwrap_err();
    assert!(err.to_string().contains("sizes overflow"), "{err}");
    let err = g
        .conv2d_input_grad(x, w, Conv2d::default(), [usize::MAX, 8])
        .unwrap_err();
    assert!(
        matches!(
            err,
            GraphError::IncompatibleShapes { .. } | GraphError::InvalidShape { .. }
        ),
        "{err}"
    );
}

/// The tie rule: all of a window's gradient goes to its first maximum in row-major order.
#[test]
fn max_pool_tie_rule() {
    let x = image(&[&[1.0, 1.0, 0.0, 3.0], &[1.0, 1.0, 3.0, 3.0]]);
    let out = run(&[&x], |g, v| {
        let y = g.max_pool2d(v[0], Pool2d::new([2, 2]))?;
        let ones = g.ones_like(y)?;
        let x_bar = g.local_vjp(y, ones)?;
        Ok(vec![y, x_bar[0].unwrap()])
    });
    assert_eq!(out[0].iter().copied().collect::<Vec<_>>(), [1.0, 3.0]);
    // Window 1: four ones, the first (top left) wins. Window 2: 3 at (0,3) comes before (1,2),
    // (1,3).
    assert_eq!(
        out[1].iter().copied().collect::<Vec<_>>(),
        [1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    );
}

/// Max and average pooling by hand, with `same` padding: a 3x3 image, 2x2 windows, stride 2:
/// total padding (2-1)·2 + 2 - 3 = 1, after. Windows: {1,2,4,5}, {3,6}, {7,8}, {9}.
/// Average: 12/4, 9/2, 15/2, 9/1 (padding not counted). Its gradient for L = Σy spreads
/// 1/|window| over each window: [[¼,¼,½],[¼,¼,½],[½,½,1]].
#[test]
fn pooling_by_hand_same() {
    let pool = Pool2d {
        padding: Padding::Same,
        ..Pool2d::new([2, 2])
    };
    let out = run(&[&x_3x3()], |g, v| {
        let m = g.max_pool2d(v[0], pool)?;
        let a = g.avg_pool2d(v[0], pool)?;
        let ones = g.ones_like(a)?;
        let a_bar = g.local_vjp(a, ones)?;
        Ok(vec![m, a, a_bar[0].unwrap()])
    });
    assert_eq!(
        out[0].iter().copied().collect::<Vec<_>>(),
        [5.0, 6.0, 8.0, 9.0]
    );
    assert_eq!(
        out[1].iter().copied().collect::<Vec<_>>(),
        [3.0, 4.5, 7.5, 9.0]
    );
    assert_eq!(
        out[2].iter().copied().collect::<Vec<_>>(),
        [0.25, 0.25, 0.5, 0.25, 0.25, 0.5, 0.5, 0.5, 1.0]
    );
}

#[test]
fn pooling_shape_rules() {
    let mut g = Graph::<f32>::new();
    let x = g.input("x", [None, Some(26), Some(26), None]).unwrap();
    let y = g.max_pool2d(x, Pool2d::new([2, 2])).unwrap();
    assert_eq!(g.shape(y).unwrap().to_string(), "[?, 13, 13, ?]");
    let odd = g
        .input("odd", [None, Some(11), Some(11), Some(64)])
        .unwrap();
    let y = g.avg_pool2d(odd, Pool2d::new([2, 2])).unwrap();
    assert_eq!(g.shape(y).unwrap().to_string(), "[?, 5, 5, 64]");
    assert!(g.max_pool2d(odd, Pool2d::new([12, 1])).is_err());
    assert!(g.max_pool2d(odd, Pool2d::new([0, 1])).is_err());
    let long = Pool2d {
        strides: [1, 1],
        padding: Padding::Same,
        size: [20, 2],
    };
    assert!(
        g.max_pool2d(odd, long).is_ok(),
        "a same window longer than the image is fine"
    );
    let huge = Pool2d {
        size: [usize::MAX, 2],
        ..long
    };
    let err = g.max_pool2d(odd, huge).unwrap_err();
    assert!(err.to_string().contains("overflows"), "{err}");
    let wrong = g
        .input("wrong", [None, Some(6), Some(5), Some(64)])
        .unwrap();
    assert!(matches!(
        g.max_pool2d_scatter(odd, wrong, Pool2d::new([2, 2]))
            .unwrap_err(),
        GraphError::IncompatibleShapes {
            op: "max_pool2d_scatter",
            ..
        }
    ));
}

/// Runs a random op over shape `dims` at `step` in element type F.
fn draw<F: dendrite_graph::Element>(
    dims: &[usize],
    seed: u64,
    step: f64,
    op: fn(&mut Graph<F>, NodeId, NodeId, u64) -> Result<NodeId, GraphError>,
) -> Result<Vec<f64>, GraphError> {
    let mut g = Graph::<F>::new();
    let x = g.input("x", dims)?;
    let s = g.input("step", dendrite_graph::Shape::scalar())?;
    let r = op(&mut g, x, s, seed)?;
    let mut plan = compile(&g, &[r])?;
    let xs = ArrayD::<F>::zeros(IxDyn(dims));
    let steps = arr0(F::of(step)).into_dyn();
    let out = plan.run(&g, &[("x", xs.view()), ("step", steps.view())])?;
    Ok(out.get(0)?.iter().map(|v| v.as_f64()).collect())
}

fn uniform<F: dendrite_graph::Element>(
    g: &mut Graph<F>,
    x: NodeId,
    s: NodeId,
    seed: u64,
) -> Result<NodeId, GraphError> {
    g.random_uniform(x, s, seed)
}
fn normal<F: dendrite_graph::Element>(
    g: &mut Graph<F>,
    x: NodeId,
    s: NodeId,
    seed: u64,
) -> Result<NodeId, GraphError> {
    g.random_normal(x, s, seed)
}

/// A value depends only on (seed, step, index): not on the shape around it, the element type,
/// or which plan drew it; a change of seed or step changes it.
#[test]
fn random_draws_are_counter_based() {
    let a = draw::<f64>(&[2, 3], 7, 5.0, uniform).unwrap();
    let b = draw::<f64>(&[10], 7, 5.0, uniform).unwrap();
    assert_eq!(a[..], b[..6], "element i does not depend on the shape");
    let single = draw::<f32>(&[2, 3], 7, 5.0, uniform).unwrap();
    assert_eq!(a, single, "f32 and f64 draw the same uniforms");
    assert_ne!(a, draw::<f64>(&[2, 3], 8, 5.0, uniform).unwrap());
    assert_ne!(a, draw::<f64>(&[2, 3], 7, 6.0, uniform).unwrap());
    let n1 = draw::<f64>(&[3, 4], 1, 0.0, normal).unwrap();
    let n2 = draw::<f64>(&[12], 1, 0.0, normal).unwrap();
    assert_eq!(n1, n2);
}

#[test]
fn random_draw_statistics() {
    let n = 20_000;
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let var = |v: &[f64]| {
        let m = mean(v);
        v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / v.len() as f64
    };
    let u = draw::<f64>(&[n], 42, 3.0, uniform).unwrap();
    assert!(u.iter().all(|&x| (0.0..1.0).contains(&x)));
    // Standard errors: 0.289/√n = 0.002 for the mean; tolerances are about 5 of them.
    assert!((mean(&u) - 0.5).abs() < 0.01, "uniform mean {}", mean(&u));
    assert!(
        (var(&u) - 1.0 / 12.0).abs() < 0.004,
        "uniform variance {}",
        var(&u)
    );
    let z = draw::<f64>(&[n], 42, 3.0, normal).unwrap();
    assert!(mean(&z).abs() < 0.035, "normal mean {}", mean(&z));
    assert!((var(&z) - 1.0).abs() < 0.05, "normal variance {}", var(&z));
    let tail = z.iter().filter(|x| x.abs() > 1.96).count() as f64 / n as f64;
    assert!(
        (tail - 0.05).abs() < 0.008,
        "normal two-sided 5% tail {tail}"
    );
    let mask = draw::<f32>(&[n], 9, 1.0, |g, x, s, seed| g.bernoulli(x, s, seed, 0.3)).unwrap();
    assert!(mask.iter().all(|&m| m == 0.0 || m == 1.0));
    let rate = mean(&mask);
    assert!((rate - 0.3).abs() < 0.016, "bernoulli rate {rate}");
}

#[test]
fn random_step_must_be_a_scalar_integer() {
    for bad in [-1.0, 0.5, f64::NAN, f64::INFINITY, 1e30] {
        let err = draw::<f64>(&[3], 1, bad, uniform).unwrap_err();
        assert!(
            matches!(
                err,
                GraphError::IndexOutOfRange {
                    op: "random_uniform",
                    ..
                }
            ),
            "{bad}: {err}"
        );
    }
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [3]).unwrap();
    assert!(matches!(
        g.random_uniform(x, x, 0).unwrap_err(),
        GraphError::InvalidShape { .. }
    ));
    let s = g.scalar(0.0);
    assert!(g.bernoulli(x, s, 0, 1.5).is_err());
}

/// Convolutions keep their im2col in the plan: a second run with the same batch grows nothing.
#[test]
fn conv_scratch_is_kept_by_the_plan() {
    let mut g = Graph::<f32>::new();
    let x = g.input("x", [None, Some(6), Some(6), Some(2)]).unwrap();
    let w = g.input("w", [3, 3, 2, 4]).unwrap();
    let y = g.conv2d(x, w, Conv2d::default()).unwrap();
    let mut plan = compile(&g, &[y]).unwrap();
    let xs = ArrayD::<f32>::ones(IxDyn(&[3, 6, 6, 2]));
    let ws = ArrayD::<f32>::ones(IxDyn(&[3, 3, 2, 4]));
    plan.run(&g, &[("x", xs.view()), ("w", ws.view())]).unwrap();
    let held = plan.buffer_capacity();
    // Output 3·4·4·4 plus the im2col of one group of images, 16·18 each: a group takes
    // images until a product has 2048 rows, so here the whole batch of three.
    assert_eq!(held, 3 * 4 * 4 * 4 + 3 * 16 * 18);
    let out = plan.run(&g, &[("x", xs.view()), ("w", ws.view())]).unwrap();
    assert_eq!(out.get(0).unwrap()[[2, 3, 3, 3]], 18.0);
    assert_eq!(plan.buffer_capacity(), held);
}

/// The kernels multiply a group of images at a time (as many as give a product of 2048 rows):
/// a batch that spans several groups, the last one partial, gives what the images give one
/// at a time, for the convolution, its input gradient and its kernel gradient (the sum of the
/// images' kernel gradients).
#[test]
fn grouped_images_agree_with_one_image_at_a_time() {
    // 28x28 'same' images have 784 rows: groups of three, so a batch of 7 is 3 + 3 + 1.
    let conv = Conv2d {
        padding: Padding::Same,
        ..Conv2d::default()
    };
    let pseudo = |n: usize, k: usize| ((n * 7919 + k * 104_729) % 1000) as f64 / 500.0 - 1.0;
    let x = Array::from_shape_fn(IxDyn(&[7, 28, 28, 2]), |i| {
        pseudo(i[0] * 10_000 + i[1] * 100 + i[2], i[3])
    });
    let w = Array::from_shape_fn(IxDyn(&[3, 3, 2, 4]), |i| {
        pseudo(i[0] * 10 + i[1], i[2] * 4 + i[3])
    });
    let y_bar = Array::from_shape_fn(IxDyn(&[7, 28, 28, 4]), |i| {
        pseudo(i[1] * 31 + i[2], i[0] + i[3])
    });
    let all = |x: &ArrayD<f64>, y_bar: &ArrayD<f64>| {
        run(&[x, &w, y_bar], |g, v| {
            Ok(vec![
                g.conv2d(v[0], v[1], conv)?,
                g.conv2d_input_grad(v[2], v[1], conv, [28, 28])?,
                g.conv2d_kernel_grad(v[0], v[2], conv, [3, 3])?,
            ])
        })
    };
    let batch = all(&x, &y_bar);
    let mut kernel_sum = ArrayD::<f64>::zeros(IxDyn(&[3, 3, 2, 4]));
    for n in 0..7 {
        let one = |a: &ArrayD<f64>| a.slice_axis(ndarray::Axis(0), (n..n + 1).into()).to_owned();
        let single = all(&one(&x), &one(&y_bar));
        for k in 0..2 {
            let mine = one(&batch[k]);
            assert!(
                mine.iter()
                    .zip(single[k].iter())
                    .all(|(a, b)| (a - b).abs() < 1e-12),
                "image {n}, output {k}"
            );
        }
        kernel_sum += &single[2];
    }
    assert!(batch[2]
        .iter()
        .zip(kernel_sum.iter())
        .all(|(a, b)| (a - b).abs() < 1e-11));
}
