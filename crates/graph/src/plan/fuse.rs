//! The compile phase between building the steps and giving them slots: a convolution whose
//! output only a 2×2 max pool reads (the pool itself, and the scatters of its gradient that
//! only a kernel gradient of the same convolution reads) runs inside those readers, as
//! [`PooledConv`] steps, and is never materialized.
//!
//! ```text
//! y = conv2d_bias(x, w, b)            (removed)
//! p = max_pool2d(y)                   → p = conv2d_bias+max_pool2d(x, w, b)
//! s = max_pool2d_scatter(y, v̄)        (removed)
//! w̄ = conv2d_kernel_grad(x, s)        → w̄ = conv2d_kernel_grad+max_pool2d_scatter(x, w, b, v̄)
//! ```
//!
//! It applies where the fused kernels do ([`PooledConv::applies`], judged on the declared
//! shapes, whose height, width and channels every run keeps) and gives the same bits as the
//! unfused steps; fetching `y` or `s` keeps them as they are.

use super::compile::{Operand, PendingStep};
use crate::ops::conv::PooledConv;
use crate::ops::pool::{Pool2d, PoolOp};
use crate::ops::{Conv2d, ConvOp, Op};
use crate::{Element, Graph, NodeId};
use petgraph::graph::NodeIndex;
use smallvec::SmallVec;

/// What becomes of each step.
enum Fate {
    Keep,
    Remove,
    Fuse(PooledConv, SmallVec<[Operand; 3]>),
}

/// Fuses every convolution that qualifies into its pooling readers (see the module doc).
pub(super) fn fuse_pooled_convolutions<F: Element>(
    graph: &Graph<F>,
    pending: Vec<PendingStep<F>>,
    fetched: &[usize],
) -> Vec<PendingStep<F>> {
    let readers = readers_of(&pending, graph.node_count());
    let mut fates: Vec<Fate> = pending.iter().map(|_| Fate::Keep).collect();
    for (s, step) in pending.iter().enumerate() {
        let Op::Conv(conv @ (ConvOp::Conv2d(params) | ConvOp::Conv2dBias(params))) = &step.step.op
        else {
            continue;
        };
        if fetched.contains(&step.node) || !declared_fit(graph, step.node, conv) {
            continue;
        }
        if let Some(plan) = pooled_readers(&pending, &readers, fetched, s, (conv, params)) {
            fates[s] = Fate::Remove;
            for (r, fate) in plan {
                fates[r] = fate;
            }
        }
    }
    pending
        .into_iter()
        .zip(fates)
        .filter_map(|(mut p, fate)| match fate {
            Fate::Keep => Some(p),
            Fate::Remove => None,
            Fate::Fuse(fused, operands) => {
                p.step.fused = Some(fused);
                p.operands = operands;
                Some(p)
            }
        })
        .collect()
}

/// For each node, the steps that read its value.
fn readers_of<F: Element>(pending: &[PendingStep<F>], nodes: usize) -> Vec<SmallVec<[usize; 4]>> {
    let mut readers = vec![SmallVec::new(); nodes];
    for (s, p) in pending.iter().enumerate() {
        for operand in &p.operands {
            if let Operand::Node(node) = *operand {
                readers[node].push(s);
            }
        }
    }
    readers
}

/// Whether the fused kernels apply to the convolution `node` by its operands' declared shapes.
fn declared_fit<F: Element>(graph: &Graph<F>, node: usize, conv: &ConvOp) -> bool {
    let Ok(operands) = graph.operands(graph.handle(NodeIndex::new(node))) else {
        return false;
    };
    let shapes: Option<SmallVec<[_; 3]>> = operands
        .iter()
        .map(|&o: &NodeId| graph.shape(o).ok())
        .collect();
    shapes.is_some_and(|shapes| PooledConv::applies::<F>(conv, &shapes))
}

/// The fates of the readers of convolution step `s`'s value when every one of them is a
/// 2×2 max pool or a scatter of its gradient that only this convolution's kernel gradient
/// reads, with at least one pool; `None` otherwise.
fn pooled_readers<F: Element>(
    pending: &[PendingStep<F>],
    readers: &[SmallVec<[usize; 4]>],
    fetched: &[usize],
    s: usize,
    (conv, params): (&ConvOp, &Conv2d),
) -> Option<Vec<(usize, Fate)>> {
    let conv_step = &pending[s];
    let own = Operand::Node(conv_step.node);
    let pool = Pool2d::new([2, 2]);
    let mut fates = Vec::new();
    let mut pools = 0;
    for &r in &readers[conv_step.node] {
        let reader = &pending[r];
        match &reader.step.op {
            Op::Pool(PoolOp::Max(p)) if *p == pool && same(&reader.operands, &[own]) => {
                fates.push((
                    r,
                    Fate::Fuse(
                        PooledConv::Forward(conv.clone()),
                        conv_step.operands.clone(),
                    ),
                ));
                pools += 1;
            }
            Op::Pool(PoolOp::MaxScatter(p))
                if *p == pool
                    && same(&reader.operands[..1], &[own])
                    && !fetched.contains(&reader.node) =>
            {
                let v_bar = *reader.operands.get(1)?;
                if same(&[v_bar], &[own]) {
                    return None;
                }
                let [k] = readers[reader.node][..] else {
                    return None;
                };
                let grad = &pending[k];
                let scatter = Operand::Node(reader.node);
                let is_grad = matches!(&grad.step.op,
                    Op::Conv(ConvOp::KernelGrad { conv: c, .. }) if c == params);
                if !is_grad || !same(&grad.operands, &[conv_step.operands[0], scatter]) {
                    return None;
                }
                let mut operands = conv_step.operands.clone();
                operands.push(v_bar);
                fates.push((r, Fate::Remove));
                fates.push((
                    k,
                    Fate::Fuse(PooledConv::KernelGrad(conv.clone()), operands),
                ));
            }
            _ => return None,
        }
    }
    (pools > 0).then_some(fates)
}

/// Whether two operand lists read the same values.
fn same(a: &[Operand], b: &[Operand]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(a, b)| a == b)
}
