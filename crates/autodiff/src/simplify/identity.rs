//! The algebraic identities of [`simplify`](super::simplify), as a rewrite table: one rule per
//! op family, each given the node being rebuilt (its op, simplified operands and declared
//! shape) and answering with the node that replaces it, or `None` to keep it.
//!
//! A rule may only answer with a node of the declared shape, so a rewrite never changes what a
//! run computes or the shape it produces.

use super::Simplifier;
use crate::error::Result;
use dendrite_graph::ops::PoolOp;
use dendrite_graph::{
    BinaryOp, BroadcastOp, Dim, Element, Graph, LayoutOp, NodeId, Op, Shape, SliceOp, UnaryOp,
};
use smallvec::SmallVec;

/// The node being rebuilt.
struct Site<'a, F: Element> {
    op: &'a Op<F>,
    /// The simplified operands, at least one.
    xs: &'a [NodeId],
    declared: &'a Shape,
}

impl<F: Element> Site<'_, F> {
    /// The first operand, the one most rules are about.
    fn x(&self) -> NodeId {
        self.xs[0]
    }

    /// Whether `x` already has the declared shape.
    fn same(&self, g: &Graph<F>, x: NodeId) -> Result<bool> {
        Ok(g.shape(x)? == self.declared)
    }

    /// Whether `x` has the declared shape and that shape is fixed (a dynamic dimension may be
    /// stretched at run time, so only a fixed one proves an op does nothing).
    fn fixed_same(&self, g: &Graph<F>, x: NodeId) -> Result<bool> {
        Ok(self.declared.is_fixed() && self.same(g, x)?)
    }

    /// `x` itself when `holds`.
    fn x_if(&self, holds: bool) -> Option<NodeId> {
        holds.then_some(self.x())
    }
}

impl<F: Element> Simplifier<F> {
    /// Applies an algebraic identity, if one fits: the rewrite table.
    pub(super) fn identity(
        &mut self,
        g: &mut Graph<F>,
        op: &Op<F>,
        xs: &[NodeId],
        declared: &Shape,
    ) -> Result<Option<NodeId>> {
        if xs.is_empty() {
            return Ok(None);
        }
        let site = Site { op, xs, declared };
        let x = site.x();
        match op {
            Op::Binary(b) => unit_operand(g, &site, *b),
            Op::Unary(UnaryOp::Neg) => double_negation(g, x),
            Op::Layout(LayoutOp::Permute(q)) => self.permute(g, &site, q),
            Op::Layout(LayoutOp::Reshape(_)) => self.reshape(g, &site),
            Op::Layout(LayoutOp::ExpandDims(axes)) => {
                Ok(site.x_if(axes.is_empty() && site.same(g, x)?))
            }
            Op::Broadcast(BroadcastOp::To(_) | BroadcastOp::Like) => self.broadcast(g, &site),
            Op::Broadcast(BroadcastOp::SumLike) => self.sum_like(g, &site),
            Op::StopGradient => Ok(site.x_if(matches!(g.op(x)?, Op::Constant))),
            Op::Reduce {
                axes, keep_dims, ..
            } => trivial_reduce(g, &site, axes, *keep_dims),
            Op::Slice(s) => trivial_slice(g, &site, s),
            Op::Select if xs[1] == xs[2] => Ok(site.same(g, xs[1])?.then_some(xs[1])),
            _ => Ok(None),
        }
    }

    /// `permute(x, identity)` → `x`; `permute(permute(x, p), q)` → `permute(x, p∘q)`, or `x`
    /// when the composition is the identity.
    fn permute(
        &mut self,
        g: &mut Graph<F>,
        site: &Site<'_, F>,
        q: &[usize],
    ) -> Result<Option<NodeId>> {
        let a = site.x();
        if is_identity(q) {
            return Ok(Some(a));
        }
        let Op::Layout(LayoutOp::Permute(p)) = g.op(a)?.clone() else {
            return Ok(None);
        };
        let inner = g.operands(a)?[0];
        let composed: SmallVec<[usize; 4]> = q.iter().map(|&i| p[i]).collect();
        if is_identity(&composed) {
            return Ok(Some(inner));
        }
        let op = Op::Layout(LayoutOp::Permute(composed));
        Ok(Some(self.rebuild(
            g,
            op,
            SmallVec::from_slice(&[inner]),
            site.declared,
        )?))
    }

    /// A reshape to `x`'s own shape → `x`; `reshape(reshape(x, s), t)` (or of an
    /// `expand_dims`, a reshape too) → `reshape(x, t)`.
    fn reshape(&mut self, g: &mut Graph<F>, site: &Site<'_, F>) -> Result<Option<NodeId>> {
        let a = site.x();
        let dynamic = g
            .shape(a)?
            .dims()
            .iter()
            .filter(|d| **d == Dim::Dynamic)
            .count();
        // With two dynamic dimensions the same declared shape may hold different run-time ones.
        if site.same(g, a)? && dynamic <= 1 {
            return Ok(Some(a));
        }
        if !matches!(
            g.op(a)?,
            Op::Layout(LayoutOp::Reshape(_) | LayoutOp::ExpandDims(_))
        ) {
            return Ok(None);
        }
        let inner = g.operands(a)?[0];
        match site.op.infer_shape("simplify", &[g.shape(inner)?]) {
            Ok(s) if s == *site.declared => {
                let xs = SmallVec::from_slice(&[inner]);
                Ok(Some(self.rebuild(g, site.op.clone(), xs, site.declared)?))
            }
            _ => Ok(None),
        }
    }

    /// A broadcast to `x`'s own (fixed) shape → `x`; a broadcast of a replicated single value
    /// → a broadcast of the value itself.
    fn broadcast(&mut self, g: &mut Graph<F>, site: &Site<'_, F>) -> Result<Option<NodeId>> {
        let a = site.x();
        if site.fixed_same(g, a)? {
            return Ok(Some(a));
        }
        let Some(y) = super::single_value_source(g, a)? else {
            return Ok(None);
        };
        let mut operands: SmallVec<[NodeId; 3]> = SmallVec::from_slice(site.xs);
        operands[0] = y;
        let shapes: Vec<&Shape> = operands
            .iter()
            .map(|&o| g.shape(o))
            .collect::<Result<_, _>>()?;
        match site.op.infer_shape("simplify", &shapes) {
            Ok(s) if s == *site.declared => Ok(Some(self.rebuild(
                g,
                site.op.clone(),
                operands,
                site.declared,
            )?)),
            _ => Ok(None),
        }
    }

    /// `sum_like` to `x`'s own (fixed) shape → `x`; `sum_like(broadcast(y), like)` back to
    /// `y`'s shape → `n · y`, the `n` copies of `y` summed.
    fn sum_like(&mut self, g: &mut Graph<F>, site: &Site<'_, F>) -> Result<Option<NodeId>> {
        let a = site.x();
        if site.fixed_same(g, a)? {
            return Ok(Some(a));
        }
        if let Some(pooled) = scattered_channel_sum(g, site)? {
            let like = site.xs[1];
            let op = Op::Broadcast(BroadcastOp::SumLike);
            return Ok(Some(self.rebuild(
                g,
                op,
                SmallVec::from_slice(&[pooled, like]),
                site.declared,
            )?));
        }
        let of_broadcast = matches!(
            g.op(a)?,
            Op::Broadcast(BroadcastOp::Like | BroadcastOp::To(_))
        );
        if !of_broadcast || !g.shape(a)?.is_fixed() {
            return Ok(None);
        }
        let y = g.operands(a)?[0];
        let (big, small) = (g.shape(a)?.size(), g.shape(y)?.size());
        match (site.fixed_same(g, y)?, big, small) {
            (true, Some(big), Some(small)) if small > 0 => {
                let copies = ndarray::arr0(F::of((big / small) as f64)).into_dyn();
                let n = self.new_constant(g, copies);
                let op = Op::Binary(BinaryOp::Mul);
                Ok(Some(self.rebuild(
                    g,
                    op,
                    SmallVec::from_slice(&[y, n]),
                    site.declared,
                )?))
            }
            _ => Ok(None),
        }
    }
}

/// For `sum_like(max_pool2d_scatter(x, v), like)` whose `like` keeps at most the channel
/// axis (a bias gradient under a max pool), `v`: the scatter puts each element of `v` on one
/// pixel of its window and zeros elsewhere, so per channel its sum over images and pixels is
/// the sum of `v` (up to rounding), read from a quarter of the elements for 2x2 pools.
fn scattered_channel_sum<F: Element>(g: &Graph<F>, site: &Site<'_, F>) -> Result<Option<NodeId>> {
    let (a, like) = (site.xs[0], site.xs[1]);
    if !matches!(g.op(a)?, Op::Pool(PoolOp::MaxScatter(_))) {
        return Ok(None);
    }
    let (image, kept) = (g.shape(a)?.rank(), g.shape(like)?.dims());
    // `like`'s axes align with the image's last ones; all but the channel axis must be 1.
    let channel_only = kept.len() <= image
        && kept
            .iter()
            .enumerate()
            .all(|(i, d)| image - kept.len() + i + 1 == image || *d == Dim::Fixed(1));
    Ok(channel_only
        .then(|| g.operands(a).map(|xs| xs[1]))
        .transpose()?)
}

/// `x·1`, `1·x`, `x+0`, `0+x`, `x-0`, `x/1`, `x^1` → `x`, when the unit does not broadcast `x`
/// to a larger shape.
fn unit_operand<F: Element>(
    g: &Graph<F>,
    site: &Site<'_, F>,
    op: BinaryOp,
) -> Result<Option<NodeId>> {
    let (a, c) = (site.xs[0], site.xs[1]);
    let (unit, commutes) = match op {
        BinaryOp::Mul => (1.0, true),
        BinaryOp::Add => (0.0, true),
        BinaryOp::Sub => (0.0, false),
        BinaryOp::Div | BinaryOp::Power => (1.0, false),
        BinaryOp::Maximum | BinaryOp::Minimum => return Ok(None),
    };
    Ok(if filled(g, c, unit)? && site.same(g, a)? {
        Some(a)
    } else if commutes && filled(g, a, unit)? && site.same(g, c)? {
        Some(c)
    } else {
        None
    })
}

/// `-(-x)` → `x`.
fn double_negation<F: Element>(g: &Graph<F>, x: NodeId) -> Result<Option<NodeId>> {
    Ok(match g.op(x)? {
        Op::Unary(UnaryOp::Neg) => Some(g.operands(x)?[0]),
        _ => None,
    })
}

/// A reduction over no axes, or over size-1 axes it keeps → `x`.
fn trivial_reduce<F: Element>(
    g: &Graph<F>,
    site: &Site<'_, F>,
    axes: &[usize],
    keep_dims: bool,
) -> Result<Option<NodeId>> {
    let dims = g.shape(site.x())?.dims();
    let trivial =
        axes.is_empty() || (keep_dims && axes.iter().all(|&i| dims.get(i) == Some(&Dim::Fixed(1))));
    Ok(site.x_if(trivial && site.same(g, site.x())?))
}

/// A one-operand `concat`, a full `slice` and a zero `pad` → `x`.
fn trivial_slice<F: Element>(
    g: &Graph<F>,
    site: &Site<'_, F>,
    op: &SliceOp,
) -> Result<Option<NodeId>> {
    let x = site.x();
    let trivial = match op {
        SliceOp::Concat(_) => site.xs.len() == 1 && site.same(g, x)?,
        SliceOp::Slice { .. } => site.fixed_same(g, x)?,
        SliceOp::Pad { before, after, .. } => *before == 0 && *after == 0 && site.same(g, x)?,
    };
    Ok(site.x_if(trivial))
}

fn is_identity(perm: &[usize]) -> bool {
    perm.iter().enumerate().all(|(i, &p)| i == p)
}

/// Whether `x` is a constant whose every element equals `v`.
fn filled<F: Element>(g: &Graph<F>, x: NodeId, v: f64) -> Result<bool> {
    Ok(matches!(g.op(x)?, Op::Constant) && g.value(x)?.iter().all(|e| e.as_f64() == v))
}
