//! The `f32` tile transforms of [`super`] over the vector operations of [`Lanes`], compiled
//! for AVX-512F (channel counts that are a multiple of 16) and AVX2 (a multiple of 8): each
//! 4×4 tile of one vector of channels is 16 vectors held in registers, where the portable
//! loops pay a call's worth of setup per pixel and per step.
//!
//! Every value is the same sum of the same terms as the portable path's, in the same order,
//! whatever the vector width; padding reads as a zero vector, so a sign of zero may differ
//! from the portable path's.
//!
//! No closure here calls a vector operation: a closure is compiled without its enclosing
//! instance's target features, so the operation would become an out-of-line call per vector
//! (measured: a third slower than AVX2's separate functions). Loops over small arrays do the
//! same work inlined.

#![allow(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]

use super::tiles::Pixels;
use crate::lanes::{Avx2, Avx512, Lanes};

/// Which instance runs: the widest whose vector divides the channel count.
#[derive(Clone, Copy)]
pub(super) enum Isa {
    Avx2,
    Avx512,
}

impl Isa {
    /// The instance for `c` channels on this CPU, `None` when neither applies.
    pub fn for_channels(c: usize) -> Option<Self> {
        if crate::cpu::has_avx512f() && c.is_multiple_of(Avx512::LANES) {
            Some(Isa::Avx512)
        } else if crate::cpu::has_avx2() && c.is_multiple_of(Avx2::LANES) {
            Some(Isa::Avx2)
        } else {
            None
        }
    }

    /// Channels per vector.
    pub fn lanes(self) -> usize {
        match self {
            Isa::Avx2 => Avx2::LANES,
            Isa::Avx512 => Avx512::LANES,
        }
    }
}

/// `Bᵀ` on four vectors: `[d₀ - d₂, d₁ + d₂, d₂ - d₁, d₁ - d₃]`.
///
/// # Safety
/// `S`'s instruction set is available (true of every function here).
#[inline(always)]
unsafe fn b_t<S: Lanes>([d0, d1, d2, d3]: [S::V; 4]) -> [S::V; 4] {
    // SAFETY: the instruction set is available (the contract).
    unsafe {
        [
            S::sub(d0, d2),
            S::add(d1, d2),
            S::sub(d2, d1),
            S::sub(d1, d3),
        ]
    }
}

/// `A` on two vectors: `[y₀, y₀ + y₁, y₀ - y₁, -y₁]` (`-y₁` as `0 - y₁`).
#[inline(always)]
unsafe fn a<S: Lanes>([y0, y1]: [S::V; 2]) -> [S::V; 4] {
    // SAFETY: as in `b_t`.
    unsafe { [y0, S::add(y0, y1), S::sub(y0, y1), S::sub(S::zero(), y1)] }
}

/// `Aᵀ` on four vectors: `[m₀ + m₁ + m₂, m₁ - m₂ - m₃]`.
#[inline(always)]
unsafe fn a_t<S: Lanes>([m0, m1, m2, m3]: [S::V; 4]) -> [S::V; 2] {
    // SAFETY: as in `b_t`.
    unsafe { [S::add(S::add(m0, m1), m2), S::sub(S::sub(m1, m2), m3)] }
}

/// `B` on four vectors: `[v₀, (v₁ - v₂) + v₃, (v₁ - v₀) + v₂, 0 - v₃]`.
#[inline(always)]
unsafe fn b<S: Lanes>([v0, v1, v2, v3]: [S::V; 4]) -> [S::V; 4] {
    // SAFETY: as in `b_t`.
    unsafe {
        [
            v0,
            S::add(S::sub(v1, v2), v3),
            S::add(S::sub(v1, v0), v2),
            S::sub(S::zero(), v3),
        ]
    }
}

/// One vector of channels from `src[at..]`, or zeros for padding.
///
/// # Safety
/// The instruction set is available, and `at + LANES <= src.len()` when `at` is `Some`.
#[inline(always)]
unsafe fn load<S: Lanes>(src: &[f32], at: Option<usize>) -> S::V {
    match at {
        // SAFETY: the caller's contract.
        Some(at) => unsafe { S::load(src.as_ptr().add(at)) },
        // SAFETY: the instruction set is available (the caller's contract).
        None => unsafe { S::zero() },
    }
}

/// The `N × N` pixels of a tile, one vector of channels from `c0` each (zeros for padding).
///
/// # Safety
/// As [`load`], for every `Some` pixel.
#[inline(always)]
unsafe fn tile_loads<S: Lanes, const N: usize>(
    image: &[f32],
    pixels: &Pixels,
    c0: usize,
) -> [[S::V; N]; N] {
    // SAFETY: the instruction set is available (the contract).
    let mut d = [[unsafe { S::zero() }; N]; N];
    for (row, pixels) in d.iter_mut().zip(pixels) {
        for (v, pixel) in row.iter_mut().zip(pixels) {
            // SAFETY: the pixel holds the channels (the contract).
            *v = unsafe { load::<S>(image, pixel.map(|p| p + c0)) };
        }
    }
    d
}

/// One vector from each of the 16 planes of `m`, at `at`.
///
/// # Safety
/// The instruction set is available; `m` holds 16 planes of `plane` elements with
/// `at + LANES <= plane`.
#[inline(always)]
unsafe fn planes<S: Lanes>(m: &[f32], plane: usize, at: usize) -> [S::V; 16] {
    // SAFETY: the instruction set is available (the contract).
    let mut x = [unsafe { S::zero() }; 16];
    for (xi, v) in x.iter_mut().enumerate() {
        // SAFETY: plane `xi` holds `at + LANES` elements (the contract).
        *v = unsafe { S::load(m.as_ptr().add(xi * plane + at)) };
    }
    x
}

/// Row `i` of a transformed tile: its four vectors to planes `4i..4i + 4` of `v`, at `at`.
///
/// # Safety
/// The instruction set is available; `v` holds 16 planes of `plane` elements with
/// `at + LANES <= plane`.
#[inline(always)]
unsafe fn store_row<S: Lanes>(v: &mut [f32], plane: usize, at: usize, i: usize, row: [S::V; 4]) {
    for (j, x) in row.into_iter().enumerate() {
        // SAFETY: plane `4i + j` of `v` holds `at + LANES` elements (the contract).
        unsafe { S::store(v.as_mut_ptr().add((i * 4 + j) * plane + at), x) };
    }
}

/// The 16 transformed vectors `Bᵀ d B` of one 4×4 tile, `LANES` channels from `c0`, stored
/// at `v[ξ·plane + at..]`.
///
/// # Safety
/// The instruction set is available; every pixel of `pixels` holds channels
/// `c0..c0 + LANES` inside `image`, and `v` holds `16` planes of `plane` elements with
/// `at + LANES <= plane`.
#[inline(always)]
#[allow(clippy::needless_range_loop)] // `i` picks row i of all the columns at once
unsafe fn input_tile<S: Lanes>(
    image: &[f32],
    pixels: &Pixels,
    c0: usize,
    v: &mut [f32],
    plane: usize,
    at: usize,
) {
    // SAFETY: the contract of this function.
    let d = unsafe { tile_loads::<S, 4>(image, pixels, c0) };
    let mut columns = [[d[0][0]; 4]; 4];
    for (s, column) in columns.iter_mut().enumerate() {
        // SAFETY: as above.
        *column = unsafe { b_t::<S>([d[0][s], d[1][s], d[2][s], d[3][s]]) };
    }
    for i in 0..4 {
        // SAFETY: as above.
        let row = unsafe { b_t::<S>([columns[0][i], columns[1][i], columns[2][i], columns[3][i]]) };
        // SAFETY: as above.
        unsafe { store_row::<S>(v, plane, at, i, row) };
    }
}

/// The 16 transformed vectors `A ȳ Aᵀ` of one 2×2 block of a cotangent, as [`input_tile`].
///
/// # Safety
/// As [`input_tile`].
#[inline(always)]
#[allow(clippy::needless_range_loop)] // `i` picks row i of both columns at once
unsafe fn cotangent_tile<S: Lanes>(
    image: &[f32],
    pixels: &Pixels,
    c0: usize,
    v: &mut [f32],
    plane: usize,
    at: usize,
) {
    // SAFETY: the contract of this function.
    let d = unsafe { tile_loads::<S, 2>(image, pixels, c0) };
    // SAFETY: as above.
    let columns = unsafe { [a::<S>([d[0][0], d[1][0]]), a::<S>([d[0][1], d[1][1]])] };
    for i in 0..4 {
        // SAFETY: as above.
        let row = unsafe { a::<S>([columns[0][i], columns[1][i]]) };
        // SAFETY: as above.
        unsafe { store_row::<S>(v, plane, at, i, row) };
    }
}

/// One tile's outputs `Aᵀ M A` (+ `bias`), `LANES` channels from `c0`, from
/// `m[ξ·plane + at..]` to the pixels of `outputs` that are inside the image.
///
/// # Safety
/// The instruction set is available; `m` holds 16 planes of `plane` elements with
/// `at + LANES <= plane`; every `Some` pixel of `outputs` holds channels `c0..c0 + LANES`
/// inside `image`, and so does `bias`.
#[inline(always)]
unsafe fn output_tile<S: Lanes>(
    m: &[f32],
    plane: usize,
    at: usize,
    bias: Option<&[f32]>,
    c0: usize,
    image: &mut [f32],
    outputs: &Pixels,
) {
    // SAFETY: the contract of this function.
    let x = unsafe { planes::<S>(m, plane, at) };
    let mut columns = [[x[0]; 2]; 4];
    for (s, column) in columns.iter_mut().enumerate() {
        // SAFETY: as above.
        *column = unsafe { a_t::<S>([x[s], x[4 + s], x[8 + s], x[12 + s]]) };
    }
    // A match, not `Option::map`: the closure would compile the load without the features.
    #[allow(clippy::manual_map)]
    let bias = match bias {
        // SAFETY: `bias` holds channels `c0..c0 + LANES` (the contract).
        Some(b) => Some(unsafe { S::load(b.as_ptr().add(c0)) }),
        None => None,
    };
    for i in 0..2 {
        // SAFETY: as above.
        let row = unsafe { a_t::<S>([columns[0][i], columns[1][i], columns[2][i], columns[3][i]]) };
        for (j, mut y) in row.into_iter().enumerate() {
            let Some(pixel) = outputs[i][j] else {
                continue;
            };
            if let Some(b) = bias {
                // SAFETY: the instruction set is available (the contract).
                y = unsafe { S::add(y, b) };
            }
            // SAFETY: the pixel holds channels `c0..c0 + LANES` inside `image` (the contract).
            unsafe { S::store(image.as_mut_ptr().add(pixel + c0), y) };
        }
    }
}

/// One tile's `B V̄ Bᵀ`, `LANES` channels from `c0`, from `v[ξ·plane + at..]`, added onto
/// the pixels of `pixels` that are inside the image.
///
/// # Safety
/// The instruction set is available; `v` holds 16 planes of `plane` elements with
/// `at + LANES <= plane`; every `Some` pixel of `pixels` holds channels `c0..c0 + LANES`
/// inside `image`.
#[inline(always)]
#[allow(clippy::needless_range_loop)] // `r` picks row r of all the columns at once
unsafe fn input_adjoint_tile<S: Lanes>(
    v: &[f32],
    plane: usize,
    at: usize,
    c0: usize,
    image: &mut [f32],
    pixels: &Pixels,
) {
    // SAFETY: the contract of this function.
    let x = unsafe { planes::<S>(v, plane, at) };
    let mut columns = [[x[0]; 4]; 4];
    for (j, column) in columns.iter_mut().enumerate() {
        // SAFETY: as above.
        *column = unsafe { b::<S>([x[j], x[4 + j], x[8 + j], x[12 + j]]) };
    }
    for r in 0..4 {
        // SAFETY: as above.
        let row = unsafe { b::<S>([columns[0][r], columns[1][r], columns[2][r], columns[3][r]]) };
        for (s, d) in row.into_iter().enumerate() {
            let Some(pixel) = pixels[r][s] else {
                continue;
            };
            // SAFETY: the pixel holds channels `c0..c0 + LANES` inside `image` (the contract).
            unsafe {
                let dst = image.as_mut_ptr().add(pixel + c0);
                S::store(dst, S::add(S::load(dst), d));
            }
        }
    }
}

/// The entry points: each transform through the instance `isa`, compiled for its
/// instruction set.
macro_rules! instances {
    ($($(#[$doc:meta])* $name:ident => $generic:ident($($arg:ident: $ty:ty),*);)*) => {
        impl Isa {
            $(
                $(#[$doc])*
                ///
                /// # Safety
                /// As the generic function's, for the instance's vector width; the CPU has
                /// the instance's instruction set ([`Isa::for_channels`] chose it).
                #[allow(clippy::too_many_arguments)]
                pub unsafe fn $name(self, $($arg: $ty),*) {
                    #[target_feature(enable = "avx2,fma")]
                    unsafe fn narrow($($arg: $ty),*) {
                        // SAFETY: the caller's contract.
                        unsafe { $generic::<Avx2>($($arg),*) }
                    }
                    #[target_feature(enable = "avx512f")]
                    unsafe fn wide($($arg: $ty),*) {
                        // SAFETY: the caller's contract.
                        unsafe { $generic::<Avx512>($($arg),*) }
                    }
                    match self {
                        // SAFETY: the caller's contract.
                        Isa::Avx2 => unsafe { narrow($($arg),*) },
                        // SAFETY: the caller's contract.
                        Isa::Avx512 => unsafe { wide($($arg),*) },
                    }
                }
            )*
        }
    };
}

instances! {
    /// [`input_tile`].
    input_tile => input_tile(image: &[f32], pixels: &Pixels, c0: usize, v: &mut [f32], plane: usize, at: usize);
    /// [`cotangent_tile`].
    cotangent_tile => cotangent_tile(image: &[f32], pixels: &Pixels, c0: usize, v: &mut [f32], plane: usize, at: usize);
    /// [`output_tile`].
    output_tile => output_tile(m: &[f32], plane: usize, at: usize, bias: Option<&[f32]>, c0: usize, image: &mut [f32], outputs: &Pixels);
    /// [`input_adjoint_tile`].
    input_adjoint_tile => input_adjoint_tile(v: &[f32], plane: usize, at: usize, c0: usize, image: &mut [f32], pixels: &Pixels);
}
