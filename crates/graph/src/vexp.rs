//! `e^x` over whole `f32` slices, in a form the compiler turns into vector code.
//!
//! The `exp` of the standard library is one call per element (glibc's `expf`), which does not
//! vectorize. The softmax of a training step takes one per logit, twice (the loss and its
//! gradient), which made it the slowest kernel after the matrix products (measurements on the
//! book's performance page, `docs/src/performance.md`). [`exp_f32`] computes the same
//! function with branch-free arithmetic on each element, so a loop over a slice compiles to
//! AVX2 code (8 lanes) when called from a function built for AVX2, and to SSE2 code otherwise.
//!
//! The method (Cephes' `expf`): write `x = n ln 2 + r` with `n` the nearest integer to
//! `x / ln 2`, so `|r| <= ln 2 / 2`; `e^r` is a degree-7 polynomial there; `e^x = 2^n e^r`, with
//! `2^n` built from its exponent bits. `ln 2` is split in two (Cody-Waite): the first part has
//! so few bits that `n * C1` is exact, which keeps `r` accurate for large `|x|`.
//!
//! Accuracy: within 2 units in the last place of the correctly rounded result for every `x`
//! whose `e^x` is a normal float (the graph crate's tests check 200,000 points against `f64`),
//! exactly `inf` above `ln(f32::MAX)`, 0 or a subnormal below `ln(f32::MIN_POSITIVE)`, and NaN
//! for NaN. Only separate multiplies and adds are used (no fused multiply-add), so the AVX2 and
//! SSE2 builds give the same bits. `f64` keeps the standard `exp`: it is the gradient checker's
//! type, where accuracy is the point and speed is not.

/// `ln 2` in two parts: `C1` has 9 significant bits, so `n * C1` is exact for `|n| <= 2^15`.
const C1: f32 = 355.0 / 512.0;
const C2: f32 = -2.121_944_4e-4;
const LOG2E: f32 = std::f32::consts::LOG2_E;

/// Arguments are clamped into this range first: above it `e^x` is `inf` (the scaling below
/// overflows on its own), below it `e^x` rounds to 0.
const LO: f32 = -104.0;
const HI: f32 = 89.0;

/// `e^x` for one `f32`, written so that a loop of it vectorizes (no branches, no calls).
#[inline(always)]
pub(crate) fn exp_f32(x: f32) -> f32 {
    // `clamp` keeps NaN as NaN (it compares, it does not take a max).
    let xc = x.clamp(LO, HI);
    let n = (xc * LOG2E + 0.5).floor();
    let r = (xc - n * C1) - n * C2;
    let r2 = r * r;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let er = p * r2 + r + 1.0;
    // 2^n in two factors, each a normal float for n in [-150, 129]: the product then rounds
    // into the subnormals or overflows to infinity exactly as e^x does. Each factor is built
    // without a float-to-int conversion (which does not vectorize): adding 2^23 + 127 puts
    // the biased exponent 127 + k in the low mantissa bits, and shifting them up by 23 makes
    // them the exponent field. (A NaN `x` makes garbage here; `er` carries the NaN.)
    let half = (n * 0.5).floor();
    er * pow2(half) * pow2(n - half)
}

/// `2^k` for an integral `k` in `[-126, 127]`, by placing `127 + k` in the exponent bits.
#[inline(always)]
fn pow2(k: f32) -> f32 {
    const SHIFTER: f32 = 8_388_735.0; // 2^23 + 127
    f32::from_bits((k + SHIFTER).to_bits() << 23)
}

/// `e^x` for one element: [`exp_f32`] for `f32`, the standard `exp` otherwise. The same
/// floats as [`exp_in_place`] gives (`exp_f32` uses no fused multiply-add, so no build of it
/// differs), so the op has one definition however it is evaluated.
#[inline]
pub(crate) fn exp<F: crate::Element>(x: F) -> F {
    let mut one = [x];
    match F::as_f32_slice_mut(&mut one) {
        Some([v]) => *v = exp_f32(*v),
        _ => one[0] = x.exp(),
    }
    one[0]
}

/// `values[i] = e^values[i]` for `f32` ([`exp_f32`], AVX2 when the CPU has it), the standard
/// `exp` for other types.
pub(crate) fn exp_in_place<F: crate::Element>(values: &mut [F]) {
    match F::as_f32_slice_mut(values) {
        Some(v) => exp_slice_f32(v),
        None => values.iter_mut().for_each(|v| *v = v.exp()),
    }
}

fn exp_slice_f32(values: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::has_avx2() {
        // SAFETY: the CPU supports AVX2, the feature `exp_slice_avx2` is compiled for; the
        // function itself is safe code.
        #[allow(unsafe_code)]
        unsafe {
            exp_slice_avx2(values);
        }
        return;
    }
    values.iter_mut().for_each(|v| *v = exp_f32(*v));
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn exp_slice_avx2(values: &mut [f32]) {
    values.iter_mut().for_each(|v| *v = exp_f32(*v));
}
