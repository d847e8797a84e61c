//! The vector instructions the `f32` SIMD kernels are written over (the tiled matrix
//! product, the Winograd transforms): one trait, [`Lanes`], implemented for AVX2 with FMA (8
//! lanes) and for AVX-512 (16 lanes), so a kernel is written once and compiled for each.
//!
//! Both instruction sets compute a lane's fused multiply-add the same way (one rounding of
//! `a·b + c`), and the kernel sums each element of `c` in one lane in increasing `p`, so the
//! two give the same bits: a model trains to the same weights on either kind of machine.
//!
//! The methods are `#[inline(always)]` and carry no `target_feature` of their own: they are
//! inlined into the kernel instance compiled for their instruction set (the kernel's entry
//! point picks it), which is what makes them legal to call.

#![allow(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]

use std::arch::x86_64::{
    __m256, __m256i, __m512, __mmask16, _mm256_add_ps, _mm256_andnot_ps, _mm256_blendv_ps,
    _mm256_broadcast_ss, _mm256_cmp_ps, _mm256_cmpgt_epi32, _mm256_fmadd_ps, _mm256_loadu_ps,
    _mm256_maskload_ps, _mm256_mul_ps, _mm256_or_ps, _mm256_set1_epi32, _mm256_set1_ps,
    _mm256_setr_epi32, _mm256_setzero_ps, _mm256_storeu_ps, _mm256_sub_ps, _mm512_add_ps,
    _mm512_cmp_ps_mask, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_mask_blend_ps,
    _mm512_mask_storeu_ps, _mm512_maskz_loadu_ps, _mm512_mul_ps, _mm512_set1_ps, _mm512_setzero_ps,
    _mm512_storeu_ps, _mm512_sub_ps, _CMP_EQ_OQ, _CMP_GT_OQ, _CMP_LE_OQ, _CMP_UNORD_Q,
};

/// A vector of `f32` lanes and the operations the kernels need.
///
/// # Safety
///
/// Every method requires the CPU to support the instruction set of the implementation, and
/// the pointer methods that their lanes (the live ones, for the masked forms) be readable or
/// writable.
pub(crate) trait Lanes {
    /// One vector of `LANES` floats.
    type V: Copy;
    /// Which lanes of a vector exist at a ragged column edge.
    type Mask: Copy;
    /// Which lanes a comparison holds in.
    type Cmp: Copy;
    /// Floats per vector.
    const LANES: usize;
    /// Rows per register tile of the main bands (the tile is `TALL x 2·LANES`).
    const TALL: usize;

    /// All lanes zero.
    unsafe fn zero() -> Self::V;
    /// The mask whose first `live` lanes (`1..=LANES`) are on.
    unsafe fn mask(live: usize) -> Self::Mask;
    /// `LANES` floats from `src`.
    unsafe fn load(src: *const f32) -> Self::V;
    /// The live lanes from `src`, zero elsewhere; the others are not read.
    unsafe fn load_live(src: *const f32, mask: Self::Mask) -> Self::V;
    /// `x` to `LANES` floats at `dst`.
    unsafe fn store(dst: *mut f32, x: Self::V);
    /// The first `live` lanes of `x` (those `mask` lets through) to `dst`; no others written.
    unsafe fn store_live(dst: *mut f32, x: Self::V, mask: Self::Mask, live: usize);
    /// `*src` in every lane.
    unsafe fn splat(src: *const f32) -> Self::V;
    /// `x·y + acc` in each lane, rounded once.
    unsafe fn fmadd(x: Self::V, y: Self::V, acc: Self::V) -> Self::V;
    /// `x + y` in each lane.
    unsafe fn add(x: Self::V, y: Self::V) -> Self::V;
    /// `x - y` in each lane.
    unsafe fn sub(x: Self::V, y: Self::V) -> Self::V;
    /// `x · y` in each lane.
    unsafe fn mul(x: Self::V, y: Self::V) -> Self::V;
    /// `x` in every lane.
    unsafe fn set(x: f32) -> Self::V;
    /// Max pooling's tie rule in each lane: `v` replaces the maximum `best` where it is
    /// larger, or a NaN where `best` is not; an equal value never does.
    unsafe fn wins(v: Self::V, best: Self::V) -> Self::Cmp;
    /// Where `x == y` (ordered: never for a NaN).
    unsafe fn equal(x: Self::V, y: Self::V) -> Self::Cmp;
    /// Where `x <= y` (ordered: never for a NaN).
    unsafe fn at_most(x: Self::V, y: Self::V) -> Self::Cmp;
    /// `if_true` where `c` holds, `if_false` elsewhere.
    unsafe fn select(c: Self::Cmp, if_true: Self::V, if_false: Self::V) -> Self::V;
}

/// Which instance of a kernel written over [`Lanes`] runs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Isa {
    Avx2,
    Avx512,
}

impl Isa {
    /// The widest instance this CPU runs (callers have checked AVX2 and FMA).
    pub fn best() -> Self {
        match crate::cpu::has_avx512f() {
            true => Isa::Avx512,
            false => Isa::Avx2,
        }
    }

    /// The widest instance this CPU runs whose vector divides `n` (a channel count), `None`
    /// when neither applies.
    pub fn dividing(n: usize) -> Option<Self> {
        if crate::cpu::has_avx512f() && n.is_multiple_of(Avx512::LANES) {
            Some(Isa::Avx512)
        } else if crate::cpu::has_avx2_fma() && n.is_multiple_of(Avx2::LANES) {
            Some(Isa::Avx2)
        } else {
            None
        }
    }

    /// Floats per vector.
    pub fn lanes(self) -> usize {
        match self {
            Isa::Avx2 => Avx2::LANES,
            Isa::Avx512 => Avx512::LANES,
        }
    }
}

/// Entry points on [`Isa`]: `name => generic(args)` makes `isa.name(args)`, which runs
/// `generic::<Avx2>` or `generic::<Avx512>` compiled for its instruction set.
macro_rules! instances {
    ($($(#[$doc:meta])* $name:ident => $generic:ident($($arg:ident: $ty:ty),*);)*) => {
        impl $crate::lanes::Isa {
            $(
                $(#[$doc])*
                ///
                /// # Safety
                /// As the generic function's, for the instance's vector width; the CPU has
                /// the instance's instruction set (an [`Isa`](crate::lanes::Isa) constructor
                /// chose it).
                #[allow(clippy::too_many_arguments)]
                pub unsafe fn $name(self, $($arg: $ty),*) {
                    #[target_feature(enable = "avx2,fma")]
                    unsafe fn narrow($($arg: $ty),*) {
                        // SAFETY: the caller's contract.
                        unsafe { $generic::<$crate::lanes::Avx2>($($arg),*) }
                    }
                    #[target_feature(enable = "avx512f")]
                    unsafe fn wide($($arg: $ty),*) {
                        // SAFETY: the caller's contract.
                        unsafe { $generic::<$crate::lanes::Avx512>($($arg),*) }
                    }
                    match self {
                        // SAFETY: the caller's contract.
                        $crate::lanes::Isa::Avx2 => unsafe { narrow($($arg),*) },
                        // SAFETY: the caller's contract.
                        $crate::lanes::Isa::Avx512 => unsafe { wide($($arg),*) },
                    }
                }
            )*
        }
    };
}
pub(crate) use instances;

/// AVX2 with FMA: 16 registers of 8 lanes.
pub(crate) struct Avx2;

/// AVX-512 (foundation): 32 registers of 16 lanes, with mask registers for ragged edges.
pub(crate) struct Avx512;

impl Lanes for Avx2 {
    type V = __m256;
    type Mask = __m256i;
    type Cmp = __m256;
    const LANES: usize = 8;
    // 6 x 16: 12 accumulators, 2 vectors of `b` and one broadcast, 15 of the 16 registers.
    const TALL: usize = 6;

    #[inline(always)]
    unsafe fn zero() -> __m256 {
        // SAFETY: AVX is available (the trait's contract).
        unsafe { _mm256_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn mask(live: usize) -> __m256i {
        // SAFETY: AVX2 is available (the trait's contract); `live <= 8` fits an `i32`.
        unsafe {
            let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            _mm256_cmpgt_epi32(_mm256_set1_epi32(live as i32), lane)
        }
    }
    #[inline(always)]
    unsafe fn load(src: *const f32) -> __m256 {
        // SAFETY: 8 floats at `src` are readable and AVX is available (the contract).
        unsafe { _mm256_loadu_ps(src) }
    }
    #[inline(always)]
    unsafe fn load_live(src: *const f32, mask: __m256i) -> __m256 {
        // SAFETY: the lanes the mask lets through are readable (the contract); masked-off
        // lanes are not accessed.
        unsafe { _mm256_maskload_ps(src, mask) }
    }
    #[inline(always)]
    unsafe fn store(dst: *mut f32, x: __m256) {
        // SAFETY: 8 floats at `dst` are writable and AVX is available (the contract).
        unsafe { _mm256_storeu_ps(dst, x) }
    }
    #[inline(always)]
    unsafe fn store_live(dst: *mut f32, x: __m256, _mask: __m256i, live: usize) {
        // A masked store is microcoded on Zen 2; a plain store to the stack and a copy of the
        // live lanes avoids it (measured on the performance page).
        let mut lanes = [0.0_f32; 8];
        // SAFETY: `lanes` holds the 8 floats one store writes; AVX is available.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), x) };
        // SAFETY: `live <= 8` floats at `dst` are writable (the contract), and `lanes` is a
        // separate stack array, so the two do not overlap.
        unsafe { std::ptr::copy_nonoverlapping(lanes.as_ptr(), dst, live) };
    }
    #[inline(always)]
    unsafe fn splat(src: *const f32) -> __m256 {
        // SAFETY: `src` points to a readable `f32` and AVX is available (the contract).
        unsafe { _mm256_broadcast_ss(&*src) }
    }
    #[inline(always)]
    unsafe fn fmadd(x: __m256, y: __m256, acc: __m256) -> __m256 {
        // SAFETY: FMA is available (the contract).
        unsafe { _mm256_fmadd_ps(x, y, acc) }
    }
    #[inline(always)]
    unsafe fn add(x: __m256, y: __m256) -> __m256 {
        // SAFETY: AVX is available (the contract).
        unsafe { _mm256_add_ps(x, y) }
    }
    #[inline(always)]
    unsafe fn sub(x: __m256, y: __m256) -> __m256 {
        // SAFETY: AVX is available (the contract).
        unsafe { _mm256_sub_ps(x, y) }
    }
    #[inline(always)]
    unsafe fn mul(x: __m256, y: __m256) -> __m256 {
        // SAFETY: AVX is available (the contract).
        unsafe { _mm256_mul_ps(x, y) }
    }
    #[inline(always)]
    unsafe fn set(x: f32) -> __m256 {
        // SAFETY: AVX is available (the contract).
        unsafe { _mm256_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn wins(v: __m256, best: __m256) -> __m256 {
        // SAFETY: AVX is available (the contract).
        unsafe {
            let larger = _mm256_cmp_ps::<_CMP_GT_OQ>(v, best);
            let v_nan = _mm256_cmp_ps::<_CMP_UNORD_Q>(v, v);
            let best_nan = _mm256_cmp_ps::<_CMP_UNORD_Q>(best, best);
            _mm256_or_ps(larger, _mm256_andnot_ps(best_nan, v_nan))
        }
    }
    #[inline(always)]
    unsafe fn equal(x: __m256, y: __m256) -> __m256 {
        // SAFETY: AVX is available (the contract).
        unsafe { _mm256_cmp_ps::<_CMP_EQ_OQ>(x, y) }
    }
    #[inline(always)]
    unsafe fn at_most(x: __m256, y: __m256) -> __m256 {
        // SAFETY: AVX is available (the contract).
        unsafe { _mm256_cmp_ps::<_CMP_LE_OQ>(x, y) }
    }
    #[inline(always)]
    unsafe fn select(c: __m256, if_true: __m256, if_false: __m256) -> __m256 {
        // SAFETY: AVX is available (the contract).
        unsafe { _mm256_blendv_ps(if_false, if_true, c) }
    }
}

impl Lanes for Avx512 {
    type V = __m512;
    type Mask = __mmask16;
    type Cmp = __mmask16;
    const LANES: usize = 16;
    // 8 x 32: 16 accumulators (two FMA ports of latency 4 need 8 in flight), 2 vectors of
    // `b` and 8 broadcasts per 16 multiply-adds, within two loads a cycle.
    const TALL: usize = 8;

    #[inline(always)]
    unsafe fn zero() -> __m512 {
        // SAFETY: AVX-512F is available (the trait's contract).
        unsafe { _mm512_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn mask(live: usize) -> __mmask16 {
        // `live <= 16`, so the shift fits a `u32` and the low 16 bits are the mask.
        ((1_u32 << live) - 1) as __mmask16
    }
    #[inline(always)]
    unsafe fn load(src: *const f32) -> __m512 {
        // SAFETY: 16 floats at `src` are readable and AVX-512F is available (the contract).
        unsafe { _mm512_loadu_ps(src) }
    }
    #[inline(always)]
    unsafe fn load_live(src: *const f32, mask: __mmask16) -> __m512 {
        // SAFETY: the lanes the mask lets through are readable (the contract); a masked-off
        // lane is neither read nor faults.
        unsafe { _mm512_maskz_loadu_ps(mask, src) }
    }
    #[inline(always)]
    unsafe fn store(dst: *mut f32, x: __m512) {
        // SAFETY: 16 floats at `dst` are writable and AVX-512F is available (the contract).
        unsafe { _mm512_storeu_ps(dst, x) }
    }
    #[inline(always)]
    unsafe fn store_live(dst: *mut f32, x: __m512, mask: __mmask16, _live: usize) {
        // SAFETY: the lanes the mask lets through are writable (the contract); no other lane
        // is written.
        unsafe { _mm512_mask_storeu_ps(dst, mask, x) }
    }
    #[inline(always)]
    unsafe fn splat(src: *const f32) -> __m512 {
        // SAFETY: `src` points to a readable `f32` (the contract).
        unsafe { _mm512_set1_ps(*src) }
    }
    #[inline(always)]
    unsafe fn fmadd(x: __m512, y: __m512, acc: __m512) -> __m512 {
        // SAFETY: AVX-512F is available (the contract).
        unsafe { _mm512_fmadd_ps(x, y, acc) }
    }
    #[inline(always)]
    unsafe fn add(x: __m512, y: __m512) -> __m512 {
        // SAFETY: AVX-512F is available (the contract).
        unsafe { _mm512_add_ps(x, y) }
    }
    #[inline(always)]
    unsafe fn sub(x: __m512, y: __m512) -> __m512 {
        // SAFETY: AVX-512F is available (the contract).
        unsafe { _mm512_sub_ps(x, y) }
    }
    #[inline(always)]
    unsafe fn mul(x: __m512, y: __m512) -> __m512 {
        // SAFETY: AVX-512F is available (the contract).
        unsafe { _mm512_mul_ps(x, y) }
    }
    #[inline(always)]
    unsafe fn set(x: f32) -> __m512 {
        // SAFETY: AVX-512F is available (the contract).
        unsafe { _mm512_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn wins(v: __m512, best: __m512) -> __mmask16 {
        // SAFETY: AVX-512F is available (the contract).
        unsafe {
            let larger = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(v, best);
            let v_nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v);
            let best_nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(best, best);
            larger | (v_nan & !best_nan)
        }
    }
    #[inline(always)]
    unsafe fn equal(x: __m512, y: __m512) -> __mmask16 {
        // SAFETY: AVX-512F is available (the contract).
        unsafe { _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(x, y) }
    }
    #[inline(always)]
    unsafe fn at_most(x: __m512, y: __m512) -> __mmask16 {
        // SAFETY: AVX-512F is available (the contract).
        unsafe { _mm512_cmp_ps_mask::<_CMP_LE_OQ>(x, y) }
    }
    #[inline(always)]
    unsafe fn select(c: __mmask16, if_true: __m512, if_false: __m512) -> __m512 {
        // SAFETY: AVX-512F is available (the contract).
        unsafe { _mm512_mask_blend_ps(c, if_false, if_true) }
    }
}
