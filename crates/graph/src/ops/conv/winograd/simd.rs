//! The `f32` tile transforms of [`super`] over the vector operations of [`Lanes`], compiled
//! for AVX-512F (channel counts that are a multiple of 16) and AVX2 (a multiple of 8): each
//! 6×6 tile of one vector of channels goes through the 1-D transforms of
//! [`matrices`](super::matrices) as [`Vector`]s, where the portable loops run one channel at
//! a time.
//!
//! The transforms are the portable path's, term for term, except that a multiply-add is
//! rounded once here; the AVX2 and AVX-512 instances give the same bits. Padding reads as a
//! zero vector.
//!
//! No closure here calls a vector operation: a closure is compiled without its enclosing
//! instance's target features, so the operation would become an out-of-line call per vector
//! (measured: a third slower than AVX2's separate functions). Loops over small arrays do the
//! same work inlined.

#![allow(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]

use super::matrices::{sandwich, Arith, Input, InputT, Output, OutputT, R, T};
use super::tiles::Pixels;
pub(super) use crate::lanes::Isa;
use crate::lanes::{instances, Lanes};

/// One vector of `S`'s lanes, for the 1-D transforms.
///
/// A `Vector` is made only inside this module's kernels, which run compiled for `S`'s
/// instruction set on a CPU that has it ([`Isa::dividing`]): that is what makes its
/// safe arithmetic sound.
struct Vector<S: Lanes>(S::V);

impl<S: Lanes> Clone for Vector<S> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<S: Lanes> Copy for Vector<S> {}

impl<S: Lanes> Vector<S> {
    /// `c` in every lane.
    #[inline(always)]
    fn splat(c: f64) -> S::V {
        let c = c as f32;
        // SAFETY: the instruction set is available (the type's invariant); `c` is readable.
        unsafe { S::splat(&c) }
    }
}

impl<S: Lanes> Arith for Vector<S> {
    #[inline(always)]
    fn add(self, y: Self) -> Self {
        // SAFETY: the instruction set is available (the type's invariant).
        Vector(unsafe { S::add(self.0, y.0) })
    }
    #[inline(always)]
    fn sub(self, y: Self) -> Self {
        // SAFETY: as in `add`.
        Vector(unsafe { S::sub(self.0, y.0) })
    }
    #[inline(always)]
    fn scale(self, c: f64) -> Self {
        // SAFETY: as in `add`.
        Vector(unsafe { S::mul(self.0, Self::splat(c)) })
    }
    #[inline(always)]
    fn mul_add(self, c: f64, acc: Self) -> Self {
        // SAFETY: as in `add`.
        Vector(unsafe { S::fmadd(self.0, Self::splat(c), acc.0) })
    }
}

/// The first `N × N` pixels of a tile, one vector of channels from `c0` each (zeros for
/// padding).
///
/// # Safety
/// The instruction set is available (true of every function here), and every `Some` pixel
/// holds channels `c0..c0 + LANES` inside `image`.
#[inline(always)]
unsafe fn tile_loads<S: Lanes, const N: usize>(
    image: &[f32],
    pixels: &Pixels,
    c0: usize,
) -> [[Vector<S>; N]; N] {
    // SAFETY: the instruction set is available (the contract).
    let mut d = [[Vector(unsafe { S::zero() }); N]; N];
    for (row, pixels) in d.iter_mut().zip(pixels) {
        for (v, pixel) in row.iter_mut().zip(pixels) {
            if let Some(p) = pixel {
                // SAFETY: the pixel holds the channels (the contract).
                *v = Vector(unsafe { S::load(image.as_ptr().add(p + c0)) });
            }
        }
    }
    d
}

/// One vector from each of the 36 planes of `m`, at `at`, as a tile.
///
/// # Safety
/// The instruction set is available; `m` holds 36 planes of `plane` elements with
/// `at + LANES <= plane`.
#[inline(always)]
unsafe fn planes<S: Lanes>(m: &[f32], plane: usize, at: usize) -> [[Vector<S>; T]; T] {
    // SAFETY: the instruction set is available (the contract).
    let mut x = [[Vector(unsafe { S::zero() }); T]; T];
    for (i, row) in x.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            // SAFETY: plane `T·i + j` holds `at + LANES` elements (the contract).
            *v = Vector(unsafe { S::load(m.as_ptr().add((i * T + j) * plane + at)) });
        }
    }
    x
}

/// A transformed tile to the 36 planes of `v`, at `at`.
///
/// # Safety
/// As [`planes`], writable.
#[inline(always)]
unsafe fn store_planes<S: Lanes>(v: &mut [f32], plane: usize, at: usize, x: [[Vector<S>; T]; T]) {
    for (i, row) in x.into_iter().enumerate() {
        for (j, x) in row.into_iter().enumerate() {
            // SAFETY: plane `T·i + j` of `v` holds `at + LANES` elements (the contract).
            unsafe { S::store(v.as_mut_ptr().add((i * T + j) * plane + at), x.0) };
        }
    }
}

/// The 36 transformed vectors `Bᵀ d B` of one 6×6 tile, `LANES` channels from `c0`, stored
/// at `v[ξ·plane + at..]`.
///
/// # Safety
/// The instruction set is available; every `Some` pixel of `pixels` holds channels
/// `c0..c0 + LANES` inside `image`, and `v` holds 36 planes of `plane` elements with
/// `at + LANES <= plane`.
#[inline(always)]
unsafe fn input_tile<S: Lanes>(
    image: &[f32],
    pixels: &Pixels,
    c0: usize,
    v: &mut [f32],
    plane: usize,
    at: usize,
) {
    // SAFETY: the contract of this function.
    let d = unsafe { tile_loads::<S, T>(image, pixels, c0) };
    // SAFETY: as above.
    unsafe { store_planes(v, plane, at, sandwich::<_, InputT, T, T>(d)) };
}

/// The 36 transformed vectors `A ȳ Aᵀ` of one 4×4 block of a cotangent, as [`input_tile`].
///
/// # Safety
/// As [`input_tile`].
#[inline(always)]
unsafe fn cotangent_tile<S: Lanes>(
    image: &[f32],
    pixels: &Pixels,
    c0: usize,
    v: &mut [f32],
    plane: usize,
    at: usize,
) {
    // SAFETY: the contract of this function.
    let d = unsafe { tile_loads::<S, R>(image, pixels, c0) };
    // SAFETY: as above.
    unsafe { store_planes(v, plane, at, sandwich::<_, Output, R, T>(d)) };
}

/// One tile's outputs `Aᵀ M A` (+ `bias`), `LANES` channels from `c0`, from
/// `m[ξ·plane + at..]` to the pixels of `outputs` that are inside the image.
///
/// # Safety
/// The instruction set is available; `m` holds 36 planes of `plane` elements with
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
    let y = sandwich::<_, OutputT, T, R>(unsafe { planes::<S>(m, plane, at) });
    // A match, not `Option::map`: the closure would compile the load without the features.
    #[allow(clippy::manual_map)]
    let bias = match bias {
        // SAFETY: `bias` holds channels `c0..c0 + LANES` (the contract).
        Some(b) => Some(unsafe { S::load(b.as_ptr().add(c0)) }),
        None => None,
    };
    for (row, pixels) in y.into_iter().zip(outputs) {
        for (mut y, pixel) in row.into_iter().zip(pixels) {
            let Some(pixel) = pixel else {
                continue;
            };
            if let Some(b) = bias {
                // SAFETY: the instruction set is available (the contract).
                y = Vector(unsafe { S::add(y.0, b) });
            }
            // SAFETY: the pixel holds channels `c0..c0 + LANES` inside `image` (the contract).
            unsafe { S::store(image.as_mut_ptr().add(pixel + c0), y.0) };
        }
    }
}

/// One tile's `B V̄ Bᵀ`, `LANES` channels from `c0`, from `v[ξ·plane + at..]`, added onto
/// the pixels of `pixels` that are inside the image.
///
/// # Safety
/// The instruction set is available; `v` holds 36 planes of `plane` elements with
/// `at + LANES <= plane`; every `Some` pixel of `pixels` holds channels `c0..c0 + LANES`
/// inside `image`.
#[inline(always)]
unsafe fn input_adjoint_tile<S: Lanes>(
    v: &[f32],
    plane: usize,
    at: usize,
    c0: usize,
    image: &mut [f32],
    pixels: &Pixels,
) {
    // SAFETY: the contract of this function.
    let d = sandwich::<_, Input, T, T>(unsafe { planes::<S>(v, plane, at) });
    for (row, pixels) in d.into_iter().zip(pixels) {
        for (d, pixel) in row.into_iter().zip(pixels) {
            let Some(pixel) = pixel else {
                continue;
            };
            // SAFETY: the pixel holds channels `c0..c0 + LANES` inside `image` (the contract).
            unsafe {
                let dst = image.as_mut_ptr().add(pixel + c0);
                S::store(dst, S::add(S::load(dst), d.0));
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::super::matrices::{sandwich, Input, InputT, Output, OutputT, R, T};
    use super::super::tiles::{tile_pixels, Pixels};
    use super::Isa;

    /// Channels per pixel: two AVX2 vectors, one AVX-512 vector.
    const C: usize = 16;

    /// Every instance this CPU can run.
    fn instances() -> Vec<Isa> {
        let mut isas = Vec::new();
        if crate::cpu::has_avx2() {
            isas.push(Isa::Avx2);
        }
        if crate::cpu::has_avx512f() {
            isas.push(Isa::Avx512);
        }
        isas
    }

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n as u32)
            .map(|i| ((i.wrapping_mul(2_654_435_761) ^ seed) % 2001) as f32 / 1000.0 - 1.0)
            .collect()
    }

    /// A tile at the image's corner (padding before it, the image's edge inside it), so that
    /// both padding and pixels are read.
    fn corner(side: usize) -> (Pixels, usize) {
        let dims = [5, 5, C];
        (tile_pixels(dims, [1, 1], [1, 1], side), 25 * C)
    }

    /// The four transforms through `isa`: gathered input tile, gathered cotangent block,
    /// output tile with a bias, input-gradient tile added onto an image.
    fn run(isa: Isa) -> [Vec<f32>; 4] {
        let (pixels, len) = corner(T);
        let (blocks, _) = corner(R);
        let image = values(len, 1);
        let planes = values(36 * C, 2);
        let bias = values(C, 3);
        let (mut v, mut y_hat) = (vec![0.0; 36 * C], vec![0.0; 36 * C]);
        let (mut out, mut x_bar) = (vec![0.0; len], values(len, 4));
        for c0 in (0..C).step_by(isa.lanes()) {
            // SAFETY: `instances` lists what the CPU has; every pixel of the tiles is inside
            // the 5x5 image of `C` channels, each plane holds `C` channels and
            // `c0 + lanes <= C`.
            unsafe {
                isa.input_tile(&image, &pixels, c0, &mut v, C, c0);
                isa.cotangent_tile(&image, &blocks, c0, &mut y_hat, C, c0);
                isa.output_tile(&planes, C, c0, Some(&bias), c0, &mut out, &blocks);
                isa.input_adjoint_tile(&planes, C, c0, c0, &mut x_bar, &pixels);
            }
        }
        [v, y_hat, out, x_bar]
    }

    /// The same four in `f64`, one channel at a time, through the portable transforms.
    fn portable() -> [Vec<f64>; 4] {
        let (pixels, len) = corner(T);
        let (blocks, _) = corner(R);
        let wide = |v: Vec<f32>| v.into_iter().map(f64::from).collect::<Vec<_>>();
        let (image, planes, bias) = (
            wide(values(len, 1)),
            wide(values(36 * C, 2)),
            wide(values(C, 3)),
        );
        let (mut v, mut y_hat) = (vec![0.0; 36 * C], vec![0.0; 36 * C]);
        let (mut out, mut x_bar) = (vec![0.0; len], wide(values(len, 4)));
        let read = |p: &Option<usize>, k: usize| p.map_or(0.0, |p| image[p + k]);
        for k in 0..C {
            let d: [[f64; T]; T] =
                std::array::from_fn(|r| std::array::from_fn(|s| read(&pixels[r][s], k)));
            let b: [[f64; R]; R] =
                std::array::from_fn(|r| std::array::from_fn(|s| read(&blocks[r][s], k)));
            let m: [[f64; T]; T] =
                std::array::from_fn(|i| std::array::from_fn(|j| planes[(i * T + j) * C + k]));
            let (tv, ty) = (
                sandwich::<f64, InputT, T, T>(d),
                sandwich::<f64, Output, R, T>(b),
            );
            for (xi, (a, b)) in tv.iter().flatten().zip(ty.iter().flatten()).enumerate() {
                (v[xi * C + k], y_hat[xi * C + k]) = (*a, *b);
            }
            let y = sandwich::<f64, OutputT, T, R>(m);
            for (row, px) in y.iter().zip(&blocks) {
                for (y, p) in row.iter().zip(px) {
                    if let Some(p) = p {
                        out[p + k] = y + bias[k];
                    }
                }
            }
            let x = sandwich::<f64, Input, T, T>(m);
            for (row, px) in x.iter().zip(&pixels) {
                for (x, p) in row.iter().zip(px) {
                    if let Some(p) = p {
                        x_bar[p + k] += x;
                    }
                }
            }
        }
        [v, y_hat, out, x_bar]
    }

    /// Every instance gives the same bits as every other, and the values of the portable
    /// transforms in `f64` within `f32` rounding of the largest terms (the transforms' weights
    /// reach 25 on a tile's point, so 10⁻⁵ on values of order one).
    #[test]
    fn every_instance_gives_the_same_bits_and_the_portable_values() {
        let want = portable();
        let runs: Vec<_> = instances().into_iter().map(run).collect();
        for got in &runs {
            assert_eq!(got, &runs[0], "instances differ");
            for (got, want) in got.iter().zip(&want) {
                for (g, w) in got.iter().zip(want) {
                    assert!(
                        (f64::from(*g) - w).abs() <= 1e-5 * w.abs().max(1.0) * 25.0,
                        "{g} vs {w}"
                    );
                }
            }
        }
    }
}
