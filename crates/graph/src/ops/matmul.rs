//! Matrix product over the last two axes, with optional transposes and broadcast batch axes.
//!
//! `C = op(A) op(B)` where `op` transposes the last two axes when its flag is set:
//! `C[..., i, j] = Σ_k op(A)[..., i, k] op(B)[..., k, j]`.
//!
//! Shape rule: both operands have rank ≥ 2; the inner dimensions agree; the batch axes (all but
//! the last two) broadcast under NumPy rules.
//!
//! Derivative (for `C = A B`): `A_bar = C_bar Bᵀ`, `B_bar = Aᵀ C_bar`. The transposes are flags
//! of the product, not copies: GEMM reads the operand through its strides. With the flags set
//! the same identities give the four cases in the table on `vjp`. Batch axes that were
//! broadcast are summed back by the reverse sweep.

use crate::error::{GraphError, Result};
use crate::ops::{check_arity, OperandGrads, MATMUL};
use crate::shape::{broadcast_shapes, Dim, Shape};
use crate::{Element, Graph, NodeId, Op};
use ndarray::{ArrayView2, ArrayViewD, ArrayViewMutD, Axis, Ix2, IxDyn};
use smallvec::{smallvec, SmallVec};

/// The transpose flags `(transpose_lhs, transpose_rhs)` of a product.
pub(crate) type Flags = (bool, bool);

pub(crate) fn infer(flags: Flags, node: &str, operands: &[&Shape]) -> Result<Shape> {
    check_arity(MATMUL, node, operands, 2)?;
    let (lhs, rhs) = (operands[0], operands[1]);
    let err = |reason| GraphError::IncompatibleShapes {
        op: "matmul",
        node: node.to_owned(),
        reason,
        lhs: lhs.clone(),
        rhs: rhs.clone(),
    };
    if lhs.rank() < 2 || rhs.rank() < 2 {
        return Err(err("both operands need at least two axes"));
    }
    let (tl, tr) = flags;
    let last2 = |s: &Shape, t: bool| {
        let d = s.dims();
        let (r, c) = (d[d.len() - 2], d[d.len() - 1]);
        if t {
            (c, r)
        } else {
            (r, c)
        }
    };
    let (m, k1) = last2(lhs, tl);
    let (k2, n) = last2(rhs, tr);
    if let (Dim::Fixed(a), Dim::Fixed(b)) = (k1, k2)
        && a != b
    {
        return Err(err("inner dimensions differ"));
    }
    let batch_l = Shape::new(lhs.dims()[..lhs.rank() - 2].iter().copied());
    let batch_r = Shape::new(rhs.dims()[..rhs.rank() - 2].iter().copied());
    let mut out = broadcast_shapes(&batch_l, &batch_r)
        .ok_or_else(|| err("batch dimensions do not broadcast"))?;
    out.push(m);
    out.push(n);
    Ok(out)
}

fn as_matrix<'a, F: Element>(x: ArrayViewD<'a, F>, transpose: bool) -> Option<ArrayView2<'a, F>> {
    let m = x.into_dimensionality::<Ix2>().ok()?;
    Some(if transpose { m.reversed_axes() } else { m })
}

pub(crate) fn forward<F: Element>(
    flags: Flags,
    inputs: &[ArrayViewD<'_, F>],
    mut out: ArrayViewMutD<'_, F>,
) -> Result<()> {
    let (tl, tr) = flags;
    let (a, b) = (&inputs[0], &inputs[1]);
    let internal = || GraphError::Internal {
        op: "matmul",
        node: String::new(),
        what: "operands do not match the inferred output",
    };
    let rank = out.ndim();
    if a.ndim() == 2 && b.ndim() == 2 {
        let (Some(am), Some(bm)) = (as_matrix(a.view(), tl), as_matrix(b.view(), tr)) else {
            return Err(internal());
        };
        let mut c = out.into_dimensionality::<Ix2>().map_err(|_| internal())?;
        crate::gemm::matmul_into(&am, &bm, &mut c);
        return Ok(());
    }
    // Batched: broadcast each operand's batch axes to the output's, then one GEMM per batch.
    let batch: SmallVec<[usize; 4]> = out.shape()[..rank - 2].into();
    let full = |x: &ArrayViewD<'_, F>| {
        let mut s: SmallVec<[usize; 6]> = batch.clone().into_iter().collect();
        s.extend_from_slice(&x.shape()[x.ndim() - 2..]);
        s
    };
    let (Some(ab), Some(bb)) = (a.broadcast(IxDyn(&full(a))), b.broadcast(IxDyn(&full(b)))) else {
        return Err(internal());
    };
    let count: usize = batch.iter().product();
    let mut index: SmallVec<[usize; 4]> = smallvec![0; batch.len()];
    for _ in 0..count {
        fn pick<'v, F: Element>(x: &ArrayViewD<'v, F>, index: &[usize]) -> ArrayViewD<'v, F> {
            let mut v = x.clone();
            for &i in index {
                v = v.index_axis_move(Axis(0), i);
            }
            v
        }
        let mut c = out.view_mut();
        for &i in &index {
            c = c.index_axis_move(Axis(0), i);
        }
        let (Some(am), Some(bm)) = (
            as_matrix(pick(&ab, &index), tl),
            as_matrix(pick(&bb, &index), tr),
        ) else {
            return Err(internal());
        };
        let mut c = c.into_dimensionality::<Ix2>().map_err(|_| internal())?;
        crate::gemm::matmul_into(&am, &bm, &mut c);
        for ax in (0..batch.len()).rev() {
            index[ax] += 1;
            if index[ax] < batch[ax] {
                break;
            }
            index[ax] = 0;
        }
    }
    Ok(())
}

// ANCHOR: matmul_vjp
/// With `C = op(A) op(B)`:
///
/// | flags | `A_bar` | `B_bar` |
/// | --- | --- | --- |
/// | `A B` | `C̄ Bᵀ` | `Aᵀ C̄` |
/// | `Aᵀ B` | `B C̄ᵀ` | `A C̄` |
/// | `A Bᵀ` | `C̄ B` | `C̄ᵀ A` |
/// | `Aᵀ Bᵀ` | `Bᵀ C̄ᵀ` | `C̄ᵀ Aᵀ` |
pub(crate) fn vjp<F: Element>(
    g: &mut Graph<F>,
    flags: Flags,
    a: NodeId,
    b: NodeId,
    c_bar: NodeId,
) -> Result<OperandGrads> {
    let (a_bar, b_bar) = match flags {
        (false, false) => (
            g.matmul_t(c_bar, b, false, true)?,
            g.matmul_t(a, c_bar, true, false)?,
        ),
        (true, false) => (
            g.matmul_t(b, c_bar, false, true)?,
            g.matmul_t(a, c_bar, false, false)?,
        ),
        (false, true) => (
            g.matmul_t(c_bar, b, false, false)?,
            g.matmul_t(c_bar, a, true, false)?,
        ),
        (true, true) => (
            g.matmul_t(b, c_bar, true, true)?,
            g.matmul_t(c_bar, a, true, true)?,
        ),
    };
    Ok(smallvec![Some(a_bar), Some(b_bar)])
}
// ANCHOR_END: matmul_vjp

impl<F: Element> Graph<F> {
    /// Matrix product `a b` over the last two axes; batch axes broadcast.
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// let x = g.input("x", [None, Some(784)])?;
    /// let w = g.input("w", [784, 32])?;
    /// let h = g.matmul(x, w)?;
    /// assert_eq!(g.shape(h)?.to_string(), "[?, 32]");
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn matmul(&mut self, a: NodeId, b: NodeId) -> Result<NodeId> {
        self.matmul_t(a, b, false, false)
    }

    /// Matrix product with either operand transposed (last two axes swapped), without copying.
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// let x = g.input("x", [5, 3])?;
    /// let gram = g.matmul_t(x, x, true, false)?; // xᵀ x
    /// assert_eq!(g.shape(gram)?.to_string(), "[3, 3]");
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn matmul_t(
        &mut self,
        a: NodeId,
        b: NodeId,
        transpose_lhs: bool,
        transpose_rhs: bool,
    ) -> Result<NodeId> {
        self.add_op(
            Op::MatMul {
                transpose_lhs,
                transpose_rhs,
            },
            &[a, b],
        )
    }
}
