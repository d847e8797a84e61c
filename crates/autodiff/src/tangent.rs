//! The forward sweep [`crate::jvp`] takes through graphs that contain custom ops: tangents
//! pushed from the `wrt` nodes to the output, node by node in topological order.
//!
//! A custom op with a JVP rule of its own ([`CustomOp::jvp`](dendrite_graph::CustomOp::jvp))
//! gives its output's tangent directly. Every other node (a built-in, or a custom op with only
//! a VJP rule) is transposed locally: its VJP `x̄(ȳ)` is linear in the cotangent `ȳ`, so
//! `ẏ = ∂⟨x̄(ȳ), ẋ⟩/∂ȳ`, one small reverse sweep over the nodes its rule built. A custom op
//! with neither rule is refused with [`GraphError::NotDifferentiable`] naming it.
//!
//! Graphs of built-ins only never come here: the transpose trick over the whole VJP is
//! cheaper to build.

use crate::error::Result;
use crate::higher_order::inner;
use crate::reverse::{active_nodes, unbroadcast, vjp};
use dendrite_graph::{Element, Graph, GraphError, NodeId, Op};
use smallvec::SmallVec;

/// Whether a custom op lies between `wrt` and `output`.
pub(crate) fn has_custom_op<F: Element>(
    g: &Graph<F>,
    output: NodeId,
    wrt: &[NodeId],
) -> Result<bool> {
    let active = active_nodes(g, output, wrt)?;
    for node in g.nodes().take(active.len()) {
        if active[node.index()] && matches!(g.op(node)?, Op::Custom(_)) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// `J t` by pushing tangents forward from `wrt` to `output`.
pub(crate) fn forward_sweep<F: Element>(
    g: &mut Graph<F>,
    output: NodeId,
    wrt: &[NodeId],
    tangents: &[NodeId],
) -> Result<NodeId> {
    let active = active_nodes(g, output, wrt)?;
    let mut tangent: Vec<Option<NodeId>> = vec![None; active.len()];
    for (&w, &t) in wrt.iter().zip(tangents) {
        let Some(slot) = tangent.get_mut(w.index()) else {
            continue; // added after the output: cannot reach it
        };
        // A node given twice moves along the sum of its tangents.
        *slot = Some(match *slot {
            Some(sum) => g.add(sum, t)?,
            None => t,
        });
    }
    let lowest = wrt.iter().map(|w| w.index()).min().unwrap_or(active.len());
    let nodes: Vec<NodeId> = g.nodes().take(active.len()).skip(lowest).collect();
    for node in nodes {
        if !active[node.index()] || g.op(node)?.is_leaf() {
            continue;
        }
        let operands = g.operands(node)?;
        let ts: SmallVec<[Option<NodeId>; 3]> = operands
            .iter()
            .map(|x| tangent[x.index()].filter(|_| active[x.index()]))
            .collect();
        if ts.iter().all(Option::is_none) {
            continue;
        }
        tangent[node.index()] = Some(node_tangent(g, node, &operands, &ts)?);
    }
    match tangent.get(output.index()).copied().flatten() {
        Some(t) => Ok(t),
        None => Ok(g.zeros_like(output)?),
    }
}

/// The tangent of one node from its operands' tangents.
fn node_tangent<F: Element>(
    g: &mut Graph<F>,
    node: NodeId,
    operands: &[NodeId],
    ts: &[Option<NodeId>],
) -> Result<NodeId> {
    let Op::Custom(custom) = g.op(node)?.clone() else {
        return transpose_local(g, node, operands, ts);
    };
    if let Some(t) = custom.jvp(g, operands, node, ts) {
        return Ok(t?);
    }
    transpose_local(g, node, operands, ts).map_err(|e| match e {
        crate::AutodiffError::Graph(GraphError::NotDifferentiable { op, node, .. })
            if op == custom.name() =>
        {
            GraphError::NotDifferentiable {
                op,
                node,
                reason: "this custom op defines neither a JVP nor a VJP rule",
            }
            .into()
        }
        other => other,
    })
}

/// `ẏ = ∂⟨x̄(ȳ), ẋ⟩/∂ȳ` for one node's VJP `x̄(ȳ)`, which is linear in `ȳ`.
fn transpose_local<F: Element>(
    g: &mut Graph<F>,
    node: NodeId,
    operands: &[NodeId],
    ts: &[Option<NodeId>],
) -> Result<NodeId> {
    let dummy = g.zeros_like(node)?;
    let grads = g.local_vjp(node, dummy)?;
    let (mut xs_bar, mut xs_dot) = (Vec::new(), Vec::new());
    for ((&x, x_bar), t) in operands.iter().zip(grads).zip(ts) {
        if let (Some(x_bar), Some(t)) = (x_bar, *t) {
            xs_bar.push(unbroadcast(g, x_bar, x)?);
            xs_dot.push(t);
        }
    }
    let s = inner(g, &xs_bar, &xs_dot)?;
    let ct = g.ones_like(s)?;
    Ok(vjp(g, s, &[dummy], ct)?[0])
}
