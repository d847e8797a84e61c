//! The fused kernels on `f32` vectors (AVX2 and AVX-512 instances, the same bits) and the
//! team's share of them.

#![allow(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]

use super::super::direct::{in_image, instance, tap_offsets, window, window_start, TAPS};
use super::super::kernel::Run;
use super::super::Geometry;
use super::{ConvOperands, GradOperands, MAX_WIDTH};
use crate::error::Result;
use crate::Element;
use std::sync::atomic::{AtomicBool, Ordering};

/// Floats of one image's pooled output.
fn pooled_image(g: &Geometry) -> usize {
    (g.axes[0].out / 2) * (g.axes[1].out / 2) * g.o
}

impl Run<'_> {
    /// `max_pool2d(conv2d(x, w) + bias)` (then `relu` if asked) into `pooled`, the images
    /// shared evenly between the team (each output is computed on its own, so the split does
    /// not change a bit); `false` where the kernel does not apply.
    pub(super) fn pooled_conv<F: Element>(
        &self,
        (x, w, bias): ConvOperands<'_, F>,
        relu: bool,
        pooled: &mut [F],
    ) -> bool {
        let g = self.geo;
        let per_task = self.batch.div_ceil(self.team.workers()).max(1);
        let failed = AtomicBool::new(false);
        let chunk = per_task * pooled_image(g);
        self.team
            .for_chunks(pooled, chunk, &mut [(); 0], 0, &|task, pooled, _| {
                let n = pooled.len() / pooled_image(g).max(1);
                let images = x
                    .get(task * per_task * in_image(g)..)
                    .and_then(|x| x.get(..n * in_image(g)));
                if !images.is_some_and(|x| convolve_pooled(g, (x, w, bias), relu, pooled)) {
                    failed.store(true, Ordering::Relaxed);
                }
            });
        !failed.load(Ordering::Relaxed)
    }

    /// `w̄ = K(x, S_y(v̄))` with `y = conv2d(x, w) + bias`, by [`Run::kernel_grad_by`]'s groups
    /// and partial sums; `Ok(false)` where the kernel does not apply.
    pub(super) fn kernel_grad_through_pool<F: Element>(
        &self,
        (x, w, bias, v_bar): GradOperands<'_, F>,
        w_bar: &mut [F],
        scratch: &mut Vec<F>,
    ) -> Result<bool> {
        let g = self.geo;
        if !super::fits(g) {
            return Ok(false);
        }
        self.kernel_grad_by(x, w_bar, scratch, &|images, first, _, sum| {
            let n = images.len() / in_image(g).max(1);
            let v_bar = v_bar
                .get(first * pooled_image(g)..)
                .and_then(|v| v.get(..n * pooled_image(g)));
            v_bar.is_some_and(|v_bar| add_kernel_grad(g, images, w, bias, v_bar, sum))
        })?;
        Ok(true)
    }
}

/// The `f32` slices of a fused kernel's operands, built only where they hold whole images,
/// `9 · o` weights and `o` biases.
struct Operands<'a> {
    images: &'a [f32],
    w: &'a [f32],
    bias: Option<&'a [f32]>,
}

impl<'a> Operands<'a> {
    fn new<F: Element>(
        g: &Geometry,
        images: &'a [F],
        w: &'a [F],
        bias: Option<&'a [F]>,
    ) -> Option<Self> {
        let (images, w) = (F::as_f32_slice(images)?, F::as_f32_slice(w)?);
        let bias = match bias {
            Some(b) => Some(F::as_f32_slice(b)?),
            None => None,
        };
        let whole = images.len().is_multiple_of(in_image(g).max(1));
        let fit = whole && w.len() == TAPS * g.o && bias.is_none_or(|b| b.len() == g.o);
        fit.then_some(Operands { images, w, bias })
    }

    fn images(&self, g: &Geometry) -> usize {
        self.images.len() / in_image(g).max(1)
    }
}

/// `pooled = max_pool2d(conv2d(images, w) + bias)`, then `relu` if asked; `false`, computing
/// nothing, where the kernel does not apply or a buffer does not fit.
fn convolve_pooled<F: Element>(
    g: &Geometry,
    (images, w, bias): ConvOperands<'_, F>,
    relu: bool,
    pooled: &mut [F],
) -> bool {
    let (Some(isa), Some(ops), Some(pooled)) = (
        instance(g).filter(|_| super::fits(g)),
        Operands::new(g, images, w, bias),
        F::as_f32_slice_mut(pooled),
    ) else {
        return false;
    };
    if pooled.len() != ops.images(g) * pooled_image(g) {
        return false;
    }
    let taps = tap_offsets(g);
    // SAFETY: `instance` checked the CPU, the channels and that every window is inside the
    // image, `fits` the pooled sizes; the buffers hold whole images, their pooled outputs,
    // the kernel and the bias (above).
    unsafe { isa.pooled_forward(g, &taps, ops.images, (ops.w, ops.bias), relu, pooled) };
    true
}

/// `sum += K(images, S_y(v̄))` with `y = conv2d(images, w) + bias`; `false`, computing
/// nothing, where the kernel does not apply or a buffer does not fit.
fn add_kernel_grad<F: Element>(
    g: &Geometry,
    images: &[F],
    w: &[F],
    bias: Option<&[F]>,
    v_bar: &[F],
    sum: &mut [F],
) -> bool {
    let (Some(isa), Some(ops), Some(v_bar), Some(sum)) = (
        instance(g).filter(|_| super::fits(g)),
        Operands::new(g, images, w, bias),
        F::as_f32_slice(v_bar),
        F::as_f32_slice_mut(sum),
    ) else {
        return false;
    };
    if v_bar.len() != ops.images(g) * pooled_image(g) || sum.len() != TAPS * g.o {
        return false;
    }
    let taps = tap_offsets(g);
    // SAFETY: as in `convolve_pooled`, with `v̄` holding the images' pooled cotangents and
    // `sum` the kernel's.
    unsafe { isa.pooled_kernel_grad(g, &taps, ops.images, (ops.w, ops.bias), v_bar, sum) };
    true
}

mod simd {
    use super::{window, window_start, Geometry, MAX_WIDTH, TAPS};
    use crate::lanes::{instances, Lanes};

    /// The kernel's nine rows and the bias for channels `c0..c0 + LANES`.
    ///
    /// # Safety
    /// The instruction set is available; `w` holds nine rows of `o` channels and the bias
    /// `o`, with `c0 + LANES <= o`.
    #[inline(always)]
    unsafe fn weights<S: Lanes>(
        w: &[f32],
        bias: Option<&[f32]>,
        o: usize,
        c0: usize,
    ) -> ([S::V; TAPS], Option<S::V>) {
        // SAFETY: the contract.
        unsafe {
            let mut rows = [S::zero(); TAPS];
            for (t, row) in rows.iter_mut().enumerate() {
                *row = S::load(w.as_ptr().add(t * o + c0));
            }
            (rows, bias.map(|b| S::load(b.as_ptr().add(c0))))
        }
    }

    /// `conv2d(x, w) + b` at output pixel `(oy, ox)`: the direct kernel's chain of nine
    /// fused multiply-adds in tap order, then the bias.
    ///
    /// # Safety
    /// The instruction set is available and the pixel's window is inside `image`.
    #[inline(always)]
    unsafe fn pixel<S: Lanes>(
        g: &Geometry,
        (image, taps): (&[f32], &[usize; TAPS]),
        (oy, ox): (usize, usize),
        (w, bias): &([S::V; TAPS], Option<S::V>),
    ) -> S::V {
        // SAFETY: the contract.
        unsafe {
            let xs = window::<S>(image, window_start(g, oy, ox), taps);
            let mut acc = S::zero();
            for (&x, &w) in xs.iter().zip(w) {
                acc = S::fmadd(x, w, acc);
            }
            match bias {
                Some(b) => S::add(acc, *b),
                None => acc,
            }
        }
    }

    /// The maximum of pooling window `(i, j)`'s four convolution values and the tap holding
    /// it (`0.0` to `3.0`, row-major), by pooling's tie rule.
    ///
    /// # Safety
    /// As [`pixel`], for the window's four pixels.
    #[inline(always)]
    unsafe fn window_max<S: Lanes>(
        g: &Geometry,
        image: (&[f32], &[usize; TAPS]),
        (i, j): (usize, usize),
        weights: &([S::V; TAPS], Option<S::V>),
    ) -> (S::V, S::V) {
        // SAFETY: the contract.
        unsafe {
            let mut best = pixel::<S>(g, image, (2 * i, 2 * j), weights);
            let mut tap = S::zero();
            for t in 1..4 {
                let v = pixel::<S>(g, image, (2 * i + t / 2, 2 * j + t % 2), weights);
                let win = S::wins(v, best);
                best = S::select(win, v, best);
                tap = S::select(win, S::set(t as f32), tap);
            }
            (best, tap)
        }
    }

    /// # Safety
    /// The instruction set is available; every window is inside its image, the pooled
    /// output is at least 1×1, and the buffers hold whole images, their pooled outputs,
    /// `9 · o` weights and `o` biases, `o` a multiple of `LANES`.
    #[inline(always)]
    pub(super) unsafe fn pooled_forward<S: Lanes>(
        g: &Geometry,
        taps: &[usize; TAPS],
        images: &[f32],
        (w, bias): (&[f32], Option<&[f32]>),
        relu: bool,
        pooled: &mut [f32],
    ) {
        let ([a, b], o) = (g.axes, g.o);
        let (ph, pw) = (a.out / 2, b.out / 2);
        for c0 in (0..o).step_by(S::LANES) {
            // SAFETY: `c0 + LANES <= o` (the contract).
            let weights = unsafe { weights::<S>(w, bias, o, c0) };
            let outputs = pooled.chunks_exact_mut(ph * pw * o);
            for (image, out) in images.chunks_exact(a.n * b.n).zip(outputs) {
                for (i, j) in (0..ph).flat_map(|i| (0..pw).map(move |j| (i, j))) {
                    // SAFETY: the windows are inside the image and the pooled pixel's channels
                    // inside `out` (the contract).
                    unsafe {
                        let (mut best, _) = window_max::<S>(g, (image, taps), (i, j), &weights);
                        if relu {
                            // `select(best <= 0, 0, best)`: `relu`'s own ops, so its bits.
                            let zero = S::zero();
                            best = S::select(S::at_most(best, zero), zero, best);
                        }
                        S::store(out.as_mut_ptr().add((i * pw + j) * o + c0), best);
                    }
                }
            }
        }
    }

    /// # Safety
    /// As [`pooled_forward`], with `v_bar` in place of the pooled outputs, `sum` of `9 · o`
    /// and a convolution output at most [`MAX_WIDTH`] wide.
    #[inline(always)]
    pub(super) unsafe fn pooled_kernel_grad<S: Lanes>(
        g: &Geometry,
        taps: &[usize; TAPS],
        images: &[f32],
        (w, bias): (&[f32], Option<&[f32]>),
        v_bar: &[f32],
        sum: &mut [f32],
    ) {
        let ([a, b], o) = (g.axes, g.o);
        let (ph, pw, ow) = (a.out / 2, b.out / 2, b.out);
        // Two rows of `ȳ = S_y(v̄)`: the last column of an odd width is in no window and
        // stays 0, as the scatter leaves it.
        // SAFETY: the instruction set is available (the contract).
        let mut y_bar = [unsafe { S::zero() }; 2 * MAX_WIDTH];
        for c0 in (0..o).step_by(S::LANES) {
            // SAFETY: `c0 + LANES <= o` and `sum` holds nine rows of `o` (the contract).
            let (weights, mut acc) = unsafe {
                let mut acc = [S::zero(); TAPS];
                for (t, acc) in acc.iter_mut().enumerate() {
                    *acc = S::load(sum.as_ptr().add(t * o + c0));
                }
                (weights::<S>(w, bias, o, c0), acc)
            };
            let cotangents = v_bar.chunks_exact(ph * pw * o);
            for (image, v_bar) in images.chunks_exact(a.n * b.n).zip(cotangents) {
                for i in 0..ph {
                    for j in 0..pw {
                        // SAFETY: the windows are inside the image and the pooled pixel's
                        // channels inside `v_bar` (the contract); `2·j + 1 < ow <= MAX_WIDTH`.
                        unsafe {
                            let (_, won) = window_max::<S>(g, (image, taps), (i, j), &weights);
                            let v = S::load(v_bar.as_ptr().add((i * pw + j) * o + c0));
                            for t in 0..4 {
                                let share =
                                    S::select(S::equal(won, S::set(t as f32)), v, S::zero());
                                y_bar[(t / 2) * ow + 2 * j + t % 2] = share;
                            }
                        }
                    }
                    for (r, row) in y_bar[..2 * ow].chunks_exact(ow).enumerate() {
                        // SAFETY: as above; the rows are those of pooling window row `i`.
                        unsafe { add_row::<S>(g, (image, taps), 2 * i + r, row, &mut acc) };
                    }
                }
                // An odd height's last row is in no window: its cotangent is 0.
                // SAFETY: the instruction set is available (the contract).
                let zeros = [unsafe { S::zero() }; MAX_WIDTH];
                for oy in 2 * ph..a.out {
                    // SAFETY: as above.
                    unsafe { add_row::<S>(g, (image, taps), oy, &zeros[..ow], &mut acc) };
                }
            }
            for (t, &acc) in acc.iter().enumerate() {
                // SAFETY: as above.
                unsafe { S::store(sum.as_mut_ptr().add(t * o + c0), acc) };
            }
        }
    }

    /// `acc[t] += x[window of (oy, ox), tap t] · ȳ[ox]` for the pixels of output row `oy`,
    /// in order: the direct kernel gradient's multiply-adds.
    ///
    /// # Safety
    /// The instruction set is available and the row's windows are inside `image`.
    #[inline(always)]
    unsafe fn add_row<S: Lanes>(
        g: &Geometry,
        (image, taps): (&[f32], &[usize; TAPS]),
        oy: usize,
        y_bar: &[S::V],
        acc: &mut [S::V; TAPS],
    ) {
        for (ox, &gv) in y_bar.iter().enumerate() {
            // SAFETY: the contract.
            unsafe {
                let xs = window::<S>(image, window_start(g, oy, ox), taps);
                for (acc, &x) in acc.iter_mut().zip(&xs) {
                    *acc = S::fmadd(x, gv, *acc);
                }
            }
        }
    }

    instances! {
        /// [`pooled_forward`].
        pooled_forward => pooled_forward(g: &Geometry, taps: &[usize; TAPS], images: &[f32], weights: (&[f32], Option<&[f32]>), relu: bool, pooled: &mut [f32]);
        /// [`pooled_kernel_grad`].
        pooled_kernel_grad => pooled_kernel_grad(g: &Geometry, taps: &[usize; TAPS], images: &[f32], weights: (&[f32], Option<&[f32]>), v_bar: &[f32], sum: &mut [f32]);
    }
}
