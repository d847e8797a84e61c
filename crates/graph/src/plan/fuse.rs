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
//! A ReLU after the pool (`relu(max_pool2d(relu(z)))` is built as `relu(max_pool2d(z))`) goes
//! into the pool's step too when it alone reads the pooled value ([`relu_of`]).
//!
//! It applies where the fused kernels do ([`PooledConv::applies`], judged on the declared
//! shapes, whose height, width and channels every run keeps) and gives the same bits as the
//! unfused steps; fetching `y` or `s` keeps them as they are.

use super::compile::{Operand, PendingStep};
use crate::ops::conv::PooledConv;
use crate::ops::pool::{Pool2d, PoolOp};
use crate::ops::{CompareOp, Conv2d, ConvOp, Op};
use crate::{Element, Graph, NodeId};
use petgraph::graph::NodeIndex;
use smallvec::SmallVec;

/// What becomes of each step.
enum Fate {
    Keep,
    Remove,
    /// Runs the fused kernel on these operands.
    Fuse(PooledConv, SmallVec<[Operand; 3]>),
    /// Runs the fused kernel on these operands, computing the value of the node of this
    /// step instead of its own (a ReLU it absorbs).
    FuseAs(PooledConv, SmallVec<[Operand; 3]>, usize),
    /// Reads these operands instead of its own.
    Reread(SmallVec<[Operand; 3]>),
}

/// Fuses every convolution that qualifies into its pooling readers (see the module doc).
pub(super) fn fuse_pooled_convolutions<F: Element>(
    graph: &Graph<F>,
    pending: Vec<PendingStep<F>>,
    fetched: &[usize],
) -> Vec<PendingStep<F>> {
    let fates = decide(graph, &pending, fetched);
    apply(pending, fates)
}

/// The fate of each step: the convolutions that qualify, their readers, and the ReLUs after
/// their pools.
fn decide<F: Element>(
    graph: &Graph<F>,
    pending: &[PendingStep<F>],
    fetched: &[usize],
) -> Vec<Fate> {
    let readers = readers_of(pending, graph.node_count());
    let mut fates: Vec<Fate> = pending.iter().map(|_| Fate::Keep).collect();
    for (s, step) in pending.iter().enumerate() {
        let Op::Conv(conv @ (ConvOp::Conv2d(params) | ConvOp::Conv2dBias(params))) = &step.step.op
        else {
            continue;
        };
        if fetched.contains(&step.node) || !declared_fit(graph, step.node, conv) {
            continue;
        }
        let Some(plan) = pooled_readers(pending, &readers, fetched, s, (conv, params)) else {
            continue;
        };
        fates[s] = Fate::Remove;
        for (r, fate) in plan {
            let forward = matches!(fate, Fate::Fuse(PooledConv::Forward { .. }, _));
            let relu = forward.then(|| relu_of(graph, pending, &readers, fetched, r));
            fates[r] = match (fate, relu.flatten()) {
                (Fate::Fuse(PooledConv::Forward { conv, .. }, operands), Some((le, select))) => {
                    let mut mask = pending[le].operands.clone();
                    mask[0] = Operand::Node(pending[select].node);
                    fates[le] = Fate::Reread(mask);
                    fates[select] = Fate::Remove;
                    let fused = PooledConv::Forward { conv, relu: true };
                    Fate::FuseAs(fused, operands, select)
                }
                (fate, _) => fate,
            };
        }
    }
    fates
}

/// The steps with their fates applied, in the same order.
fn apply<F: Element>(pending: Vec<PendingStep<F>>, fates: Vec<Fate>) -> Vec<PendingStep<F>> {
    // A step computing another's node takes its node and name.
    let renamed: Vec<Option<(usize, String)>> = fates
        .iter()
        .map(|fate| match fate {
            Fate::FuseAs(_, _, step) => {
                Some((pending[*step].node, pending[*step].step.name.clone()))
            }
            _ => None,
        })
        .collect();
    pending
        .into_iter()
        .zip(fates)
        .zip(renamed)
        .filter_map(|((mut p, fate), renamed)| {
            match fate {
                Fate::Keep => {}
                Fate::Remove => return None,
                Fate::Fuse(fused, operands) | Fate::FuseAs(fused, operands, _) => {
                    (p.step.fused, p.operands) = (Some(fused), operands);
                }
                Fate::Reread(operands) => p.operands = operands,
            }
            if let Some((node, name)) = renamed {
                (p.node, p.step.node, p.step.name) = (node, node, name);
            }
            Some(p)
        })
        .collect()
}

/// The `le` and `select` steps of `relu(p) = select(p <= 0, 0, p)` (see [`Graph::relu`])
/// when they are all that read pool step `r`'s value `p`, and `p` is not fetched.
///
/// The fused step then computes `relu(p)`, and the mask reads it instead of `p`: `relu(p)
/// <= 0` exactly where `p <= 0` (`relu(p)` is then the constant 0; a NaN stays a NaN, not
/// `<= 0` either way), so the mask and the backward select keep their bits.
fn relu_of<F: Element>(
    graph: &Graph<F>,
    pending: &[PendingStep<F>],
    readers: &[SmallVec<[usize; 4]>],
    fetched: &[usize],
    r: usize,
) -> Option<(usize, usize)> {
    let p = pending[r].node;
    let [first, second] = readers[p][..] else {
        return None;
    };
    if fetched.contains(&p) {
        return None;
    }
    let node = |i: usize| graph.handle(NodeIndex::new(i));
    [(first, second), (second, first)]
        .into_iter()
        .find(|&(le, select)| {
            let (le, select) = (&pending[le], &pending[select]);
            let is_le = matches!(le.step.op, Op::Compare(CompareOp::Le));
            let is_mask = select.operands.first() == Some(&Operand::Node(le.node));
            let is_relu = graph.relu_operand(node(select.node)) == Some(node(p));
            is_le && is_mask && is_relu && le.operands.first() == Some(&Operand::Node(p))
        })
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
                        PooledConv::Forward {
                            conv: conv.clone(),
                            relu: false,
                        },
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
