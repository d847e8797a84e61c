//! Graphviz DOT export: node names, ops and shapes, operand slots on the edges.

use crate::error::Result;
use crate::ops::Op;
use crate::{Element, Graph, NodeId};
use petgraph::graph::NodeIndex;
use petgraph::visit::EdgeRef;
use std::fmt::Write;

/// Renders the graph, or only what `roots` depend on, as a DOT digraph
/// (`dot -Tsvg graph.dot -o graph.svg`). Inputs are drawn as ellipses, parameters as filled
/// boxes, constants as plain text, custom ops as bold boxes under their own name; edges of
/// multi-operand ops are labelled with the slot.
///
/// # Errors
/// A root handle from another graph.
///
/// ```
/// use dendrite_graph::{to_dot, Graph};
/// let mut g = Graph::<f32>::new();
/// let x = g.input("x", [None, Some(2)])?;
/// let y = g.mul(x, x)?;
/// let dot = to_dot(&g, Some(&[y]))?;
/// assert!(dot.starts_with("digraph"));
/// assert!(dot.contains("mul") && dot.contains("[?, 2]"));
/// # Ok::<(), dendrite_graph::GraphError>(())
/// ```
pub fn to_dot<F: Element>(graph: &Graph<F>, roots: Option<&[NodeId]>) -> Result<String> {
    let n = graph.node_count();
    let mut keep = vec![roots.is_none(); n];
    if let Some(roots) = roots {
        let mut stack = Vec::new();
        for &r in roots {
            graph.check(r)?;
            stack.push(r.index());
        }
        while let Some(i) = stack.pop() {
            if std::mem::replace(&mut keep[i], true) {
                continue;
            }
            stack.extend(
                graph
                    .dag()
                    .neighbors_directed(NodeIndex::new(i), petgraph::Direction::Incoming)
                    .map(|p| p.index()),
            );
        }
    }
    let mut out = String::from(
        "digraph dendrite {\n  rankdir=TB;\n  node [fontname=\"Helvetica\", fontsize=10];\n",
    );
    for i in (0..n).filter(|&i| keep[i]) {
        let node = &graph.dag()[NodeIndex::new(i)];
        let style = match node.op() {
            Op::Input => "shape=ellipse, style=filled, fillcolor=\"#dbeafe\"",
            Op::Parameter => "shape=box, style=filled, fillcolor=\"#fde68a\"",
            Op::Constant => "shape=plaintext",
            Op::Custom(_) => "shape=box, style=\"rounded,bold\"",
            _ => "shape=box, style=rounded",
        };
        let label = format!(
            "{}\\n{} {}",
            escape(node.name()),
            node.op().name(),
            node.shape()
        );
        let _ = writeln!(out, "  n{i} [label=\"{label}\", {style}];");
    }
    for edge in graph.dag().edge_references() {
        let (s, t) = (edge.source().index(), edge.target().index());
        if keep[s] && keep[t] {
            let arity = graph
                .dag()
                .edges_directed(edge.target(), petgraph::Direction::Incoming)
                .count();
            if arity > 1 {
                let _ = writeln!(
                    out,
                    "  n{s} -> n{t} [label=\"{}\", fontsize=8];",
                    edge.weight()
                );
            } else {
                let _ = writeln!(out, "  n{s} -> n{t};");
            }
        }
    }
    out.push_str("}\n");
    Ok(out)
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}
