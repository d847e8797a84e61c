//! The pooling kernels over NHWC images, compiled twice: portable, and with AVX2 enabled for
//! the machines that have it (the same source, so the same values: the compares, selects and
//! blends of the channel loops become 8-wide vectors instead of SSE2's 4 and branches).
#![allow(unsafe_code)]

use crate::ops::window::Axis1;
use crate::Element;

/// Which kernel [`Run::run`] runs.
#[derive(Clone, Copy)]
pub(super) enum Kind {
    Max,
    Scatter,
    Gather,
    Avg,
    AvgGrad,
}

impl Run {
    /// Runs `kind` on the operands `xs` into `out`, through the AVX2 instance when the CPU has it.
    pub fn run<F: Element>(&self, kind: Kind, xs: &[&[F]], out: &mut [F]) {
        #[cfg(target_arch = "x86_64")]
        if self.quads_f32(kind, xs, out) {
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if crate::cpu::has_avx2() {
            // SAFETY: the CPU has AVX2, the only requirement of the instance.
            return unsafe { self.run_avx2(kind, xs, out) };
        }
        self.run_portable(kind, xs, out);
    }

    /// Max pooling or its scatter through [`super::quad`] when the windows are 2x2 at stride 2
    /// and tile the image, `F` is `f32` and the CPU has AVX2; `false` (nothing written)
    /// otherwise.
    #[cfg(target_arch = "x86_64")]
    fn quads_f32<F: Element>(&self, kind: Kind, xs: &[&[F]], out: &mut [F]) -> bool {
        use super::quad::{Pass, Quads};
        let [ah, aw] = self.axes;
        let pass = match kind {
            Kind::Max => Pass::Max,
            Kind::Scatter => Pass::Scatter,
            Kind::Gather | Kind::Avg | Kind::AvgGrad => return false,
        };
        if !(ah.k == 2 && aw.k == 2 && self.tiles()) {
            return false;
        }
        let (Some(x), Some(out)) = (F::as_f32_slice(xs[0]), F::as_f32_slice_mut(out)) else {
            return false;
        };
        let v = match (pass, xs.get(1).map(|v| F::as_f32_slice(v))) {
            (Pass::Max, _) => &[][..],
            (Pass::Scatter, Some(Some(v))) => v,
            (Pass::Scatter, _) => return false,
        };
        let quads = Quads {
            batch: self.batch,
            hw: [ah.n, aw.n],
            out: [ah.out, aw.out],
            c: self.c,
        };
        quads.run(pass, x, v, out)
    }

    /// [`Run::run_portable`] compiled with AVX2.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn run_avx2<F: Element>(&self, kind: Kind, xs: &[&[F]], out: &mut [F]) {
        self.run_portable(kind, xs, out);
    }

    #[inline(always)]
    fn run_portable<F: Element>(&self, kind: Kind, xs: &[&[F]], out: &mut [F]) {
        match kind {
            Kind::Max => self.max(xs[0], out),
            Kind::Scatter => self.max_route(xs[0], xs[1], out, true),
            Kind::Gather => self.max_route(xs[0], xs[1], out, false),
            Kind::Avg => self.avg(xs[0], out, false),
            Kind::AvgGrad => self.avg(xs[0], out, true),
        }
    }
}

/// The order of the tie rule: `v` replaces the running maximum `best` when it is larger, or a
/// NaN where `best` is not. Equal values never replace: the first maximum wins.
#[inline(always)]
pub(super) fn wins<F: Element>(v: F, best: F) -> bool {
    v > best || (v.is_nan() && !best.is_nan())
}

/// The sizes of one run: the window axes, the batch and the channel count.
pub(super) struct Run {
    pub axes: [Axis1; 2],
    pub batch: usize,
    pub c: usize,
}

/// Channels whose window argmax [`Run::max_route`] finds together (a stack block: any channel
/// count is done in blocks, with nothing allocated).
const CHANNEL_BLOCK: usize = 64;

/// For channels `k0..k0 + best.len()` of one image, the maximum over the window's pixels
/// `taps` into `best` and the pixel holding it into `at`, by the tie rule (an equal value
/// never replaces: the first maximum wins). A window without pixels leaves pixel 0.
#[inline(always)]
fn block_argmax<F: Element>(
    image: &[F],
    c: usize,
    k0: usize,
    taps: impl Iterator<Item = usize>,
    best: &mut [F],
    at: &mut [usize],
) {
    at.fill(0);
    for (i, px) in taps.enumerate() {
        let src = &image[px * c + k0..px * c + k0 + best.len()];
        if i == 0 {
            best.copy_from_slice(src);
            at.fill(px);
            continue;
        }
        for ((b, a), &v) in best.iter_mut().zip(at.iter_mut()).zip(src) {
            let win = wins(v, *b);
            *b = if win { v } else { *b };
            *a = if win { px } else { *a };
        }
    }
}

/// [`block_argmax`] recording the winner's tap (its place in the window, counted from 0) as
/// a 32-bit index rather than its pixel: the same width as an `f32`, so the compares and
/// blends of the channel loop vectorize. Each step writes arrays other than the ones it reads
/// (the two pairs swap roles): an update in place is a conditional store, which the compiler
/// makes a masked vector store, microcoded on Zen 2.
#[inline(always)]
fn tap_argmax<F: Element>(
    image: &[F],
    c: usize,
    k0: usize,
    pixels: impl Iterator<Item = usize>,
    best: &mut [F],
    tap: &mut [u32],
) {
    let width = best.len();
    let (mut spare_best, mut spare_tap) = ([F::zero(); CHANNEL_BLOCK], [0u32; CHANNEL_BLOCK]);
    let (mut from, mut to) = (
        (best, tap),
        (&mut spare_best[..width], &mut spare_tap[..width]),
    );
    let mut in_spare = false;
    for (t, px) in (0u32..).zip(pixels) {
        let src = &image[px * c + k0..px * c + k0 + width];
        if t == 0 {
            from.0.copy_from_slice(src);
            from.1.fill(0);
            continue;
        }
        for (((&v, (&b, &a)), nb), na) in src
            .iter()
            .zip(from.0.iter().zip(from.1.iter()))
            .zip(to.0.iter_mut())
            .zip(to.1.iter_mut())
        {
            let win = wins(v, b);
            *nb = if win { v } else { b };
            *na = if win { t } else { a };
        }
        std::mem::swap(&mut from, &mut to);
        in_spare = !in_spare;
    }
    if in_spare {
        // The result is in the spare pair, `to` holds the caller's arrays.
        to.0.copy_from_slice(from.0);
        to.1.copy_from_slice(from.1);
    }
}

/// The maximum over the window's pixels `taps` of each of an image's `dst.len()` channels,
/// by the tie rule, a block of channels at a time (swapping two stack blocks, as
/// [`tap_argmax`] does, so the channel loop is plain vector blends).
#[inline(always)]
fn window_max<F: Element>(
    image: &[F],
    c: usize,
    taps: impl Iterator<Item = usize> + Clone,
    dst: &mut [F],
) {
    let mut blocks = [[F::zero(); CHANNEL_BLOCK]; 2];
    for (k0, dst) in (0..c)
        .step_by(CHANNEL_BLOCK)
        .zip(dst.chunks_mut(CHANNEL_BLOCK))
    {
        let width = dst.len();
        let [a, b] = &mut blocks;
        let (mut from, mut to) = (&mut a[..width], &mut b[..width]);
        for (i, px) in taps.clone().enumerate() {
            let src = &image[px * c + k0..px * c + k0 + width];
            if i == 0 {
                from.copy_from_slice(src);
                continue;
            }
            for ((&v, &b), next) in src.iter().zip(from.iter()).zip(to.iter_mut()) {
                *next = if wins(v, b) { v } else { b };
            }
            std::mem::swap(&mut from, &mut to);
        }
        dst.copy_from_slice(from);
    }
}

impl Run {
    fn in_pixels(&self) -> usize {
        self.axes[0].n * self.axes[1].n
    }
    fn out_pixels(&self) -> usize {
        self.axes[0].out * self.axes[1].out
    }

    /// Calls `f(out_pixel, in_pixels)` for every window of an image, its input pixels (those
    /// inside the image) in row-major window order.
    fn each_window(&self, mut f: impl FnMut(usize, &mut dyn Iterator<Item = usize>)) {
        let [ah, aw] = self.axes;
        for oh in 0..ah.out {
            for ow in 0..aw.out {
                let mut taps = (0..ah.k).filter_map(|th| ah.source(oh, th)).flat_map(|ih| {
                    (0..aw.k)
                        .filter_map(move |tw| aw.source(ow, tw))
                        .map(move |iw| ih * aw.n + iw)
                });
                f(oh * aw.out + ow, &mut taps);
            }
        }
    }

    #[inline(always)]
    fn max<F: Element>(&self, x: &[F], y: &mut [F]) {
        let c = self.c;
        let [ah, aw] = self.axes;
        for (image, out) in x
            .chunks_exact(self.in_pixels() * c)
            .zip(y.chunks_exact_mut(self.out_pixels() * c))
        {
            for (oh, ow) in (0..ah.out).flat_map(|oh| (0..aw.out).map(move |ow| (oh, ow))) {
                let dst = &mut out[(oh * aw.out + ow) * c..][..c];
                match self.inside(oh, ow) {
                    Some(first) => window_max(image, c, self.window_at(first), dst),
                    None => window_max(image, c, self.taps(oh, ow), dst),
                }
            }
        }
    }

    /// The first pixel of window `(oh, ow)` when the whole window is inside the image and
    /// undilated: its pixels are then `kw` consecutive ones on each of `kh` rows.
    #[inline(always)]
    fn inside(&self, oh: usize, ow: usize) -> Option<usize> {
        let [ah, aw] = self.axes;
        Some(ah.inside(oh)? * aw.n + aw.inside(ow)?)
    }

    /// The pixels of an inside window starting at pixel `first`, in row-major window order
    /// (the same order as [`Run::taps`], without its padding tests).
    #[inline(always)]
    fn window_at(&self, first: usize) -> impl Iterator<Item = usize> + Clone {
        let [ah, aw] = self.axes;
        (0..ah.k).flat_map(move |th| {
            let row = first + th * aw.n;
            row..row + aw.k
        })
    }

    /// The input pixels of window `(oh, ow)` inside the image, in row-major window order.
    fn taps(&self, oh: usize, ow: usize) -> impl Iterator<Item = usize> + Clone {
        let [ah, aw] = self.axes;
        (0..ah.k)
            .filter_map(move |th| ah.source(oh, th))
            .flat_map(move |ih| {
                (0..aw.k)
                    .filter_map(move |tw| aw.source(ow, tw))
                    .map(move |iw| ih * aw.n + iw)
            })
    }

    /// `S_x(ȳ)` when `scatter`, else `G_x(v)`: both walk the argmax positions of `x`. A
    /// window's argmax is found for a block of channels at once, reading each pixel's channels
    /// contiguously (NHWC), so a channel costs a compare per pixel, not a walk of the window.
    #[inline(always)]
    fn max_route<F: Element>(&self, x: &[F], v: &[F], out: &mut [F], scatter: bool) {
        if scatter && self.tiles() {
            return self.scatter_tiled(x, v, out);
        }
        let (c, n_in, n_out) = (
            self.c,
            self.in_pixels() * self.c,
            self.out_pixels() * self.c,
        );
        if scatter {
            out.fill(F::zero());
        }
        let [ah, aw] = self.axes;
        let mut best = [F::zero(); CHANNEL_BLOCK];
        let mut at = [0usize; CHANNEL_BLOCK];
        for b in 0..self.batch {
            let image = &x[b * n_in..(b + 1) * n_in];
            for (oh, ow) in (0..ah.out).flat_map(|oh| (0..aw.out).map(move |ow| (oh, ow))) {
                let pooled = b * n_out + (oh * aw.out + ow) * c;
                for k0 in (0..c).step_by(CHANNEL_BLOCK) {
                    let width = CHANNEL_BLOCK.min(c - k0);
                    let (best, at) = (&mut best[..width], &mut at[..width]);
                    match self.inside(oh, ow) {
                        Some(first) => block_argmax(image, c, k0, self.window_at(first), best, at),
                        None => block_argmax(image, c, k0, self.taps(oh, ow), best, at),
                    }
                    for (j, &px) in at.iter().enumerate() {
                        let input = b * n_in + px * c + k0 + j;
                        let output = pooled + k0 + j;
                        if scatter {
                            out[input] = out[input] + v[output];
                        } else {
                            out[output] = v[input];
                        }
                    }
                }
            }
        }
    }

    /// Whether the windows tile the image: strides equal to the size and every window inside
    /// (Keras' default `valid` pooling), so that each pixel is in at most one window.
    fn tiles(&self) -> bool {
        let [ah, aw] = self.axes;
        let last = (ah.out.checked_sub(1), aw.out.checked_sub(1));
        ah.s == ah.k
            && aw.s == aw.k
            && self.inside(0, 0).is_some()
            && matches!(last, (Some(h), Some(w)) if self.inside(h, w).is_some())
    }

    /// `S_x(ȳ)` for windows that tile the image: every pixel of a window is written once, `ȳ`
    /// at the window's argmax and 0 elsewhere, with no zero fill before nor add (pixels no
    /// window covers, the last rows or columns of a pool that does not divide the image, are
    /// zeroed first). The same values as the general scatter, in one pass over `x̄`.
    #[inline(always)]
    fn scatter_tiled<F: Element>(&self, x: &[F], v: &[F], out: &mut [F]) {
        let (c, n_in, n_out) = (
            self.c,
            self.in_pixels() * self.c,
            self.out_pixels() * self.c,
        );
        let [ah, aw] = self.axes;
        if ah.out * ah.k < ah.n || aw.out * aw.k < aw.n {
            out.fill(F::zero());
        }
        let mut best = [F::zero(); CHANNEL_BLOCK];
        let mut tap = [0u32; CHANNEL_BLOCK];
        for ((image, grad), pooled) in x
            .chunks_exact(n_in)
            .zip(out.chunks_exact_mut(n_in))
            .zip(v.chunks_exact(n_out))
        {
            for (oh, ow) in (0..ah.out).flat_map(|oh| (0..aw.out).map(move |ow| (oh, ow))) {
                let Some(first) = self.inside(oh, ow) else {
                    continue;
                };
                let share = &pooled[(oh * aw.out + ow) * c..][..c];
                for k0 in (0..c).step_by(CHANNEL_BLOCK) {
                    let width = CHANNEL_BLOCK.min(c - k0);
                    let (best, tap) = (&mut best[..width], &mut tap[..width]);
                    tap_argmax(image, c, k0, self.window_at(first), best, tap);
                    for (t, px) in (0u32..).zip(self.window_at(first)) {
                        let dst = &mut grad[px * c + k0..][..width];
                        for ((d, &a), &s) in dst.iter_mut().zip(tap.iter()).zip(&share[k0..]) {
                            *d = if a == t { s } else { F::zero() };
                        }
                    }
                }
            }
        }
    }

    /// Pixels of window `o` inside the image: the divisor of the average.
    fn window_count(&self, o: usize) -> usize {
        let [ah, aw] = self.axes;
        let inside = |a: Axis1, o: usize| (0..a.k).filter(|&t| a.source(o, t).is_some()).count();
        inside(ah, o / aw.out) * inside(aw, o % aw.out)
    }

    /// Average pooling when `grad` is false (`x` → `y`), its adjoint when true (`ȳ` → `x̄`).
    #[inline(always)]
    fn avg<F: Element>(&self, from: &[F], to: &mut [F], grad: bool) {
        let c = self.c;
        let (n_in, n_out) = (self.in_pixels() * c, self.out_pixels() * c);
        if grad {
            to.fill(F::zero());
        }
        for b in 0..self.batch {
            self.each_window(|o, pixels| {
                let scale = F::one() / F::of(self.window_count(o) as f64);
                let pooled = b * n_out + o * c;
                if grad {
                    let share = &from[pooled..pooled + c];
                    for px in pixels {
                        let at = b * n_in + px * c;
                        for (acc, &v) in to[at..at + c].iter_mut().zip(share) {
                            *acc = *acc + v * scale;
                        }
                    }
                } else {
                    let dst = &mut to[pooled..pooled + c];
                    dst.fill(F::zero());
                    for px in pixels {
                        let at = b * n_in + px * c;
                        for (acc, &v) in dst.iter_mut().zip(&from[at..at + c]) {
                            *acc = *acc + v;
                        }
                    }
                    for v in dst.iter_mut() {
                        *v = *v * scale;
                    }
                }
            });
        }
    }
}
