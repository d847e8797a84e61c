//! The tiles' side of Winograd's F(4×4, 3×3): image tiles and cotangent blocks carried into
//! the transformed domain, and the products carried back to output pixels.
//!
//! Each 2-D transform is a 1-D one of [`matrices`](super::matrices) applied down a tile's
//! columns, then across its rows ([`sandwich`]). The portable path runs it one channel at a
//! time on scalars; for `f32` with channels in multiples of 8 (or 16), [`simd`](super::simd)
//! runs the same transform on a whole tile of one vector of channels.

#![allow(unsafe_code)]

use super::matrices::{sandwich, InputT, Output, OutputT, R, T};
#[cfg(target_arch = "x86_64")]
use super::simd::Isa;
use super::{Tiling, XI};
use crate::Element;

/// What [`gather`] reads: input images (`Bᵀ d B` of `T × T` tiles) or output cotangents
/// (`A ȳ Aᵀ` of `R × R` blocks).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    Images,
    Cotangents,
}

impl Source {
    /// Pixels on a side of what is read per tile.
    fn side(self) -> usize {
        match self {
            Source::Images => T,
            Source::Cotangents => R,
        }
    }
}

impl Tiling {
    /// How [`gather`] reads input images.
    pub(super) fn gather_input(&self) -> Gather {
        Gather {
            dims: [self.h, self.w, self.ci],
            pad: self.pad,
            tiles: self.tiles(),
            source: Source::Images,
        }
    }

    /// How [`gather`] reads output cotangents.
    pub(super) fn gather_cotangent(&self) -> Gather {
        Gather {
            dims: [self.oh, self.ow, self.co],
            pad: [0, 0],
            tiles: self.tiles(),
            source: Source::Cotangents,
        }
    }

    /// A group of output images from the products `m` (`[ξ][tile][co]`, an image's tiles
    /// after the previous image's): `Y = Aᵀ M A` (+ `bias`) for each tile; the part of a
    /// tile past the image's edge is dropped. Returns `false`, doing nothing, when the
    /// buffers do not fit.
    pub(super) fn scatter<F: Element>(&self, m: &[F], bias: Option<&[F]>, out: &mut [F]) -> bool {
        let ([th, tw], co) = (self.tiles(), self.co);
        let (plane, image_len) = (m.len() / XI, self.out_image().max(1));
        let n = out.len() / image_len;
        let fits = out.len() == n * image_len
            && plane >= n * th * tw * co
            && bias.is_none_or(|b| b.len() == co);
        if !fits {
            return false;
        }
        let dims = [self.oh, self.ow, co];
        #[cfg(target_arch = "x86_64")]
        let isa = Isa::dividing(co);
        for (ty, tx, outputs) in pixels_by_tile(dims, [0, 0], [th, tw], R) {
            for (i, image) in out.chunks_exact_mut(image_len).enumerate() {
                let tile = (i * th * tw + ty * tw + tx) * co;
                #[cfg(target_arch = "x86_64")]
                if let (Some(isa), Some(m), Some(y)) =
                    (isa, F::as_f32_slice(m), F::as_f32_slice_mut(image))
                {
                    // `None` when the bias is not `f32` (it always is when `m` is).
                    let bias = bias.map_or(Some(None), |b| F::as_f32_slice(b).map(Some));
                    if let Some(bias) = bias {
                        for c0 in (0..co).step_by(isa.lanes()) {
                            // SAFETY: the CPU has `isa`'s instructions and `c0 + lanes <= co`
                            // (`dividing`); the tile ends within each plane of `m`, every
                            // output pixel is inside the image with `co` channels, as is `bias`.
                            unsafe { isa.output_tile(m, plane, tile + c0, bias, c0, y, &outputs) };
                        }
                        continue;
                    }
                }
                for k in 0..co {
                    let y = sandwich::<F, OutputT, T, R>(planes(m, plane, tile + k));
                    let b = bias.map_or(F::zero(), |b| b[k]);
                    store(image, &outputs, k, y, |_, y| y + b);
                }
            }
        }
        true
    }
}

/// Carries the tiles of a group of images into the transformed domain, `v[ξ][tile][..c]`
/// (`v` is [`XI`] planes of equal size, an image's tiles after the previous image's):
/// through the intrinsics of [`simd`](super::simd) for `f32` where they apply, else one
/// channel at a time. Returns `false`, doing nothing, when the buffers do not fit the tiling.
pub(super) fn gather<F: Element>(images: &[F], t: Gather, v: &mut [F]) -> bool {
    let ([rows, cols, c], [th, tw]) = (t.dims, t.tiles);
    let (plane, image_len) = (v.len() / XI, (rows * cols * c).max(1));
    let n = images.len() / image_len;
    if images.len() != n * image_len || plane < n * th * tw * c {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    let isa = Isa::dividing(c);
    for (ty, tx, pixels) in pixels_by_tile(t.dims, t.pad, [th, tw], t.source.side()) {
        for (i, image) in images.chunks_exact(image_len).enumerate() {
            let tile = (i * th * tw + ty * tw + tx) * c;
            #[cfg(target_arch = "x86_64")]
            if let (Some(isa), Some(image), Some(v)) =
                (isa, F::as_f32_slice(image), F::as_f32_slice_mut(v))
            {
                for c0 in (0..c).step_by(isa.lanes()) {
                    // SAFETY: the CPU has `isa`'s instructions and `c0 + lanes <= c`
                    // (`dividing`); every pixel is inside the image with `c` channels
                    // (`tile_pixels`); the tile ends within each plane of `v` (checked above).
                    unsafe {
                        match t.source {
                            Source::Images => {
                                isa.input_tile(image, &pixels, c0, v, plane, tile + c0)
                            }
                            Source::Cotangents => {
                                isa.cotangent_tile(image, &pixels, c0, v, plane, tile + c0)
                            }
                        }
                    }
                }
                continue;
            }
            for k in 0..c {
                let x = match t.source {
                    Source::Images => sandwich::<F, InputT, T, T>(load(image, &pixels, k)),
                    Source::Cotangents => sandwich::<F, Output, R, T>(load(image, &pixels, k)),
                };
                for (xi, x) in x.iter().flatten().enumerate() {
                    v[xi * plane + tile + k] = *x;
                }
            }
        }
    }
    true
}

/// How [`gather`] reads each image: `dims` (`rows × cols × c`) with `pad` zeros before,
/// `tiles` tiles `R` pixels apart.
#[derive(Clone, Copy)]
pub(super) struct Gather {
    dims: [usize; 3],
    pad: [usize; 2],
    tiles: [usize; 2],
    source: Source,
}

/// Each tile `(ty, tx)` of `tiles` with its [`tile_pixels`], row by row: the pixels are the
/// same in every image, so a group's loops take them once per tile.
pub(super) fn pixels_by_tile(
    dims: [usize; 3],
    pad: [usize; 2],
    [th, tw]: [usize; 2],
    side: usize,
) -> impl Iterator<Item = (usize, usize, Pixels)> {
    (0..th)
        .flat_map(move |ty| (0..tw).map(move |tx| (ty, tx, tile_pixels(dims, pad, [ty, tx], side))))
}

/// Where the first `side × side` pixels of tile `[ty, tx]` of an image of `dims`
/// (`rows × cols × c`), read with `pad` zeros before it, start (channel 0); `None` for those
/// in the padding or past the last row or column, and for the rest of the array.
pub(super) fn tile_pixels(
    [rows, cols, c]: [usize; 3],
    pad: [usize; 2],
    [ty, tx]: [usize; 2],
    side: usize,
) -> Pixels {
    let source = |i: usize, pad: usize, n: usize| i.checked_sub(pad).filter(|&i| i < n);
    let mut pixels = [[None; T]; T];
    for (r, row) in pixels.iter_mut().enumerate().take(side) {
        for (s, pixel) in row.iter_mut().enumerate().take(side) {
            let iy = source(R * ty + r, pad[0], rows);
            let ix = source(R * tx + s, pad[1], cols);
            *pixel = iy.zip(ix).map(|(iy, ix)| (iy * cols + ix) * c);
        }
    }
    pixels
}

/// Where the pixels of one tile start in the image (channel 0), `None` in the padding (an
/// `R × R` block uses the first `R` rows and columns).
pub(super) type Pixels = [[Option<usize>; T]; T];

/// Channel `k` of the first `N × N` pixels of a tile, zeros in the padding.
#[inline(always)]
fn load<F: Element, const N: usize>(image: &[F], pixels: &Pixels, k: usize) -> [[F; N]; N] {
    let mut d = [[F::zero(); N]; N];
    for (row, pixels) in d.iter_mut().zip(pixels) {
        for (d, pixel) in row.iter_mut().zip(pixels) {
            if let Some(p) = pixel {
                *d = image[p + k];
            }
        }
    }
    d
}

/// One element from each of the [`XI`] planes of `m`, at `at`, as a `T × T` tile.
#[inline(always)]
pub(super) fn planes<F: Element>(m: &[F], plane: usize, at: usize) -> [[F; T]; T] {
    let mut x = [[F::zero(); T]; T];
    for (i, row) in x.iter_mut().enumerate() {
        for (j, x) in row.iter_mut().enumerate() {
            *x = m[(i * T + j) * plane + at];
        }
    }
    x
}

/// `y` to channel `k` of the first `N × N` pixels of a tile that are inside the image, each
/// through `into(old, new)`.
#[inline(always)]
pub(super) fn store<F: Element, const N: usize>(
    image: &mut [F],
    pixels: &Pixels,
    k: usize,
    y: [[F; N]; N],
    into: impl Fn(F, F) -> F,
) {
    for (row, pixels) in y.iter().zip(pixels) {
        for (&y, pixel) in row.iter().zip(pixels) {
            if let Some(p) = pixel {
                image[p + k] = into(image[p + k], y);
            }
        }
    }
}
