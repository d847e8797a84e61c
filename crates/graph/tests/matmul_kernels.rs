//! The packing-free GEMM kernels (row panel, dot, and the `f32` AVX2 tiles) and the library
//! fallback agree with a naive triple loop for every layout the plan can hand them: plain,
//! transposed lhs, transposed rhs (copied to the stack when small, read in place when not),
//! both, ragged sizes (not multiples of the register tile, so every column mask is used), and
//! empty dimensions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dendrite_graph::{compile, Element, Graph};
use ndarray::{Array2, ArrayD};
use proptest::prelude::*;

fn naive(a: &Array2<f64>, b: &Array2<f64>) -> Array2<f64> {
    let (m, k) = a.dim();
    let n = b.ncols();
    Array2::from_shape_fn((m, n), |(i, j)| (0..k).map(|p| a[[i, p]] * b[[p, j]]).sum())
}

fn run<F: Element>(a: &Array2<F>, b: &Array2<F>, ta: bool, tb: bool) -> ArrayD<F> {
    // Store each operand the way the flag says, so the kernel sees the strided view.
    let stored_a = if ta { a.t().to_owned() } else { a.clone() };
    let stored_b = if tb { b.t().to_owned() } else { b.clone() };
    let mut g = Graph::<F>::new();
    let an = g.input("a", stored_a.shape()).unwrap();
    let bn = g.input("b", stored_b.shape()).unwrap();
    let c = g.matmul_t(an, bn, ta, tb).unwrap();
    let mut plan = compile(&g, &[c]).unwrap();
    let (sa, sb) = (stored_a.into_dyn(), stored_b.into_dyn());
    let out = plan.run(&g, &[("a", sa.view()), ("b", sb.view())]).unwrap();
    out.get(0).unwrap().to_owned()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]
    #[test]
    fn every_layout_matches_the_naive_product(
        m in 0usize..21,
        k in 0usize..40,
        n in 0usize..37,
        ta: bool,
        tb: bool,
        seed in 0u64..1000,
    ) {
        let a = Array2::from_shape_fn((m, k), |(i, j)| {
            ((i * 31 + j * 7 + seed as usize) % 23) as f64 / 7.0 - 1.5
        });
        let b = Array2::from_shape_fn((k, n), |(i, j)| {
            ((i * 13 + j * 11 + seed as usize) % 19) as f64 / 5.0 - 1.8
        });
        let expected = naive(&a, &b).into_dyn();
        let got = run(&a, &b, ta, tb);
        prop_assert_eq!(got.shape(), expected.shape());
        for (x, y) in got.iter().zip(expected.iter()) {
            prop_assert!((x - y).abs() <= 1e-10 * (1.0 + y.abs()), "{} vs {}", x, y);
        }
    }

    /// The same in `f32`, which on an AVX2 machine takes the tiled kernel: `n` up to 36 covers
    /// full 16-wide strips, masked strips of 9-15 columns and the 8-wide strip with 1-8 live
    /// columns; `m` up to 20 covers ragged 6- and 8-row tiles. A transposed rhs (read across
    /// its rows) is copied to the small stack buffer up to `k * n` = 4096, to the large one up
    /// to 16384, and above that goes through the safe kernels: `k` up to 460 reaches all three
    /// (and several of the kernel's 64-term chunks).
    #[test]
    fn every_layout_matches_the_naive_product_in_f32(
        m in 0usize..21,
        k in 0usize..460,
        n in 0usize..37,
        ta: bool,
        tb: bool,
        seed in 0u64..1000,
    ) {
        let a = Array2::from_shape_fn((m, k), |(i, j)| {
            ((i * 31 + j * 7 + seed as usize) % 23) as f64 / 7.0 - 1.5
        });
        let b = Array2::from_shape_fn((k, n), |(i, j)| {
            ((i * 13 + j * 11 + seed as usize) % 19) as f64 / 5.0 - 1.8
        });
        let expected = naive(&a, &b).into_dyn();
        let magnitude = naive(&a.mapv(f64::abs), &b.mapv(f64::abs)).into_dyn();
        let got = run(&a.mapv(|v| v as f32), &b.mapv(|v| v as f32), ta, tb);
        prop_assert_eq!(got.shape(), expected.shape());
        for ((x, y), size) in got.iter().zip(expected.iter()).zip(magnitude.iter()) {
            // Inputs are exact in f32; a sum of k < 460 rounded terms is within
            // k · 2^-24 · Σ|terms| < 3e-5 · Σ|terms| of the exact one.
            prop_assert!((f64::from(*x) - y).abs() <= 3e-5 * size + 1e-30, "{} vs {}", x, y);
        }
    }
}

/// Each element of an `f32` product is summed in increasing `p` whatever tile or strip it
/// falls in, so a row computed inside a large product equals the same row computed alone,
/// bit for bit.
#[test]
fn a_row_does_not_depend_on_the_rows_around_it() {
    let (m, k, n) = (29, 200, 37);
    let a = Array2::from_shape_fn((m, k), |(i, j)| {
        ((i * 37 + j * 17) % 101) as f32 / 13.0 - 3.0
    });
    let b = Array2::from_shape_fn((k, n), |(i, j)| ((i * 7 + j * 29) % 89) as f32 / 11.0 - 4.0);
    let whole = run(&a, &b, false, false);
    for i in 0..m {
        let row = a.slice(ndarray::s![i..=i, ..]).to_owned();
        let alone = run(&row, &b, false, false);
        for j in 0..n {
            assert_eq!(
                whole[[i, j]].to_bits(),
                alone[[0, j]].to_bits(),
                "row {i} column {j}"
            );
        }
    }
}

/// On a CPU with AVX2 and FMA, an `f32` product's element is the sequential fused
/// multiply-add over `p`, bit for bit, also where the kernel cuts the sum into chunks (a
/// transposed lhs, `k` over several chunks of 64) and the columns into blocks of strips
/// (`n` = 100: six 16-wide strips, in a block of four and one of two, then an 8-wide strip
/// with four live columns).
#[test]
fn chunked_f32_sums_are_the_sequential_fused_sum() {
    #[cfg(target_arch = "x86_64")]
    if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
        return;
    }
    #[cfg(not(target_arch = "x86_64"))]
    return;
    let (m, k, n) = (13, 200, 100);
    let a = Array2::from_shape_fn((m, k), |(i, j)| {
        ((i * 37 + j * 17) % 101) as f32 / 13.0 - 3.0
    });
    let b = Array2::from_shape_fn((k, n), |(i, j)| ((i * 7 + j * 29) % 89) as f32 / 11.0 - 4.0);
    for ta in [true, false] {
        let got = run(&a, &b, ta, false);
        for ((i, j), &x) in got
            .view()
            .into_dimensionality::<ndarray::Ix2>()
            .unwrap()
            .indexed_iter()
        {
            let fused = (0..k).fold(0.0_f32, |acc, p| a[[i, p]].mul_add(b[[p, j]], acc));
            assert_eq!(x.to_bits(), fused.to_bits(), "ta {ta}, element ({i}, {j})");
        }
    }
}

#[test]
fn reference_shapes_in_f32_match_f64() {
    let a = Array2::from_shape_fn((32, 784), |(i, j)| ((i * 784 + j) % 255) as f64 / 255.0);
    let b = Array2::from_shape_fn((784, 32), |(i, j)| {
        ((i * 3 + j * 5) % 17) as f64 / 17.0 - 0.5
    });
    let expected = naive(&a, &b);
    let mut g = Graph::<f32>::new();
    let an = g.input("a", [32, 784]).unwrap();
    let bn = g.input("b", [784, 32]).unwrap();
    let c = g.matmul(an, bn).unwrap();
    let mut plan = compile(&g, &[c]).unwrap();
    let (af, bf) = (
        a.mapv(|v| v as f32).into_dyn(),
        b.mapv(|v| v as f32).into_dyn(),
    );
    let out = plan.run(&g, &[("a", af.view()), ("b", bf.view())]).unwrap();
    for (x, y) in out.get(0).unwrap().iter().zip(expected.iter()) {
        assert!((f64::from(*x) - y).abs() < 1e-4 * (1.0 + y.abs()));
    }
}
