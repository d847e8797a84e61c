//! The kernels' side of Winograd's F(2×2, 3×3): `U = G g Gᵀ` before the products, and
//! `ḡ = Gᵀ M G` after the kernel gradient's. Each runs once per step over `9 · ci · co`
//! weights, so it is written for clarity, 8 output channels at a time.

use super::super::Geometry;
use super::XI;
use crate::Element;
use std::array::from_fn;

/// Channels transformed together.
const LANES: usize = 8;

type Lanes<F> = [F; LANES];

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
            let g: [[Lanes<F>; 3]; 3] = from_fn(|kh| {
                from_fn(|kw| {
                    from_fn(|l| {
                        if l < width {
                            weight(kh, kw, i, j0 + l)
                        } else {
                            F::zero()
                        }
                    })
                })
            });
            for (xi, p) in sandwich(g, kernel_tile::<F>).iter().flatten().enumerate() {
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
            let mt: [[Lanes<F>; 4]; 4] =
                grid(|r, s| load(m, (r * 4 + s) * c * o + i * o + j0, width));
            for (k, p) in sandwich(mt, kernel_adjoint::<F>)
                .iter()
                .flatten()
                .enumerate()
            {
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
    match <&Lanes<F>>::try_from(src) {
        Ok(whole) => *whole,
        Err(_) => {
            let mut lanes = [F::zero(); LANES];
            lanes.iter_mut().zip(src).for_each(|(l, &v)| *l = v);
            lanes
        }
    }
}

/// The first `width` lanes of `p` to `dst` from `at` (see [`load`]).
#[inline(always)]
fn store<F: Element>(dst: &mut [F], at: usize, p: &Lanes<F>, width: usize) {
    let dst = &mut dst[at..at + width];
    match <&mut Lanes<F>>::try_from(&mut *dst) {
        Ok(whole) => *whole = *p,
        Err(_) => dst.iter_mut().zip(p).for_each(|(d, &v)| *d = v),
    }
}

/// `T x Tᵀ` for a 1-D transform `t` (`N` values to `M`): `t` down each column, then along
/// each row.
#[inline(always)]
fn sandwich<F: Element, const N: usize, const M: usize>(
    x: [[Lanes<F>; N]; N],
    t: impl Fn([Lanes<F>; N]) -> [Lanes<F>; M],
) -> [[Lanes<F>; M]; M] {
    let mut columns = [[[F::zero(); LANES]; M]; N];
    for (s, column) in columns.iter_mut().enumerate() {
        let mut down = [[F::zero(); LANES]; N];
        for (r, d) in down.iter_mut().enumerate() {
            *d = x[r][s];
        }
        *column = t(down);
    }
    let mut out = [[[F::zero(); LANES]; M]; M];
    for (i, row) in out.iter_mut().enumerate() {
        let mut along = [[F::zero(); LANES]; N];
        for (s, a) in along.iter_mut().enumerate() {
            *a = columns[s][i];
        }
        *row = t(along);
    }
    out
}

/// The `N × N` grid of lane vectors `f(r, s)` (a loop, where nested `from_fn`s were left as
/// calls, outside the AVX2 instances).
#[inline(always)]
fn grid<F: Element, const N: usize>(f: impl Fn(usize, usize) -> Lanes<F>) -> [[Lanes<F>; N]; N] {
    let mut g = [[[F::zero(); LANES]; N]; N];
    for (r, row) in g.iter_mut().enumerate() {
        for (s, p) in row.iter_mut().enumerate() {
            *p = f(r, s);
        }
    }
    g
}

fn half<F: Element>() -> F {
    F::one() / (F::one() + F::one())
}

/// `G g`: `[g₀, (g₀ + g₁ + g₂)/2, (g₀ - g₁ + g₂)/2, g₂]`.
#[inline(always)]
fn kernel_tile<F: Element>(g: [Lanes<F>; 3]) -> [Lanes<F>; 4] {
    let h = half::<F>();
    let mut o = [g[0], g[0], g[0], g[2]];
    for l in 0..LANES {
        o[1][l] = (g[0][l] + g[1][l] + g[2][l]) * h;
        o[2][l] = (g[0][l] - g[1][l] + g[2][l]) * h;
    }
    o
}

/// `Gᵀ m`, the adjoint of [`kernel_tile`]: `[m₀ + (m₁ + m₂)/2, (m₁ - m₂)/2, (m₁ + m₂)/2 + m₃]`.
#[inline(always)]
fn kernel_adjoint<F: Element>(m: [Lanes<F>; 4]) -> [Lanes<F>; 3] {
    let h = half::<F>();
    let mut o = [[F::zero(); LANES]; 3];
    for l in 0..LANES {
        o[0][l] = m[0][l] + (m[1][l] + m[2][l]) * h;
        o[1][l] = (m[1][l] - m[2][l]) * h;
        o[2][l] = (m[1][l] + m[2][l]) * h + m[3][l];
    }
    o
}
