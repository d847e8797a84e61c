//! Max pooling over 2x2 windows that tile the image (Keras' `MaxPooling2D((2, 2))`) and its
//! scatter, for `f32` with AVX-512F (16 channels a vector, a mask for the last) or AVX2 (8
//! channels a vector, the last `c % 8` one at a time).
//!
//! A window's four pixels are four vectors of channels; the running maximum and the tap that
//! holds it (0 to 3, row-major) are two registers updated by a compare and two blends per tap,
//! by the tie rule of [`super::kernel`]: a value replaces the maximum when it is larger, or a
//! NaN where the maximum is not; an equal value never does. The scatter writes each pixel of
//! the window once: `ȳ` where its tap won, 0 elsewhere. The values are those of the portable
//! kernels, bit for bit (only compares and copies).

#![allow(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]

use super::kernel::wins;
use std::arch::x86_64::{
    __m256, __m256i, __m512, __m512i, __mmask16, _mm256_andnot_ps, _mm256_blendv_ps,
    _mm256_castps_si256, _mm256_castsi256_ps, _mm256_cmp_ps, _mm256_cmpeq_epi32, _mm256_loadu_ps,
    _mm256_or_ps, _mm256_set1_epi32, _mm256_setzero_ps, _mm256_storeu_ps, _mm512_cmp_ps_mask,
    _mm512_cmpeq_epi32_mask, _mm512_mask_blend_epi32, _mm512_mask_blend_ps, _mm512_mask_storeu_ps,
    _mm512_maskz_loadu_ps, _mm512_maskz_mov_ps, _mm512_set1_epi32, _CMP_GT_OQ, _CMP_UNORD_Q,
};

/// The sizes of one run: images, the input's height and width, the pooled height and width
/// (`2·oh <= h`, `2·ow <= w`) and channels.
#[derive(Clone, Copy)]
pub(super) struct Quads {
    pub batch: usize,
    pub hw: [usize; 2],
    pub out: [usize; 2],
    pub c: usize,
}

/// What a run computes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Pass {
    /// `y = max_pool2d(x)`.
    Max,
    /// `x̄ = S_x(ȳ)`.
    Scatter,
}

impl Quads {
    /// Runs `pass` on `x` (and `ȳ` = `v` for the scatter) into `out` with the widest
    /// instance the CPU has; `false` (nothing written) without AVX2 or when the slices do not
    /// hold the sizes.
    pub fn run(&self, pass: Pass, x: &[f32], v: &[f32], out: &mut [f32]) -> bool {
        let [h, w] = self.hw;
        let [oh, ow] = self.out;
        let image = h.checked_mul(w).and_then(|p| p.checked_mul(self.c));
        let pooled = oh.checked_mul(ow).and_then(|p| p.checked_mul(self.c));
        let (Some(image), Some(pooled)) = (image, pooled) else {
            return false;
        };
        let (x_len, y_len) = match pass {
            Pass::Max => (x.len(), out.len()),
            Pass::Scatter => (out.len(), v.len()),
        };
        let fits = 2 * oh <= h
            && 2 * ow <= w
            && self.batch.checked_mul(image) == Some(x_len)
            && self.batch.checked_mul(pooled) == Some(y_len)
            && (pass == Pass::Max || x.len() == x_len);
        if !fits {
            return false;
        }
        if pass == Pass::Scatter {
            self.zero_uncovered(out);
        }
        if crate::cpu::has_avx512f() {
            // SAFETY: the CPU has AVX-512F; the slices hold the sizes (checked above).
            unsafe { self.windows_avx512(pass, x, v, out) };
            true
        } else if crate::cpu::has_avx2() {
            // SAFETY: the CPU has AVX2; as above.
            unsafe { self.windows_avx2(pass, x, v, out) };
            true
        } else {
            false
        }
    }

    /// Zeros the pixels of each image in no window (the last row or column of an odd size),
    /// which the scatter's windows do not write.
    fn zero_uncovered(&self, out: &mut [f32]) {
        let ([h, w], [oh, ow], c) = (self.hw, self.out, self.c);
        if 2 * oh == h && 2 * ow == w {
            return;
        }
        for (r, row) in out.chunks_exact_mut((w * c).max(1)).enumerate() {
            match r % h.max(1) < 2 * oh {
                true => row[2 * ow * c..].fill(0.0),
                false => row.fill(0.0),
            }
        }
    }

    /// Calls `f(pixels, pooled)` for every window: the offsets of its four pixels (channel 0,
    /// row-major) in `x` and of its pooled pixel in `y`.
    #[inline(always)]
    fn each(&self, mut f: impl FnMut([usize; 4], usize)) {
        let ([h, w], [oh, ow], c) = (self.hw, self.out, self.c);
        for b in 0..self.batch {
            for (i, j) in (0..oh).flat_map(|i| (0..ow).map(move |j| (i, j))) {
                let first = (b * h + 2 * i) * w + 2 * j;
                let pixels = [first, first + 1, first + w, first + w + 1].map(|p| p * c);
                f(pixels, ((b * oh + i) * ow + j) * c);
            }
        }
    }

    /// Every window, 16 channels at a time.
    ///
    /// # Safety
    /// AVX-512F is available; [`Quads::run`] has checked the slices against the sizes.
    #[target_feature(enable = "avx512f")]
    unsafe fn windows_avx512(&self, pass: Pass, x: &[f32], v: &[f32], out: &mut [f32]) {
        let c = self.c;
        let (xp, vp, op) = (x.as_ptr(), v.as_ptr(), out.as_mut_ptr());
        self.each(|pixels, pooled| {
            for k0 in (0..c).step_by(16) {
                let live = (c - k0).min(16);
                let mask = ((1_u32 << live) - 1) as __mmask16;
                // SAFETY: pixel `p`'s channels `k0..k0 + live` are inside the image slice and
                // the pooled pixel's inside the pooled one (the checked sizes); the mask keeps
                // every load and store to those lanes.
                unsafe {
                    let src = pixels.map(|p| xp.add(p + k0));
                    let (best, tap) = argmax_512(src, mask);
                    match pass {
                        Pass::Max => _mm512_mask_storeu_ps(op.add(pooled + k0), mask, best),
                        Pass::Scatter => {
                            let share = _mm512_maskz_loadu_ps(mask, vp.add(pooled + k0));
                            for (t, &p) in (0..).zip(&pixels) {
                                let won = _mm512_cmpeq_epi32_mask(tap, _mm512_set1_epi32(t));
                                let d = _mm512_maskz_mov_ps(won, share);
                                _mm512_mask_storeu_ps(op.add(p + k0), mask, d);
                            }
                        }
                    }
                }
            }
        });
    }

    /// Every window, 8 channels at a time and the last `c % 8` one by one.
    ///
    /// # Safety
    /// AVX2 is available; [`Quads::run`] has checked the slices against the sizes.
    #[target_feature(enable = "avx2")]
    unsafe fn windows_avx2(&self, pass: Pass, x: &[f32], v: &[f32], out: &mut [f32]) {
        let c = self.c;
        let whole = c - c % 8;
        let (xp, vp, op) = (x.as_ptr(), v.as_ptr(), out.as_mut_ptr());
        self.each(|pixels, pooled| {
            for k0 in (0..whole).step_by(8) {
                // SAFETY: as in `windows_avx512`, for 8 whole lanes.
                unsafe {
                    let (best, tap) = argmax_256(pixels.map(|p| xp.add(p + k0)));
                    match pass {
                        Pass::Max => _mm256_storeu_ps(op.add(pooled + k0), best),
                        Pass::Scatter => {
                            let share = _mm256_loadu_ps(vp.add(pooled + k0));
                            for (t, &p) in (0..).zip(&pixels) {
                                let won = _mm256_cmpeq_epi32(tap, _mm256_set1_epi32(t));
                                let d = _mm256_blendv_ps(
                                    _mm256_setzero_ps(),
                                    share,
                                    _mm256_castsi256_ps(won),
                                );
                                _mm256_storeu_ps(op.add(p + k0), d);
                            }
                        }
                    }
                }
            }
            for k in whole..c {
                let (best, tap) = argmax_one(x, pixels.map(|p| p + k));
                match pass {
                    Pass::Max => out[pooled + k] = best,
                    Pass::Scatter => {
                        for (t, &p) in (0..).zip(&pixels) {
                            out[p + k] = if tap == t { v[pooled + k] } else { 0.0 };
                        }
                    }
                }
            }
        });
    }
}

/// The maximum of the four vectors at `src` and the tap holding it, lanes `mask` lets through
/// (the others are zero and never win: zero against zero).
///
/// # Safety
/// AVX-512F is available; the masked lanes of each `src` are readable.
#[inline(always)]
unsafe fn argmax_512(src: [*const f32; 4], mask: __mmask16) -> (__m512, __m512i) {
    // SAFETY: as this function's contract.
    unsafe {
        let mut best = _mm512_maskz_loadu_ps(mask, src[0]);
        let mut tap = _mm512_set1_epi32(0);
        for (t, &s) in (1..).zip(&src[1..]) {
            let v: __m512 = _mm512_maskz_loadu_ps(mask, s);
            let larger = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(v, best);
            let v_nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v);
            let best_nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(best, best);
            let win = larger | (v_nan & !best_nan);
            best = _mm512_mask_blend_ps(win, best, v);
            tap = _mm512_mask_blend_epi32(win, tap, _mm512_set1_epi32(t));
        }
        (best, tap)
    }
}

/// [`argmax_512`] for 8 whole lanes with AVX2.
///
/// # Safety
/// AVX2 is available; 8 floats at each `src` are readable.
#[inline(always)]
unsafe fn argmax_256(src: [*const f32; 4]) -> (__m256, __m256i) {
    // SAFETY: as this function's contract.
    unsafe {
        let mut best = _mm256_loadu_ps(src[0]);
        let mut tap = _mm256_castsi256_ps(_mm256_set1_epi32(0));
        for (t, &s) in (1..).zip(&src[1..]) {
            let v: __m256 = _mm256_loadu_ps(s);
            let larger = _mm256_cmp_ps::<_CMP_GT_OQ>(v, best);
            let v_nan = _mm256_cmp_ps::<_CMP_UNORD_Q>(v, v);
            let best_nan = _mm256_cmp_ps::<_CMP_UNORD_Q>(best, best);
            let win = _mm256_or_ps(larger, _mm256_andnot_ps(best_nan, v_nan));
            best = _mm256_blendv_ps(best, v, win);
            tap = _mm256_blendv_ps(tap, _mm256_castsi256_ps(_mm256_set1_epi32(t)), win);
        }
        (best, _mm256_castps_si256(tap))
    }
}

/// The maximum of `x` at four offsets and the tap holding it, by the tie rule ([`wins`]).
#[inline(always)]
fn argmax_one(x: &[f32], at: [usize; 4]) -> (f32, i32) {
    let mut best = (x[at[0]], 0);
    for (t, &p) in (1..).zip(&at[1..]) {
        if wins(x[p], best.0) {
            best = (x[p], t);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::{Pass, Quads};

    /// One instance of the window loop, called directly.
    type Instance = fn(&Quads, Pass, &[f32], &[f32], &mut [f32]);

    /// A direct loop over each window with the tie rule: the pooled values and the scatter.
    fn direct(q: &Quads, x: &[f32], v: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let ([h, w], [oh, ow], c) = (q.hw, q.out, q.c);
        let (mut y, mut x_bar) = (vec![0.0; q.batch * oh * ow * c], vec![0.0; x.len()]);
        for b in 0..q.batch {
            for (i, j, k) in
                (0..oh).flat_map(|i| (0..ow).flat_map(move |j| (0..c).map(move |k| (i, j, k))))
            {
                let at = |r: usize, s: usize| ((b * h + 2 * i + r) * w + 2 * j + s) * c + k;
                let mut best = at(0, 0);
                for p in [at(0, 1), at(1, 0), at(1, 1)] {
                    if x[p] > x[best] || (x[p].is_nan() && !x[best].is_nan()) {
                        best = p;
                    }
                }
                let o = ((b * oh + i) * ow + j) * c + k;
                y[o] = x[best];
                x_bar[best] = v[o];
            }
        }
        (y, x_bar)
    }

    /// Both instances the CPU runs give the direct loop's bits, on values with many ties
    /// (`-0.0` against `0.0` too), NaNs and infinities, for channel counts that fill no vector,
    /// one, and parts of several, on even and odd images.
    #[test]
    fn each_instance_gives_the_direct_loops_bits() {
        let specials = [
            0.0,
            -0.0,
            1.0,
            f32::NAN,
            f32::NEG_INFINITY,
            f32::INFINITY,
            1.0,
            -2.0,
        ];
        for (c, hw) in [
            (1, [4, 4]),
            (3, [5, 4]),
            (8, [4, 5]),
            (16, [6, 6]),
            (20, [3, 3]),
            (37, [5, 7]),
        ] {
            let q = Quads {
                batch: 2,
                hw,
                out: [hw[0] / 2, hw[1] / 2],
                c,
            };
            let x: Vec<f32> = (0..2 * hw[0] * hw[1] * c)
                .map(|i| specials[(i * 7 + i / 5) % 8])
                .collect();
            let v: Vec<f32> = (0..2 * q.out[0] * q.out[1] * c)
                .map(|i| i as f32 + 0.5)
                .collect();
            let (y_want, bar_want) = direct(&q, &x, &v);
            let bits = |a: &[f32]| a.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            let mut instances: Vec<(&str, Instance)> = Vec::new();
            if crate::cpu::has_avx512f() {
                // SAFETY: the CPU has AVX-512F; `run` checks nothing more than the sizes,
                // which these buffers hold.
                #[allow(unsafe_code)]
                instances.push(("avx512", |q, p, x, v, o| unsafe {
                    q.windows_avx512(p, x, v, o)
                }));
            }
            if crate::cpu::has_avx2() {
                // SAFETY: the CPU has AVX2; as above.
                #[allow(unsafe_code)]
                instances.push(("avx2", |q, p, x, v, o| unsafe {
                    q.windows_avx2(p, x, v, o)
                }));
            }
            for (name, run) in instances {
                let mut y = vec![7.0; y_want.len()];
                run(&q, Pass::Max, &x, &[], &mut y);
                assert_eq!(bits(&y), bits(&y_want), "{name} max, c = {c}, {hw:?}");
                // The odd image's uncovered pixels are zeroed by `run` before the windows.
                let mut x_bar = vec![0.0; x.len()];
                run(&q, Pass::Scatter, &x, &v, &mut x_bar);
                assert_eq!(
                    bits(&x_bar),
                    bits(&bar_want),
                    "{name} scatter, c = {c}, {hw:?}"
                );
            }
            let mut x_bar = vec![7.0; x.len()];
            assert!(q.run(Pass::Scatter, &x, &v, &mut x_bar) == crate::cpu::has_avx2());
            if crate::cpu::has_avx2() {
                assert_eq!(bits(&x_bar), bits(&bar_want), "run, c = {c}, {hw:?}");
            }
        }
    }
}
