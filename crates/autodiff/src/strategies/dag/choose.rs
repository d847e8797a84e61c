//! Turning raw random choices into a valid, bounded DAG.
//!
//! Each raw choice `(kind, a, b, param)` names a family (`kind`), two operands and a parameter.
//! The family's proposer returns a candidate op with its result's shape and a bound on its
//! magnitude, or nothing when the operands do not fit; a candidate that is missing, too large
//! or unbounded becomes `tanh` of the first operand.

use super::DagOp;
use dendrite_graph::{broadcast_shapes, BinaryOp, CompareOp, ReduceOp, Shape, UnaryOp};

/// Largest magnitude a value may reach before an op is replaced by `tanh`.
const BOUND: f64 = 50.0;
/// Largest number of elements a value may have.
const MAX_SIZE: usize = 256;

/// A value's shape and a bound on its magnitude.
type Value = (Vec<usize>, f64);
/// A proposed op, its result's shape and bound.
type Candidate = (DagOp, Vec<usize>, f64);

/// The families a raw choice can name, in the order `kind % FAMILIES` picks them. Elementwise
/// families come twice, so that chains of functions are common.
#[derive(Clone, Copy)]
enum Family {
    Unary,
    Binary,
    Select,
    Pow,
    Reduce,
    Axis,
    Layout,
    Broadcast,
    MatMul,
    Slice,
    Index,
    Softmax,
    Image,
}

const FAMILIES: [Family; 15] = [
    Family::Unary,
    Family::Unary,
    Family::Binary,
    Family::Binary,
    Family::Select,
    Family::Pow,
    Family::Reduce,
    Family::Axis,
    Family::Layout,
    Family::Broadcast,
    Family::MatMul,
    Family::Slice,
    Family::Index,
    Family::Softmax,
    Family::Image,
];

/// The operands and parameter of one raw choice, with their values' shapes and bounds.
struct Choice<'a> {
    a: usize,
    b: usize,
    va: &'a Value,
    vb: &'a Value,
    p: usize,
}

/// Turns raw random choices into a valid, bounded DAG, tracking each value's shape and bound.
pub(super) fn resolve(inputs: Vec<Vec<usize>>, raw: &[(u8, u16, u16, u16)]) -> super::RandomDag {
    let mut dag = Builder {
        vals: inputs.iter().map(|s| (s.clone(), 2.0)).collect(),
        used: vec![false; inputs.len()],
        ops: Vec::new(),
    };
    for &(kind, ra, rb, param) in raw {
        let n = dag.vals.len();
        // Prefer the newest value, so that chains get deep.
        let pick = |r: u16| {
            if r.is_multiple_of(3) {
                n - 1
            } else {
                usize::from(r / 3) % n
            }
        };
        let (a, b) = (pick(ra), pick(rb));
        let (va, vb) = (dag.vals[a].clone(), dag.vals[b].clone());
        let choice = Choice {
            a,
            b,
            va: &va,
            vb: &vb,
            p: usize::from(param),
        };
        let family = FAMILIES[usize::from(kind) % FAMILIES.len()];
        let (op, shape, bound) = match propose(family, &choice) {
            Some((op, shape, bound))
                if bound <= BOUND && shape.iter().product::<usize>() <= MAX_SIZE =>
            {
                (op, shape, bound)
            }
            _ => (DagOp::Unary(UnaryOp::Tanh, a), va.0.clone(), 1.0),
        };
        dag.push(op, shape, bound);
    }
    dag.tie_unused();
    super::RandomDag {
        inputs,
        ops: dag.ops,
    }
}

fn propose(family: Family, c: &Choice<'_>) -> Option<Candidate> {
    match family {
        Family::Unary => unary(c),
        Family::Binary => binary(c),
        Family::Select => select(c),
        Family::Pow => {
            let n = 2 + (c.p % 2) as i32;
            Some((DagOp::Pow(c.a, n), c.va.0.clone(), c.va.1.powi(n)))
        }
        Family::Reduce => reduce(c),
        Family::Axis => cumsum(c),
        Family::Layout => layout(c),
        Family::Broadcast => broadcast(c),
        Family::MatMul => matmul(c),
        Family::Slice => slice(c),
        Family::Index => index(c),
        Family::Softmax => softmax(c),
        Family::Image => image(c),
    }
}

/// A member of [`UnaryOp::ALL`] with the bound of its (guarded) result.
fn unary(c: &Choice<'_>) -> Option<Candidate> {
    use UnaryOp::*;
    let op = UnaryOp::ALL[c.p % UnaryOp::ALL.len()];
    let b = c.va.1;
    let bound = match op {
        Neg => b,
        Exp | Expm1 => b.exp(),
        Log | Log1p => (b * b + 1.0).ln(),
        Sqrt => (b * b + 1.0).sqrt(),
        Tanh | Erf | Sin | Cos | Sigmoid => 1.0,
        Abs => 3.0,
        Softplus => b + 1.0,
    };
    Some((DagOp::Unary(op, c.a), c.va.0.clone(), bound))
}

/// A member of [`BinaryOp::ALL`] of `a` and `b` if they broadcast, else of `a` with itself.
fn binary(c: &Choice<'_>) -> Option<Candidate> {
    use BinaryOp::*;
    let op = BinaryOp::ALL[c.p % BinaryOp::ALL.len()];
    let bound = |x: f64, y: f64| match op {
        Add | Sub => x + y,
        Mul => x * y,
        Div => x,
        Maximum | Minimum => x.max(y),
        Power => x * x + 1.0,
    };
    match broadcast_shape(&c.va.0, &c.vb.0) {
        Some(shape) => Some((DagOp::Binary(op, c.a, c.b), shape, bound(c.va.1, c.vb.1))),
        None => Some((
            DagOp::Binary(op, c.a, c.a),
            c.va.0.clone(),
            bound(c.va.1, c.va.1),
        )),
    }
}

/// `select(compare(a, b), a, b)` for a member of [`CompareOp::ALL`].
fn select(c: &Choice<'_>) -> Option<Candidate> {
    let op = CompareOp::ALL[c.p % CompareOp::ALL.len()];
    let shape = broadcast_shape(&c.va.0, &c.vb.0)?;
    Some((DagOp::Select(op, c.a, c.b), shape, c.va.1.max(c.vb.1)))
}

fn broadcast_shape(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    broadcast_shapes(&Shape::fixed(a), &Shape::fixed(b))
        .and_then(|s| s.concrete())
        .map(|s| s.to_vec())
}

/// The axis `p` picks in `shape` and its size; `None` for a scalar, which has no axis.
fn axis_of(shape: &[usize], p: usize) -> Option<(usize, usize)> {
    let axis = p % shape.len().max(1);
    Some((axis, *shape.get(axis)?))
}

/// A member of [`ReduceOp::ALL`], or a mean, over one axis (kept).
fn reduce(c: &Choice<'_>) -> Option<Candidate> {
    let (shape, b) = c.va;
    let (axis, n) = axis_of(shape, c.p)?;
    let n = n as f64;
    let mut kept = shape.clone();
    kept[axis] = 1;
    let choices = ReduceOp::ALL.len() + 1;
    let Some(&op) = ReduceOp::ALL.get((c.p / 4) % choices) else {
        return Some((DagOp::Mean { arg: c.a, axis }, kept, *b));
    };
    let bound = match op {
        ReduceOp::Sum => b * n,
        ReduceOp::Max | ReduceOp::Min => *b,
        ReduceOp::Prod => b.powf(n),
    };
    Some((DagOp::Reduce(op, c.a, axis), kept, bound))
}

fn cumsum(c: &Choice<'_>) -> Option<Candidate> {
    let (shape, b) = c.va;
    let (axis, n) = axis_of(shape, c.p)?;
    let n = n as f64;
    let reverse = c.p & 8 != 0;
    let op = DagOp::CumSum {
        arg: c.a,
        axis,
        reverse,
    };
    Some((op, shape.clone(), b * n))
}

/// A permutation (axes rotated by one), a reshape, or an inserted axis.
fn layout(c: &Choice<'_>) -> Option<Candidate> {
    let (shape, b) = c.va;
    let rank = shape.len();
    match c.p % 4 {
        0 if rank >= 2 => {
            let perm: Vec<usize> = (0..rank).map(|i| (i + 1) % rank).collect();
            let out = perm.iter().map(|&i| shape[i]).collect();
            Some((DagOp::Permute(c.a, perm), out, *b))
        }
        1 if rank < 4 => {
            let axis = (c.p / 4) % (rank + 1);
            let mut out = shape.clone();
            out.insert(axis, 1);
            Some((DagOp::ExpandDims(c.a, axis), out, *b))
        }
        _ => {
            let size: usize = shape.iter().product();
            let out = match (c.p / 4) % 2 {
                0 => vec![size],
                _ => shape.iter().rev().copied().collect(),
            };
            Some((DagOp::Reshape(c.a, out.clone()), out, *b))
        }
    }
}

/// `broadcast_to` a new leading axis of 2, `broadcast_like` or `sum_like` against a reduced
/// copy.
fn broadcast(c: &Choice<'_>) -> Option<Candidate> {
    let (shape, b) = c.va;
    let rank = shape.len();
    if c.p.is_multiple_of(3) && rank < 4 {
        let out: Vec<usize> = std::iter::once(2).chain(shape.iter().copied()).collect();
        return Some((DagOp::BroadcastTo(c.a, out.clone()), out, *b));
    }
    let axis = (c.p / 3) % rank.max(1);
    let n = *shape.get(axis)? as f64;
    if c.p % 3 == 1 {
        Some((DagOp::BroadcastLike(c.a, axis), shape.clone(), b * n))
    } else {
        let mut kept = shape.clone();
        kept[axis] = 1;
        Some((DagOp::SumLike(c.a, axis), kept, b * n))
    }
}

/// A slice (at least one element kept) or a pad along one axis.
fn slice(c: &Choice<'_>) -> Option<Candidate> {
    let (shape, b) = c.va;
    let (axis, n) = axis_of(shape, c.p)?;
    let mut out = shape.clone();
    if c.p & 4 == 0 {
        let start = (c.p / 8) % n;
        let end = start + 1 + (c.p / 64) % (n - start);
        out[axis] = end - start;
        let op = DagOp::Slice {
            arg: c.a,
            axis,
            start,
            end,
        };
        Some((op, out, *b))
    } else {
        let (before, after) = ((c.p / 8) % 2, (c.p / 16) % 2);
        out[axis] = n + before + after;
        let op = DagOp::Pad {
            arg: c.a,
            axis,
            before,
            after,
        };
        Some((op, out, *b))
    }
}

/// Gather or scatter-add with 1-3 indices, or a concatenation of `a` with `b` (or itself).
fn index(c: &Choice<'_>) -> Option<Candidate> {
    let (shape, b) = c.va;
    let (axis, n) = axis_of(shape, c.p)?;
    let count = 1 + (c.p / 4) % 3;
    let idx: Vec<usize> = (0..count).map(|k| (c.p / 16 + 3 * k) % n).collect();
    match (c.p / 2) % 3 {
        0 => {
            let mut out = shape.clone();
            out[axis] = count;
            Some((DagOp::Gather(c.a, axis, idx), out, *b))
        }
        1 => Some((
            DagOp::ScatterAdd(c.a, axis, idx),
            shape.clone(),
            b * count as f64,
        )),
        _ => {
            let (other, ob) = c.vb;
            let fits = other.len() == shape.len()
                && (0..shape.len()).all(|i| i == axis || other[i] == shape[i]);
            let (partner, m, bound) = if fits {
                (c.b, other[axis], b.max(*ob))
            } else {
                (c.a, n, *b)
            };
            let mut out = shape.clone();
            out[axis] = n + m;
            Some((DagOp::Concat(c.a, partner, axis), out, bound))
        }
    }
}

/// Softmax, log-softmax or logsumexp along one axis.
fn softmax(c: &Choice<'_>) -> Option<Candidate> {
    let (shape, b) = c.va;
    let (axis, n) = axis_of(shape, c.p)?;
    let n = n as f64;
    let (arg, lse) = (c.a, 2.0 * b + n.ln());
    Some(match (c.p / 8) % 3 {
        0 => (DagOp::Softmax { arg, axis }, shape.clone(), 1.0),
        1 => (DagOp::LogSoftmax { arg, axis }, shape.clone(), lse),
        _ => {
            let mut kept = shape.clone();
            kept[axis] = 1;
            (DagOp::LogSumExp { arg, axis }, kept, lse)
        }
    })
}

/// A matrix product of `a` and `b` if their shapes allow one with the flags in `p`, else
/// `a · aᵀ` (or `aᵀ · a`), which always does for rank ≥ 2.
fn matmul(c: &Choice<'_>) -> Option<Candidate> {
    let ((sa, ba), (sb, bb)) = (c.va, c.vb);
    if sa.len() < 2 {
        return None;
    }
    let (tl, tr) = (c.p & 1 == 1, c.p & 2 == 2);
    let last2 = |s: &[usize], t: bool| {
        let (r, k) = (s[s.len() - 2], s[s.len() - 1]);
        if t {
            (k, r)
        } else {
            (r, k)
        }
    };
    if sb.len() >= 2 {
        let ((m, k1), (k2, n)) = (last2(sa, tl), last2(sb, tr));
        let batch = broadcast_shape(&sa[..sa.len() - 2], &sb[..sb.len() - 2]);
        if let (true, Some(batch)) = (k1 == k2, batch) {
            let shape: Vec<usize> = batch.into_iter().chain([m, n]).collect();
            let op = DagOp::MatMul {
                lhs: c.a,
                rhs: c.b,
                transpose_lhs: tl,
                transpose_rhs: tr,
            };
            return Some((op, shape, k1 as f64 * ba * bb));
        }
    }
    let (m, k) = last2(sa, tl);
    let shape: Vec<usize> = sa[..sa.len() - 2].iter().copied().chain([m, m]).collect();
    let op = DagOp::MatMul {
        lhs: c.a,
        rhs: c.a,
        transpose_lhs: tl,
        transpose_rhs: !tl,
    };
    Some((op, shape, k as f64 * ba * ba))
}

/// The DAG under construction: each value's shape and bound, and whether an op reads it.
struct Builder {
    vals: Vec<Value>,
    used: Vec<bool>,
    ops: Vec<DagOp>,
}

impl Builder {
    /// Appends `op` (with its result's shape and bound) and marks its operands used.
    fn push(&mut self, op: DagOp, shape: Vec<usize>, bound: f64) {
        for i in operands(&op) {
            self.used[i] = true;
        }
        self.ops.push(op);
        self.vals.push((shape, bound));
        self.used.push(false);
    }

    /// Ties every unused value into one scalar output.
    fn tie_unused(&mut self) {
        let mut total: Option<usize> = None;
        for i in 0..self.vals.len() {
            if self.used[i] {
                continue;
            }
            let term = if self.vals[i].0.is_empty() {
                i
            } else {
                self.push(DagOp::SumAll(i), Vec::new(), 0.0);
                self.vals.len() - 1
            };
            total = Some(match total {
                Some(t) => {
                    self.push(DagOp::Binary(BinaryOp::Add, t, term), Vec::new(), 0.0);
                    self.vals.len() - 1
                }
                None => term,
            });
        }
    }
}

/// The value indices an op reads.
fn operands(op: &DagOp) -> Vec<usize> {
    match *op {
        DagOp::Unary(_, a)
        | DagOp::Pow(a, _)
        | DagOp::Reduce(_, a, _)
        | DagOp::CumSum { arg: a, .. }
        | DagOp::Mean { arg: a, .. }
        | DagOp::Permute(a, _)
        | DagOp::Reshape(a, _)
        | DagOp::ExpandDims(a, _)
        | DagOp::BroadcastTo(a, _)
        | DagOp::BroadcastLike(a, _)
        | DagOp::SumLike(a, _)
        | DagOp::Slice { arg: a, .. }
        | DagOp::Pad { arg: a, .. }
        | DagOp::Gather(a, ..)
        | DagOp::ScatterAdd(a, ..)
        | DagOp::Softmax { arg: a, .. }
        | DagOp::LogSoftmax { arg: a, .. }
        | DagOp::LogSumExp { arg: a, .. }
        | DagOp::SumAll(a) => vec![a],
        DagOp::Image {
            kind,
            arg: a,
            other: b,
        } => match kind {
            0 | 1 | 8 => vec![a, b],
            _ => vec![a],
        },
        DagOp::Binary(_, a, b)
        | DagOp::Select(_, a, b)
        | DagOp::Concat(a, b, _)
        | DagOp::MatMul { lhs: a, rhs: b, .. } => vec![a, b],
    }
}

/// A member of the conv or pool family over `a` as a one-row image (see [`DagOp::Image`]).
fn image(c: &Choice<'_>) -> Option<Candidate> {
    let ((sa, ba), (sb, bb)) = (c.va, c.vb);
    let n: usize = sa.iter().product();
    let m: usize = sb.iter().product();
    if n == 0 || m == 0 {
        return None;
    }
    let (kind, kw) = (c.p % 9, n.min(2));
    if (kind < 2 || kind == 8) && m < kw {
        return None;
    }
    let op = DagOp::Image {
        kind,
        arg: c.a,
        other: c.b,
    };
    // A window adds at most `kw` (or two pool) terms; the kernel gradient sums `n` products.
    let (shape, bound) = match kind {
        0 | 1 => (sa.clone(), kw as f64 * ba * bb),
        8 => (sa.clone(), kw as f64 * ba * bb + bb),
        2 => (vec![kw], n as f64 * ba * ba),
        4 => (sa.clone(), 2.0 * ba),
        _ => (sa.clone(), *ba),
    };
    Some((op, shape, bound))
}
