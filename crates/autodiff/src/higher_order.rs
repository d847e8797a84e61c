//! Higher-order products built from the reverse sweep: JVPs, Hessian-vector products, and
//! small dense Jacobians and Hessians.

use crate::error::{AutodiffError, Result};
use crate::reverse::{grad, vjp};
use dendrite_graph::{limits, Element, Graph, NodeId, Shape};

fn check_pairs<F: Element>(
    g: &Graph<F>,
    wrt: &[NodeId],
    others: &[NodeId],
    what: &'static str,
) -> Result<()> {
    if wrt.len() != others.len() {
        return Err(AutodiffError::CountMismatch {
            wrt: wrt.len(),
            given: others.len(),
            what,
        });
    }
    for (&w, &t) in wrt.iter().zip(others) {
        let (ws, ts) = (g.shape(w)?, g.shape(t)?);
        if ws != ts {
            return Err(AutodiffError::PairShape {
                what,
                node: g.name(w)?.to_owned(),
                expected: ws.clone(),
                actual: ts.clone(),
            });
        }
    }
    Ok(())
}

/// `Σ_i sum(a_i ⊙ b_i)`: the inner product of two lists of same-shaped tensors.
pub(crate) fn inner<F: Element>(g: &mut Graph<F>, a: &[NodeId], b: &[NodeId]) -> Result<NodeId> {
    let mut total: Option<NodeId> = None;
    for (&x, &y) in a.iter().zip(b) {
        let p = g.mul(x, y)?;
        let s = g.sum_all(p)?;
        total = Some(match total {
            Some(t) => g.add(t, s)?,
            None => s,
        });
    }
    Ok(match total {
        Some(t) => t,
        None => g.scalar(0.0),
    })
}

/// Forward-mode product `J t = Σ_i ∂output/∂wrt_i · t_i`, by the transpose trick: the VJP
/// `u(c) = cᵀ J` is linear in the cotangent `c`, so `J t = ∂⟨u(c), t⟩/∂c`, one more reverse
/// sweep. The dummy cotangent is zeros (its value never matters, only its position).
///
/// When custom ops lie between `wrt` and `output`, tangents are pushed forward node by node
/// instead, so that a custom op's own JVP rule is used where it has one
/// ([`CustomOp::jvp`](dendrite_graph::CustomOp::jvp)); a custom op without one has its VJP
/// rule transposed, and one with neither rule is refused.
///
/// # Errors
/// [`AutodiffError::CountMismatch`] or [`AutodiffError::PairShape`] for tangents that do not
/// match `wrt`.
///
/// ```
/// use dendrite_autodiff::jvp;
/// use dendrite_graph::{compile, Graph};
/// use ndarray::arr1;
/// let mut g = Graph::<f64>::new();
/// let x = g.input("x", [2])?;
/// let t = g.input("t", [2])?;
/// let y = g.mul(x, x)?;                       // J = diag(2x)
/// let jt = jvp(&mut g, y, &[x], &[t])?;
/// let mut plan = compile(&g, &[jt])?;
/// let (xv, tv) = (arr1(&[1.0, 2.0]).into_dyn(), arr1(&[1.0, 1.0]).into_dyn());
/// let out = plan.run(&g, &[("x", xv.view()), ("t", tv.view())])?;
/// assert_eq!(out.get(0)?, arr1(&[2.0, 4.0]).into_dyn().view());
/// # Ok::<(), dendrite_autodiff::AutodiffError>(())
/// ```
// ANCHOR: jvp
pub fn jvp<F: Element>(
    g: &mut Graph<F>,
    output: NodeId,
    wrt: &[NodeId],
    tangents: &[NodeId],
) -> Result<NodeId> {
    g.atomically(|g| {
        check_pairs(g, wrt, tangents, "tangents")?;
        if crate::tangent::has_custom_op(g, output, wrt)? {
            return crate::tangent::forward_sweep(g, output, wrt, tangents);
        }
        let dummy = g.zeros_like(output)?;
        let u = vjp(g, output, wrt, dummy)?;
        let s = inner(g, &u, tangents)?;
        let ct = g.ones_like(s)?;
        Ok(vjp(g, s, &[dummy], ct)?[0])
    })
}
// ANCHOR_END: jvp

/// Hessian-vector product `H v` of a scalar output: the gradient of `⟨∇f, v⟩`.
///
/// # Errors
/// [`AutodiffError::NonScalarOutput`], or mismatched `vectors`.
///
/// ```
/// use dendrite_autodiff::hvp;
/// use dendrite_graph::{compile, Graph};
/// use ndarray::arr1;
/// let mut g = Graph::<f64>::new();
/// let x = g.input("x", [2])?;
/// let v = g.input("v", [2])?;
/// let x3 = g.pow(x, 3.0)?;
/// let f = g.sum_all(x3)?;                    // H = diag(6x)
/// let hv = hvp(&mut g, f, &[x], &[v])?;
/// let mut plan = compile(&g, &hv)?;
/// let (xv, vv) = (arr1(&[1.0, 2.0]).into_dyn(), arr1(&[1.0, -1.0]).into_dyn());
/// let out = plan.run(&g, &[("x", xv.view()), ("v", vv.view())])?;
/// assert_eq!(out.get(0)?, arr1(&[6.0, -12.0]).into_dyn().view());
/// # Ok::<(), dendrite_autodiff::AutodiffError>(())
/// ```
// ANCHOR: hvp
pub fn hvp<F: Element>(
    g: &mut Graph<F>,
    output: NodeId,
    wrt: &[NodeId],
    vectors: &[NodeId],
) -> Result<Vec<NodeId>> {
    g.atomically(|g| {
        check_pairs(g, wrt, vectors, "vectors")?;
        let gradient = grad(g, output, wrt)?;
        let s = inner(g, &gradient, vectors)?;
        grad(g, s, wrt)
    })
}
// ANCHOR_END: hvp

fn fixed<F: Element>(g: &Graph<F>, node: NodeId, what: &'static str) -> Result<Shape> {
    let shape = g.shape(node)?.clone();
    if shape.is_fixed() {
        Ok(shape)
    } else {
        Err(AutodiffError::NeedsFixedShape {
            what,
            node: g.name(node)?.to_owned(),
            shape,
        })
    }
}

fn basis<F: Element>(g: &mut Graph<F>, shape: &Shape, i: usize) -> Result<NodeId> {
    let dims = shape.concrete().unwrap_or_default();
    let mut e = limits::zeros::<F>("basis", "basis", &dims)?;
    if let Some(slot) = e.iter_mut().nth(i) {
        *slot = F::one();
    }
    Ok(g.constant(e))
}

/// Stacks same-shaped rows along a new leading axis, then shapes the result as `lead ++ row`.
fn stack<F: Element>(
    g: &mut Graph<F>,
    rows: &[NodeId],
    lead: &Shape,
    row: &Shape,
) -> Result<NodeId> {
    let mut expanded = Vec::with_capacity(rows.len());
    for &r in rows {
        expanded.push(g.expand_dims(r, &[0])?);
    }
    let stacked = g.concat(&expanded, 0)?;
    let dims: Vec<usize> = lead
        .concrete()
        .unwrap_or_default()
        .into_iter()
        .chain(row.concrete().unwrap_or_default())
        .collect();
    Ok(g.reshape(stacked, dims)?)
}

/// The full Jacobian `∂output/∂wrt`, shaped `output.shape ++ wrt.shape`, one VJP per output
/// element: for small outputs.
///
/// # Errors
/// [`AutodiffError::NeedsFixedShape`] when either shape has a dynamic dimension,
/// [`AutodiffError::TooLarge`] when the result (or its basis) would exceed the per-tensor
/// limit of `dendrite_graph::limits`.
///
/// ```
/// use dendrite_autodiff::jacobian;
/// use dendrite_graph::{compile, Graph};
/// use ndarray::{arr1, arr2};
/// let mut g = Graph::<f64>::new();
/// let x = g.input("x", [2])?;
/// let y = g.mul(x, x)?;
/// let j = jacobian(&mut g, y, x)?;
/// let mut plan = compile(&g, &[j])?;
/// let xv = arr1(&[3.0, 5.0]).into_dyn();
/// let out = plan.run(&g, &[("x", xv.view())])?;
/// assert_eq!(out.get(0)?, arr2(&[[6.0, 0.0], [0.0, 10.0]]).into_dyn().view());
/// # Ok::<(), dendrite_autodiff::AutodiffError>(())
/// ```
pub fn jacobian<F: Element>(g: &mut Graph<F>, output: NodeId, wrt: NodeId) -> Result<NodeId> {
    g.atomically(|g| {
        let out_shape = fixed(g, output, "jacobian")?;
        let wrt_shape = fixed(g, wrt, "jacobian")?;
        let m = within_limits::<F>(g, "jacobian", output, &out_shape, &wrt_shape)?;
        let mut rows = Vec::with_capacity(m);
        for i in 0..m {
            let e = basis(g, &out_shape, i)?;
            rows.push(vjp(g, output, &[wrt], e)?[0]);
        }
        assemble(g, &rows, &out_shape, &wrt_shape)
    })
}

/// The full Hessian of a scalar output, shaped `wrt.shape ++ wrt.shape`, one HVP per element
/// of `wrt`: for small inputs.
///
/// # Errors
/// [`AutodiffError::NeedsFixedShape`], [`AutodiffError::NonScalarOutput`],
/// [`AutodiffError::TooLarge`] as for [`jacobian`].
///
/// ```
/// use dendrite_autodiff::hessian;
/// use dendrite_graph::{compile, Graph};
/// use ndarray::{arr1, arr2};
/// let mut g = Graph::<f64>::new();
/// let x = g.input("x", [2])?;
/// let a = g.constant(arr2(&[[1.0, 2.0], [3.0, 4.0]]).into_dyn());
/// let col = g.reshape(x, [2, 1])?;
/// let ax = g.matmul(a, col)?;
/// let xax = g.matmul_t(col, ax, true, false)?;   // xᵀ A x, whose Hessian is A + Aᵀ
/// let f = g.sum_all(xax)?;
/// let h = hessian(&mut g, f, x)?;
/// let mut plan = compile(&g, &[h])?;
/// let xv = arr1(&[0.3, -0.7]).into_dyn();
/// let out = plan.run(&g, &[("x", xv.view())])?;
/// assert_eq!(out.get(0)?, arr2(&[[2.0, 5.0], [5.0, 8.0]]).into_dyn().view());
/// # Ok::<(), dendrite_autodiff::AutodiffError>(())
/// ```
pub fn hessian<F: Element>(g: &mut Graph<F>, output: NodeId, wrt: NodeId) -> Result<NodeId> {
    g.atomically(|g| {
        let wrt_shape = fixed(g, wrt, "hessian")?;
        let n = within_limits::<F>(g, "hessian", output, &wrt_shape, &wrt_shape)?;
        let gradient = grad(g, output, &[wrt])?[0];
        let mut rows = Vec::with_capacity(n);
        for j in 0..n {
            let e = basis(g, &wrt_shape, j)?;
            let s = inner(g, &[gradient], &[e])?;
            rows.push(grad(g, s, &[wrt])?[0]);
        }
        assemble(g, &rows, &wrt_shape, &wrt_shape)
    })
}

/// Refuses a Jacobian or Hessian whose result, or whose one-hot basis constants (one per
/// row, each the size of a row's index space), would exceed the per-tensor limit; returns the
/// number of rows.
fn within_limits<F: Element>(
    g: &Graph<F>,
    what: &'static str,
    node: NodeId,
    lead: &Shape,
    row: &Shape,
) -> Result<usize> {
    let rows = lead.size().unwrap_or(0);
    let columns = row.size().unwrap_or(0);
    let too_large = |reason: String| -> Result<usize> {
        Err(AutodiffError::TooLarge {
            what,
            node: g.name(node)?.to_owned(),
            rows,
            columns,
            reason,
        })
    };
    let name = g.name(node)?;
    if let Err(e) = limits::check_size::<F>(what, name, &[rows, columns]) {
        return too_large(format!("the result would not fit: {e}"));
    }
    if let Err(e) = limits::check_size::<F>(what, name, &[rows, rows]) {
        return too_large(format!("its basis constants would not fit: {e}"));
    }
    Ok(rows)
}

/// The rows stacked as `lead ++ row`, or zeros of that shape when there are no rows.
fn assemble<F: Element>(
    g: &mut Graph<F>,
    rows: &[NodeId],
    lead: &Shape,
    row: &Shape,
) -> Result<NodeId> {
    if rows.is_empty() {
        let dims: Vec<usize> = lead
            .concrete()
            .unwrap_or_default()
            .into_iter()
            .chain(row.concrete().unwrap_or_default())
            .collect();
        return Ok(g.constant(limits::zeros("jacobian", "zeros", &dims)?));
    }
    stack(g, rows, lead, row)
}
