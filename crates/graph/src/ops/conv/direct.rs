//! One-channel 3×3 convolutions (an image's first layer, such as MNIST's 28×28×1 under the
//! convnet's 32 filters) computed directly on `f32` vectors, without im2col.
//!
//! With one input channel an output pixel is nine products per output channel, so the im2col
//! product has `K = 9`: the columns it copies (nine values per output pixel) cost about as
//! much as the product. Here each output pixel broadcasts its nine input values and runs one
//! chain of nine fused multiply-adds per vector of output channels:
//! `y[p, c] = Σ_t x[p + offset_t] · w[t, c]`, taps in order, then `+ b[c]` (the bias op's
//! addition after the same sum). The kernel gradient keeps the nine sums
//! `w̄[t, c] = Σ_p x[p + offset_t] · ȳ[p, c]` of one vector of channels in registers while it
//! walks the pixels, in order: for a group of images, in [`Run::kernel_grad`]'s fixed
//! partial sums, so the bits do not depend on the thread count.
//!
//! The module exists on x86-64 only (its callers fall back to im2col elsewhere). It applies
//! where every window is inside the image (no padding read; any stride and
//! dilation) and the output channels are a multiple of the vector width; the AVX2 and
//! AVX-512 instances give the same bits (one lane's chain is the same either way).
//!
//! [`Run::kernel_grad`]: super::kernel::Run::kernel_grad

#![allow(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]

use super::Geometry;
use crate::lanes::{Isa, Lanes};
use crate::Element;

/// Taps of a 3×3 window.
pub(super) const TAPS: usize = 9;

/// `y = conv2d(x, w)` (+ `bias`) for a group of whole images; `false`, computing nothing,
/// where the direct kernel does not apply or a buffer does not fit.
pub(super) fn convolve<F: Element>(
    g: &Geometry,
    images: &[F],
    w: &[F],
    bias: Option<&[F]>,
    y: &mut [F],
) -> bool {
    let Some(isa) = instance(g) else {
        return false;
    };
    let (Some(images), Some(w), Some(y)) = (
        F::as_f32_slice(images),
        F::as_f32_slice(w),
        F::as_f32_slice_mut(y),
    ) else {
        return false;
    };
    let bias = match bias.map(F::as_f32_slice) {
        Some(None) => return false,
        Some(Some(b)) => Some(b),
        None => None,
    };
    let n = images.len() / in_image(g).max(1);
    let fits = images.len() == n * in_image(g)
        && y.len() == n * out_image(g)
        && w.len() == TAPS * g.o
        && bias.is_none_or(|b| b.len() == g.o);
    if !fits {
        return false;
    }
    let taps = tap_offsets(g);
    // SAFETY: `instance` checked the CPU, the channels and that every window is inside
    // the image; the buffers hold whole images, outputs, the kernel and the bias (above).
    unsafe { isa.forward(g, &taps, images, w, bias, y) };
    true
}

/// `sum += K(x, ȳ)` for a group of whole images and their cotangents; `false`, computing
/// nothing, where the direct kernel does not apply or a buffer does not fit.
pub(super) fn add_kernel_grad<F: Element>(
    g: &Geometry,
    images: &[F],
    y_bar: &[F],
    sum: &mut [F],
) -> bool {
    let Some(isa) = instance(g) else {
        return false;
    };
    let (Some(images), Some(y_bar), Some(sum)) = (
        F::as_f32_slice(images),
        F::as_f32_slice(y_bar),
        F::as_f32_slice_mut(sum),
    ) else {
        return false;
    };
    let n = images.len() / in_image(g).max(1);
    let fits = images.len() == n * in_image(g)
        && y_bar.len() == n * out_image(g)
        && sum.len() == TAPS * g.o;
    if !fits {
        return false;
    }
    let taps = tap_offsets(g);
    // SAFETY: as in `convolve`.
    unsafe { isa.kernel_grad(g, &taps, images, y_bar, sum) };
    true
}

pub(super) fn in_image(g: &Geometry) -> usize {
    g.axes[0].n * g.axes[1].n
}

fn out_image(g: &Geometry) -> usize {
    g.axes[0].out * g.axes[1].out * g.o
}

/// Where each tap reads, from the input pixel of the window's first tap.
pub(super) fn tap_offsets(g: &Geometry) -> [usize; TAPS] {
    let [a, b] = g.axes;
    std::array::from_fn(|t| (t / 3) * a.d * b.n + (t % 3) * b.d)
}

/// The input pixel of output pixel `(oy, ox)`'s first tap.
#[inline(always)]
pub(super) fn window_start(g: &Geometry, oy: usize, ox: usize) -> usize {
    let [a, b] = g.axes;
    oy * a.s * b.n + ox * b.s
}

/// The instance for this geometry: the widest whose vector divides the output channels,
/// where the input has one channel and every tap of every 3×3 window is inside it.
pub(super) fn instance(g: &Geometry) -> Option<Isa> {
    // The last window's last tap, `(out - 1)·s + 2·d`, is inside the input.
    let inside = g.axes.iter().all(|a| {
        let last = (a.out.checked_sub(1))
            .and_then(|o| o.checked_mul(a.s))
            .and_then(|p| p.checked_add(a.d.checked_mul(2)?));
        a.k == 3 && a.before == 0 && last.is_some_and(|last| last < a.n)
    });
    Isa::dividing(g.o).filter(|_| g.c == 1 && inside)
}

/// The nine input values of one window, each in every lane.
///
/// # Safety
/// `S`'s instruction set is available (true of every function here) and the window is
/// inside `image`.
#[inline(always)]
pub(super) unsafe fn window<S: Lanes>(
    image: &[f32],
    start: usize,
    taps: &[usize; TAPS],
) -> [S::V; TAPS] {
    // SAFETY: the instruction set is available (the contract).
    let mut xs = [unsafe { S::zero() }; TAPS];
    for (x, &t) in xs.iter_mut().zip(taps) {
        // SAFETY: the window is inside the image (the contract).
        *x = unsafe { S::splat(image.as_ptr().add(start + t)) };
    }
    xs
}

mod simd {
    use super::{window, window_start, Geometry, TAPS};
    use crate::lanes::{instances, Lanes};

    /// # Safety
    /// The instruction set is available; every window is inside its image, and the buffers
    /// hold whole images, their outputs, `9 · o` weights and `o` biases.
    #[inline(always)]
    pub(super) unsafe fn forward<S: Lanes>(
        g: &Geometry,
        taps: &[usize; TAPS],
        images: &[f32],
        w: &[f32],
        bias: Option<&[f32]>,
        y: &mut [f32],
    ) {
        let ([a, b], o) = (g.axes, g.o);
        let outputs = y.chunks_exact_mut(a.out * b.out * o);
        for (image, out) in images.chunks_exact(a.n * b.n).zip(outputs) {
            for oy in 0..a.out {
                for ox in 0..b.out {
                    // SAFETY: the window is inside the image (the contract).
                    let xs = unsafe { window::<S>(image, window_start(g, oy, ox), taps) };
                    let at = (oy * b.out + ox) * o;
                    for c0 in (0..o).step_by(S::LANES) {
                        // SAFETY: channels `c0..c0 + LANES` of the kernel's nine rows, the
                        // bias and the output pixel are inside their buffers (the contract).
                        unsafe {
                            let mut acc = S::zero();
                            for (t, &x) in xs.iter().enumerate() {
                                acc = S::fmadd(x, S::load(w.as_ptr().add(t * o + c0)), acc);
                            }
                            if let Some(bias) = bias {
                                acc = S::add(acc, S::load(bias.as_ptr().add(c0)));
                            }
                            S::store(out.as_mut_ptr().add(at + c0), acc);
                        }
                    }
                }
            }
        }
    }

    /// # Safety
    /// As [`forward`], with `y_bar` in place of the outputs and `sum` of `9 · o`.
    #[inline(always)]
    pub(super) unsafe fn kernel_grad<S: Lanes>(
        g: &Geometry,
        taps: &[usize; TAPS],
        images: &[f32],
        y_bar: &[f32],
        sum: &mut [f32],
    ) {
        let ([a, b], o) = (g.axes, g.o);
        for c0 in (0..o).step_by(S::LANES) {
            // SAFETY: the instruction set is available (the contract).
            let mut acc = [unsafe { S::zero() }; TAPS];
            for (t, acc) in acc.iter_mut().enumerate() {
                // SAFETY: `sum` holds nine rows of `o` channels (the contract).
                *acc = unsafe { S::load(sum.as_ptr().add(t * o + c0)) };
            }
            let cotangents = y_bar.chunks_exact(a.out * b.out * o);
            for (image, y_bar) in images.chunks_exact(a.n * b.n).zip(cotangents) {
                for oy in 0..a.out {
                    for ox in 0..b.out {
                        // SAFETY: the window is inside the image and the output pixel's
                        // channels inside `y_bar` (the contract).
                        unsafe {
                            let xs = window::<S>(image, window_start(g, oy, ox), taps);
                            let at = (oy * b.out + ox) * o + c0;
                            let gv = S::load(y_bar.as_ptr().add(at));
                            for (acc, &x) in acc.iter_mut().zip(&xs) {
                                *acc = S::fmadd(x, gv, *acc);
                            }
                        }
                    }
                }
            }
            for (t, &acc) in acc.iter().enumerate() {
                // SAFETY: as above.
                unsafe { S::store(sum.as_mut_ptr().add(t * o + c0), acc) };
            }
        }
    }

    instances! {
        /// [`forward`].
        forward => forward(g: &Geometry, taps: &[usize; TAPS], images: &[f32], w: &[f32], bias: Option<&[f32]>, y: &mut [f32]);
        /// [`kernel_grad`].
        kernel_grad => kernel_grad(g: &Geometry, taps: &[usize; TAPS], images: &[f32], y_bar: &[f32], sum: &mut [f32]);
    }
}

#[cfg(test)]
mod tests {
    use super::{tap_offsets, Geometry, Isa, TAPS};
    use crate::ops::window::{Axis1, Padding};
    use crate::shape::Dim;

    type Outcome<T> = Result<T, Box<dyn std::error::Error>>;

    fn geometry(n: usize, s: usize, d: usize, o: usize) -> Outcome<Geometry> {
        let axis = Axis1::new(n, 3, s, d, Padding::Valid)?;
        Ok(Geometry {
            batch: Dim::Fixed(2),
            c: 1,
            o,
            axes: [axis; 2],
        })
    }

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n as u32)
            .map(|i| ((i.wrapping_mul(2_654_435_761) ^ seed) % 2001) as f32 / 1000.0 - 1.0)
            .collect()
    }

    /// The AVX2 and AVX-512 instances give the same bits, for the convolution with a bias
    /// and for the kernel gradient, on every geometry class the path takes.
    #[test]
    fn both_instances_give_the_same_bits() -> Outcome<()> {
        if !(crate::cpu::has_avx512f() && crate::cpu::has_avx2_fma()) {
            return Ok(());
        }
        for (n, s, d) in [(9, 1, 1), (10, 2, 1), (11, 1, 2)] {
            let g = geometry(n, s, d, 32)?;
            let out = g.axes[0].out * g.axes[1].out * g.o;
            let (x, w, b, y_bar) = (
                values(2 * n * n, 1),
                values(TAPS * 32, 2),
                values(32, 3),
                values(2 * out, 4),
            );
            let taps = tap_offsets(&g);
            let run = |isa: Isa| {
                let (mut y, mut sum) = (vec![0.0; 2 * out], values(TAPS * 32, 5));
                // SAFETY: the CPU has both instruction sets (checked above); the windows of
                // a valid geometry are inside the images, and the buffers hold two images,
                // their outputs, the kernel and the bias.
                unsafe {
                    isa.forward(&g, &taps, &x, &w, Some(&b), &mut y);
                    isa.kernel_grad(&g, &taps, &x, &y_bar, &mut sum);
                }
                (y, sum)
            };
            assert_eq!(run(Isa::Avx2), run(Isa::Avx512), "{n} {s} {d}");
        }
        Ok(())
    }
}
