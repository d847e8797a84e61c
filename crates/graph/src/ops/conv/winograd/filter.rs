//! The kernels' side of Winograd's F(4×4, 3×3): `U = G g Gᵀ` before the products, and
//! `ḡ = Gᵀ M G` after the kernel gradient's. Each runs once per step over `9 · ci · co`
//! weights, so it is written for clarity, 8 output channels at a time (one [`Lanes`], which
//! the compiler vectorizes).

use super::super::Geometry;
use super::matrices::{sandwich, Arith, Kernel, KernelT, T};
use super::XI;
use crate::Element;
use std::array::from_fn;

/// Channels transformed together.
const LANES: usize = 8;

/// Eight channels' values, transformed together.
#[derive(Clone, Copy)]
struct Lanes<F>([F; LANES]);

impl<F: Element> Lanes<F> {
    #[inline(always)]
    fn map2(self, y: Self, f: impl Fn(F, F) -> F) -> Self {
        Lanes(from_fn(|l| f(self.0[l], y.0[l])))
    }
}

impl<F: Element> Arith for Lanes<F> {
    #[inline(always)]
    fn add(self, y: Self) -> Self {
        self.map2(y, |a, b| a + b)
    }
    #[inline(always)]
    fn sub(self, y: Self) -> Self {
        self.map2(y, |a, b| a - b)
    }
    #[inline(always)]
    fn scale(self, c: f64) -> Self {
        Lanes(self.0.map(|a| Arith::scale(a, c)))
    }
    #[inline(always)]
    fn mul_add(self, c: f64, acc: Self) -> Self {
        self.map2(acc, |a, acc| Arith::mul_add(a, c, acc))
    }
}

/// `U = G g Gᵀ` for every channel pair of `w` (HWIO) into `u` (`[ξ][ci][co]`), or with
/// `transposed` each point's matrix transposed (`[ξ][co][ci]`, the right operand of the input
/// gradient's products `Ŷ_ξ · U_ξᵀ`).
pub(super) fn transform_kernel<F: Element>(
    geo: &Geometry,
    w: &[F],
    transposed: bool,
    u: &mut [F],
) -> bool {
    let (c, o) = (geo.c, geo.o);
    let (ci, co) = if transposed { (o, c) } else { (c, o) };
    if w.len() != 9 * c * o || u.len() != XI * c * o {
        return false;
    }
    let weight = |kh: usize, kw: usize, i: usize, j: usize| match transposed {
        false => w[((kh * 3 + kw) * c + i) * o + j],
        true => w[((kh * 3 + kw) * c + j) * o + i],
    };
    for i in 0..ci {
        for j0 in (0..co).step_by(LANES) {
            let width = LANES.min(co - j0);
            let g: [[Lanes<F>; 3]; 3] = grid(|kh, kw| {
                Lanes(from_fn(|l| match l < width {
                    true => weight(kh, kw, i, j0 + l),
                    false => F::zero(),
                }))
            });
            let transformed = sandwich::<_, Kernel, 3, T>(g);
            for (xi, p) in transformed.iter().flatten().enumerate() {
                let at = xi * ci * co + i * co + j0;
                store(u, at, p, width);
            }
        }
    }
    true
}

/// `ḡ = Gᵀ M G` for every channel pair of the summed products `m` (`[ξ][c][o]`) into `w`
/// (HWIO).
pub(super) fn kernel_from_transformed<F: Element>(geo: &Geometry, m: &[F], w: &mut [F]) -> bool {
    let (c, o) = (geo.c, geo.o);
    if w.len() != 9 * c * o || m.len() != XI * c * o {
        return false;
    }
    for i in 0..c {
        for j0 in (0..o).step_by(LANES) {
            let width = LANES.min(o - j0);
            let mt: [[Lanes<F>; T]; T] =
                grid(|r, s| load(m, (r * T + s) * c * o + i * o + j0, width));
            let g = sandwich::<_, KernelT, T, 3>(mt);
            for (k, p) in g.iter().flatten().enumerate() {
                let at = (k * c + i) * o + j0;
                store(w, at, p, width);
            }
        }
    }
    true
}

/// `width` elements of `src` from `at`, zeros after them. A whole vector is copied as an
/// array: `copy_from_slice` would call `memcpy` for each 32 bytes, which cost more than the
/// transform itself.
#[inline(always)]
fn load<F: Element>(src: &[F], at: usize, width: usize) -> Lanes<F> {
    let src = &src[at..at + width];
    match <&[F; LANES]>::try_from(src) {
        Ok(whole) => Lanes(*whole),
        Err(_) => {
            let mut lanes = [F::zero(); LANES];
            lanes.iter_mut().zip(src).for_each(|(l, &v)| *l = v);
            Lanes(lanes)
        }
    }
}

/// The first `width` lanes of `p` to `dst` from `at` (see [`load`]).
#[inline(always)]
fn store<F: Element>(dst: &mut [F], at: usize, p: &Lanes<F>, width: usize) {
    let dst = &mut dst[at..at + width];
    match <&mut [F; LANES]>::try_from(&mut *dst) {
        Ok(whole) => *whole = p.0,
        Err(_) => dst.iter_mut().zip(&p.0).for_each(|(d, &v)| *d = v),
    }
}

/// The `N × N` grid of lane vectors `f(r, s)` (a loop, where nested `from_fn`s were left as
/// calls, outside the AVX2 instances).
#[inline(always)]
fn grid<F: Element, const N: usize>(f: impl Fn(usize, usize) -> Lanes<F>) -> [[Lanes<F>; N]; N] {
    let mut g = [[Lanes([F::zero(); LANES]); N]; N];
    for (r, row) in g.iter_mut().enumerate() {
        for (s, p) in row.iter_mut().enumerate() {
            *p = f(r, s);
        }
    }
    g
}
