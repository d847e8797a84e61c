//! The optimizers' inner loops: one fused pass over a parameter tensor per step.
//!
//! Each update reads the gradient and the state (momenta, second moments) and writes the state
//! and the parameter in a single loop, with every per-step scalar (learning rate, Adam's
//! bias-corrected step) computed once in [`Optimizer::begin_step`](super::Optimizer) and passed
//! in an [`Update`] together with the state it changes.
//!
//! On x86-64 the loops are compiled a second time with AVX2 and FMA enabled and chosen at run
//! time ([`dendrite_graph::cpu::has_avx2_fma`]). They are written with separate multiplies and
//! adds (no `mul_add`), so both builds compute exactly the same floats and a model trains
//! bit-identically on any x86-64 machine; what AVX2 buys is width (eight `f32` square roots and
//! divisions per instruction instead of four). Measurements are on the book's performance page
//! (`docs/src/performance.md`, "What made it fast").
#![deny(unsafe_op_in_unsafe_fn)]

use crate::float::Float;
use dendrite_graph::cpu::has_avx2_fma;

/// One optimizer's update rule with the scalars of the current step, already in `F`, and the
/// state of the parameter it updates.
#[derive(Debug)]
pub(crate) enum Update<'s, F> {
    /// `w -= lr g`.
    Sgd { lr: F },
    /// `v = μ v - lr g`, `w += v`.
    Momentum { lr: F, mu: F, velocity: &'s mut [F] },
    /// `v = μ v - lr g`, `w += μ v - lr g`.
    Nesterov { lr: F, mu: F, velocity: &'s mut [F] },
    /// `m += b1 (g - m)`, `v += b2 (g² - v)`, `w -= α m / (√v + ε)`, after `w -= decay w` when
    /// `decay` is `Some` (AdamW). `b1 = 1 - β₁`, `b2 = 1 - β₂`.
    Adam {
        b1: F,
        b2: F,
        alpha: F,
        eps: F,
        decay: Option<F>,
        m: &'s mut [F],
        v: &'s mut [F],
    },
    /// `v = ρ v + (1-ρ) g²`, `w -= lr g / √(v + ε)`; `v` is the mean square.
    RmsProp {
        rho: F,
        one_minus_rho: F,
        lr: F,
        eps: F,
        mean_square: &'s mut [F],
    },
    /// As `RmsProp`, with `m = μ m + lr g / √(v + ε)` and `w -= m`.
    RmsPropMomentum {
        rho: F,
        one_minus_rho: F,
        lr: F,
        eps: F,
        mu: F,
        mean_square: &'s mut [F],
        momentum: &'s mut [F],
    },
}

/// Applies `update` to the parameter `w` with gradient `g`. The caller has checked the
/// lengths; the loops run over the shortest of the slices they use.
pub(crate) fn apply<F: Float>(update: Update<'_, F>, w: &mut [F], g: &[F]) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the CPU supports AVX2 and FMA, the features `apply_avx2` is compiled for;
        // the function itself is safe code.
        #[allow(unsafe_code)]
        unsafe {
            apply_avx2(update, w, g);
        }
        return;
    }
    body(update, w, g);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn apply_avx2<F: Float>(update: Update<'_, F>, w: &mut [F], g: &[F]) {
    body(update, w, g);
}

/// The loops. Each is a `zip` over equally long slices, which the compiler turns into vector
/// code without bounds checks.
#[inline(always)]
fn body<F: Float>(update: Update<'_, F>, w: &mut [F], g: &[F]) {
    match update {
        Update::Sgd { lr } => {
            for (w, &g) in w.iter_mut().zip(g) {
                *w = *w - lr * g;
            }
        }
        Update::Momentum { lr, mu, velocity } => {
            for ((w, v), &g) in w.iter_mut().zip(velocity.iter_mut()).zip(g) {
                *v = mu * *v - lr * g;
                *w = *w + *v;
            }
        }
        Update::Nesterov { lr, mu, velocity } => {
            for ((w, v), &g) in w.iter_mut().zip(velocity.iter_mut()).zip(g) {
                *v = mu * *v - lr * g;
                *w = *w + mu * *v - lr * g;
            }
        }
        Update::Adam {
            b1,
            b2,
            alpha,
            eps,
            decay,
            m,
            v,
        } => {
            let cells = w.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(g);
            match decay {
                None => {
                    for (((w, m), v), &g) in cells {
                        *m = *m + (g - *m) * b1;
                        *v = *v + (g * g - *v) * b2;
                        *w = *w - alpha * *m / (v.sqrt() + eps);
                    }
                }
                Some(decay) => {
                    for (((w, m), v), &g) in cells {
                        let decayed = *w - decay * *w;
                        *m = *m + (g - *m) * b1;
                        *v = *v + (g * g - *v) * b2;
                        *w = decayed - alpha * *m / (v.sqrt() + eps);
                    }
                }
            }
        }
        Update::RmsProp {
            rho,
            one_minus_rho,
            lr,
            eps,
            mean_square,
        } => {
            for ((w, v), &g) in w.iter_mut().zip(mean_square.iter_mut()).zip(g) {
                *v = rho * *v + one_minus_rho * g * g;
                *w = *w - lr * g / (*v + eps).sqrt();
            }
        }
        Update::RmsPropMomentum {
            rho,
            one_minus_rho,
            lr,
            eps,
            mu,
            mean_square,
            momentum,
        } => {
            let cells = w.iter_mut().zip(mean_square.iter_mut());
            for (((w, v), m), &g) in cells.zip(momentum.iter_mut()).zip(g) {
                *v = rho * *v + one_minus_rho * g * g;
                *m = mu * *m + lr * g / (*v + eps).sqrt();
                *w = *w - *m;
            }
        }
    }
}

/// Whether every value of `w` is finite: the check `fit` runs on each parameter right after
/// its update, while the values are still in cache. `0 · x` is 0 for a finite `x` and NaN for
/// NaN or ±∞, so eight independent running sums of it (which the compiler vectorizes, AVX2
/// where there is one) stay 0 exactly when every value is finite. No allocation, one read of
/// the parameter.
pub(crate) fn all_finite<F: Float>(w: &[F]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the CPU supports AVX2 and FMA, the features `all_finite_avx2` is compiled
        // for; the function itself is safe code.
        #[allow(unsafe_code)]
        unsafe {
            return all_finite_avx2(w);
        }
    }
    finite_body(w)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn all_finite_avx2<F: Float>(w: &[F]) -> bool {
    finite_body(w)
}

#[inline(always)]
fn finite_body<F: Float>(w: &[F]) -> bool {
    let zero = F::zero();
    let mut lanes = [zero; 8];
    let chunks = w.chunks_exact(8);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (lane, &x) in lanes.iter_mut().zip(chunk) {
            *lane = *lane + x * zero;
        }
    }
    let mut total = F::zero();
    for lane in lanes {
        total = total + lane;
    }
    for &x in rest {
        total = total + x * zero;
    }
    total == F::zero()
}
