//! Winograd's F(4×4, 3×3): a stride-1, undilated 3×3 convolution in 36 multiplications per
//! 4×4 block of outputs and channel pair, where the im2col product spends 144.
//!
//! The input is cut into 6×6 tiles `d` that overlap by 2, one per 4×4 block of outputs. Each
//! tile and each 3×3 kernel `g` is carried into a 6×6 transformed domain,
//! `V = Bᵀ d B` and `U = G g Gᵀ`, where the convolution is an elementwise product; summed over
//! the input channels, each of the 36 points ξ is one matrix product over all tiles,
//! `M_ξ = V_ξ · U_ξ` (`tiles × ci` times `ci × co`), and the outputs come back as
//! `Y = Aᵀ M A` (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks", 2016;
//! the matrices are in [`matrices`]). In one dimension the six products
//! `(Bᵀ d)ₖ (G g)ₖ`, combined by `Aᵀ`, give the four outputs `yᵢ = Σⱼ dᵢ₊ⱼ gⱼ` of a 3-tap
//! correlation over six inputs.
//!
//! The gradients use the same transforms:
//! - the input gradient is the adjoint of `d ↦ Aᵀ[U ⊙ (Bᵀ d B)]A` summed over the tiles,
//!   `x̄ = Σ_tiles B[Σ_co Ŷ ⊙ U]Bᵀ` with `Ŷ = A ȳ Aᵀ`: 36 products `Ŷ_ξ · U_ξᵀ` over the same
//!   tiles as the forward pass (a convolution of `ȳ` padded by 2 would take a tile per 4×4
//!   block of the larger input), then each tile's 6×6 pixels added onto the image, where
//!   neighbouring tiles overlap by 2;
//! - the kernel gradient is the adjoint of `g ↦ Aᵀ[(G g Gᵀ) ⊙ V]A`, that is
//!   `ḡ = Gᵀ[Σ_tiles V ⊙ (A ȳ Aᵀ)]G`: 36 products `V_ξᵀ · Ŷ_ξ`, each summed over all tiles,
//!   then one transform back per kernel.
//!
//! Outputs past the image's last row or column (a size not a multiple of 4) are computed and
//! dropped; their `ȳ` reads as zero in the kernel gradient.
//!
//! Rounding: `Bᵀ` and `Aᵀ` weigh their terms by up to 5 and 8 (F(2×2, 3×3)'s by 1), so the
//! transforms add more than a sum over the channels' own rounding, growing with the
//! magnitudes they combine: `tests/winograd.rs` bounds all four ops against direct loops in
//! `f64` and `f32` (measured within a few tens of units of `2⁻ᵖ · Σ|terms|`, where the
//! im2col product stays within a few).
//!
//! The tiles' transforms are in [`tiles`] and [`adjoint`] (with `f32` intrinsics in `simd`),
//! the kernel's in [`filter`], all over the 1-D transforms of [`matrices`].

mod adjoint;
mod filter;
mod matrices;
#[cfg(target_arch = "x86_64")]
mod simd;
mod tiles;

use super::kernel::{add_partials, Run, PARTIALS};
use super::Geometry;
use crate::error::Result;
use crate::gemm::{matmul_add_into, matmul_into};
use crate::Element;
use filter::{kernel_from_transformed, transform_kernel};
use matrices::{R, T};
use ndarray::{ArrayView2, ArrayViewMut2, ShapeBuilder};
use std::sync::atomic::{AtomicBool, Ordering};
use tiles::gather;

/// Points of the transformed domain, one product each.
const XI: usize = T * T;
/// Fewest channels on each side for the 36 products to beat im2col's one: with fewer (a
/// one-channel image) each product is too short and the transforms dominate.
const MIN_CHANNELS: usize = 8;
/// The most transformed tiles (both operands of the 36 products) one group of images may
/// take, in bytes: they stay in L2 between the transforms and the products.
const GROUP_BYTES: usize = 512 << 10;

/// Whether a convolution of this geometry runs here: 3×3 windows, stride 1, no dilation, and
/// at least [`MIN_CHANNELS`] channels in and out (padding up to 2, so that a tile's first
/// pixel is never before the padding's).
pub(super) fn applies(g: &Geometry) -> bool {
    g.axes
        .iter()
        .all(|a| a.k == 3 && a.s == 1 && a.d == 1 && a.before <= 2)
        && g.c >= MIN_CHANNELS
        && g.o >= MIN_CHANNELS
}

/// A stride-1 3×3 convolution as tiles: images of `h × w × ci` read with `pad` zeros before
/// them, to outputs of `oh × ow × co`, one tile per 4×4 block of outputs.
#[derive(Debug, Clone, Copy)]
struct Tiling {
    h: usize,
    w: usize,
    ci: usize,
    pad: [usize; 2],
    oh: usize,
    ow: usize,
    co: usize,
}

impl Tiling {
    /// The convolution itself: `x` to `y`.
    fn forward(g: &Geometry) -> Self {
        let [a, b] = g.axes;
        Tiling {
            h: a.n,
            w: b.n,
            ci: g.c,
            pad: [a.before, b.before],
            oh: a.out,
            ow: b.out,
            co: g.o,
        }
    }

    fn tiles(&self) -> [usize; 2] {
        [self.oh.div_ceil(R), self.ow.div_ceil(R)]
    }
    fn per_image(&self) -> usize {
        let [th, tw] = self.tiles();
        th * tw
    }
    fn src_image(&self) -> usize {
        self.h * self.w * self.ci
    }
    fn out_image(&self) -> usize {
        self.oh * self.ow * self.co
    }

    /// Images per group: their transformed tiles within [`GROUP_BYTES`]. It depends on the
    /// geometry and the batch only, never on the thread count.
    fn group<F>(&self, batch: usize) -> usize {
        let per_image = (XI * self.per_image() * (self.ci + self.co))
            .saturating_mul(std::mem::size_of::<F>())
            .max(1);
        (GROUP_BYTES / per_image).clamp(1, batch.max(1))
    }

    /// Scratch of one worker's group: the tiles `v` and the products `m`.
    fn work(&self, group: usize) -> [usize; 2] {
        let tiles = group * self.per_image();
        [XI * tiles * self.ci, XI * tiles * self.co]
    }

    /// The tiles `V = Bᵀ d B` of a group of input images into `v` (`[ξ][tile][ci]`).
    fn gather_images<F: Element>(&self, images: &[F], v: &mut [F]) -> bool {
        gather(images, self.gather_input(), v)
    }

    /// The blocks `Ŷ = A ȳ Aᵀ` of a group of output cotangents into `y_hat` (`[ξ][tile][co]`).
    fn gather_cotangents<F: Element>(&self, y_bar: &[F], y_hat: &mut [F]) -> bool {
        gather(y_bar, self.gather_cotangent(), y_hat)
    }

    /// `out = conv(src)` for a group of images with the transformed kernel `u`, plus `bias`
    /// on every output pixel: tiles to `v`, 36 products to `m`, back to `out`.
    fn convolve<F: Element>(
        &self,
        src: &[F],
        u: &[F],
        bias: Option<&[F]>,
        work: &mut [F],
        out: &mut [F],
    ) -> bool {
        let n = out.len() / self.out_image().max(1);
        let [v_len, m_len] = self.work(n);
        let pu = self.ci * self.co;
        let fits = src.len() == n * self.src_image()
            && out.len() == n * self.out_image()
            && work.len() >= v_len + m_len
            && u.len() == XI * pu
            && bias.is_none_or(|b| b.len() == self.co);
        if !fits {
            return false;
        }
        let (v, m) = work.split_at_mut(v_len);
        let m = &mut m[..m_len];
        let tiles = n * self.per_image();
        if !(self.gather_images(src, v) && products(v, u, m, (tiles, self.ci, self.co))) {
            return false;
        }
        self.scatter(m, bias, out)
    }

    /// `x̄` for a group of images from their `ȳ` and the transposed transformed kernel
    /// `u_t`: `ȳ`'s 4×4 blocks to `Ŷ = A ȳ Aᵀ`, 36 products `V̄_ξ = Ŷ_ξ · U_ξᵀ`, then each
    /// tile's `B V̄ Bᵀ` added onto the image.
    fn convolve_adjoint<F: Element>(
        &self,
        y_bar: &[F],
        u_t: &[F],
        work: &mut [F],
        x_bar: &mut [F],
    ) -> bool {
        let n = x_bar.len() / self.src_image().max(1);
        let [v_len, y_len] = self.work(n);
        let pu = self.ci * self.co;
        let fits = y_bar.len() == n * self.out_image()
            && x_bar.len() == n * self.src_image()
            && work.len() >= v_len + y_len
            && u_t.len() == XI * pu;
        if !fits {
            return false;
        }
        let (v_bar, y_hat) = work.split_at_mut(v_len);
        let y_hat = &mut y_hat[..y_len];
        let tiles = n * self.per_image();
        let mkn = (tiles, self.co, self.ci);
        if !(self.gather_cotangents(y_bar, y_hat) && products(y_hat, u_t, v_bar, mkn)) {
            return false;
        }
        self.scatter_adjoint(v_bar, x_bar)
    }

    /// `sum[ξ] += V_ξᵀ · Ŷ_ξ` for a group of images (`first` its first image in the batch):
    /// the images' tiles `V = Bᵀ d B`, `ȳ`'s 4×4 blocks `Ŷ = A ȳ Aᵀ`. `space` holds both
    /// and a `ci × co` product for the kernels that cannot add in place.
    fn accumulate<F: Element>(
        &self,
        images: &[F],
        y_bar: &[F],
        first: usize,
        space: &mut [F],
        sum: &mut [F],
    ) -> bool {
        let n = images.len() / self.src_image().max(1);
        let tiles = n * self.per_image();
        let [v_len, y_len] = self.work(n);
        let (pv, py, pu) = (v_len / XI, y_len / XI, self.ci * self.co);
        let y_bar = y_bar
            .get(first * self.out_image()..)
            .and_then(|y| y.get(..n * self.out_image()));
        let room = space.len() >= v_len + y_len + pu && sum.len() == XI * pu;
        let (Some(y_bar), true) = (y_bar, room) else {
            return false;
        };
        let (v, rest) = space.split_at_mut(v_len);
        let (y_hat, product) = rest.split_at_mut(y_len);
        if !(self.gather_images(images, v) && self.gather_cotangents(y_bar, y_hat)) {
            return false;
        }
        for xi in 0..XI {
            // V_ξᵀ, read through its strides: element (c, t) at t·ci + c.
            let a = ArrayView2::from_shape(
                (self.ci, tiles).strides((1, self.ci)),
                &v[xi * pv..(xi + 1) * pv],
            );
            let b = ArrayView2::from_shape((tiles, self.co), &y_hat[xi * py..(xi + 1) * py]);
            let acc =
                ArrayViewMut2::from_shape((self.ci, self.co), &mut sum[xi * pu..(xi + 1) * pu]);
            let p = ArrayViewMut2::from_shape((self.ci, self.co), &mut product[..pu]);
            let (Ok(a), Ok(b), Ok(mut acc), Ok(mut p)) = (a, b, acc, p) else {
                return false;
            };
            matmul_add_into(&a, &b, &mut acc, &mut p);
        }
        true
    }
}

/// One group's work in [`Run::by_groups`]: `(src, u, work, out) -> done`.
type GroupTask<'a, F> = dyn Fn(&[F], &[F], &mut [F], &mut [F]) -> bool + Sync + 'a;

/// The 36 products `c_ξ = a_ξ · b_ξ` of a group, `(m, k, n)` their sizes: `a` holds 36 planes
/// of `m × k` (tiles × channels, the front of each of its equal planes), `b` 36 of `k × n`,
/// `c` 36 of `m × n`. `false`, computing nothing more, when a plane does not fit.
fn products<F: Element>(a: &[F], b: &[F], c: &mut [F], (m, k, n): (usize, usize, usize)) -> bool {
    let (pa, pb, pc) = (a.len() / XI, b.len() / XI, c.len() / XI);
    let (a, b) = (a.chunks_exact(pa.max(1)), b.chunks_exact(pb.max(1)));
    c.chunks_exact_mut(pc.max(1))
        .zip(a.zip(b))
        .all(|(c, (a, b))| {
            let a = a.get(..m * k).map(|a| ArrayView2::from_shape((m, k), a));
            let b = b.get(..k * n).map(|b| ArrayView2::from_shape((k, n), b));
            let c = c
                .get_mut(..m * n)
                .map(|c| ArrayViewMut2::from_shape((m, n), c));
            let (Some(Ok(a)), Some(Ok(b)), Some(Ok(mut c))) = (a, b, c) else {
                return false;
            };
            matmul_into(&a, &b, &mut c);
            true
        })
}

impl Run<'_> {
    /// `y = conv2d(x, w)`, plus `bias` on every output pixel, by Winograd's F(4×4, 3×3): the
    /// groups of images are the team's tasks.
    pub(super) fn winograd_conv2d<F: Element>(
        &self,
        x: &[F],
        w: &[F],
        bias: Option<&[F]>,
        y: &mut [F],
        scratch: &mut Vec<F>,
    ) -> Result<()> {
        let t = Tiling::forward(self.geo);
        let (x, y) = ((x, t.src_image()), (y, t.out_image()));
        self.by_groups(w, false, x, y, scratch, &|x, u, work, y| {
            t.convolve(x, u, bias, work, y)
        })
    }

    /// `x̄ = T(ȳ, w)` as the adjoint of the forward tiles (see the module doc): the groups of
    /// images are the team's tasks.
    pub(super) fn winograd_input_grad<F: Element>(
        &self,
        y_bar: &[F],
        w: &[F],
        x_bar: &mut [F],
        scratch: &mut Vec<F>,
    ) -> Result<()> {
        let t = Tiling::forward(self.geo);
        let (y_bar, x_bar) = ((y_bar, t.out_image()), (x_bar, t.src_image()));
        self.by_groups(w, true, y_bar, x_bar, scratch, &|y, u_t, work, x| {
            t.convolve_adjoint(y, u_t, work, x)
        })
    }

    /// The kernel transformed once (each point's matrix `transposed` for the input
    /// gradient), then `group(src, u, work, out)` for each group of images, the groups being
    /// the team's tasks; `src` and `out` come with their elements per image.
    fn by_groups<F: Element>(
        &self,
        w: &[F],
        transposed: bool,
        (src, src_image): (&[F], usize),
        (out, out_image): (&mut [F], usize),
        scratch: &mut Vec<F>,
        group_task: &GroupTask<'_, F>,
    ) -> Result<()> {
        let t = Tiling::forward(self.geo);
        let group = t.group::<F>(self.batch);
        let per_worker = t.work(group).iter().sum();
        let u_len = XI * t.ci * t.co;
        let space = self.scratch(scratch, u_len + self.per_team::<F>(per_worker)?)?;
        let (u, work) = space.split_at_mut(u_len);
        if !transform_kernel(self.geo, w, transposed, u) {
            return Err(self.internal());
        }
        let u = &*u;
        let failed = AtomicBool::new(false);
        self.team.for_chunks(
            out,
            group * out_image,
            work,
            per_worker,
            &|task, out, work| {
                let n = out.len() / out_image.max(1);
                let src = src
                    .get(task * group * src_image..)
                    .and_then(|s| s.get(..n * src_image));
                if !src.is_some_and(|src| group_task(src, u, work, out)) {
                    failed.store(true, Ordering::Relaxed);
                }
            },
        );
        self.check(&failed)
    }

    /// `w̄ = K(x, ȳ) = Gᵀ[Σ_tiles V ⊙ Ŷ]G`, the sums in the transformed domain kept as
    /// [`PARTIALS`] partial sums exactly as [`Run::kernel_grad`] keeps its own (the same bits
    /// at any thread count), added in order and transformed back once.
    pub(super) fn winograd_kernel_grad<F: Element>(
        &self,
        x: &[F],
        y_bar: &[F],
        w_bar: &mut [F],
        scratch: &mut Vec<F>,
    ) -> Result<()> {
        let t = Tiling::forward(self.geo);
        let group = t.group::<F>(self.batch);
        let groups = self.batch.div_ceil(group);
        let partials = PARTIALS.min(groups).max(1);
        let size = XI * t.ci * t.co;
        let per_worker = t.work(group).iter().sum::<usize>() + t.ci * t.co;
        let space = self.scratch(scratch, partials * size + self.per_team::<F>(per_worker)?)?;
        let (sums, workers) = space.split_at_mut(partials * size);
        let failed = AtomicBool::new(false);
        let image = t.src_image();
        self.team
            .for_chunks(sums, size, workers, per_worker, &|p, sum, space| {
                sum.fill(F::zero());
                let (first, last) = (p * groups / partials, (p + 1) * groups / partials);
                for k in first..last {
                    let images = x
                        .get(k * group * image..)
                        .map(|x| &x[..(group * image).min(x.len())]);
                    let ok = images
                        .is_some_and(|images| t.accumulate(images, y_bar, k * group, space, sum));
                    if !ok {
                        failed.store(true, Ordering::Relaxed);
                    }
                }
            });
        self.check(&failed)?;
        let (total, rest) = sums.split_at_mut(size);
        add_partials(self.team, total, rest);
        match kernel_from_transformed(self.geo, total, w_bar) {
            true => Ok(()),
            false => Err(self.internal()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{applies, Geometry};
    use crate::ops::window::{Axis1, Padding};
    use crate::shape::Dim;

    type Outcome<T> = Result<T, Box<dyn std::error::Error>>;

    fn geometry(n: usize, k: usize, s: usize, d: usize, c: usize, o: usize) -> Outcome<Geometry> {
        let axis = Axis1::new(n, k, s, d, Padding::Valid)?;
        Ok(Geometry {
            batch: Dim::Fixed(2),
            c,
            o,
            axes: [axis; 2],
        })
    }

    /// The convnet's second convolution (and its gradients) take this path; its first
    /// (one channel in), strided, dilated and 5x5 convolutions keep im2col.
    #[test]
    fn winograd_takes_the_stride_1_3x3_convolutions_with_8_channels_or_more() -> Outcome<()> {
        assert!(applies(&geometry(13, 3, 1, 1, 32, 64)?));
        assert!(applies(&geometry(3, 3, 1, 1, 8, 8)?));
        assert!(!applies(&geometry(28, 3, 1, 1, 1, 32)?));
        assert!(!applies(&geometry(13, 3, 1, 1, 32, 7)?));
        assert!(!applies(&geometry(13, 3, 2, 1, 32, 64)?));
        assert!(!applies(&geometry(13, 3, 1, 2, 32, 64)?));
        assert!(!applies(&geometry(13, 5, 1, 1, 32, 64)?));
        Ok(())
    }
}
