//! The stride-1 3×3 convolutions with 8 or more channels on each side run by Winograd's
//! F(4×4, 3×3) (`ops/conv/winograd.rs`): the convolution, its bias form, its input gradient
//! and its kernel gradient against direct loops in `f64`, in `f64` and in `f32`. The cases
//! reach every branch of that path: `valid` and `same`, odd and even sizes (tiles cut by the
//! image's edge), a 1x1 output, one tile per image, channel counts that are and are not
//! multiples of 8 (the `f32` intrinsics and the portable loops), and batches of several
//! groups with a shorter last one (13x13x32 images take four per group).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dendrite_graph::ops::{Conv2d, Padding};
use dendrite_graph::{compile, Element, Graph};
use ndarray::{Array, ArrayD, IxDyn};

/// One convolution: batch, input height and width, channels in and out, padding.
#[derive(Debug, Clone, Copy)]
struct Case {
    batch: usize,
    hw: [usize; 2],
    c: usize,
    o: usize,
    padding: Padding,
}

const CASES: [Case; 7] = [
    case(5, [13, 13], 32, 64, Padding::Valid),
    case(3, [8, 7], 8, 16, Padding::Same),
    case(2, [5, 6], 12, 9, Padding::Valid),
    case(2, [6, 5], 9, 12, Padding::Same),
    case(1, [3, 3], 8, 8, Padding::Same),
    case(3, [3, 3], 16, 8, Padding::Valid),
    case(4, [4, 4], 16, 24, Padding::Valid),
];

const fn case(batch: usize, hw: [usize; 2], c: usize, o: usize, padding: Padding) -> Case {
    Case {
        batch,
        hw,
        c,
        o,
        padding,
    }
}

impl Case {
    /// Padding before the first row and column, and the output's height and width.
    fn pad_and_out(&self) -> (usize, [usize; 2]) {
        match self.padding {
            Padding::Valid => (0, self.hw.map(|n| n - 2)),
            Padding::Same => (1, self.hw),
        }
    }
}

/// Values in [-1, 1) from a position, without a random generator.
fn pseudo(seed: usize, shape: &[usize]) -> ArrayD<f64> {
    let mut state = seed as u64 * 0x9E37_79B9_7F4A_7C15 + 1;
    Array::from_shape_simple_fn(IxDyn(shape), || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 11) as f64 / (1u64 << 52) as f64 * 2.0 - 1.0
    })
}

/// The four results by direct loops, each with the sum of its terms' magnitudes (the scale
/// of its rounding): `conv2d`, `conv2d + b`, the input gradient and the kernel gradient.
fn direct(
    k: Case,
    x: &ArrayD<f64>,
    w: &ArrayD<f64>,
    b: &ArrayD<f64>,
    y_bar: &ArrayD<f64>,
) -> [(ArrayD<f64>, ArrayD<f64>); 4] {
    let (pad, [oh, ow]) = k.pad_and_out();
    let [h, wd] = k.hw;
    let mut y = ArrayD::zeros(IxDyn(&[k.batch, oh, ow, k.o]));
    let mut y_abs = y.clone();
    let mut x_bar = ArrayD::zeros(x.raw_dim());
    let mut x_abs = x_bar.clone();
    let mut w_bar = ArrayD::zeros(w.raw_dim());
    let mut w_abs = w_bar.clone();
    for n in 0..k.batch {
        for i in 0..oh {
            for j in 0..ow {
                for kh in 0..3 {
                    for kw in 0..3 {
                        let (Some(ih), Some(iw)) =
                            ((i + kh).checked_sub(pad), (j + kw).checked_sub(pad))
                        else {
                            continue;
                        };
                        if ih >= h || iw >= wd {
                            continue;
                        }
                        for c in 0..k.c {
                            for o in 0..k.o {
                                let (xv, wv, gv) =
                                    (x[[n, ih, iw, c]], w[[kh, kw, c, o]], y_bar[[n, i, j, o]]);
                                y[[n, i, j, o]] += xv * wv;
                                y_abs[[n, i, j, o]] += (xv * wv).abs();
                                x_bar[[n, ih, iw, c]] += gv * wv;
                                x_abs[[n, ih, iw, c]] += (gv * wv).abs();
                                w_bar[[kh, kw, c, o]] += xv * gv;
                                w_abs[[kh, kw, c, o]] += (xv * gv).abs();
                            }
                        }
                    }
                }
            }
        }
    }
    let y_b = &y + b;
    let y_b_abs = &y_abs + &b.mapv(f64::abs);
    [(y, y_abs), (y_b, y_b_abs), (x_bar, x_abs), (w_bar, w_abs)]
}

/// The same four through the graph's kernels in `F`.
fn kernels<F: Element>(k: Case, vals: [&ArrayD<f64>; 4]) -> Vec<ArrayD<f64>> {
    let conv = Conv2d {
        padding: k.padding,
        ..Conv2d::default()
    };
    let narrow = |a: &ArrayD<f64>| a.mapv(|v| F::from(v).unwrap());
    let vals = vals.map(narrow);
    let names = ["x", "w", "b", "y_bar"];
    let mut g = Graph::<F>::new();
    let nodes: Vec<_> = names
        .iter()
        .zip(&vals)
        .map(|(name, v)| g.input(name, v.shape()).unwrap())
        .collect();
    let (x, w, b, y_bar) = (nodes[0], nodes[1], nodes[2], nodes[3]);
    let fetches = [
        g.conv2d(x, w, conv).unwrap(),
        g.conv2d_bias(x, w, b, conv).unwrap(),
        g.conv2d_input_grad(y_bar, w, conv, k.hw).unwrap(),
        g.conv2d_kernel_grad(x, y_bar, conv, [3, 3]).unwrap(),
    ];
    let feeds: Vec<_> = names
        .iter()
        .zip(&vals)
        .map(|(n, v)| (*n, v.view()))
        .collect();
    let mut plan = compile(&g, &fetches).unwrap();
    let out = plan.run(&g, &feeds).unwrap().to_vec().unwrap();
    out.iter()
        .map(|a| a.mapv(|v| v.to_f64().unwrap()))
        .collect()
}

/// The worst error of `got` against `want`, in units of `ulp · Σ|terms|`.
fn worst(got: &ArrayD<f64>, want: &(ArrayD<f64>, ArrayD<f64>), ulp: f64) -> f64 {
    assert_eq!(got.shape(), want.0.shape());
    let mut worst = 0.0_f64;
    for ((&g, &w), &scale) in got.iter().zip(&want.0).zip(&want.1) {
        worst = worst.max((g - w).abs() / (ulp * scale.max(f64::MIN_POSITIVE)));
    }
    worst
}

/// Every result is within a bounded number of units of rounding (`2⁻ᵖ · Σ|terms|`, p = 53
/// or 24) of the direct sum. F(4×4, 3×3)'s transforms weigh their terms by up to 5 (`Bᵀ`)
/// and 8 (`Aᵀ`), so the values in the transformed domain are larger than the sum's terms and
/// their rounding is carried back with those weights: measured at most 318 units (a 1x1
/// output's kernel gradient in f32, three terms whose tiles are mostly padding), 11-151 for
/// conv2's 288- and 576-term sums (the input gradient the largest); F(2×2, 3×3) stayed
/// within 29. The bound allows 1024 plus a quarter of a unit per term. A wrong coefficient or
/// tile would be off by about 10¹⁵ (f64) or 10⁶ (f32) units.
#[test]
fn winograd_matches_direct_loops_in_f64_and_f32() {
    let names = ["conv2d", "conv2d_bias", "input_grad", "kernel_grad"];
    for (seed, k) in CASES.into_iter().enumerate() {
        let (_, [oh, ow]) = k.pad_and_out();
        let x = pseudo(4 * seed, &[k.batch, k.hw[0], k.hw[1], k.c]);
        let w = pseudo(4 * seed + 1, &[3, 3, k.c, k.o]);
        let b = pseudo(4 * seed + 2, &[k.o]);
        let y_bar = pseudo(4 * seed + 3, &[k.batch, oh, ow, k.o]);
        let want = direct(k, &x, &w, &b, &y_bar);
        let terms = [9 * k.c, 9 * k.c + 1, 9 * k.o, k.batch * oh * ow];
        let runs = [
            (kernels::<f64>(k, [&x, &w, &b, &y_bar]), f64::EPSILON / 2.0),
            (
                kernels::<f32>(k, [&x, &w, &b, &y_bar]),
                f64::from(f32::EPSILON) / 2.0,
            ),
        ];
        for (got, ulp) in &runs {
            for (i, (got, want)) in got.iter().zip(&want).enumerate() {
                let units = worst(got, want, *ulp);
                let bound = 1024.0 + terms[i] as f64 / 4.0;
                assert!(
                    units <= bound,
                    "{k:?} {}: {units} > {bound} units",
                    names[i]
                );
            }
        }
    }
}
