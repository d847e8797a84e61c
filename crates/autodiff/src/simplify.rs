//! Simplification of derived graphs: common-subexpression elimination, constant folding and
//! algebraic identities.
//!
//! The graph is append-only, so [`simplify`] does not edit nodes: it rebuilds what the outputs
//! depend on as new nodes, in topological order, and returns the new outputs. Leaves (inputs,
//! parameters, constants) are kept, so feeds by name and parameter updates keep working; the
//! old nodes stay in the graph, unused by plans of the new outputs. A rebuilt node is named
//! inside the name of the node it replaces (`dense_1/matmul/matmul`), so errors still say
//! where they come from.
//!
//! Every rewrite preserves the node's declared shape (and so its run-time shape): `x · 1` is
//! `x` only when the `1` does not broadcast `x` to a larger shape.
//!
//! | rewrite | condition |
//! | --- | --- |
//! | CSE: a node equal to an earlier one (same op, same operands) is that node | always |
//! | equal small constants (≤ 64 elements) are one constant | always |
//! | fold: an op whose operands are constants (or, for `broadcast_like`, `sum_like`, `scatter_add`'s target and `dim_size`, whose shape-only operand has a fixed shape) becomes a constant | result fixed, ≤ 2¹⁶ elements |
//! | `x·1`, `1·x`, `x+0`, `0+x`, `x-0`, `x/1` → `x` | result shape = `x`'s shape |
//! | `-(-x)` → `x` | always |
//! | `permute(permute(x, p), q)` → `permute(x, p∘q)`, identity → `x` | always |
//! | `reshape(reshape(x, s), t)` (or of an `expand_dims`) → `reshape(x, t)`; a reshape to `x`'s own shape → `x` | shape preserved |
//! | a broadcast of a single value replicated by `expand_dims`/`reshape`/broadcasts → a broadcast of that value | shape preserved |
//! | `broadcast_like`/`broadcast_to`/`sum_like` to `x`'s own shape → `x` | fixed shape |
//! | `sum_like(broadcast(y), like)` back to `y`'s shape → `n · y` (`n` copies) | fixed shapes |
//! | `sum_like(max_pool2d_scatter(x, v), like)` → `sum_like(v, like)` (up to rounding) | `like` keeps at most the channel axis |
//! | `stop_gradient(constant)` → the constant | always |
//! | reductions over no axes (or size-1 axes kept), empty `expand_dims`, a one-operand `concat`, a full `slice`, a zero `pad` → `x` | shape preserved |

mod identity;

use crate::error::Result;
use dendrite_graph::{
    AxisOp, BroadcastOp, Element, Graph, GraphError, IndexOp, LayoutOp, NodeId, Op, Shape,
};
use ndarray::{ArrayD, IxDyn};
use smallvec::SmallVec;
use std::collections::HashMap;

/// Constants with more elements than this are not folded.
const FOLD_LIMIT: usize = 1 << 16;
/// Constants with at most this many elements are deduplicated by value.
const DEDUP_LIMIT: usize = 64;

/// What [`simplify`] did: node counts of what the outputs depend on (leaves included), before
/// and after, and how many rewrites of each kind fired.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimplifyStats {
    /// Nodes the original outputs depend on (themselves included).
    pub before: usize,
    /// Nodes the simplified outputs depend on.
    pub after: usize,
    /// Nodes replaced by a computed constant.
    pub folded: usize,
    /// Nodes merged into an equal earlier node (common subexpressions, equal constants).
    pub merged: usize,
    /// Algebraic identities applied.
    pub identities: usize,
}

/// The result of [`simplify`]: the new output nodes, in the order given, and statistics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Simplified {
    /// The simplified outputs, one per original output.
    pub outputs: Vec<NodeId>,
    /// Node counts and rewrite counts.
    pub stats: SimplifyStats,
}

/// Rebuilds what `outputs` depend on, simplified, and returns the new outputs. Their values
/// equal the old outputs' values for every feed (up to floating-point rounding where a sum of
/// `n` copies becomes a product by `n`, or a sum over a max pool's scattered gradient a sum
/// over the gradient before the scatter).
///
/// # Errors
/// Graph errors for foreign or unknown output handles.
///
/// ```
/// use dendrite_autodiff::{grad, simplify::simplify};
/// use dendrite_graph::{compile, Graph};
/// let mut g = Graph::<f64>::new();
/// let x = g.input("x", [3])?;
/// let one = g.scalar(1.0);
/// let y = g.mul(x, one)?;                // x · 1 → x
/// let t = g.tanh(y)?;
/// let u = g.tanh(y)?;                    // the same as t
/// let s = g.add(t, u)?;
/// let loss = g.sum_all(s)?;
/// let dx = grad(&mut g, loss, &[x])?;
/// let simple = simplify(&mut g, &[loss, dx[0]])?;
/// assert!(simple.stats.after < simple.stats.before);
/// let xv = ndarray::arr1(&[0.5, -1.0, 2.0]).into_dyn();
/// let feeds = [("x", xv.view())];
/// let before = compile(&g, &[loss, dx[0]])?.run(&g, &feeds)?.to_vec()?;
/// let after = compile(&g, &simple.outputs)?.run(&g, &feeds)?.to_vec()?;
/// assert_eq!(before, after);
/// # Ok::<(), dendrite_autodiff::AutodiffError>(())
/// ```
pub fn simplify<F: Element>(g: &mut Graph<F>, outputs: &[NodeId]) -> Result<Simplified> {
    for &o in outputs {
        g.check(o)?;
    }
    let before = dependencies(g, outputs)?;
    let mut s = Simplifier {
        cons: HashMap::new(),
        consts: HashMap::new(),
        stats: SimplifyStats::default(),
    };
    let last = outputs.iter().map(|o| o.index() + 1).max().unwrap_or(0);
    let nodes: Vec<NodeId> = g.nodes().take(last).collect();
    let mut map: Vec<Option<NodeId>> = vec![None; last];
    for id in nodes {
        if !before[id.index()] {
            continue;
        }
        let op = g.op(id)?.clone();
        let new = match op {
            Op::Input | Op::Parameter => id,
            Op::Constant => s.known_constant(g, id)?,
            _ => {
                let xs: SmallVec<[NodeId; 3]> = g
                    .operands(id)?
                    .iter()
                    .map(|x| map[x.index()].ok_or_else(|| internal(g, id)))
                    .collect::<Result<_>>()?;
                let declared = g.shape(id)?.clone();
                // The new nodes are named inside the old node's name (`dense_1/matmul` gives
                // `dense_1/matmul/matmul`), so a run-time error of the simplified graph still
                // names the node the user's layer built.
                let scope = g.name(id)?.to_owned();
                g.with_scope(&scope, |g| s.rebuild(g, op, xs, &declared))?
            }
        };
        map[id.index()] = Some(new);
    }
    let new_outputs: Vec<NodeId> = outputs
        .iter()
        .map(|o| map[o.index()].ok_or_else(|| internal(g, *o)))
        .collect::<Result<_>>()?;
    s.stats.before = before.iter().filter(|&&b| b).count();
    s.stats.after = dependencies(g, &new_outputs)?
        .iter()
        .filter(|&&b| b)
        .count();
    Ok(Simplified {
        outputs: new_outputs,
        stats: s.stats,
    })
}

/// A node whose operand was not rebuilt before it: a broken invariant (nodes are visited in
/// insertion order, which is a topological order).
fn internal<F: Element>(g: &Graph<F>, id: NodeId) -> crate::AutodiffError {
    GraphError::Internal {
        op: "simplify",
        node: g.node(id).map(|n| n.name().to_owned()).unwrap_or_default(),
        what: "an operand was not rebuilt before the node using it",
    }
    .into()
}

/// Marks every node the `outputs` depend on (themselves included).
fn dependencies<F: Element>(g: &Graph<F>, outputs: &[NodeId]) -> Result<Vec<bool>> {
    let n = outputs.iter().map(|o| o.index() + 1).max().unwrap_or(0);
    let mut seen = vec![false; n];
    let mut stack: Vec<NodeId> = outputs.to_vec();
    while let Some(id) = stack.pop() {
        if std::mem::replace(&mut seen[id.index()], true) {
            continue;
        }
        stack.extend(g.operands(id)?);
    }
    Ok(seen)
}

type ConsKey<F> = (Op<F>, SmallVec<[NodeId; 3]>);

struct Simplifier<F: Element> {
    /// Hash-consing of rebuilt nodes: (op, new operands) → new node.
    cons: HashMap<ConsKey<F>, NodeId>,
    /// Small constants by (shape, bits of the values).
    consts: HashMap<(Vec<usize>, Vec<u64>), NodeId>,
    stats: SimplifyStats,
}

impl<F: Element> Simplifier<F> {
    /// An existing constant, or an equal earlier one.
    fn known_constant(&mut self, g: &Graph<F>, id: NodeId) -> Result<NodeId> {
        let value = g.value(id)?;
        if value.len() > DEDUP_LIMIT {
            return Ok(id);
        }
        let key = (
            value.shape().to_vec(),
            value.iter().map(|v| v.as_f64().to_bits()).collect(),
        );
        match self.consts.get(&key) {
            Some(&earlier) => {
                self.stats.merged += 1;
                Ok(earlier)
            }
            None => {
                self.consts.insert(key, id);
                Ok(id)
            }
        }
    }

    /// A constant holding `value`, reusing an equal one.
    fn new_constant(&mut self, g: &mut Graph<F>, value: ArrayD<F>) -> NodeId {
        if value.len() > DEDUP_LIMIT {
            return g.constant(value);
        }
        let key = (
            value.shape().to_vec(),
            value.iter().map(|v| v.as_f64().to_bits()).collect(),
        );
        if let Some(&id) = self.consts.get(&key) {
            return id;
        }
        let id = g.constant(value);
        self.consts.insert(key, id);
        id
    }

    /// The simplified node computing `op` on the (already simplified) operands `xs`, whose
    /// declared shape is `declared`.
    fn rebuild(
        &mut self,
        g: &mut Graph<F>,
        op: Op<F>,
        xs: SmallVec<[NodeId; 3]>,
        declared: &Shape,
    ) -> Result<NodeId> {
        if let Some(id) = self.identity(g, &op, &xs, declared)? {
            self.stats.identities += 1;
            return Ok(id);
        }
        if let Some(id) = self.fold(g, &op, &xs, declared)? {
            self.stats.folded += 1;
            return Ok(id);
        }
        let key = (op, xs);
        if let Some(&id) = self.cons.get(&key) {
            self.stats.merged += 1;
            return Ok(id);
        }
        let id = emit(g, &key.0, &key.1)?;
        self.cons.insert(key, id);
        Ok(id)
    }

    /// Evaluates `op` now if every operand it reads is known, giving a constant.
    fn fold(
        &mut self,
        g: &mut Graph<F>,
        op: &Op<F>,
        xs: &[NodeId],
        declared: &Shape,
    ) -> Result<Option<NodeId>> {
        match declared.size() {
            Some(n) if n <= FOLD_LIMIT => {}
            _ => return Ok(None),
        }
        let mut values: Vec<ArrayD<F>> = Vec::with_capacity(xs.len());
        for (slot, &x) in xs.iter().enumerate() {
            if matches!(g.op(x)?, Op::Constant) {
                values.push(g.value(x)?.to_owned());
            } else if shape_only(op, slot) {
                // Only the operand's shape is read, but the kernel wants a value: a stand-in
                // of zeros, which must be bounded too (a huge shape-only operand folding into
                // a small result would otherwise allocate its full size).
                match g.shape(x)?.concrete() {
                    Some(dims)
                        if dims
                            .iter()
                            .try_fold(1usize, |a, &d| a.checked_mul(d))
                            .is_some_and(|n| n <= FOLD_LIMIT) =>
                    {
                        values.push(ArrayD::zeros(IxDyn(&dims)))
                    }
                    _ => return Ok(None),
                }
            } else {
                return Ok(None);
            }
        }
        let views: Vec<_> = values.iter().map(|v| v.view()).collect();
        match op.evaluate("simplify", &views) {
            Ok(v) if Shape::fixed(v.shape()) == *declared => Ok(Some(self.new_constant(g, v))),
            // A kernel error (an index out of range, say) is left for the run to report.
            _ => Ok(None),
        }
    }
}

/// When `x` is a single-element node replicated by `expand_dims`, `reshape` and broadcasts, the
/// single-element node of lowest rank in that chain (every element of `x` equals its value).
fn single_value_source<F: Element>(g: &Graph<F>, x: NodeId) -> Result<Option<NodeId>> {
    let mut best: Option<(usize, NodeId)> = None;
    let mut cur = x;
    loop {
        let shape = g.shape(cur)?;
        if shape.size() == Some(1) && best.is_none_or(|(rank, _)| shape.rank() < rank) {
            best = Some((shape.rank(), cur));
        }
        match g.op(cur)? {
            Op::Layout(LayoutOp::ExpandDims(_) | LayoutOp::Reshape(_))
            | Op::Broadcast(BroadcastOp::Like | BroadcastOp::To(_)) => cur = g.operands(cur)?[0],
            _ => break,
        }
    }
    Ok(best.map(|(_, n)| n).filter(|&n| n != x))
}

/// Whether operand `slot` of `op` contributes only its shape.
fn shape_only<F: Element>(op: &Op<F>, slot: usize) -> bool {
    matches!(
        (op, slot),
        (Op::Broadcast(BroadcastOp::Like | BroadcastOp::SumLike), 1)
            | (Op::Index(IndexOp::ScatterAdd(_)), 2)
            | (Op::Axis(AxisOp::DimSize(_)), 0)
    )
}

/// Adds a node computing `op` on `xs`.
fn emit<F: Element>(g: &mut Graph<F>, op: &Op<F>, xs: &[NodeId]) -> Result<NodeId> {
    Ok(g.add_op(op.clone(), xs)?)
}
