//! The last step of the input gradient: each tile's `d̄ = B V̄ Bᵀ` added onto the 4×4 pixels
//! it was read from (neighbouring tiles overlap by 2 pixels, so most pixels get four terms,
//! added in tile order).
//!
//! `B`, the adjoint of `Bᵀ`, is `[v₀, v₁ - v₂ + v₃, -v₀ + v₁ + v₂, -v₃]`, applied down the
//! tile's columns and then across its rows, as the gather applies `Bᵀ`. The portable path
//! runs one channel at a time; for `f32` with channels in multiples of 8 (or 16), [`simd`](super::simd)
//! holds a tile of one vector of channels in registers. Both add the same terms in the same order.

#![allow(unsafe_code)]

#[cfg(target_arch = "x86_64")]
use super::simd::Isa;
use super::tiles::tile_pixels;
use super::{Tiling, XI};
use crate::Element;

impl Tiling {
    /// The input image's gradient from the products `v̄` (`[ξ][tile][ci]`), its first tile
    /// being tile `first`: zeroed, then each tile's `B V̄ Bᵀ` added onto the pixels inside
    /// the image. Returns `false`, doing nothing, when the buffers do not fit.
    pub(super) fn scatter_adjoint<F: Element>(
        &self,
        v_bar: &[F],
        first: usize,
        image: &mut [F],
    ) -> bool {
        let ci = self.ci;
        let plane = v_bar.len() / XI;
        if image.len() != self.src_image() || plane < (first + self.per_image()) * ci {
            return false;
        }
        image.fill(F::zero());
        let [th, tw] = self.tiles();
        #[cfg(target_arch = "x86_64")]
        let isa = Isa::for_channels(ci);
        for (ty, tx) in (0..th).flat_map(|ty| (0..tw).map(move |tx| (ty, tx))) {
            let pixels = tile_pixels::<4>([self.h, self.w, self.ci], self.pad, [ty, tx]);
            let tile = (first + ty * tw + tx) * ci;
            #[cfg(target_arch = "x86_64")]
            if let (Some(isa), Some(v), Some(x)) =
                (isa, F::as_f32_slice(v_bar), F::as_f32_slice_mut(image))
            {
                for c0 in (0..ci).step_by(isa.lanes()) {
                    // SAFETY: the CPU has `isa`'s instructions and `c0 + lanes <= ci`
                    // (`for_channels`); the tile's channels end within each plane of `v̄`, and
                    // every pixel is inside the image with `ci` channels (`tile_pixels`).
                    unsafe { isa.input_adjoint_tile(v, plane, tile + c0, c0, x, &pixels) };
                }
                continue;
            }
            for k in 0..ci {
                let v: [[F; 4]; 4] = std::array::from_fn(|i| {
                    std::array::from_fn(|j| v_bar[(i * 4 + j) * plane + tile + k])
                });
                let columns: [[F; 4]; 4] =
                    std::array::from_fn(|j| b([v[0][j], v[1][j], v[2][j], v[3][j]]));
                for (r, row) in pixels.iter().enumerate() {
                    let d = b([columns[0][r], columns[1][r], columns[2][r], columns[3][r]]);
                    for (&pixel, d) in row.iter().zip(d) {
                        if let Some(p) = pixel {
                            image[p + k] = image[p + k] + d;
                        }
                    }
                }
            }
        }
        true
    }
}

/// `B` on four values: `[v₀, (v₁ - v₂) + v₃, (v₁ - v₀) + v₂, -v₃]` (the order the AVX2 path
/// adds in).
#[inline(always)]
fn b<F: Element>([v0, v1, v2, v3]: [F; 4]) -> [F; 4] {
    [v0, v1 - v2 + v3, v1 - v0 + v2, F::zero() - v3]
}
