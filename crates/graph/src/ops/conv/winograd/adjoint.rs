//! The last step of the input gradient: each tile's `d̄ = B V̄ Bᵀ` added onto the `T × T`
//! pixels it was read from (neighbouring tiles overlap by 2 pixels, so a pixel gets up to
//! four terms, added in tile order).
//!
//! `B` is the adjoint of the gather's `Bᵀ` ([`matrices`](super::matrices)), applied down the
//! tile's columns and then across its rows. The portable path runs one channel at a time;
//! for `f32` with channels in multiples of 8 (or 16), [`simd`](super::simd) runs a tile of one
//! vector of channels. Both add the same terms in the same order.

#![allow(unsafe_code)]

use super::matrices::{sandwich, Input, T};
#[cfg(target_arch = "x86_64")]
use super::simd::Isa;
use super::tiles::{pixels_by_tile, planes, store};
use super::{Tiling, XI};
use crate::Element;

impl Tiling {
    /// A group of input images' gradients from the products `v̄` (`[ξ][tile][ci]`, an
    /// image's tiles after the previous image's): zeroed, then each tile's `B V̄ Bᵀ` added
    /// onto the pixels inside its image. Returns `false`, doing nothing, when the buffers do
    /// not fit.
    pub(super) fn scatter_adjoint<F: Element>(&self, v_bar: &[F], x_bar: &mut [F]) -> bool {
        let ([th, tw], ci) = (self.tiles(), self.ci);
        let (plane, image_len) = (v_bar.len() / XI, self.src_image().max(1));
        let n = x_bar.len() / image_len;
        if x_bar.len() != n * image_len || plane < n * th * tw * ci {
            return false;
        }
        x_bar.fill(F::zero());
        #[cfg(target_arch = "x86_64")]
        let isa = Isa::dividing(ci);
        let dims = [self.h, self.w, ci];
        for (ty, tx, pixels) in pixels_by_tile(dims, self.pad, [th, tw], T) {
            for (i, image) in x_bar.chunks_exact_mut(image_len).enumerate() {
                let tile = (i * th * tw + ty * tw + tx) * ci;
                #[cfg(target_arch = "x86_64")]
                if let (Some(isa), Some(v), Some(x)) =
                    (isa, F::as_f32_slice(v_bar), F::as_f32_slice_mut(image))
                {
                    for c0 in (0..ci).step_by(isa.lanes()) {
                        // SAFETY: the CPU has `isa`'s instructions and `c0 + lanes <= ci`
                        // (`dividing`); the tile's channels end within each plane of `v̄`, and
                        // every pixel is inside the image with `ci` channels (`tile_pixels`).
                        unsafe { isa.input_adjoint_tile(v, plane, tile + c0, c0, x, &pixels) };
                    }
                    continue;
                }
                for k in 0..ci {
                    let d = sandwich::<F, Input, T, T>(planes(v_bar, plane, tile + k));
                    store(image, &pixels, k, d, |old, d| old + d);
                }
            }
        }
        true
    }
}
