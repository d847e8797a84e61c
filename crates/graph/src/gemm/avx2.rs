//! The `f32` matrix-product kernel for x86-64 with AVX2 and FMA, written with `std::arch`
//! intrinsics over raw pointers.
//!
//! `c[i, j] = Σ_p a[i, p] b[p, j]` for a block of rows of `c`, with `b`'s rows contiguous and
//! `a` read through any strides. `c` is cut into tiles of `MR` rows by `8·NV` columns whose
//! `MR x NV` vector accumulators stay in registers; one step over `p` loads `NV` vectors of
//! `b`, broadcasts `MR` elements of `a` and issues `MR·NV` fused multiply-adds. Zen 2 retires
//! two FMAs per cycle with a latency of five, so at least ten independent accumulators are
//! needed to keep both units busy. The tile is 6x16 (12 accumulators, 2 vectors of `b` and one
//! broadcast: 15 of the 16 AVX registers; a 3x32 tile needs 17 and spills), 4x16 for a
//! remainder of 2 or 4 rows, and 8x8 for a last strip of at most 8 columns. Six rows per tile
//! also means each vector of `b` fetched from L2 feeds six multiply-adds, which is what the
//! 784x32 kernel of the reference model, streamed from L2 once per tile, needs. The safe
//! generic kernels in `mod.rs` use 4x16 blocks (8 accumulators) and pay a bounds check per
//! load; this one proves its bounds once, up front.
//!
//! Each element of `c` is one accumulator lane summed over `p` in increasing order, whatever
//! the tile it falls in, so a ragged edge never changes a result. With `Mode::Add` the lane
//! starts from the element's value in `c` instead of zero (`c += a b`), so a sum over several
//! products is one running sum in the order they come.

#![allow(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]

use std::arch::x86_64::{
    __m256, __m256i, _mm256_broadcast_ss, _mm256_cmpgt_epi32, _mm256_fmadd_ps, _mm256_loadu_ps,
    _mm256_maskload_ps, _mm256_set1_epi32, _mm256_setr_epi32, _mm256_setzero_ps, _mm256_storeu_ps,
};

/// One operand of the product: element `(i, j)` is `flat[i*rs + j*cs]`.
#[derive(Clone, Copy)]
pub(super) struct Strided<'a> {
    pub flat: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

/// Whether a product overwrites `c` (`c = a b`) or adds to it (`c += a b`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Set,
    Add,
}

/// Whether `rows x cols` elements at strides `(rs, cs)` all lie inside a slice of length `len`.
fn fits(len: usize, rows: usize, cols: usize, rs: usize, cs: usize) -> bool {
    if rows == 0 || cols == 0 {
        return true;
    }
    let last = (rows - 1)
        .checked_mul(rs)
        .and_then(|r| (cols - 1).checked_mul(cs).and_then(|c| r.checked_add(c)));
    matches!(last, Some(l) if l < len)
}

/// `c = a b`, or `c += a b` with [`Mode::Add`] (`a`: m x k, `b`: k x n with unit column
/// stride, `c` row-major). Returns `false`,
/// doing nothing, when the slices do not cover the shapes (the caller then takes another
/// path).
///
/// # Safety
///
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn product(
    a: Strided<'_>,
    b: Strided<'_>,
    c: &mut [f32],
    (m, k, n): (usize, usize, usize),
    mode: Mode,
) -> bool {
    let bounds_hold = b.cs == 1
        && m.checked_mul(n) == Some(c.len())
        && fits(a.flat.len(), m, k, a.rs, a.cs)
        && fits(b.flat.len(), k, n, b.rs, 1);
    if !bounds_hold {
        return false;
    }
    if m == 0 || n == 0 {
        return true;
    }
    if k == 0 {
        if mode == Mode::Set {
            c.fill(0.0);
        }
        return true;
    }
    // Columns go in 16-wide strips (the last masked when 9-15 columns are left), then one
    // 8-wide strip if at most 8 are left.
    let mut narrow = 0;
    while n - narrow > 8 {
        narrow += (n - narrow).min(16);
    }
    // The sum over `p` goes in chunks of `KC`, each after the first adding to what the ones
    // before it stored (an accumulator lane stored and reloaded is the same `f32`, so every
    // element is still one running sum in increasing `p`: the bits do not change). Within a
    // chunk, the 16-wide strips go `NB` at a time, and each block of strips is walked band by
    // band of six rows: the block's `KC x 16·NB` panel of `b` (16 KiB) stays in L1 for all
    // the bands, where walking every strip of a band before the next band streamed all of
    // `b` from L2 once per band (conv2's kernel gradient: 62 KB of cotangent per band).
    // Chunks only when `a` is read down its columns (`a` transposed, as in a kernel
    // gradient): a row-major `a` is broadcast from lines it reuses 16 times, and there the
    // reloads of `c` cost more than the chunks save (the performance page has both).
    let chunk = if a.cs == 1 { k } else { KC };
    for p0 in (0..k).step_by(chunk) {
        let kc = chunk.min(k - p0);
        let chunk_mode = if p0 == 0 { mode } else { Mode::Add };
        // `p0 < k`: the chunk's elements are among those `fits` checked above, at the same
        // offsets from the new starts, so the tiles' bounds still hold.
        let (a, b) = (a.skip_cols(p0), b.skip_rows(p0));
        let mut j0 = 0;
        while j0 < narrow {
            let block_end = (j0 + 16 * NB).min(narrow);
            // SAFETY: AVX2 and FMA are available (this function's contract); the bounds were
            // checked above and the strips lie within `0..narrow`.
            unsafe { bands(a, b, c, m, j0..block_end, kc, n, chunk_mode) };
            j0 = block_end;
        }
        if narrow < n {
            // SAFETY: AVX2 and FMA are available (this function's contract); the bounds were
            // checked above and the rows are 0..m.
            unsafe { tiles::<8, 1>(a, b, c, 0..m, narrow, n - narrow, kc, n, chunk_mode) };
        }
    }
    true
}

/// Rows of `b` (terms of each sum) per pass over `c`: see [`product`].
const KC: usize = 64;
/// 16-wide strips of `c` per block: see [`product`].
const NB: usize = 4;

impl Strided<'_> {
    /// The operand from column `p0` on (empty past its end).
    fn skip_cols(self, p0: usize) -> Self {
        Strided {
            flat: self.flat.get(p0 * self.cs..).unwrap_or(&[]),
            ..self
        }
    }
    /// The operand from row `p0` on (empty past its end).
    fn skip_rows(self, p0: usize) -> Self {
        Strided {
            flat: self.flat.get(p0 * self.rs..).unwrap_or(&[]),
            ..self
        }
    }
}

/// The 16-wide strips `strips` of `c` over all its `m` rows, band by band of six rows (a
/// remainder of 2 or 4 rows in 4-row bands: 8 accumulators, about 80% of the FMA rate, rather
/// than a 6-row band computing rows it throws away: 128 rows = 20 x 6 + 2 x 4).
///
/// # Safety
/// As [`tiles`], for every band and strip.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn bands(
    a: Strided<'_>,
    b: Strided<'_>,
    c: &mut [f32],
    m: usize,
    strips: std::ops::Range<usize>,
    k: usize,
    n: usize,
    mode: Mode,
) {
    let fours = match m % 6 {
        2 if m >= 8 => 2,
        4 => 1,
        _ => 0,
    };
    let sixes_end = m - 4 * fours;
    let mut r0 = 0;
    while r0 < m {
        let height = if r0 < sixes_end { 6 } else { 4 };
        let band = r0..(r0 + height).min(m);
        let mut j0 = strips.start;
        while j0 < strips.end {
            let left = strips.end - j0;
            // SAFETY: as this function's contract.
            j0 += unsafe {
                if height == 6 {
                    tiles::<6, 2>(a, b, c, band.clone(), j0, left, k, n, mode)
                } else {
                    tiles::<4, 2>(a, b, c, band.clone(), j0, left, k, n, mode)
                }
            };
        }
        r0 += height;
    }
}

/// The row tiles covering `rows` of one column strip `j0 .. j0 + min(8·NV, left)`; returns
/// the strip's width.
///
/// # Safety
///
/// AVX2 and FMA are available, and `product` has checked the bounds: every `a[i, p]` for
/// `i < m`, `p < k` and every `b[p, j]` for `j < n` is inside its slice, `c` holds `m` rows
/// of `n`, and `rows` lies within `0..m`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn tiles<const MR: usize, const NV: usize>(
    a: Strided<'_>,
    b: Strided<'_>,
    c: &mut [f32],
    rows: std::ops::Range<usize>,
    j0: usize,
    left: usize,
    k: usize,
    n: usize,
    mode: Mode,
) -> usize {
    let width = left.min(8 * NV);
    // Lanes of the last vector that exist: lane l is on when l < width - 8 (NV - 1).
    let live = (width - 8 * (NV - 1)) as i32;
    // SAFETY: AVX is available, by this function's contract.
    let bound = unsafe { _mm256_set1_epi32(live) };
    // SAFETY: as above.
    let lane = unsafe { _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7) };
    // SAFETY: AVX2 is available, by this function's contract.
    let mask: __m256i = unsafe { _mm256_cmpgt_epi32(bound, lane) };
    let full = live == 8;
    // SAFETY: `j0 < n`, and `b` holds at least one row of `n`, so the offset is in bounds.
    let b_strip = unsafe { b.flat.as_ptr().add(j0) };
    let mut r0 = rows.start;
    while r0 < rows.end {
        let valid = MR.min(rows.end - r0);
        // A ragged bottom tile repeats its last row instead of reading past `a`.
        let a_rows: [*const f32; MR] = std::array::from_fn(|r| {
            let row = r0 + r.min(valid - 1);
            // SAFETY: `row < m`, and `a` holds `m` rows at stride `a.rs` (checked by `product`).
            unsafe { a.flat.as_ptr().add(row * a.rs) }
        });
        // SAFETY: `c` holds `m` rows of `n` (checked by `product`) and `r0 + r < m`,
        // `j0 + width <= n`, so every load and store below stays inside `c`.
        let c_tile = unsafe { c.as_mut_ptr().add(r0 * n + j0) };
        // SAFETY: AVX2 is available; rows `0..valid` of the tile and the lanes the mask lets
        // through are inside `c` (as above).
        let init = unsafe { start_tile::<MR, NV>(mode, c_tile, n, valid, mask, full) };
        // SAFETY: AVX2 and FMA are available; every `a_rows[r] + p*a.cs` for `p < k` and
        // every `b_strip + p*b.rs + l` for `p < k` and each live lane `l` is inside its slice
        // (`product` checked `a`'s and `b`'s extents, and the mask covers only the strip).
        let acc = unsafe { tile::<MR, NV>(init, a_rows, a.cs, b_strip, b.rs, k, mask, full) };
        for (r, acc_row) in acc.iter().enumerate().take(valid) {
            // SAFETY: as above, row `r` of the tile is inside `c`.
            let c_row = unsafe { c_tile.add(r * n) };
            for (v, &x) in acc_row.iter().enumerate() {
                if v + 1 < NV || full {
                    // SAFETY: the 8 lanes of vector `v` are inside the tile's row (as above).
                    let dst = unsafe { c_row.add(8 * v) };
                    // SAFETY: `dst` is valid for 8 floats (as above); AVX is available (the
                    // contract).
                    unsafe { _mm256_storeu_ps(dst, x) };
                } else {
                    // A masked store is microcoded on Zen 2; a plain store to the stack and a
                    // copy of the live lanes avoids it (measured on the performance page).
                    let mut lanes = [0.0_f32; 8];
                    // SAFETY: `lanes` holds the 8 floats one store writes.
                    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), x) };
                    // SAFETY: the `live` lanes of the last vector are inside the tile's row.
                    let dst = unsafe { c_row.add(8 * v) };
                    // SAFETY: `dst` is valid for `live` floats (as above), and `lanes` is a
                    // separate stack array, so the two do not overlap.
                    unsafe { std::ptr::copy_nonoverlapping(lanes.as_ptr(), dst, live as usize) };
                }
            }
        }
        r0 += MR;
    }
    width
}

/// The accumulators a tile starts from: zero for [`Mode::Set`]; for [`Mode::Add`] the tile of
/// `c` at `c_tile` (rows `n` apart), its last valid row repeated below the `valid` ones and
/// the masked-off lanes zero.
///
/// # Safety
///
/// AVX2 is available; rows `0..valid` of the tile are readable for the full vectors and the
/// lanes the mask lets through on the last one.
#[inline(always)]
unsafe fn start_tile<const MR: usize, const NV: usize>(
    mode: Mode,
    c_tile: *const f32,
    n: usize,
    valid: usize,
    mask: __m256i,
    full: bool,
) -> [[__m256; NV]; MR] {
    if mode == Mode::Set {
        // SAFETY: AVX is available (the contract).
        return unsafe { [[_mm256_setzero_ps(); NV]; MR] };
    }
    std::array::from_fn(|r| {
        // SAFETY: row `r.min(valid - 1)` is one of the tile's readable rows (the contract).
        let row = unsafe { c_tile.add(r.min(valid - 1) * n) };
        std::array::from_fn(|v| {
            // SAFETY: vector `v` of the row starts inside the tile (the contract).
            let src = unsafe { row.add(8 * v) };
            if v + 1 < NV || full {
                // SAFETY: a full vector of the row is readable; AVX is available.
                unsafe { _mm256_loadu_ps(src) }
            } else {
                // SAFETY: the mask lets through only readable lanes; AVX2 is available.
                unsafe { _mm256_maskload_ps(src, mask) }
            }
        })
    })
}

/// One `MR x 8·NV` tile summed over `p in 0..k`, starting from `init`.
///
/// # Safety
///
/// AVX2 and FMA are available; `a_rows[r] + p*a_cs` is readable for `p < k`, and so is
/// `b + p*b_rs + l` for `p < k` and every lane `l` of the strip that the mask (on the last
/// vector) lets through.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn tile<const MR: usize, const NV: usize>(
    init: [[__m256; NV]; MR],
    a_rows: [*const f32; MR],
    a_cs: usize,
    b: *const f32,
    b_rs: usize,
    k: usize,
    mask: __m256i,
    full: bool,
) -> [[__m256; NV]; MR] {
    // SAFETY: AVX is available (this function's contract).
    let zero = unsafe { _mm256_setzero_ps() };
    let mut acc = init;
    for p in 0..k {
        // SAFETY: `p < k`, so row `p` of the strip is inside `b` (the contract).
        let b_row = unsafe { b.add(p * b_rs) };
        let mut bv = [zero; NV];
        for (v, slot) in bv.iter_mut().enumerate() {
            // SAFETY: vector `v` of the strip starts inside `b` (the contract).
            let src = unsafe { b_row.add(8 * v) };
            *slot = if v + 1 < NV || full {
                // SAFETY: the strip's full vectors are inside `b` (the contract).
                unsafe { _mm256_loadu_ps(src) }
            } else {
                // SAFETY: the mask lets through only the lanes inside `b` (the contract).
                unsafe { _mm256_maskload_ps(src, mask) }
            };
        }
        for (acc_row, &a_row) in acc.iter_mut().zip(&a_rows) {
            // SAFETY: `a_row + p*a_cs` is readable for `p < k` (the contract).
            let a_p = unsafe { a_row.add(p * a_cs) };
            // SAFETY: as above, `a_p` points to a live `f32` of `a`.
            let a_p = unsafe { &*a_p };
            // SAFETY: AVX is available (the contract).
            let x = unsafe { _mm256_broadcast_ss(a_p) };
            for (t, &y) in acc_row.iter_mut().zip(&bv) {
                // SAFETY: FMA is available (the contract).
                *t = unsafe { _mm256_fmadd_ps(x, y, *t) };
            }
        }
    }
    acc
}
