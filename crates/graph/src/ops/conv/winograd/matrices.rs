//! Winograd's F(4×4, 3×3) in one dimension: the six 1-D transforms the tiles and kernels are
//! carried by, each written once over [`Arith`] (a scalar of any [`Element`], a vector of
//! `f32` lanes, a small array of lanes), with the common terms of its rows computed once.
//!
//! The matrices are Lavin and Gray's for the points 0, ±1, ±2 and ∞:
//!
//! ```text
//!      ⎡4  0 -5  0  1  0⎤        ⎡ 1/4     0     0 ⎤
//!      ⎢0 -4 -4  1  1  0⎥        ⎢-1/6  -1/6  -1/6 ⎥        ⎡1  1  1  1  1  0⎤
//! Bᵀ = ⎢0  4 -4 -1  1  0⎥    G = ⎢-1/6   1/6  -1/6 ⎥   Aᵀ = ⎢0  1 -1  2 -2  0⎥
//!      ⎢0 -2 -1  2  1  0⎥        ⎢1/24  1/12   1/6 ⎥        ⎢0  1  1  4  4  0⎥
//!      ⎢0  2 -1 -2  1  0⎥        ⎢1/24 -1/12   1/6 ⎥        ⎣0  1 -1  8 -8  1⎦
//!      ⎣0  4  0 -5  0  1⎦        ⎣  0     0     1  ⎦
//! ```
//!
//! `Bᵀ` and `Aᵀ` are integers, exact in any float; the fractions are all in `G`, which runs
//! once per step on the kernel. Their adjoints `B`, `A` and `Gᵀ` carry the gradients.

use crate::Element;

/// Pixels on a side of an input tile.
pub(super) const T: usize = 6;
/// Outputs on a side of a tile: a 3×3 window fits `T - 2` times in `T` pixels.
pub(super) const R: usize = T - 2;

/// The arithmetic a 1-D transform needs. The constants are small integers or (in `G`)
/// fractions rounded once to the element type.
pub(super) trait Arith: Copy {
    /// `x + y`.
    fn add(self, y: Self) -> Self;
    /// `x - y`.
    fn sub(self, y: Self) -> Self;
    /// `x · c`.
    fn scale(self, c: f64) -> Self;
    /// `x · c + acc` (rounded once where the type has a fused multiply-add).
    fn mul_add(self, c: f64, acc: Self) -> Self;
}

impl<F: Element> Arith for F {
    #[inline(always)]
    fn add(self, y: Self) -> Self {
        self + y
    }
    #[inline(always)]
    fn sub(self, y: Self) -> Self {
        self - y
    }
    #[inline(always)]
    fn scale(self, c: f64) -> Self {
        self * F::of(c)
    }
    #[inline(always)]
    fn mul_add(self, c: f64, acc: Self) -> Self {
        self * F::of(c) + acc
    }
}

/// A 1-D transform of `N` values to `M`.
pub(super) trait Transform<const N: usize, const M: usize> {
    /// The transform of `x`.
    fn apply<V: Arith>(x: [V; N]) -> [V; M];
}

/// `Bᵀ`, on an input tile's columns and rows.
pub(super) struct InputT;
/// `B`, the adjoint of `Bᵀ`, on the input gradient's tiles.
pub(super) struct Input;
/// `Aᵀ`, from the products to the outputs.
pub(super) struct OutputT;
/// `A`, the adjoint of `Aᵀ`, from the output cotangents to the products' domain.
pub(super) struct Output;
/// `G`, on a 3×3 kernel.
pub(super) struct Kernel;
/// `Gᵀ`, the adjoint of `G`, from the kernel gradient's sums back to a 3×3 kernel.
pub(super) struct KernelT;

impl Transform<T, T> for InputT {
    #[inline(always)]
    fn apply<V: Arith>([d0, d1, d2, d3, d4, d5]: [V; T]) -> [V; T] {
        // Rows 1 and 2 are (d₄ - 4d₂) ± (d₃ - 4d₁); rows 3 and 4 (d₄ - d₂) ± 2(d₃ - d₁).
        let (even, odd) = (d2.mul_add(-4.0, d4), d1.mul_add(-4.0, d3));
        let (near, far) = (d4.sub(d2), d3.sub(d1).scale(2.0));
        [
            d0.mul_add(4.0, d2.mul_add(-5.0, d4)),
            even.add(odd),
            even.sub(odd),
            near.add(far),
            near.sub(far),
            d1.mul_add(4.0, d3.mul_add(-5.0, d5)),
        ]
    }
}

impl Transform<T, T> for Input {
    #[inline(always)]
    fn apply<V: Arith>([v0, v1, v2, v3, v4, v5]: [V; T]) -> [V; T] {
        // The columns of Bᵀ: sums and differences of the pairs (v₁, v₂) and (v₃, v₄).
        let (p, q) = (v1.add(v2), v3.add(v4));
        let (m, n) = (v2.sub(v1), v4.sub(v3));
        [
            v0.scale(4.0),
            m.mul_add(4.0, n.mul_add(2.0, v5.scale(4.0))),
            p.mul_add(-4.0, v0.mul_add(-5.0, q.scale(-1.0))),
            v5.mul_add(-5.0, n.mul_add(-2.0, m.scale(-1.0))),
            v0.add(p).add(q),
            v5,
        ]
    }
}

impl Transform<T, R> for OutputT {
    #[inline(always)]
    fn apply<V: Arith>([m0, m1, m2, m3, m4, m5]: [V; T]) -> [V; R] {
        // Rows 1 and 3 weigh the differences of the pairs, rows 0 and 2 their sums.
        let (a, b) = (m1.add(m2), m1.sub(m2));
        let (c, d) = (m3.add(m4), m3.sub(m4));
        [
            m0.add(a).add(c),
            d.mul_add(2.0, b),
            c.mul_add(4.0, a),
            d.mul_add(8.0, b).add(m5),
        ]
    }
}

impl Transform<R, T> for Output {
    #[inline(always)]
    fn apply<V: Arith>([y0, y1, y2, y3]: [V; R]) -> [V; T] {
        // Rows 1 and 2 are (y₀ + y₂) ± (y₁ + y₃), rows 3 and 4 (y₀ + 4y₂) ± (2y₁ + 8y₃).
        let (e, f) = (y0.add(y2), y1.add(y3));
        let (g, h) = (y2.mul_add(4.0, y0), y3.mul_add(8.0, y1.scale(2.0)));
        [y0, e.add(f), e.sub(f), g.add(h), g.sub(h), y3]
    }
}

impl Transform<3, T> for Kernel {
    #[inline(always)]
    fn apply<V: Arith>([g0, g1, g2]: [V; 3]) -> [V; T] {
        let s = g0.add(g2);
        let r = g0.mul_add(1.0 / 24.0, g2.scale(1.0 / 6.0));
        let twelfth = g1.scale(1.0 / 12.0);
        [
            g0.scale(0.25),
            s.add(g1).scale(-1.0 / 6.0),
            s.sub(g1).scale(-1.0 / 6.0),
            r.add(twelfth),
            r.sub(twelfth),
            g2,
        ]
    }
}

impl Transform<T, 3> for KernelT {
    #[inline(always)]
    fn apply<V: Arith>([m0, m1, m2, m3, m4, m5]: [V; T]) -> [V; 3] {
        let (p, q) = (m1.add(m2), m2.sub(m1));
        let (r, s) = (m3.add(m4), m3.sub(m4));
        [
            m0.mul_add(0.25, p.mul_add(-1.0 / 6.0, r.scale(1.0 / 24.0))),
            q.mul_add(1.0 / 6.0, s.scale(1.0 / 12.0)),
            r.sub(p).mul_add(1.0 / 6.0, m5),
        ]
    }
}

/// `X x Xᵀ` for the 1-D transform `X` (`N` values to `M`): `X` down each column of the
/// `N × N` block, then along each row of the result.
#[inline(always)]
pub(super) fn sandwich<V: Arith, X: Transform<N, M>, const N: usize, const M: usize>(
    x: [[V; N]; N],
) -> [[V; M]; M] {
    let mut columns = [[x[0][0]; M]; N];
    for (s, column) in columns.iter_mut().enumerate() {
        let mut down = [x[0][0]; N];
        for (r, d) in down.iter_mut().enumerate() {
            *d = x[r][s];
        }
        *column = X::apply(down);
    }
    let mut out = [[x[0][0]; M]; M];
    for (i, row) in out.iter_mut().enumerate() {
        let mut along = [x[0][0]; N];
        for (s, a) in along.iter_mut().enumerate() {
            *a = columns[s][i];
        }
        *row = X::apply(along);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The matrix of a transform, one column per unit input.
    fn matrix<X: Transform<N, M>, const N: usize, const M: usize>() -> [[f64; N]; M] {
        let mut m = [[0.0; N]; M];
        for j in 0..N {
            let mut e = [0.0; N];
            e[j] = 1.0;
            for (i, v) in X::apply(e).into_iter().enumerate() {
                m[i][j] = v;
            }
        }
        m
    }

    fn close<const N: usize, const M: usize>(a: [[f64; N]; M], b: [[f64; N]; M]) -> bool {
        a.iter()
            .flatten()
            .zip(b.iter().flatten())
            .all(|(x, y)| (x - y).abs() < 1e-15)
    }

    fn transposed<const N: usize, const M: usize>(a: [[f64; N]; M]) -> [[f64; M]; N] {
        std::array::from_fn(|j| std::array::from_fn(|i| a[i][j]))
    }

    /// The matrices of the module doc, and each adjoint the transpose of its transform.
    #[test]
    fn the_transforms_are_lavins_matrices_and_their_transposes() {
        let b_t = [
            [4., 0., -5., 0., 1., 0.],
            [0., -4., -4., 1., 1., 0.],
            [0., 4., -4., -1., 1., 0.],
            [0., -2., -1., 2., 1., 0.],
            [0., 2., -1., -2., 1., 0.],
            [0., 4., 0., -5., 0., 1.],
        ];
        let a_t = [
            [1., 1., 1., 1., 1., 0.],
            [0., 1., -1., 2., -2., 0.],
            [0., 1., 1., 4., 4., 0.],
            [0., 1., -1., 8., -8., 1.],
        ];
        let g = [
            [0.25, 0., 0.],
            [-1. / 6., -1. / 6., -1. / 6.],
            [-1. / 6., 1. / 6., -1. / 6.],
            [1. / 24., 1. / 12., 1. / 6.],
            [1. / 24., -1. / 12., 1. / 6.],
            [0., 0., 1.],
        ];
        assert!(close(matrix::<InputT, T, T>(), b_t));
        assert!(close(matrix::<Input, T, T>(), transposed(b_t)));
        assert!(close(matrix::<OutputT, T, R>(), a_t));
        assert!(close(matrix::<Output, R, T>(), transposed(a_t)));
        assert!(close(matrix::<Kernel, 3, T>(), g));
        assert!(close(matrix::<KernelT, T, 3>(), transposed(g)));
    }

    /// In one dimension, `Aᵀ[(G g) ⊙ (Bᵀ d)]` is the valid correlation of `d` with `g`.
    #[test]
    fn one_dimension_gives_four_outputs_of_a_3_tap_correlation() {
        let d = [0.5, -1.25, 2.0, 0.75, -0.5, 1.5];
        let g = [0.3, -0.7, 1.1];
        let (v, u) = (InputT::apply(d), Kernel::apply(g));
        let y = OutputT::apply(std::array::from_fn(|k| v[k] * u[k]));
        for (i, y) in y.into_iter().enumerate() {
            let direct: f64 = (0..3).map(|k| d[i + k] * g[k]).sum();
            assert!((y - direct).abs() < 1e-14, "{i}: {y} vs {direct}");
        }
    }
}
