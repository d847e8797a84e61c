//! The values of every unary primitive against a reference computed with 320-bit floats
//! (astro-float), in `f64` and `f32`, across each function's whole domain: magnitudes from the
//! smallest subnormal to overflow, both signs, the branch points of the kernels (0 for
//! sigmoid and softplus, the ends of their exponential tails) and a random sample.
//!
//! Each function's worst error in ulps of the correctly rounded reference is printed
//! (`cargo test --release --test accuracy -- --nocapture`) and held under a stated bound.
//! The ulp distance counts the representable numbers between two values, so it stays
//! meaningful for subnormal results.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use astro_float::{BigFloat, Consts, RoundingMode};
use dendrite_graph::{Op, UnaryOp};
use ndarray::{Array1, ArrayD};

/// Bits of the reference's mantissa: enough that the cancellations inside the erf series
/// (terms up to e^36 ≈ 2^52 times the result) leave well over 53 correct bits.
const PRECISION: usize = 320;
const RM: RoundingMode = RoundingMode::ToEven;

/// The worst error in ulps each primitive may have, in f64 and in f32.
fn bound(op: UnaryOp) -> (u64, u64) {
    use UnaryOp::*;
    match op {
        // Exact operations: the correctly rounded result, always.
        Neg | Abs | Sqrt => (0, 0),
        // The platform's libm (glibc's are within one ulp) and musl's erf through libm; in f32
        // the f64 result rounded once (exp uses the vectorized f32 kernel, within 2 ulp).
        Exp => (1, 2),
        Log | Tanh => (1, 1),
        Erf | Sin | Cos | Log1p | Expm1 => (1, 1),
        // A few correctly rounded operations around one libm call.
        Sigmoid | Softplus => (3, 1),
    }
}

/// The points each function is evaluated at: its domain, tails and branch points.
fn points(op: UnaryOp) -> Vec<f64> {
    use UnaryOp::*;
    let mut xs = vec![0.0, -0.0];
    // Magnitudes from 2^-1074 to 2^1023 on a log grid of ~2.6 points per binade...
    let mut m = f64::from_bits(1);
    while m.is_finite() {
        xs.extend([m, -m]);
        m = (m * 1.3).max(f64::from_bits(m.to_bits() + 1));
    }
    // ...a uniform sample of the interesting middle...
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    for _ in 0..2000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let u = (state >> 11) as f64 / (1u64 << 53) as f64;
        xs.push(80.0 * u - 40.0);
    }
    // ...and the points where kernels switch branches or tails end.
    xs.extend([
        1.0, -1.0, 0.5, -0.5, 36.7, -36.7, 709.7, -745.1, 88.7, -103.9,
    ]);
    let domain = |x: f64| match op {
        Log | Sqrt => x >= 0.0,
        Log1p => x >= -1.0,
        // Saturated long before 10⁴ (e^±10⁴ is 0 or inf in f64), which the reference would
        // only confirm slowly.
        Exp | Expm1 | Sigmoid | Softplus | Tanh => x.abs() <= 1e4,
        Neg | Abs | Erf | Sin | Cos => true,
    };
    xs.retain(|&x| domain(x));
    xs
}

/// `x` as a `p`-bit float. astro-float's `from_f64` halves values near the bottom of the
/// normal range (seen with 1.8e-308), so tiny magnitudes are scaled up by 2^200 first and
/// brought back by an exact multiplication.
fn big(x: f64, p: usize) -> BigFloat {
    if x != 0.0 && x.abs() < 1e-290 {
        let scale = 2f64.powi(200);
        let back = BigFloat::from_f64(1.0 / scale, p);
        BigFloat::from_f64(x * scale, p).mul(&back, p, RM)
    } else {
        BigFloat::from_f64(x, p)
    }
}

/// The correctly rounded value of `op` at `x`, from 320-bit arithmetic (wider where a
/// cancellation or an argument reduction needs more).
fn reference(op: UnaryOp, x: f64, cc: &mut Consts) -> f64 {
    use UnaryOp::*;
    // Bits lost when a tiny term meets 1 (log1p, expm1, softplus far below 0).
    let tiny = (-x.abs().log2()).clamp(0.0, 1100.0) as usize;
    let p = PRECISION + tiny;
    let b = big(x, p);
    let one = BigFloat::from_f64(1.0, p);
    let value = match op {
        Neg => b.neg(),
        Abs => b.abs(),
        Sqrt => b.sqrt(p, RM),
        Exp => b.exp(p, RM, cc),
        Log => b.ln(p, RM, cc),
        Tanh => b.tanh(p, RM, cc),
        // A large argument is reduced modulo 2π with π to about log2|x| more bits.
        Sin | Cos => {
            let wide = p + 64 + x.abs().log2().max(0.0) as usize;
            let b = big(x, wide);
            let v = if op == Sin {
                b.sin(wide, RM, cc)
            } else {
                b.cos(wide, RM, cc)
            };
            return to_f64(&v, x);
        }
        Log1p => b.add(&one, p, RM).ln(p, RM, cc),
        Expm1 => b.exp(p, RM, cc).sub(&one, p, RM),
        // 1 / (1 + e^-x)
        Sigmoid => one.div(&b.neg().exp(p, RM, cc).add(&one, p, RM), p, RM),
        // ln(1 + e^x), written x + ln(1 + e^-x) above 0 so that e^x never overflows.
        Softplus if x > 0.0 => {
            let tail = b.neg().exp(p, RM, cc).add(&one, p, RM).ln(p, RM, cc);
            b.add(&tail, p, RM)
        }
        Softplus => {
            // e^x loses 1.44|x| bits against 1.
            let p = PRECISION + (1.45 * x.abs()).min(1600.0) as usize;
            let one = BigFloat::from_f64(1.0, p);
            big(x, p).exp(p, RM, cc).add(&one, p, RM).ln(p, RM, cc)
        }
        Erf => return erf_reference(x, cc),
    };
    to_f64(&value, x)
}

/// The 320-bit value rounded to the nearest f64 (through its decimal expansion, which has far
/// more digits than the rounding needs).
fn to_f64(v: &BigFloat, x: f64) -> f64 {
    if v.is_nan() {
        return f64::NAN;
    }
    if v.is_inf_pos() {
        return f64::INFINITY;
    }
    if v.is_inf_neg() {
        return f64::NEG_INFINITY;
    }
    let text = format!("{v}");
    text.parse::<f64>()
        .unwrap_or_else(|e| panic!("reference at {x:e} printed as {text}: {e}"))
}

/// `erf x = (2/√π) Σ (-1)^n x^(2n+1) / (n! (2n+1))`, summed at 320 bits for |x| ≤ 6. Beyond,
/// `erfc(6) ≈ 2e-17` is below half an ulp of 1, so the rounded value is ±1 exactly.
fn erf_reference(x: f64, cc: &mut Consts) -> f64 {
    if x.abs() > 6.0 {
        return x.signum();
    }
    let p = PRECISION;
    let b = big(x, p);
    let x2 = b.mul(&b, p, RM);
    let mut term = b.clone(); // (-1)^n x^(2n+1) / n!
    let mut sum = BigFloat::from_f64(0.0, p);
    for n in 0..400u32 {
        let denominator = BigFloat::from_f64(f64::from(2 * n + 1), p);
        sum = sum.add(&term.div(&denominator, p, RM), p, RM);
        let next = BigFloat::from_f64(-f64::from(n + 1), p);
        term = term.mul(&x2, p, RM).div(&next, p, RM);
        if term.is_zero() {
            break;
        }
    }
    let pi = cc.pi(p, RM);
    let scale = BigFloat::from_f64(2.0, p).div(&pi.sqrt(p, RM), p, RM);
    to_f64(&sum.mul(&scale, p, RM), x)
}

/// The number of representable values between `a` and `b` (0 when equal, both NaN, or both
/// infinite of one sign).
fn ulps(a: f64, b: f64, bits: impl Fn(f64) -> i64) -> u64 {
    if a.is_nan() && b.is_nan() || a == b {
        return 0;
    }
    if a.is_nan() || b.is_nan() {
        return u64::MAX;
    }
    bits(a).abs_diff(bits(b))
}

/// An f64 as a signed integer that is monotonic in the value (sign-magnitude flipped).
fn ordered64(v: f64) -> i64 {
    let b = v.to_bits() as i64;
    if b < 0 {
        i64::MIN - b
    } else {
        b
    }
}

/// The same for f32 values (carried in f64, exactly).
fn ordered32(v: f64) -> i64 {
    let b = i64::from((v as f32).to_bits() as i32);
    if b < 0 {
        i64::from(i32::MIN) - b
    } else {
        b
    }
}

/// Worst error of `op` over `xs` (values of `F`) for element type `F`, and where it happens.
fn worst<F: dendrite_graph::Element>(
    op: UnaryOp,
    xs: &[f64],
    refs: &[f64],
    bits: impl Fn(f64) -> i64 + Copy,
) -> (u64, f64) {
    let input: ArrayD<F> = Array1::from_iter(xs.iter().map(|&x| F::of(x))).into_dyn();
    let out = Op::Unary(op).evaluate("accuracy", &[input.view()]).unwrap();
    let mut result = (0, 0.0);
    for ((&x, &r), &y) in xs.iter().zip(refs).zip(out.iter()) {
        let e = ulps(y.as_f64(), F::of(r).as_f64(), bits);
        if e > result.0 {
            result = (e, x);
        }
    }
    result
}

#[test]
fn unary_primitives_are_accurate_to_a_few_ulps_across_their_domains() {
    let mut cc = Consts::new().unwrap();
    let mut failures = Vec::new();
    println!(
        "{:<10} {:>10} {:>12} {:>10} {:>12}",
        "op", "f64 ulps", "at", "f32 ulps", "at"
    );
    for &op in UnaryOp::ALL {
        let xs = points(op);
        let refs: Vec<f64> = xs.iter().map(|&x| reference(op, x, &mut cc)).collect();
        // The same points rounded to f32 (the reference rounded to f32 is within half an ulp
        // plus the f64 rounding, far below one f32 ulp).
        let mut xs32: Vec<f64> = xs.iter().map(|&x| f64::from(x as f32)).collect();
        xs32.dedup();
        let refs32: Vec<f64> = xs32.iter().map(|&x| reference(op, x, &mut cc)).collect();
        let (e64, at64) = worst::<f64>(op, &xs, &refs, ordered64);
        let (e32, at32) = worst::<f32>(op, &xs32, &refs32, ordered32);
        println!(
            "{:<10} {e64:>10} {at64:>12.4e} {e32:>10} {at32:>12.4e}",
            op.name()
        );
        let (b64, b32) = bound(op);
        if e64 > b64 || e32 > b32 {
            failures.push(format!(
                "{}: {e64} ulps at {at64:e} in f64 (bound {b64}), {e32} at {at32:e} in f32 (bound \
                 {b32})",
                op.name()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
