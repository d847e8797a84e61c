//! The tiled `f32` matrix-product kernel for x86-64, written once over the vector operations
//! of [`Lanes`] and compiled twice: for AVX2 with FMA (8 lanes) and for AVX-512 (16 lanes),
//! the widest the CPU has chosen at run time.
//!
//! `c[i, j] = Σ_p a[i, p] b[p, j]` for a block of rows of `c`, with `b`'s rows contiguous and
//! `a` read through any strides. `c` is cut into tiles of `MR` rows by `2·LANES` columns whose
//! `MR x 2` vector accumulators stay in registers; one step over `p` loads two vectors of `b`,
//! broadcasts `MR` elements of `a` and issues `2·MR` fused multiply-adds. Two FMA units with a
//! latency of four or five need at least ten independent accumulators to stay busy. With AVX2
//! the tile is 6x16 (12 accumulators, 2 vectors of `b` and one broadcast: 15 of the 16
//! registers; a 3x32 tile needs 17 and spills), 4x16 for a remainder of 2 or 4 rows; with
//! AVX-512's 32 registers it is 8x32 (16 accumulators), 4x32 for a remainder of at most 4
//! rows. A last strip of at most `LANES` columns takes 8x`LANES` tiles. Six or eight rows per
//! tile also means each vector of `b` fetched from L2 feeds that many multiply-adds, which is
//! what the 784x32 kernel of the reference model, streamed from L2 once per tile, needs. The
//! safe generic kernels in `mod.rs` use 4x16 blocks (8 accumulators) and pay a bounds check
//! per load; this one proves its bounds once, up front.
//!
//! Each element of `c` is one accumulator lane summed over `p` in increasing order, whatever
//! the tile it falls in and whatever the vector width, so a ragged edge never changes a result
//! and the two instances give the same bits. With `Mode::Add` the lane starts from the
//! element's value in `c` instead of zero (`c += a b`), so a sum over several products is one
//! running sum in the order they come.

#![allow(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]

use crate::lanes::{Avx2, Avx512, Isa, Lanes};

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
/// stride, `c` row-major), through the widest instance the CPU has. Returns `false`, doing
/// nothing, when the slices do not cover the shapes (the caller then takes another path).
///
/// # Safety
///
/// The CPU must support AVX2 and FMA.
pub(super) unsafe fn product(
    a: Strided<'_>,
    b: Strided<'_>,
    c: &mut [f32],
    mkn: (usize, usize, usize),
    mode: Mode,
) -> bool {
    // SAFETY: AVX2 and FMA are available (this function's contract).
    unsafe { product_on(Isa::best(), a, b, c, mkn, mode) }
}

/// [`product`] through the instance `isa` (the tests compare the two).
///
/// # Safety
///
/// The CPU must support AVX2 and FMA, and AVX-512F for [`Isa::Avx512`].
pub(super) unsafe fn product_on(
    isa: Isa,
    a: Strided<'_>,
    b: Strided<'_>,
    c: &mut [f32],
    mkn: (usize, usize, usize),
    mode: Mode,
) -> bool {
    let (m, k, n) = mkn;
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
    match isa {
        // SAFETY: the bounds hold (checked above); the CPU has the instance's features (the
        // contract).
        Isa::Avx2 => unsafe { product_avx2(a, b, c, mkn, mode) },
        // SAFETY: as above.
        Isa::Avx512 => unsafe { product_avx512(a, b, c, mkn, mode) },
    }
    true
}

/// [`chunks`] compiled for AVX2 and FMA.
///
/// # Safety
/// As [`chunks`], with AVX2 and FMA available.
#[target_feature(enable = "avx2,fma")]
unsafe fn product_avx2(a: Strided<'_>, b: Strided<'_>, c: &mut [f32], mkn: Dims, mode: Mode) {
    // SAFETY: as this function's contract.
    unsafe { chunks::<Avx2>(a, b, c, mkn, mode) }
}

/// [`chunks`] compiled for AVX-512F.
///
/// # Safety
/// As [`chunks`], with AVX-512F available.
#[target_feature(enable = "avx512f")]
unsafe fn product_avx512(a: Strided<'_>, b: Strided<'_>, c: &mut [f32], mkn: Dims, mode: Mode) {
    // SAFETY: as this function's contract.
    unsafe { chunks::<Avx512>(a, b, c, mkn, mode) }
}

/// `(m, k, n)`: rows of `c`, terms of each sum, columns of `c`.
type Dims = (usize, usize, usize);

/// The product in chunks of `p` and blocks of column strips.
///
/// # Safety
/// `S`'s instruction set is available; `m, k, n > 0` and [`product_on`] has checked the
/// bounds.
#[inline(always)]
unsafe fn chunks<S: Lanes>(a: Strided<'_>, b: Strided<'_>, c: &mut [f32], mkn: Dims, mode: Mode) {
    let (m, k, n) = mkn;
    let lanes = S::LANES;
    // Columns go in strips of two vectors (the last masked when part of one is left), then
    // one strip of one vector if at most `lanes` are left.
    let mut narrow = 0;
    while n - narrow > lanes {
        narrow += (n - narrow).min(2 * lanes);
    }
    // The sum over `p` goes in chunks of `KC`, each after the first adding to what the ones
    // before it stored (an accumulator lane stored and reloaded is the same `f32`, so every
    // element is still one running sum in increasing `p`: the bits do not change). Within a
    // chunk, the strips go `BLOCK` columns at a time, and each block of strips is walked band
    // by band of rows: the block's `KC x BLOCK` panel of `b` (16 KiB) stays in L1 for all
    // the bands, where walking every strip of a band before the next band streamed all of
    // `b` from L2 once per band (conv2's kernel gradient: 62 KB of cotangent per band).
    // Chunks only when `a` is read down its columns (`a` transposed, as in a kernel
    // gradient): a row-major `a` is broadcast from lines it reuses 16 times, and there the
    // reloads of `c` cost more than the chunks save (the performance page has both).
    let chunk = if a.cs == 1 { k } else { KC };
    for p0 in (0..k).step_by(chunk) {
        let kc = chunk.min(k - p0);
        let chunk_mode = if p0 == 0 { mode } else { Mode::Add };
        // `p0 < k`: the chunk's elements are among those `fits` checked, at the same offsets
        // from the new starts, so the tiles' bounds still hold.
        let (a, b) = (a.skip_cols(p0), b.skip_rows(p0));
        let mut j0 = 0;
        while j0 < narrow {
            let block_end = (j0 + BLOCK).min(narrow);
            // SAFETY: the instruction set is available (this function's contract); the bounds
            // were checked and the strips lie within `0..narrow`.
            unsafe { bands::<S>(a, b, c, m, j0..block_end, kc, n, chunk_mode) };
            j0 = block_end;
        }
        if narrow < n {
            // SAFETY: as above; the rows are 0..m.
            unsafe { tiles::<S, 8, 1>(a, b, c, 0..m, narrow, n - narrow, kc, n, chunk_mode) };
        }
    }
}

/// Rows of `b` (terms of each sum) per pass over `c`: see [`chunks`].
const KC: usize = 64;
/// Columns of `c` per block of strips: see [`chunks`].
const BLOCK: usize = 64;

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

/// How many 4-row bands end the `m` rows, after bands of `tall` rows. For 6-row bands, a
/// remainder of 2 or 4 rows goes in 4-row bands (8 accumulators, about 80% of the FMA rate,
/// rather than a 6-row band computing rows it throws away: 128 rows = 20 x 6 + 2 x 4); for
/// 8-row bands, a remainder of 1 to 4 rows in one.
fn four_row_bands(m: usize, tall: usize) -> usize {
    match (tall, m % tall) {
        (6, 2) if m >= 8 => 2,
        (6, 4) => 1,
        (8, 1..=4) => 1,
        _ => 0,
    }
}

/// The strips `strips` of `c` over all its `m` rows, band by band of `S::TALL` rows and then
/// the 4-row bands of [`four_row_bands`].
///
/// # Safety
/// As [`tiles`], for every band and strip.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn bands<S: Lanes>(
    a: Strided<'_>,
    b: Strided<'_>,
    c: &mut [f32],
    m: usize,
    strips: std::ops::Range<usize>,
    k: usize,
    n: usize,
    mode: Mode,
) {
    let fours = four_row_bands(m, S::TALL);
    let tall_end = m.saturating_sub(4 * fours);
    let mut r0 = 0;
    while r0 < m {
        let height = if r0 < tall_end { S::TALL } else { 4 };
        let band = r0..(r0 + height).min(m);
        let mut j0 = strips.start;
        while j0 < strips.end {
            let left = strips.end - j0;
            // SAFETY: as this function's contract.
            j0 += unsafe {
                match height {
                    6 => tiles::<S, 6, 2>(a, b, c, band.clone(), j0, left, k, n, mode),
                    8 => tiles::<S, 8, 2>(a, b, c, band.clone(), j0, left, k, n, mode),
                    _ => tiles::<S, 4, 2>(a, b, c, band.clone(), j0, left, k, n, mode),
                }
            };
        }
        r0 += height;
    }
}

/// The row tiles covering `rows` of one column strip `j0 .. j0 + min(LANES·NV, left)`;
/// returns the strip's width.
///
/// # Safety
///
/// `S`'s instruction set is available, and [`product_on`] has checked the bounds: every
/// `a[i, p]` for `i < m`, `p < k` and every `b[p, j]` for `j < n` is inside its slice, `c`
/// holds `m` rows of `n`, and `rows` lies within `0..m`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn tiles<S: Lanes, const MR: usize, const NV: usize>(
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
    let width = left.min(S::LANES * NV);
    // Lanes of the last vector that exist.
    let live = width - S::LANES * (NV - 1);
    // SAFETY: the instruction set is available, by this function's contract.
    let edge = Edge {
        mask: unsafe { S::mask(live) },
        live,
        full: live == S::LANES,
    };
    // SAFETY: `j0 < n`, and `b` holds at least one row of `n`, so the offset is in bounds.
    let b_strip = unsafe { b.flat.as_ptr().add(j0) };
    let mut r0 = rows.start;
    while r0 < rows.end {
        let valid = MR.min(rows.end - r0);
        // A ragged bottom tile repeats its last row instead of reading past `a`.
        let a_rows: [*const f32; MR] = std::array::from_fn(|r| {
            let row = r0 + r.min(valid - 1);
            // SAFETY: `row < m`, and `a` holds `m` rows at stride `a.rs` (checked).
            unsafe { a.flat.as_ptr().add(row * a.rs) }
        });
        // SAFETY: `c` holds `m` rows of `n` (checked) and `r0 + r < m`, `j0 + width <= n`,
        // so every load and store below stays inside `c`.
        let c_tile = unsafe { c.as_mut_ptr().add(r0 * n + j0) };
        // SAFETY: rows `0..valid` of the tile and the live lanes are inside `c` (as above).
        let init = unsafe { start_tile::<S, MR, NV>(mode, c_tile, n, valid, edge) };
        // SAFETY: every `a_rows[r] + p*a.cs` for `p < k` and every `b_strip + p*b.rs + l`
        // for `p < k` and each live lane `l` is inside its slice (checked extents; the mask
        // covers only the strip).
        let acc = unsafe { tile::<S, MR, NV>(init, a_rows, a.cs, b_strip, b.rs, k, edge) };
        for (r, acc_row) in acc.iter().enumerate().take(valid) {
            // SAFETY: as above, row `r` of the tile is inside `c`.
            let c_row = unsafe { c_tile.add(r * n) };
            for (v, &x) in acc_row.iter().enumerate() {
                // SAFETY: vector `v` of the row starts inside the tile (as above).
                let dst = unsafe { c_row.add(S::LANES * v) };
                if v + 1 < NV || edge.full {
                    // SAFETY: the vector's lanes are inside the tile's row (as above).
                    unsafe { S::store(dst, x) };
                } else {
                    // SAFETY: the live lanes of the last vector are inside the tile's row.
                    unsafe { S::store_live(dst, x, edge.mask, edge.live) };
                }
            }
        }
        r0 += MR;
    }
    width
}

/// The last vector of a strip: which lanes exist.
struct Edge<M> {
    mask: M,
    live: usize,
    full: bool,
}

impl<M: Copy> Clone for Edge<M> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<M: Copy> Copy for Edge<M> {}

/// The accumulators a tile starts from: zero for [`Mode::Set`]; for [`Mode::Add`] the tile of
/// `c` at `c_tile` (rows `n` apart), its last valid row repeated below the `valid` ones and
/// the masked-off lanes zero.
///
/// # Safety
///
/// `S`'s instruction set is available; rows `0..valid` of the tile are readable for the full
/// vectors and the live lanes of the last one.
#[inline(always)]
unsafe fn start_tile<S: Lanes, const MR: usize, const NV: usize>(
    mode: Mode,
    c_tile: *const f32,
    n: usize,
    valid: usize,
    edge: Edge<S::Mask>,
) -> [[S::V; NV]; MR] {
    // SAFETY: the instruction set is available (the contract).
    let mut acc = unsafe { [[S::zero(); NV]; MR] };
    if mode == Mode::Set {
        return acc;
    }
    // Loops, not `from_fn` closures: a closure is compiled without this instance's target
    // features, so each load in it would be an out-of-line call.
    for (r, acc_row) in acc.iter_mut().enumerate() {
        // SAFETY: row `r.min(valid - 1)` is one of the tile's readable rows (the contract).
        let row = unsafe { c_tile.add(r.min(valid - 1) * n) };
        for (v, slot) in acc_row.iter_mut().enumerate() {
            // SAFETY: vector `v` of the row starts inside the tile (the contract).
            let src = unsafe { row.add(S::LANES * v) };
            *slot = if v + 1 < NV || edge.full {
                // SAFETY: a full vector of the row is readable.
                unsafe { S::load(src) }
            } else {
                // SAFETY: the mask lets through only readable lanes.
                unsafe { S::load_live(src, edge.mask) }
            };
        }
    }
    acc
}

/// One `MR x LANES·NV` tile summed over `p in 0..k`, starting from `init`.
///
/// # Safety
///
/// `S`'s instruction set is available; `a_rows[r] + p*a_cs` is readable for `p < k`, and so
/// is `b + p*b_rs + l` for `p < k` and every lane `l` of the strip that `edge` lets through.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn tile<S: Lanes, const MR: usize, const NV: usize>(
    init: [[S::V; NV]; MR],
    a_rows: [*const f32; MR],
    a_cs: usize,
    b: *const f32,
    b_rs: usize,
    k: usize,
    edge: Edge<S::Mask>,
) -> [[S::V; NV]; MR] {
    // SAFETY: the instruction set is available (this function's contract).
    let zero = unsafe { S::zero() };
    let mut acc = init;
    for p in 0..k {
        // SAFETY: `p < k`, so row `p` of the strip is inside `b` (the contract).
        let b_row = unsafe { b.add(p * b_rs) };
        let mut bv = [zero; NV];
        for (v, slot) in bv.iter_mut().enumerate() {
            // SAFETY: vector `v` of the strip starts inside `b` (the contract).
            let src = unsafe { b_row.add(S::LANES * v) };
            *slot = if v + 1 < NV || edge.full {
                // SAFETY: the strip's full vectors are inside `b` (the contract).
                unsafe { S::load(src) }
            } else {
                // SAFETY: the mask lets through only the lanes inside `b` (the contract).
                unsafe { S::load_live(src, edge.mask) }
            };
        }
        for (acc_row, &a_row) in acc.iter_mut().zip(&a_rows) {
            // SAFETY: `a_row + p*a_cs` is readable for `p < k` (the contract).
            let x = unsafe { S::splat(a_row.add(p * a_cs)) };
            for (t, &y) in acc_row.iter_mut().zip(&bv) {
                // SAFETY: the instruction set is available (the contract).
                *t = unsafe { S::fmadd(x, y, *t) };
            }
        }
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::{product_on, Isa, Mode, Strided};
    use proptest::prelude::*;

    /// `c` (pre-filled for `Mode::Add`) after the product through instance `isa`.
    fn run(
        isa: Isa,
        a: &[f32],
        a_t: bool,
        b: &[f32],
        (m, k, n): (usize, usize, usize),
        add: bool,
    ) -> Vec<f32> {
        let (rs, cs) = if a_t { (1, m) } else { (k, 1) };
        let a = Strided { flat: a, rs, cs };
        let b = Strided {
            flat: b,
            rs: n,
            cs: 1,
        };
        let mut c: Vec<f32> = (0..m * n).map(|i| (i % 7) as f32 * 0.25 - 0.5).collect();
        let mode = if add { Mode::Add } else { Mode::Set };
        // SAFETY: the caller checked that the CPU has the instance's features.
        #[allow(unsafe_code)]
        let done = unsafe { product_on(isa, a, b, &mut c, (m, k, n), mode) };
        assert!(done);
        c
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(160))]
        /// The AVX-512 instance gives the AVX2 instance's bits for every shape (ragged rows
        /// and columns, each mask width, chunked sums of a transposed `a`), and both agree
        /// with an `f64` sum to `f32` rounding.
        #[test]
        fn avx512_gives_the_avx2_bits(
            m in 1usize..40,
            k in 1usize..150,
            n in 1usize..80,
            a_t: bool,
            add: bool,
            seed in 0usize..1000,
        ) {
            if !(crate::cpu::has_avx2_fma() && crate::cpu::has_avx512f()) {
                return Ok(());
            }
            let a: Vec<f32> = (0..m * k).map(|i| ((i * 31 + seed) % 23) as f32 / 7.0 - 1.5).collect();
            let b: Vec<f32> = (0..k * n).map(|i| ((i * 13 + seed) % 19) as f32 / 5.0 - 1.8).collect();
            let wide = run(Isa::Avx512, &a, a_t, &b, (m, k, n), add);
            let narrow = run(Isa::Avx2, &a, a_t, &b, (m, k, n), add);
            let start = run(Isa::Avx2, &a, a_t, &b, (m, 0, n), add);
            for (idx, (&x, &y)) in wide.iter().zip(&narrow).enumerate() {
                prop_assert_eq!(x.to_bits(), y.to_bits(), "c[{}]: {} vs {}", idx, x, y);
                let (i, j) = (idx / n, idx % n);
                let at = |p: usize| if a_t { a[p * m + i] } else { a[i * k + p] };
                let terms = (0..k).map(|p| f64::from(at(p)) * f64::from(b[p * n + j]));
                let (sum, size) = terms.fold((f64::from(start[idx]), f64::from(start[idx].abs())), |(s, z), t| (s + t, z + t.abs()));
                prop_assert!((f64::from(x) - sum).abs() <= size * (k as f64 + 1.0) * 6e-8, "c[{}]: {} vs {}", idx, x, sum);
            }
        }
    }
}
