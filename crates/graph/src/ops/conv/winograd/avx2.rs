//! The `f32` tile transforms of [`super`] with AVX2 intrinsics, for channel counts that are a
//! multiple of 8: each 4×4 tile of 8 channels is 16 vectors held in registers, where the
//! portable loops pay a call's worth of setup per pixel and per step.
//!
//! Every value is the same sum of the same terms as the portable path's, in the same order;
//! padding reads as a zero vector, so a sign of zero may differ from it.

#![allow(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]

use std::arch::x86_64::{
    __m256, _mm256_add_ps, _mm256_loadu_ps, _mm256_setzero_ps, _mm256_storeu_ps, _mm256_sub_ps,
};

/// Where one tile's pixels start in the image (channel 0), `None` in the padding (a 2×2
/// block uses the first two rows and columns).
pub(super) type Pixels = [[Option<usize>; 4]; 4];

/// `Bᵀ` on four vectors: `[d₀ - d₂, d₁ + d₂, d₂ - d₁, d₁ - d₃]`.
#[inline(always)]
fn b_t([d0, d1, d2, d3]: [__m256; 4]) -> [__m256; 4] {
    // SAFETY: these functions are only reached from `#[target_feature(enable = "avx2")]`
    // functions below, which require AVX2 of their callers.
    unsafe {
        [
            _mm256_sub_ps(d0, d2),
            _mm256_add_ps(d1, d2),
            _mm256_sub_ps(d2, d1),
            _mm256_sub_ps(d1, d3),
        ]
    }
}

/// `A` on two vectors: `[y₀, y₀ + y₁, y₀ - y₁, -y₁]` (`-y₁` as `0 - y₁`).
#[inline(always)]
fn a([y0, y1]: [__m256; 2]) -> [__m256; 4] {
    // SAFETY: as in `b_t`.
    unsafe {
        [
            y0,
            _mm256_add_ps(y0, y1),
            _mm256_sub_ps(y0, y1),
            _mm256_sub_ps(_mm256_setzero_ps(), y1),
        ]
    }
}

/// `Aᵀ` on four vectors: `[m₀ + m₁ + m₂, m₁ - m₂ - m₃]`.
#[inline(always)]
fn a_t([m0, m1, m2, m3]: [__m256; 4]) -> [__m256; 2] {
    // SAFETY: as in `b_t`.
    unsafe {
        [
            _mm256_add_ps(_mm256_add_ps(m0, m1), m2),
            _mm256_sub_ps(_mm256_sub_ps(m1, m2), m3),
        ]
    }
}

/// Eight channels from `src[at..]`, or zeros for padding.
///
/// # Safety
/// AVX2 is available, and `at + 8 <= src.len()` when `at` is `Some`.
#[inline(always)]
unsafe fn load(src: &[f32], at: Option<usize>) -> __m256 {
    match at {
        // SAFETY: the caller's contract.
        Some(at) => unsafe { _mm256_loadu_ps(src.as_ptr().add(at)) },
        // SAFETY: AVX is available (the caller's contract).
        None => unsafe { _mm256_setzero_ps() },
    }
}

/// The 16 transformed vectors `Bᵀ d B` of one 4×4 tile, 8 channels from `c0`, stored at
/// `v[ξ·plane + at..]`.
///
/// # Safety
/// AVX2 is available; every pixel of `pixels` holds channels `c0..c0 + 8` inside `image`,
/// and `v` holds `16` planes of `plane` elements with `at + 8 <= plane`.
#[target_feature(enable = "avx2")]
#[allow(clippy::needless_range_loop)] // `i` picks row i of all the columns at once
pub(super) unsafe fn input_tile(
    image: &[f32],
    pixels: &Pixels,
    c0: usize,
    v: &mut [f32],
    plane: usize,
    at: usize,
) {
    // SAFETY: the contract of this function.
    let d = |r: usize, s: usize| unsafe { load(image, pixels[r][s].map(|p| p + c0)) };
    let column = |s: usize| b_t([d(0, s), d(1, s), d(2, s), d(3, s)]);
    let columns = [column(0), column(1), column(2), column(3)];
    for i in 0..4 {
        let row = b_t([columns[0][i], columns[1][i], columns[2][i], columns[3][i]]);
        for (j, x) in row.into_iter().enumerate() {
            // SAFETY: plane `4i + j` of `v` holds `at + 8` elements (the contract).
            unsafe { _mm256_storeu_ps(v.as_mut_ptr().add((i * 4 + j) * plane + at), x) };
        }
    }
}

/// The 16 transformed vectors `A ȳ Aᵀ` of one 2×2 block of a cotangent, as [`input_tile`].
///
/// # Safety
/// As [`input_tile`].
#[target_feature(enable = "avx2")]
#[allow(clippy::needless_range_loop)] // `i` picks row i of both columns at once
pub(super) unsafe fn cotangent_tile(
    image: &[f32],
    pixels: &Pixels,
    c0: usize,
    v: &mut [f32],
    plane: usize,
    at: usize,
) {
    // SAFETY: the contract of this function.
    let d = |r: usize, s: usize| unsafe { load(image, pixels[r][s].map(|p| p + c0)) };
    let columns = [a([d(0, 0), d(1, 0)]), a([d(0, 1), d(1, 1)])];
    for i in 0..4 {
        let row = a([columns[0][i], columns[1][i]]);
        for (j, x) in row.into_iter().enumerate() {
            // SAFETY: plane `4i + j` of `v` holds `at + 8` elements (the contract).
            unsafe { _mm256_storeu_ps(v.as_mut_ptr().add((i * 4 + j) * plane + at), x) };
        }
    }
}

/// One tile's outputs `Aᵀ M A` (+ `bias`), 8 channels from `c0`, from `m[ξ·plane + at..]` to
/// the pixels of `outputs` that are inside the image.
///
/// # Safety
/// AVX2 is available; `m` holds 16 planes of `plane` elements with `at + 8 <= plane`; every
/// `Some` pixel of `outputs` holds channels `c0..c0 + 8` inside `image`, and so does `bias`.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn output_tile(
    m: &[f32],
    plane: usize,
    at: usize,
    bias: Option<&[f32]>,
    c0: usize,
    image: &mut [f32],
    outputs: &Pixels,
) {
    // SAFETY: the contract of this function.
    let x = |xi: usize| unsafe { _mm256_loadu_ps(m.as_ptr().add(xi * plane + at)) };
    let column = |s: usize| a_t([x(s), x(4 + s), x(8 + s), x(12 + s)]);
    let columns = [column(0), column(1), column(2), column(3)];
    // SAFETY: `bias` holds channels `c0..c0 + 8` (the contract).
    let bias = bias.map(|b| unsafe { _mm256_loadu_ps(b.as_ptr().add(c0)) });
    for i in 0..2 {
        let row = a_t([columns[0][i], columns[1][i], columns[2][i], columns[3][i]]);
        for (j, y) in row.into_iter().enumerate() {
            let Some(pixel) = outputs[i][j] else {
                continue;
            };
            // SAFETY: AVX is available (the contract).
            let y = bias.map_or(y, |b| _mm256_add_ps(y, b));
            // SAFETY: the pixel holds channels `c0..c0 + 8` inside `image` (the contract).
            unsafe { _mm256_storeu_ps(image.as_mut_ptr().add(pixel + c0), y) };
        }
    }
}

/// `B` on four vectors: `[v₀, (v₁ - v₂) + v₃, (v₁ - v₀) + v₂, 0 - v₃]`.
#[inline(always)]
fn b([v0, v1, v2, v3]: [__m256; 4]) -> [__m256; 4] {
    // SAFETY: as in `b_t`.
    unsafe {
        [
            v0,
            _mm256_add_ps(_mm256_sub_ps(v1, v2), v3),
            _mm256_add_ps(_mm256_sub_ps(v1, v0), v2),
            _mm256_sub_ps(_mm256_setzero_ps(), v3),
        ]
    }
}

/// One tile's `B V̄ Bᵀ`, 8 channels from `c0`, from `v[ξ·plane + at..]`, added onto the
/// pixels of `pixels` that are inside the image.
///
/// # Safety
/// AVX2 is available; `v` holds 16 planes of `plane` elements with `at + 8 <= plane`; every
/// `Some` pixel of `pixels` holds channels `c0..c0 + 8` inside `image`.
#[target_feature(enable = "avx2")]
#[allow(clippy::needless_range_loop)] // `r` picks row r of all the columns at once
pub(super) unsafe fn input_adjoint_tile(
    v: &[f32],
    plane: usize,
    at: usize,
    c0: usize,
    image: &mut [f32],
    pixels: &Pixels,
) {
    // SAFETY: the contract of this function.
    let x = |xi: usize| unsafe { _mm256_loadu_ps(v.as_ptr().add(xi * plane + at)) };
    let column = |j: usize| b([x(j), x(4 + j), x(8 + j), x(12 + j)]);
    let columns = [column(0), column(1), column(2), column(3)];
    for r in 0..4 {
        let row = b([columns[0][r], columns[1][r], columns[2][r], columns[3][r]]);
        for (s, d) in row.into_iter().enumerate() {
            let Some(pixel) = pixels[r][s] else {
                continue;
            };
            // SAFETY: the pixel holds channels `c0..c0 + 8` inside `image` (the contract).
            unsafe {
                let dst = image.as_mut_ptr().add(pixel + c0);
                _mm256_storeu_ps(dst, _mm256_add_ps(_mm256_loadu_ps(dst), d));
            }
        }
    }
}
