//! The fast paths of the convolution and pooling kernels against references: the `f32`
//! convolution kernels (on an AVX2 machine the tiled kernel, with its adding mode) against the
//! same graph in `f64`, and max pooling's direct path for windows inside the image against a
//! direct loop over each window.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::run;
use dendrite_graph::ops::{Conv2d, Padding, Pool2d};
use dendrite_graph::Dim;
use dendrite_graph::{compile, Graph};
use ndarray::{Array, ArrayD, IxDyn};

/// The convolution, its input gradient and its kernel gradient in `f32` (on an AVX2 machine
/// the tiled kernel, the kernel gradient added product by product into one running sum)
/// agree with the same graph in `f64` (the safe kernels). 28x28 'same' images with 8 channels
/// take 225 KiB of im2col each, so a batch of three is three groups; 20 output channels give
/// one 16-wide strip and one 8-wide strip with 4 live lanes.
#[test]
fn f32_kernels_agree_with_f64_over_several_groups() {
    let conv = Conv2d {
        padding: Padding::Same,
        ..Conv2d::default()
    };
    let pseudo = |n: usize, k: usize| ((n * 7919 + k * 104_729) % 1000) as f64 / 500.0 - 1.0;
    let x = Array::from_shape_fn(IxDyn(&[3, 28, 28, 8]), |i| {
        pseudo(i[0] * 10_000 + i[1] * 100 + i[2], i[3])
    });
    let w = Array::from_shape_fn(IxDyn(&[3, 3, 8, 20]), |i| {
        pseudo(i[0] * 10 + i[1], i[2] * 20 + i[3])
    });
    let y_bar = Array::from_shape_fn(IxDyn(&[3, 28, 28, 20]), |i| {
        pseudo(i[1] * 31 + i[2], i[0] * 20 + i[3])
    });
    fn three<F: dendrite_graph::Element>(vals: [&ArrayD<F>; 3], conv: Conv2d) -> Vec<ArrayD<F>> {
        let mut g = Graph::<F>::new();
        let [x, w, y_bar] = ["x", "w", "y_bar"].map(|n| n.to_owned());
        let xn = g.input(&x, vals[0].shape()).unwrap();
        let wn = g.input(&w, vals[1].shape()).unwrap();
        let yn = g.input(&y_bar, vals[2].shape()).unwrap();
        let fetches = [
            g.conv2d(xn, wn, conv).unwrap(),
            g.conv2d_input_grad(yn, wn, conv, [28, 28]).unwrap(),
            g.conv2d_kernel_grad(xn, yn, conv, [3, 3]).unwrap(),
        ];
        let feeds = [
            (x.as_str(), vals[0].view()),
            (w.as_str(), vals[1].view()),
            (y_bar.as_str(), vals[2].view()),
        ];
        let mut plan = compile(&g, &fetches).unwrap();
        plan.run(&g, &feeds).unwrap().to_vec().unwrap()
    }
    let wide = three([&x, &w, &y_bar], conv);
    let narrow = |a: &ArrayD<f64>| a.mapv(|v| v as f32);
    let single = three([&narrow(&x), &narrow(&w), &narrow(&y_bar)], conv);
    // Each output sums at most 72 (forward), 180 (input gradient) or 2,352 (kernel gradient)
    // products of magnitude at most 1: an f32 sum is within about n·2⁻²⁴ of each term's scale.
    for (k, (a, b)) in wide.iter().zip(&single).enumerate() {
        assert_eq!(a.shape(), b.shape());
        let worst = a
            .iter()
            .zip(b.iter())
            .map(|(&a, &b)| (a - f64::from(b)).abs())
            .fold(0.0, f64::max);
        assert!(worst < 2e-3, "output {k}: off by {worst}");
    }
}

/// Max pooling and its scatter against a direct loop over each window with the tie rule, on
/// images where some windows lie inside (the kernels' direct path) and some overlap the
/// padding (the general path): `same` padding on odd sizes, overlapping windows (stride 1 and
/// 2 with a 3x3 pool), windows that tile the image, values with many ties, a NaN, and 70
/// channels (two channel blocks).
#[test]
fn max_pool_inside_and_border_windows_match_a_direct_loop() {
    let (h, w, c) = (7, 6, 70);
    let x = Array::from_shape_fn(IxDyn(&[2, h, w, c]), |i| {
        if (i[0], i[1], i[2], i[3]) == (1, 3, 2, 5) {
            f64::NAN
        } else {
            ((i[0] * 7 + i[1] * 5 + i[2] * 3 + i[3]) % 4) as f64
        }
    });
    for (size, strides, padding) in [
        ([2, 2], [2, 2], Padding::Same),
        ([3, 3], [1, 2], Padding::Same),
        ([3, 2], [2, 1], Padding::Valid),
        // Windows that tile the image (the scatter's one-pass path), with the last row, or
        // the last row and column, left out of every window.
        ([2, 2], [2, 2], Padding::Valid),
        ([2, 3], [2, 3], Padding::Valid),
        ([3, 3], [3, 3], Padding::Valid),
    ] {
        let pool = Pool2d {
            size,
            strides,
            padding,
        };
        let out = run(&[&x], |g, v| {
            let y = g.max_pool2d(v[0], pool)?;
            let y_bar = g.ones_like(y)?;
            let x_bar = g.local_vjp(y, y_bar)?;
            Ok(vec![y, x_bar[0].unwrap()])
        });
        let (y, x_bar) = (&out[0], &out[1]);
        let (oh, ow) = (y.shape()[1], y.shape()[2]);
        let before = |n: usize, o: usize, k: usize, s: usize| match padding {
            Padding::Valid => 0,
            Padding::Same => ((o - 1) * s + k).saturating_sub(n) / 2,
        };
        let (top, left) = (
            before(h, oh, size[0], strides[0]),
            before(w, ow, size[1], strides[1]),
        );
        let mut expected_bar = ArrayD::<f64>::zeros(IxDyn(&[2, h, w, c]));
        for (n, i, j, k) in every_index(2, oh, ow, c) {
            let mut best: Option<(f64, usize, usize)> = None;
            for p in 0..size[0] {
                for q in 0..size[1] {
                    let (r, s) = (
                        (i * strides[0] + p) as isize - top as isize,
                        (j * strides[1] + q) as isize - left as isize,
                    );
                    if r < 0 || s < 0 || r >= h as isize || s >= w as isize {
                        continue;
                    }
                    let v = x[[n, r as usize, s as usize, k]];
                    let wins = match best {
                        None => true,
                        Some((b, _, _)) => v > b || (v.is_nan() && !b.is_nan()),
                    };
                    if wins {
                        best = Some((v, r as usize, s as usize));
                    }
                }
            }
            let (v, r, s) = best.unwrap();
            let got = y[[n, i, j, k]];
            assert!(
                got == v || (got.is_nan() && v.is_nan()),
                "{size:?} {strides:?} at {n} {i} {j} {k}"
            );
            expected_bar[[n, r, s, k]] += 1.0;
        }
        assert_eq!(x_bar, &expected_bar, "{size:?} {strides:?} {padding:?}");
    }
}

/// Every `(n, i, j, k)` below the given sizes, in row-major order.
fn every_index(
    n: usize,
    h: usize,
    w: usize,
    c: usize,
) -> impl Iterator<Item = (usize, usize, usize, usize)> {
    (0..n).flat_map(move |a| {
        (0..h).flat_map(move |b| (0..w).flat_map(move |d| (0..c).map(move |e| (a, b, d, e))))
    })
}

/// One-channel images under 3-wide windows (the convnet's first layer, whose windows are
/// copied three values at a time when they are inside the image) against direct loops, for
/// the convolution and its kernel gradient: plain, strided, dilated down the rows, and
/// `same` padding (the general copy).
#[test]
fn one_channel_windows_match_a_direct_loop() {
    let (n, h, w, o) = (2, 7, 6, 4);
    let x = Array::from_shape_fn(IxDyn(&[n, h, w, 1]), |i| {
        ((i[0] * 31 + i[1] * 7 + i[2] * 3) % 11) as f64 - 5.0
    });
    let k = Array::from_shape_fn(IxDyn(&[3, 3, 1, o]), |i| {
        ((i[0] * 5 + i[1] * 3 + i[3]) % 7) as f64 - 3.0
    });
    for (strides, dilation, padding) in [
        ([1, 1], [1, 1], Padding::Valid),
        ([2, 1], [1, 1], Padding::Valid),
        ([1, 2], [2, 1], Padding::Valid),
        ([1, 1], [1, 1], Padding::Same),
    ] {
        let conv = Conv2d {
            strides,
            dilation,
            padding,
        };
        let y = run(&[&x, &k], |g, v| Ok(vec![g.conv2d(v[0], v[1], conv)?]))[0].clone();
        let (oh, ow) = (y.shape()[1], y.shape()[2]);
        let y_bar = Array::from_shape_fn(IxDyn(&[n, oh, ow, o]), |i| {
            ((i[1] * 3 + i[2] + i[3]) % 5) as f64 - 2.0
        });
        let k_bar = run(&[&x, &y_bar], |g, v| {
            Ok(vec![g.conv2d_kernel_grad(v[0], v[1], conv, [3, 3])?])
        })[0]
            .clone();
        let (want_y, want_k_bar) = one_channel_reference(&x, &k, &y_bar, conv);
        assert_eq!(y, want_y, "{strides:?} {dilation:?} {padding:?}");
        assert_eq!(k_bar, want_k_bar, "{strides:?} {dilation:?} {padding:?}");
    }
}

/// The convolution and kernel gradient of one-channel images `x` under a 3x3 kernel `k`
/// (stride-1 `same` padding puts one zero before), by direct loops: `(y, k̄)` for the
/// cotangent `y_bar`.
fn one_channel_reference<T: ndarray::LinalgScalar>(
    x: &ArrayD<T>,
    k: &ArrayD<T>,
    y_bar: &ArrayD<T>,
    conv: Conv2d,
) -> (ArrayD<T>, ArrayD<T>) {
    let Conv2d {
        strides,
        dilation,
        padding,
    } = conv;
    let (&[n, h, w, _], &[_, oh, ow, o]) = (x.shape(), y_bar.shape()) else {
        panic!("NHWC operands");
    };
    // `same` pads (k - 1) / 2 = 1 before for these stride-1 windows.
    let before = if padding == Padding::Same { 1 } else { 0 };
    let pixel = |b: usize, i: usize, j: usize, p: usize, q: usize| {
        let r = (i * strides[0] + p * dilation[0]).checked_sub(before)?;
        let s = (j * strides[1] + q * dilation[1]).checked_sub(before)?;
        (r < h && s < w).then(|| x[[b, r, s, 0]])
    };
    let mut y = ArrayD::<T>::zeros(y_bar.raw_dim());
    let mut k_bar = ArrayD::<T>::zeros(IxDyn(&[3, 3, 1, o]));
    for (b, i, j, c) in every_index(n, oh, ow, o) {
        for (p, q) in (0..3).flat_map(|p| (0..3).map(move |q| (p, q))) {
            if let Some(v) = pixel(b, i, j, p, q) {
                y[[b, i, j, c]] = y[[b, i, j, c]] + v * k[[p, q, 0, c]];
                k_bar[[p, q, 0, c]] = k_bar[[p, q, 0, c]] + v * y_bar[[b, i, j, c]];
            }
        }
    }
    (y, k_bar)
}

/// The same windows in `f32` with 8 and 32 filters, where one-channel convolutions without
/// padding run directly on vectors (`ops/conv/direct.rs`: 8 filters take the AVX2 instance,
/// 32 the widest the CPU has), against direct loops: integer values, so every sum is exact
/// and any order gives it. `same` padding keeps im2col.
#[test]
fn one_channel_direct_kernels_match_a_direct_loop() {
    let (n, h, w) = (3, 9, 8);
    let x = Array::from_shape_fn(IxDyn(&[n, h, w, 1]), |i| {
        ((i[0] * 31 + i[1] * 7 + i[2] * 3) % 11) as f32 - 5.0
    });
    for o in [8, 32] {
        let k = Array::from_shape_fn(IxDyn(&[3, 3, 1, o]), |i| {
            ((i[0] * 5 + i[1] * 3 + i[3]) % 7) as f32 - 3.0
        });
        let b = Array::from_shape_fn(IxDyn(&[o]), |i| (i[0] % 5) as f32 - 2.0);
        for (strides, dilation, padding) in [
            ([1, 1], [1, 1], Padding::Valid),
            ([2, 1], [1, 1], Padding::Valid),
            ([1, 2], [2, 1], Padding::Valid),
            ([1, 1], [1, 1], Padding::Same),
        ] {
            let conv = Conv2d {
                strides,
                dilation,
                padding,
            };
            let mut g = Graph::<f32>::new();
            let (xi, ki, bi) = (
                g.input("x", x.shape()).unwrap(),
                g.input("k", k.shape()).unwrap(),
                g.input("b", b.shape()).unwrap(),
            );
            let y = g.conv2d_bias(xi, ki, bi, conv).unwrap();
            let (oh, ow) = match g.shape(y).unwrap().dims() {
                [_, Dim::Fixed(oh), Dim::Fixed(ow), _] => (*oh, *ow),
                other => panic!("{other:?}"),
            };
            let y_bar = Array::from_shape_fn(IxDyn(&[n, oh, ow, o]), |i| {
                ((i[1] * 3 + i[2] + i[3]) % 5) as f32 - 2.0
            });
            let yi = g.input("y_bar", y_bar.shape()).unwrap();
            let k_bar = g.conv2d_kernel_grad(xi, yi, conv, [3, 3]).unwrap();
            let mut plan = compile(&g, &[y, k_bar]).unwrap();
            let feeds = [
                ("x", x.view()),
                ("k", k.view()),
                ("b", b.view()),
                ("y_bar", y_bar.view()),
            ];
            let out = plan.run(&g, &feeds).unwrap().to_vec().unwrap();
            let (want_y, want_k_bar) = one_channel_reference(&x, &k, &y_bar, conv);
            let case = format!("{o} filters, {strides:?} {dilation:?} {padding:?}");
            assert_eq!(out[0], &want_y + &b, "{case}");
            assert_eq!(out[1], want_k_bar, "{case}");
        }
    }
}
