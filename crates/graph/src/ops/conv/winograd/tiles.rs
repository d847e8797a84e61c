//! The tiles' side of Winograd's F(2×2, 3×3): image tiles and cotangent blocks carried into
//! the transformed domain, and the products carried back to output pixels.
//!
//! Each transform is a 1-D one (`Bᵀ`, `A` or `Aᵀ`, all with coefficients 0 and ±1) applied
//! down a tile's columns, then across its rows. The portable path runs one loop over the
//! channels per pixel and step; for `f32` with channels in multiples of 8 (or 16), [`simd`](super::simd)
//! holds a whole tile of one vector of channels in registers.

#![allow(unsafe_code)]

#[cfg(target_arch = "x86_64")]
use super::simd::Isa;
use super::{Tiling, XI};
use crate::Element;

impl Tiling {
    /// How [`gather`] reads an input image: `Bᵀ d B` of 4×4 tiles.
    pub(super) fn gather_input(&self, first: usize) -> Gather<'static, 4> {
        Gather {
            dims: [self.h, self.w, self.ci],
            pad: self.pad,
            tiles: self.tiles(),
            signs: &B_T,
            first,
            cotangent: false,
        }
    }

    /// How [`gather`] reads an output cotangent: `A ȳ Aᵀ` of 2×2 blocks.
    pub(super) fn gather_cotangent(&self, first: usize) -> Gather<'static, 2> {
        Gather {
            dims: [self.oh, self.ow, self.co],
            pad: [0, 0],
            tiles: self.tiles(),
            signs: &A,
            first,
            cotangent: true,
        }
    }

    /// One output image from the products `m` (`[ξ][tile][co]`): `Y = Aᵀ M A` for each of its
    /// tiles, the image's first tile being tile `first`; the part of a tile past the image's
    /// edge is dropped. Returns `false`, doing nothing, when the buffers do not fit.
    pub(super) fn scatter<F: Element>(
        &self,
        m: &[F],
        first: usize,
        bias: Option<&[F]>,
        image: &mut [F],
        temp: &mut [F],
    ) -> bool {
        let fits = image.len() == self.out_image()
            && m.len() / XI >= (first + self.per_image()) * self.co
            && temp.len() >= 8 * self.co
            && bias.is_none_or(|b| b.len() == self.co);
        if !fits {
            return false;
        }
        #[cfg(target_arch = "x86_64")]
        if let (Some(m), Some(image)) = (F::as_f32_slice(m), F::as_f32_slice_mut(image)) {
            // `None` when the bias is not `f32` (it always is when `m` is).
            let bias = bias.map_or(Some(None), |b| F::as_f32_slice(b).map(Some));
            if bias.is_some_and(|bias| self.scatter_f32(m, first, bias, image)) {
                return true;
            }
        }
        self.scatter_portable(m, first, bias, image, temp);
        true
    }

    /// [`Tiling::scatter`] for `f32` through the intrinsics of [`simd`](super::simd), when the CPU has
    /// AVX2 and the channels are a multiple of 8; returns `false`, doing nothing, otherwise.
    #[cfg(target_arch = "x86_64")]
    fn scatter_f32(
        &self,
        m: &[f32],
        first: usize,
        bias: Option<&[f32]>,
        image: &mut [f32],
    ) -> bool {
        let ([th, tw], co) = (self.tiles(), self.co);
        let plane = m.len() / XI;
        let fits = image.len() == self.out_image()
            && plane >= (first + th * tw) * co
            && bias.is_none_or(|b| b.len() == co);
        let Some(isa) = Isa::for_channels(co).filter(|_| fits) else {
            return false;
        };
        for ty in 0..th {
            for tx in 0..tw {
                let mut outputs = [[None; 4]; 4];
                for (i, row) in outputs.iter_mut().enumerate().take(2) {
                    for (j, pixel) in row.iter_mut().enumerate().take(2) {
                        let (oy, ox) = (2 * ty + i, 2 * tx + j);
                        if oy < self.oh && ox < self.ow {
                            *pixel = Some((oy * self.ow + ox) * co);
                        }
                    }
                }
                let tile = first_pixel(first + ty * tw + tx, co);
                for c0 in (0..co).step_by(isa.lanes()) {
                    // SAFETY: the CPU has `isa`'s instructions (`for_channels`); the tile ends
                    // within each plane of `m`, every output pixel is inside the image and
                    // holds `co` channels, as does `bias`, and `c0 + lanes <= co`.
                    unsafe { isa.output_tile(m, plane, tile + c0, bias, c0, image, &outputs) };
                }
            }
        }
        true
    }

    fn scatter_portable<F: Element>(
        &self,
        m: &[F],
        first: usize,
        bias: Option<&[F]>,
        image: &mut [F],
        temp: &mut [F],
    ) {
        let ([th, tw], co) = (self.tiles(), self.co);
        let plane = m.len() / XI;
        for ty in 0..th {
            for tx in 0..tw {
                let tile = first_pixel(first + ty * tw + tx, co);
                for s in 0..4 {
                    let column: [Option<&[F]>; 4] =
                        std::array::from_fn(|r| Some(&m[(r * 4 + s) * plane + tile..][..co]));
                    for (i, signs) in A_T.iter().enumerate() {
                        combine(&mut temp[(i * 4 + s) * co..][..co], signs, column);
                    }
                }
                for i in 0..2 {
                    let oy = 2 * ty + i;
                    let row: [Option<&[F]>; 4] =
                        std::array::from_fn(|s| Some(&temp[(i * 4 + s) * co..][..co]));
                    for (j, signs) in A_T.iter().enumerate() {
                        let ox = 2 * tx + j;
                        if oy >= self.oh || ox >= self.ow {
                            continue;
                        }
                        let at = (oy * self.ow + ox) * co;
                        let y = &mut image[at..at + co];
                        combine(y, signs, row);
                        if let Some(bias) = bias {
                            y.iter_mut().zip(bias).for_each(|(y, &b)| *y = *y + b);
                        }
                    }
                }
            }
        }
    }
}

/// Carries the tiles of one image into the transformed domain (see [`gather_portable`]), through
/// the intrinsics of [`simd`](super::simd) for `f32` where they apply.
/// Returns `false`, doing nothing, when the buffers do not fit the tiling.
pub(super) fn gather<F: Element, const N: usize>(
    image: &[F],
    tiling: Gather<'_, N>,
    v: &mut [F],
    temp: &mut [F],
) -> bool {
    let ([rows, cols, c], [th, tw]) = (tiling.dims, tiling.tiles);
    let fits = image.len() == rows * cols * c
        && v.len() / XI >= (tiling.first + th * tw) * c
        && temp.len() >= 4 * N * c;
    if !fits {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    if let (Some(image), Some(v)) = (F::as_f32_slice(image), F::as_f32_slice_mut(v))
        && gather_f32(image, tiling, v)
    {
        return true;
    }
    gather_portable(image, tiling, v, temp);
    true
}

/// How [`gather`] reads one image: `dims` (`rows × cols × c`), `pad` zeros before, `tiles`
/// tiles of `N × N` pixels 2 apart, carried by `signs` (a 1-D transform of `N` values to 4
/// with coefficients 0 and ±1) down and across, to tiles `first..` of 16 planes.
#[derive(Clone, Copy)]
pub(super) struct Gather<'a, const N: usize> {
    dims: [usize; 3],
    pad: [usize; 2],
    tiles: [usize; 2],
    signs: &'a Signs<4, N>,
    first: usize,
    cotangent: bool,
}

/// Tile `(ty, tx)` of `image` is the `N × N` block at `(2ty - pad, 2tx - pad)`, zeros outside
/// the image; `v[ξ][first + tile][..c]` is its transform `T d Tᵀ` at ξ (`v` is 16 planes of
/// equal size). Each step is a loop over the channels of one pixel, first down the tile's
/// columns into `temp` (`4 × N` pixels), then across into `v`.
fn gather_portable<F: Element, const N: usize>(
    image: &[F],
    t: Gather<'_, N>,
    v: &mut [F],
    temp: &mut [F],
) {
    let ([rows, cols, c], [th, tw]) = (t.dims, t.tiles);
    let plane = v.len() / XI;
    let source = |i: usize, pad: usize, n: usize| i.checked_sub(pad).filter(|&i| i < n);
    let pixel = |at: Option<usize>| at.map(|at| &image[at..at + c]);
    for ty in 0..th {
        for tx in 0..tw {
            let tile = first_pixel(t.first + ty * tw + tx, c);
            for s in 0..N {
                let ix = source(2 * tx + s, t.pad[1], cols);
                let column: [Option<&[F]>; N] = std::array::from_fn(|r| {
                    let iy = source(2 * ty + r, t.pad[0], rows);
                    pixel(iy.zip(ix).map(|(iy, ix)| (iy * cols + ix) * c))
                });
                for (i, signs) in t.signs.iter().enumerate() {
                    combine(&mut temp[(i * N + s) * c..][..c], signs, column);
                }
            }
            for i in 0..4 {
                let row: [Option<&[F]>; N] =
                    std::array::from_fn(|s| Some(&temp[(i * N + s) * c..][..c]));
                for (j, signs) in t.signs.iter().enumerate() {
                    let at = (i * 4 + j) * plane + tile;
                    combine(&mut v[at..at + c], signs, row);
                }
            }
        }
    }
}

/// [`gather`] for `f32` through the intrinsics of [`simd`](super::simd), when the CPU has AVX2 and the
/// channels are a multiple of 8; returns `false`, doing nothing, otherwise.
#[cfg(target_arch = "x86_64")]
fn gather_f32<const N: usize>(image: &[f32], t: Gather<'_, N>, v: &mut [f32]) -> bool {
    let ([rows, cols, c], [th, tw]) = (t.dims, t.tiles);
    let plane = v.len() / XI;
    let fits = image.len() == rows * cols * c && plane >= (t.first + th * tw) * c;
    let Some(isa) = Isa::for_channels(c).filter(|_| fits) else {
        return false;
    };
    for ty in 0..th {
        for tx in 0..tw {
            let pixels = tile_pixels::<N>(t.dims, t.pad, [ty, tx]);
            let tile = first_pixel(t.first + ty * tw + tx, c);
            for c0 in (0..c).step_by(isa.lanes()) {
                // SAFETY: the CPU has `isa`'s instructions (`for_channels`); every pixel is
                // inside the image (`tile_pixels` bounds it) and holds `c` channels,
                // `c0 + lanes <= c`; tile `first + ty·tw + tx` of a plane ends within it
                // (checked above).
                unsafe {
                    match t.cotangent {
                        false => isa.input_tile(image, &pixels, c0, v, plane, tile + c0),
                        true => isa.cotangent_tile(image, &pixels, c0, v, plane, tile + c0),
                    }
                }
            }
        }
    }
    true
}

/// Where the `N × N` pixels of tile `[ty, tx]` of an image of `dims` (`rows × cols × c`),
/// read with `pad` zeros before it, start (channel 0); `None` for those in the padding or
/// past the last row or column, and for the rest of the 4×4 array when `N` is 2.
pub(super) fn tile_pixels<const N: usize>(
    [rows, cols, c]: [usize; 3],
    pad: [usize; 2],
    [ty, tx]: [usize; 2],
) -> Pixels {
    let source = |i: usize, pad: usize, n: usize| i.checked_sub(pad).filter(|&i| i < n);
    let mut pixels = [[None; 4]; 4];
    for (r, row) in pixels.iter_mut().enumerate().take(N) {
        for (s, pixel) in row.iter_mut().enumerate().take(N) {
            let iy = source(2 * ty + r, pad[0], rows);
            let ix = source(2 * tx + s, pad[1], cols);
            *pixel = iy.zip(ix).map(|(iy, ix)| (iy * cols + ix) * c);
        }
    }
    pixels
}

/// Where the pixels of one tile start in the image (channel 0), `None` in the padding (a
/// 2×2 block uses the first two rows and columns).
pub(super) type Pixels = [[Option<usize>; 4]; 4];

/// Where tile `tile`'s `c` channels start in a plane.
#[inline(always)]
fn first_pixel(tile: usize, c: usize) -> usize {
    tile * c
}

/// A 1-D transform of `N` values to `M` whose coefficients are 0 and ±1: output `i` is
/// `Σ_j signs[i][j] · input_j`.
type Signs<const M: usize, const N: usize> = [[i8; N]; M];
/// `Bᵀ`: `[d₀ - d₂, d₁ + d₂, d₂ - d₁, d₁ - d₃]`.
pub(super) const B_T: Signs<4, 4> = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]];
/// `Aᵀ`: `[m₀ + m₁ + m₂, m₁ - m₂ - m₃]`.
const A_T: Signs<2, 4> = [[1, 1, 1, 0], [0, 1, -1, -1]];
/// `A`, the adjoint of `Aᵀ`: `[y₀, y₀ + y₁, y₀ - y₁, -y₁]`.
pub(super) const A: Signs<4, 2> = [[1, 0], [1, 1], [1, -1], [0, -1]];

/// `dst = Σ_j signs[j] · src[j]` channel by channel, the terms in order (a `None` source is
/// padding, zero): one plain loop per term, which the compiler vectorizes.
#[inline(always)]
fn combine<F: Element, const N: usize>(dst: &mut [F], signs: &[i8; N], src: [Option<&[F]>; N]) {
    let mut first = true;
    for (&sign, src) in signs.iter().zip(src) {
        let Some(src) = src.filter(|_| sign != 0) else {
            continue;
        };
        let pairs = dst.iter_mut().zip(src);
        match (first, sign > 0) {
            (true, true) => pairs.for_each(|(d, &s)| *d = s),
            (true, false) => pairs.for_each(|(d, &s)| *d = -s),
            (false, true) => pairs.for_each(|(d, &s)| *d = *d + s),
            (false, false) => pairs.for_each(|(d, &s)| *d = *d - s),
        }
        first = false;
    }
    if first {
        dst.fill(F::zero());
    }
}
