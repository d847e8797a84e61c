//! The matrix-product kernel behind `matmul`.
//!
//! GEMM crates (`gemm`, `matrixmultiply`) pack their operands into scratch buffers that they
//! allocate on every call. For the products of a small network (a batch of 32 against a
//! 784x32 kernel) packing costs about as much as the arithmetic, and the allocation breaks the
//! promise that a training step allocates nothing. So the common layouts go through
//! packing-free kernels here, and only unusual or large layouts go to the `gemm` crate:
//!
//! - `f32` on x86-64 with AVX2 and FMA (the training case): [`tiled`], register tiles over raw
//!   pointers whose bounds are proven once per call (6x16 with AVX2, 8x32 with AVX-512 where
//!   the CPU has it, the same bits either way), about twice as fast as the safe kernels below
//!   on the reference model's 784-wide products. A `b` read across its rows is copied
//!   row-major onto the stack first when it is small.
//! - everything else (`f64`, other CPUs), in safe code compiled twice (see below):
//!   - *row panel* (`b` has unit column stride): a block of `MR` rows of `c` is accumulated as
//!     `c[i, j..j+NB] += a[i, p] * b[p, j..j+NB]` over `p`, an outer product per step whose
//!     `MR x NB` accumulators stay in registers (4 x 16 floats = 8 AVX registers).
//!   - *dot* (`a` has unit column stride and `b` unit row stride, i.e. `a bᵀ` with both stored
//!     row-major): each `c[i, j]` is a contiguous dot product.
//!
//! Each element of `c` is summed over `p` in increasing order whatever the blocking (the dot
//! kernel: in eight interleaved partial sums). The kernels run on the calling thread: at these
//! sizes handing half a product to another core costs more than it saves (a parked worker takes
//! long to wake, and a spinning one makes the weight update and the batch writing store to
//! cache lines the other core has just read).
//!
//! The measurements behind these choices (throughput of each kernel, the two multi-core
//! attempts) are on the book's performance page (`docs/src/performance.md`, "What made it
//! fast" and "Measured and rejected").
//!
//! The safe kernels are compiled a second time with AVX2 and FMA enabled and chosen at run
//! time; the portable build (SSE2) uses separate multiply and add, the AVX2 build fused
//! multiply-add, so the two differ in the last bit: a given machine always takes the same one.

use crate::Element;
use ndarray::{ArrayView2, ArrayViewMut2};

#[cfg(target_arch = "x86_64")]
mod tiled;

/// Products with more multiply-adds than this go to the `gemm` crate, whose cache blocking pays
/// at that size (and whose allocation is then negligible).
const LARGE: usize = 1 << 24;

/// Rows of `c` per register block.
const MR: usize = 4;

/// A matrix as a flat slice with non-negative strides: element `(i, j)` is `flat[i*rs + j*cs]`.
#[derive(Clone, Copy)]
struct Mat<'a, F> {
    flat: &'a [F],
    rs: usize,
    cs: usize,
}

impl<'a, F: Element> Mat<'a, F> {
    /// The view's memory as one slice, when it is contiguous in some order with
    /// non-negative strides.
    fn of(v: &'a ArrayView2<'_, F>) -> Option<Self> {
        let (rs, cs) = (v.strides()[0], v.strides()[1]);
        let flat = v.to_slice_memory_order()?;
        Some(Mat {
            flat,
            rs: usize::try_from(rs).ok()?,
            cs: usize::try_from(cs).ok()?,
        })
    }
}

/// `c = a b`. Shapes must agree (`a`: m x k, `b`: k x n, `c`: m x n).
pub(crate) fn matmul_into<F: Element>(
    a: &ArrayView2<'_, F>,
    b: &ArrayView2<'_, F>,
    c: &mut ArrayViewMut2<'_, F>,
) {
    let (m, k) = a.dim();
    let n = b.ncols();
    let small = m.saturating_mul(n).saturating_mul(k) <= LARGE;
    #[cfg(target_arch = "x86_64")]
    if small && crate::cpu::has_avx2_fma() && fast_f32(a, b, c, (m, k, n), tiled::Mode::Set) {
        return;
    }
    if let (true, Some(am), Some(bm), Some(cs)) = (small, Mat::of(a), Mat::of(b), c.as_slice_mut())
    {
        let row_panel = bm.cs == 1 && (am.cs == 1 || am.rs == 1);
        let dot = am.cs == 1 && bm.rs == 1;
        if row_panel || dot {
            dispatch(am, bm, cs, (m, k, n), row_panel);
            return;
        }
    }
    library_gemm(a, b, c);
}

/// `c += a b`. The `f32` AVX2 kernel adds into `c` directly, so each element is one running
/// sum over all the products added into it; elsewhere the product goes to `partial` (same
/// shape as `c`) through [`matmul_into`] and is then added.
pub(crate) fn matmul_add_into<F: Element>(
    a: &ArrayView2<'_, F>,
    b: &ArrayView2<'_, F>,
    c: &mut ArrayViewMut2<'_, F>,
    partial: &mut ArrayViewMut2<'_, F>,
) {
    #[cfg(target_arch = "x86_64")]
    {
        let (m, k) = a.dim();
        let mkn = (m, k, b.ncols());
        let small = m.saturating_mul(mkn.2).saturating_mul(k) <= LARGE;
        if small && crate::cpu::has_avx2_fma() && fast_f32(a, b, c, mkn, tiled::Mode::Add) {
            return;
        }
    }
    matmul_into(a, b, partial);
    c.zip_mut_with(partial, |acc, &p| *acc = *acc + p);
}

/// The `f32` product through the tiled kernel of [`tiled`]. Returns `false` (nothing written)
/// when the kernel does not apply: not `f32`, `c` not row-major, or `b` neither
/// row-contiguous nor small enough to copy into a row-contiguous stack buffer.
#[cfg(target_arch = "x86_64")]
fn fast_f32<F: Element>(
    a: &ArrayView2<'_, F>,
    b: &ArrayView2<'_, F>,
    c: &mut ArrayViewMut2<'_, F>,
    (m, k, n): (usize, usize, usize),
    mode: tiled::Mode,
) -> bool {
    use tiled::Strided;
    let (Some(am), Some(bm), Some(cs)) = (Mat::of(a), Mat::of(b), c.as_slice_mut()) else {
        return false;
    };
    let (Some(af), Some(bf), Some(cf)) = (
        F::as_f32_slice(am.flat),
        F::as_f32_slice(bm.flat),
        F::as_f32_slice_mut(cs),
    ) else {
        return false;
    };
    let a = Strided {
        flat: af,
        rs: am.rs,
        cs: am.cs,
    };
    if bm.cs == 1 {
        let b = Strided {
            flat: bf,
            rs: bm.rs,
            cs: 1,
        };
        // SAFETY: `fast_f32` is only called after `crate::cpu::has_avx2_fma()` returned true.
        #[allow(unsafe_code)]
        return unsafe { tiled::product(a, b, cf, (m, k, n), mode) };
    }
    // A `b` read across its rows (the `d · wᵀ` of a backward pass) is copied row-major first
    // when it is small enough for a stack buffer; copying 320 floats costs less than the
    // strided reads it saves. A buffer is only initialized on that path, and the larger one
    // (for the convnet's Dense input gradient, `ȳ [128, 10] · wᵀ [10, 1600]`) lives in a frame
    // of its own: zeroing, or even probing, 64 KiB of stack for every product would cost more
    // than the small products themselves.
    let strided = Strided {
        flat: bf,
        rs: bm.rs,
        cs: bm.cs,
    };
    if k * n <= PACK {
        let mut packed = [0.0; PACK];
        packed_product(a, strided, &mut packed, cf, (m, k, n), mode)
    } else if k * n <= PACK_LARGE {
        large_packed_product(a, strided, cf, (m, k, n), mode)
    } else {
        false
    }
}

/// [`packed_product`] with a 64 KiB stack buffer, in a frame only the products that need it
/// pay for.
#[cfg(target_arch = "x86_64")]
#[inline(never)]
fn large_packed_product(
    a: tiled::Strided<'_>,
    b: tiled::Strided<'_>,
    c: &mut [f32],
    mkn: (usize, usize, usize),
    mode: tiled::Mode,
) -> bool {
    let mut packed = [0.0; PACK_LARGE];
    packed_product(a, b, &mut packed, c, mkn, mode)
}

/// `c = a b` (or `c += a b`) through the AVX2 kernel after copying `b` row-major into
/// `buffer`; `false` (nothing written) when `buffer` or `b`'s slice does not hold it.
#[cfg(target_arch = "x86_64")]
fn packed_product(
    a: tiled::Strided<'_>,
    b: tiled::Strided<'_>,
    buffer: &mut [f32],
    c: &mut [f32],
    (m, k, n): (usize, usize, usize),
    mode: tiled::Mode,
) -> bool {
    if !pack_rows(b.flat, b.rs, b.cs, (k, n), buffer) {
        return false;
    }
    let b = tiled::Strided {
        flat: &buffer[..k * n],
        rs: n,
        cs: 1,
    };
    // SAFETY: `fast_f32`, the only caller's caller, runs only after
    // `crate::cpu::has_avx2_fma()` returned true.
    #[allow(unsafe_code)]
    unsafe {
        tiled::product(a, b, c, (m, k, n), mode)
    }
}

/// The largest `k x n` of a strided `b` copied row-major into the small stack buffer (16 KiB).
#[cfg(target_arch = "x86_64")]
const PACK: usize = 4096;
/// The largest `k x n` copied at all, into the large stack buffer (64 KiB): above it the safe
/// kernels read `b` in place.
#[cfg(target_arch = "x86_64")]
const PACK_LARGE: usize = 16384;

/// Copies `b` (`k x n`, element `(p, j)` at `flat[p*rs + j*cs]`) row-major into the front of
/// `out`; `false` if `flat` or `out` does not hold it.
#[cfg(target_arch = "x86_64")]
fn pack_rows(flat: &[f32], rs: usize, cs: usize, (k, n): (usize, usize), out: &mut [f32]) -> bool {
    let Some(rows) = out.get_mut(..k * n) else {
        return false;
    };
    for (p, row) in rows.chunks_exact_mut(n.max(1)).enumerate() {
        for (j, slot) in row.iter_mut().enumerate() {
            match flat.get(p * rs + j * cs) {
                Some(&v) => *slot = v,
                None => return false,
            }
        }
    }
    true
}

/// Runs the kernels compiled for the best instruction set this CPU has.
fn dispatch<F: Element>(
    a: Mat<'_, F>,
    b: Mat<'_, F>,
    c: &mut [F],
    mkn: (usize, usize, usize),
    row_panel: bool,
) {
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::has_avx2_fma() {
        // SAFETY: the CPU supports AVX2 and FMA, the features `kernels_avx2` is compiled for;
        // the function itself is safe code.
        #[allow(unsafe_code)]
        unsafe {
            kernels_avx2(a, b, c, mkn, row_panel);
        }
        return;
    }
    kernels::<F, false>(a, b, c, mkn, row_panel);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn kernels_avx2<F: Element>(
    a: Mat<'_, F>,
    b: Mat<'_, F>,
    c: &mut [F],
    mkn: (usize, usize, usize),
    row_panel: bool,
) {
    kernels::<F, true>(a, b, c, mkn, row_panel);
}

#[inline(always)]
fn kernels<F: Element, const FMA: bool>(
    a: Mat<'_, F>,
    b: Mat<'_, F>,
    c: &mut [F],
    mkn: (usize, usize, usize),
    row_panel: bool,
) {
    if row_panel {
        // Full 16-wide (f32) blocks first; the columns left over go through 8-wide blocks, so
        // a 10-column product (the output layer) pads 8 + 2 rather than 16.
        let n = mkn.2;
        let wide = if std::mem::size_of::<F>() == 4 {
            n - n % 16
        } else {
            0
        };
        if wide > 0 {
            row_panel_kernel::<F, FMA, 16>(a, b, c, mkn, 0..wide);
        }
        row_panel_kernel::<F, FMA, 8>(a, b, c, mkn, wide..n);
    } else {
        dot_kernel::<F, FMA>(a, b, c, mkn);
    }
}

#[inline(always)]
fn madd<F: Element, const FMA: bool>(x: F, y: F, acc: F) -> F {
    if FMA {
        x.mul_add(y, acc)
    } else {
        acc + x * y
    }
}

/// `c[i, j] = Σ_p a[i, p] b[p, j]` with `b`'s rows contiguous, in `MR x NB` blocks whose
/// accumulators stay in registers, over the columns `cols` of `c`. A ragged block at the bottom
/// or right edge computes with its last row repeated and its missing columns zero-padded, then
/// stores only what exists.
#[inline(always)]
fn row_panel_kernel<F: Element, const FMA: bool, const NB: usize>(
    a: Mat<'_, F>,
    b: Mat<'_, F>,
    c: &mut [F],
    (m, k, n): (usize, usize, usize),
    cols: std::ops::Range<usize>,
) {
    for i0 in (0..m).step_by(MR) {
        let mr = MR.min(m - i0);
        let rows: [usize; MR] = std::array::from_fn(|r| (i0 + r).min(m - 1));
        for j0 in cols.clone().step_by(NB) {
            let nb = NB.min(cols.end - j0);
            let acc = if a.cs == 1 {
                let a_rows: [&[F]; MR] = std::array::from_fn(|r| {
                    a.flat
                        .get(rows[r] * a.rs..rows[r] * a.rs + k)
                        .unwrap_or(&[])
                });
                block::<F, FMA, NB>(b, k, j0, nb, |p| {
                    std::array::from_fn(|r| a_rows[r].get(p).copied().unwrap_or(F::zero()))
                })
            } else if a.rs == 1 && mr == MR {
                // Columns of `a` are contiguous (`a` is a transposed row-major matrix).
                block::<F, FMA, NB>(b, k, j0, nb, |p| {
                    match a
                        .flat
                        .get(i0 + p * a.cs..i0 + p * a.cs + MR)
                        .map(<[F; MR]>::try_from)
                    {
                        Some(Ok(col)) => col,
                        _ => [F::zero(); MR],
                    }
                })
            } else {
                block::<F, FMA, NB>(b, k, j0, nb, |p| {
                    std::array::from_fn(|r| {
                        a.flat
                            .get(rows[r] * a.rs + p * a.cs)
                            .copied()
                            .unwrap_or(F::zero())
                    })
                })
            };
            for (r, acc_row) in acc.iter().enumerate().take(mr) {
                let start = (i0 + r) * n + j0;
                if let Some(row) = c.get_mut(start..start + nb) {
                    // A full row is a fixed-size copy (register stores); a ragged one would
                    // otherwise cost a call to memmove for eight floats.
                    match <&mut [F; NB]>::try_from(&mut *row) {
                        Ok(full) => *full = *acc_row,
                        Err(_) => row.iter_mut().zip(acc_row).for_each(|(t, &v)| *t = v),
                    }
                }
            }
        }
    }
}

/// One `MR x NB` block: `Σ_p a_col(p) ⊗ b[p, j0..j0+nb]`.
#[inline(always)]
fn block<F: Element, const FMA: bool, const NB: usize>(
    b: Mat<'_, F>,
    k: usize,
    j0: usize,
    nb: usize,
    a_col: impl Fn(usize) -> [F; MR],
) -> [[F; NB]; MR] {
    let mut acc = [[F::zero(); NB]; MR];
    let mut padded = [F::zero(); NB];
    for p in 0..k {
        let start = p * b.rs + j0;
        let bv: &[F; NB] = match b.flat.get(start..start + NB).map(<&[F; NB]>::try_from) {
            Some(Ok(full)) if nb == NB => full,
            _ => {
                for (t, &v) in padded
                    .iter_mut()
                    .zip(b.flat.get(start..start + nb).unwrap_or(&[]))
                {
                    *t = v;
                }
                &padded
            }
        };
        let av = a_col(p);
        for (acc_row, &x) in acc.iter_mut().zip(&av) {
            for (t, &y) in acc_row.iter_mut().zip(bv) {
                *t = madd::<F, FMA>(x, y, *t);
            }
        }
    }
    acc
}

/// `c[i, j] = a[i, ..] · b[.., j]` with `a`'s rows and `b`'s columns contiguous (`a bᵀ` with
/// both stored row-major). Eight partial sums per dot product, combined at the end.
#[inline(always)]
fn dot_kernel<F: Element, const FMA: bool>(
    a: Mat<'_, F>,
    b: Mat<'_, F>,
    c: &mut [F],
    (m, k, n): (usize, usize, usize),
) {
    for i in 0..m {
        let Some(a_row) = a.flat.get(i * a.rs..i * a.rs + k) else {
            return;
        };
        for j in 0..n {
            let Some(b_col) = b.flat.get(j * b.cs..j * b.cs + k) else {
                return;
            };
            let mut lanes = [F::zero(); 8];
            for (x, y) in a_row.chunks_exact(8).zip(b_col.chunks_exact(8)) {
                for l in 0..8 {
                    lanes[l] = madd::<F, FMA>(x[l], y[l], lanes[l]);
                }
            }
            let tail = k - k % 8;
            let mut sum = lanes.iter().fold(F::zero(), |s, &v| s + v);
            for (&x, &y) in a_row[tail..].iter().zip(&b_col[tail..]) {
                sum = madd::<F, FMA>(x, y, sum);
            }
            if let Some(slot) = c.get_mut(i * n + j) {
                *slot = sum;
            }
        }
    }
}

/// Large or oddly strided products: the `gemm` crate for f32/f64, ndarray otherwise.
fn library_gemm<F: Element>(
    a: &ArrayView2<'_, F>,
    b: &ArrayView2<'_, F>,
    c: &mut ArrayViewMut2<'_, F>,
) {
    use std::any::TypeId;
    let (m, k) = a.dim();
    let n = b.ncols();
    let is_float =
        TypeId::of::<F>() == TypeId::of::<f32>() || TypeId::of::<F>() == TypeId::of::<f64>();
    if !is_float || k == 0 || m == 0 || n == 0 {
        ndarray::linalg::general_mat_mul(F::one(), a, b, F::zero(), c);
        return;
    }
    let (a_rs, a_cs) = (a.strides()[0], a.strides()[1]);
    let (b_rs, b_cs) = (b.strides()[0], b.strides()[1]);
    let (c_rs, c_cs) = (c.strides()[0], c.strides()[1]);
    let c_ptr = c.as_mut_ptr();
    // SAFETY: the three pointers come from live ndarray views whose shapes (m x k, k x n,
    // m x n) and strides are exactly what is passed, so every offset gemm forms is inside its
    // view. `c` is a mutable view, so it aliases neither `a` nor `b`. `F` is f32 or f64 (checked
    // above), the types gemm supports; `read_dst = false` means `c` is only written.
    #[allow(unsafe_code)]
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c_ptr,
            c_cs,
            c_rs,
            false,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
            F::zero(),
            F::one(),
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}
