//! The reverse sweep: vector-Jacobian products as new nodes of the same graph.
//!
//! Given an output `y` with cotangent `ȳ`, the sweep visits the nodes between the `wrt` nodes
//! and `y` in reverse topological order. Each node's cotangent is complete when it is visited
//! (every user has a higher index and was visited before), so its local rule
//! ([`Graph::local_vjp`]) can run once and hand cotangents to its operands, where contributions
//! are summed. Broadcasting is undone here, in one place: a contribution whose declared shape
//! differs from its operand's is summed down with `sum_like`.
//!
//! Because every cotangent is an ordinary node, differentiating the result again is just
//! another sweep: that is how [`crate::hvp`] and [`crate::jvp`] work.

use crate::error::{AutodiffError, Result};
use dendrite_graph::{Element, Graph, NodeId, Shape};

/// Cotangents of `wrt` for an output `output` whose cotangent is `cotangent` (same shape):
/// the vector-Jacobian products `cotangentᵀ ∂output/∂wrt`, as new nodes.
///
/// Only nodes on a path from some `wrt` node to `output` are differentiated. A `wrt` node that
/// does not reach `output` gets zeros of its own shape.
///
/// # Errors
/// [`AutodiffError::PairShape`] when the cotangent's shape differs from the output's; graph
/// errors from bad handles or ops without a rule in that configuration.
///
/// ```
/// use dendrite_autodiff::vjp;
/// use dendrite_graph::{compile, Graph};
/// use ndarray::arr1;
/// let mut g = Graph::<f64>::new();
/// let x = g.input("x", [2])?;
/// let y = g.mul(x, x)?;                 // y = x², so ȳᵀ ∂y/∂x = 2 x ȳ
/// let y_bar = g.input("y_bar", [2])?;
/// let x_bar = vjp(&mut g, y, &[x], y_bar)?;
/// let mut plan = compile(&g, &x_bar)?;
/// let (xv, yb) = (arr1(&[3.0, -1.0]).into_dyn(), arr1(&[1.0, 10.0]).into_dyn());
/// let out = plan.run(&g, &[("x", xv.view()), ("y_bar", yb.view())])?;
/// assert_eq!(out.get(0)?, arr1(&[6.0, -20.0]).into_dyn().view());
/// # Ok::<(), dendrite_autodiff::AutodiffError>(())
/// ```
// ANCHOR: reverse_vjp
pub fn vjp<F: Element>(
    g: &mut Graph<F>,
    output: NodeId,
    wrt: &[NodeId],
    cotangent: NodeId,
) -> Result<Vec<NodeId>> {
    g.atomically(|g| {
        let out_shape = g.shape(output)?.clone();
        let ct_shape = g.shape(cotangent)?.clone();
        if !same_shape(&out_shape, &ct_shape) {
            return Err(AutodiffError::PairShape {
                what: "cotangent",
                node: g.name(output)?.to_owned(),
                expected: out_shape,
                actual: ct_shape,
            });
        }
        for &w in wrt {
            g.check(w)?;
        }
        let active = active_nodes(g, output, wrt)?;
        let mut cotangents: Vec<Option<NodeId>> = vec![None; output.index() + 1];
        cotangents[output.index()] = Some(cotangent);
        // A wrt node added after the output cannot reach it: it only gets zeros below.
        let lowest = wrt
            .iter()
            .map(|w| w.index())
            .min()
            .unwrap_or(output.index());
        let nodes: Vec<NodeId> = g
            .nodes()
            .skip(lowest)
            .take((output.index() + 1).saturating_sub(lowest))
            .collect();
        for &node in nodes.iter().rev() {
            let Some(y_bar) = cotangents[node.index()] else {
                continue;
            };
            if !active[node.index()] || g.op(node)?.is_leaf() {
                continue;
            }
            let operands = g.operands(node)?;
            let grads = g.local_vjp(node, y_bar)?;
            for (&x, x_bar) in operands.iter().zip(grads) {
                let Some(x_bar) = x_bar else { continue };
                if !active[x.index()] {
                    continue;
                }
                let x_bar = unbroadcast(g, x_bar, x)?;
                cotangents[x.index()] = Some(match cotangents[x.index()] {
                    Some(sum) => g.add(sum, x_bar)?,
                    None => x_bar,
                });
            }
        }
        wrt.iter()
            .map(|&w| match cotangents.get(w.index()).copied().flatten() {
                Some(c) => Ok(c),
                None => Ok(g.zeros_like(w)?),
            })
            .collect()
    })
}
// ANCHOR_END: reverse_vjp

/// Gradients of a scalar `output` (a single element, any rank) with respect to `wrt`.
///
/// # Errors
/// [`AutodiffError::NonScalarOutput`] when `output` may have more than one element.
///
/// ```
/// use dendrite_autodiff::grad;
/// use dendrite_graph::{compile, Graph};
/// let mut g = Graph::<f64>::new();
/// let x = g.input("x", dendrite_graph::Shape::scalar())?;
/// let y = g.tanh(x)?;
/// let dy = grad(&mut g, y, &[x])?;          // d tanh = 1 - tanh²
/// let mut plan = compile(&g, &dy)?;
/// let xv = ndarray::arr0(0.5).into_dyn();
/// let out = plan.run(&g, &[("x", xv.view())])?;
/// assert!((out.scalar(0)? - (1.0 - 0.5_f64.tanh().powi(2))).abs() < 1e-15);
/// # Ok::<(), dendrite_autodiff::AutodiffError>(())
/// ```
// ANCHOR: grad
pub fn grad<F: Element>(g: &mut Graph<F>, output: NodeId, wrt: &[NodeId]) -> Result<Vec<NodeId>> {
    g.atomically(|g| {
        let shape = g.shape(output)?.clone();
        if shape.size() != Some(1) {
            return Err(AutodiffError::NonScalarOutput {
                node: g.name(output)?.to_owned(),
                shape,
            });
        }
        let seed = g.constant(ndarray::ArrayD::from_elem(
            ndarray::IxDyn(&shape.concrete().unwrap_or_default()),
            F::one(),
        ));
        vjp(g, output, wrt, seed)
    })
}
// ANCHOR_END: grad

// ANCHOR: active_nodes
/// Marks the nodes that lie on some path from a `wrt` node to `output`.
pub(crate) fn active_nodes<F: Element>(
    g: &Graph<F>,
    output: NodeId,
    wrt: &[NodeId],
) -> Result<Vec<bool>> {
    let n = output.index() + 1;
    // Forward: reachable from wrt. Index order is topological, so one ascending pass suffices.
    let mut from_wrt = vec![false; n];
    for &w in wrt {
        if w.index() < n {
            from_wrt[w.index()] = true;
        }
    }
    let lowest = wrt.iter().map(|w| w.index()).min().unwrap_or(n);
    for node in g.nodes().take(n).skip(lowest) {
        if !from_wrt[node.index()] && g.operands(node)?.iter().any(|o| from_wrt[o.index()]) {
            from_wrt[node.index()] = true;
        }
    }
    // Backward: reaches the output, restricted to nodes reachable from wrt.
    let mut active = vec![false; n];
    let mut stack = vec![output];
    while let Some(node) = stack.pop() {
        let i = node.index();
        if active[i] || !from_wrt[i] {
            continue;
        }
        active[i] = true;
        stack.extend(g.operands(node)?);
    }
    Ok(active)
}
// ANCHOR_END: active_nodes

// ANCHOR: unbroadcast
/// Sums a cotangent down to its operand's shape when the op broadcast the operand.
pub(crate) fn unbroadcast<F: Element>(
    g: &mut Graph<F>,
    x_bar: NodeId,
    x: NodeId,
) -> Result<NodeId> {
    if same_shape(g.shape(x_bar)?, g.shape(x)?) {
        Ok(x_bar)
    } else {
        Ok(g.sum_like(x_bar, x)?)
    }
}
// ANCHOR_END: unbroadcast

/// Declared shapes that are certainly the same at run time for this purpose: equal dimension
/// lists (a dynamic dimension is never stretched, which the plan enforces).
fn same_shape(a: &Shape, b: &Shape) -> bool {
    a == b
}
