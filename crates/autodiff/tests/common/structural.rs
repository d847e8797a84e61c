//! Checks of the structural primitives: broadcasting, reductions, layout, matmul, slicing and
//! indexing, and the non-differentiable `dim_size`, `argmax`, `one_hot`, `stop_gradient`.
//!
//! Linear ops have a zero Hessian, so their second-order check runs on `op(x)³`, which
//! differentiates through the op's derivative rule.

use super::{cases, cubed, ensure, first, gradient_of, second, Case, Cases, Entry, R};
use dendrite_autodiff::strategies::{
    broadcast_to_pair, distinct_in, shape, shape_with_rank, tensor,
};
use dendrite_graph::ReduceOp;
use ndarray::{ArrayD, IxDyn};
use proptest::collection::vec;
use proptest::prelude::*;

/// The table entries of this file.
pub fn entries() -> Vec<(&'static str, Entry)> {
    use super::{d as D, n as N};
    let mut t = vec![
        ("broadcast_to", D(small_full, broadcast_to)),
        ("broadcast_like", D(small_full, broadcast_like)),
        ("sum_like", D(small_full, sum_like)),
        ("expand_dims", D(expand_cases, expand_dims)),
        ("dim_size", N(|| reduce_cases(Values::Any), dim_size)),
        ("argmax", N(|| reduce_cases(Values::Distinct), argmax)),
        ("reshape", D(reshape_cases, reshape)),
        ("permute", D(permute_cases, permute)),
        ("matmul", D(matmul_cases, matmul)),
        ("slice", D(slice_cases, slice)),
        ("pad", D(slice_cases, pad)),
        ("concat", D(concat_cases, concat)),
        ("gather", D(gather_cases, gather)),
        ("scatter_add", D(gather_cases, scatter_add)),
        ("one_hot", N(gather_cases, one_hot)),
        ("log_softmax", D(log_softmax_cases, log_softmax)),
        ("logsumexp", D(logsumexp_cases, logsumexp)),
        ("cumsum", D(cumsum_cases, cumsum)),
        ("stop_gradient", N(any_values, stop_gradient)),
    ];
    for &op in ReduceOp::ALL {
        t.push((op.name(), D(reduce_domain(op), move |c| reduce(c, op))));
    }
    t
}

/// Where each reduction is checked: `max` and `min` on distinct values (no ties), `prod` on
/// values some of which are exactly 0 (the cases its rule treats apart).
fn reduce_domain(op: ReduceOp) -> fn() -> Cases {
    match op {
        ReduceOp::Sum => || reduce_cases(Values::Any),
        ReduceOp::Max | ReduceOp::Min => || reduce_cases(Values::Distinct),
        ReduceOp::Prod => || reduce_cases(Values::SomeZero),
    }
}

/// `sum`, `max` and `min` are piecewise linear (checked at second order through `f³`); `prod`
/// is multilinear, with a Hessian of its own.
fn reduce(c: &Case, op: ReduceOp) -> R {
    let (keep, axes) = (c.params[0] == 1, &c.params[1..]);
    let f = move |g: &mut dendrite_graph::Graph<f64>, x: &[dendrite_graph::NodeId]| {
        g.reduce(op, x[0], axes, keep)
    };
    first(&c.vals, &[0], f)?;
    match op {
        ReduceOp::Prod => second(&c.vals, &[0], f),
        ReduceOp::Sum | ReduceOp::Max | ReduceOp::Min => second(&c.vals, &[0], cubed(f)),
    }
}

fn any_values() -> Cases {
    cases(shape().prop_flat_map(|s| vec(tensor(s), 1)))
}

/// `[small, full]` where `small` broadcasts to `full`.
fn small_full() -> Cases {
    cases(
        broadcast_to_pair()
            .prop_flat_map(|(s, f)| (tensor(s), tensor(f)).prop_map(|(a, b)| vec![a, b])),
    )
}

fn broadcast_to(c: &Case) -> R {
    let full = c.vals[1].shape().to_vec();
    first(&c.vals, &[0], |g, x| g.broadcast_to(x[0], full.as_slice()))?;
    second(
        &c.vals,
        &[0],
        cubed(|g, x| g.broadcast_to(x[0], full.as_slice())),
    )
}

/// No gradient flows into `like` (only its shape matters), which is also the true derivative.
fn broadcast_like(c: &Case) -> R {
    first(&c.vals, &[0, 1], |g, x| g.broadcast_like(x[0], x[1]))?;
    second(&c.vals, &[0], cubed(|g, x| g.broadcast_like(x[0], x[1])))
}

fn sum_like(c: &Case) -> R {
    first(&c.vals, &[1, 0], |g, x| g.sum_like(x[1], x[0]))?;
    second(&c.vals, &[1], cubed(|g, x| g.sum_like(x[1], x[0])))
}

/// A rank 0-3 tensor and 1-2 axes to insert.
fn expand_cases() -> Cases {
    (shape_with_rank(0..=3), vec(any::<usize>(), 1..=2))
        .prop_flat_map(|(s, raw)| {
            let rank = s.len() + raw.len();
            let mut axes: Vec<usize> = raw.iter().map(|r| r % rank).collect();
            axes.sort_unstable();
            axes.dedup();
            let s = s
                .into_iter()
                .chain(std::iter::repeat(1))
                .take(rank - axes.len())
                .collect::<Vec<_>>();
            tensor(s).prop_map(move |v| Case::with(vec![v], axes.clone()))
        })
        .boxed()
}

fn expand_dims(c: &Case) -> R {
    first(&c.vals, &[0], |g, x| g.expand_dims(x[0], &c.params))?;
    second(&c.vals, &[0], cubed(|g, x| g.expand_dims(x[0], &c.params)))
}

/// The values a reduction is checked on.
#[derive(Clone, Copy)]
enum Values {
    Any,
    Distinct,
    /// Values in `-2..2` with each element set to exactly 0 with probability ¼.
    SomeZero,
}

/// A tensor (rank 0-4) and `params = [keep_dims, axes...]`.
fn reduce_cases(values: Values) -> Cases {
    (shape(), any::<bool>(), vec(any::<bool>(), 4))
        .prop_flat_map(move |(s, keep, pick)| {
            let axes: Vec<usize> = (0..s.len()).filter(|&i| pick[i]).collect();
            let params: Vec<usize> = std::iter::once(usize::from(keep)).chain(axes).collect();
            let n: usize = s.iter().product();
            let values = match values {
                Values::Any => tensor(s).boxed(),
                Values::Distinct => distinct_in(s, -2.0..2.0).boxed(),
                Values::SomeZero => (tensor(s), vec(0..4u8, n))
                    .prop_map(|(v, z)| {
                        let mut z = z.into_iter();
                        v.mapv(|x| if z.next() == Some(0) { 0.0 } else { x })
                    })
                    .boxed(),
            };
            values.prop_map(move |v| Case::with(vec![v], params.clone()))
        })
        .boxed()
}

/// `dim_size` is piecewise constant (constant, in fact): `dim_size(x) · Σx` has gradient
/// `dim_size(x)` everywhere, and `dim_size(x)` alone has gradient zero.
fn dim_size(c: &Case) -> R {
    let axes = &c.params[1..];
    first(&c.vals, &[0], |g, x| {
        let n = g.dim_size(x[0], axes)?;
        let s = g.sum_all(x[0])?;
        g.mul(n, s)
    })?;
    let d = gradient_of(&c.vals, 0, |g, x| g.dim_size(x[0], axes))?;
    ensure(d.iter().all(|&v| v == 0.0), || {
        format!("dim_size: gradient {d} is not zero")
    })
}

/// `argmax` gives an index: its gradient is zero, which away from ties is also the true one.
fn argmax(c: &Case) -> R {
    if c.vals[0].ndim() == 0 {
        return Ok(());
    }
    let axis = c.params.get(1).copied().unwrap_or(0);
    first(&c.vals, &[0], |g, x| g.argmax(x[0], axis))?;
    let d = gradient_of(&c.vals, 0, |g, x| g.argmax(x[0], axis))?;
    ensure(d.iter().all(|&v| v == 0.0), || {
        format!("argmax: gradient {d} is not zero")
    })
}

/// A tensor and a target shape with the same element count: the dims reversed, flattened, or
/// with a size-1 axis added (`params[0]` chooses).
fn reshape_cases() -> Cases {
    (shape(), 0usize..3)
        .prop_flat_map(|(s, k)| tensor(s).prop_map(move |v| Case::with(vec![v], vec![k])))
        .boxed()
}

fn reshape_target(c: &Case) -> Vec<usize> {
    let s = c.vals[0].shape();
    match c.params[0] {
        0 => s.iter().rev().copied().collect(),
        1 => vec![s.iter().product()],
        _ => std::iter::once(1).chain(s.iter().copied()).collect(),
    }
}

fn reshape(c: &Case) -> R {
    let t = reshape_target(c);
    first(&c.vals, &[0], |g, x| g.reshape(x[0], t.as_slice()))?;
    second(&c.vals, &[0], cubed(|g, x| g.reshape(x[0], t.as_slice())))
}

fn permute_cases() -> Cases {
    shape()
        .prop_flat_map(|s| {
            let perm = Just((0..s.len()).collect::<Vec<usize>>()).prop_shuffle();
            (tensor(s), perm).prop_map(|(v, p)| Case::with(vec![v], p))
        })
        .boxed()
}

fn permute(c: &Case) -> R {
    first(&c.vals, &[0], |g, x| g.permute(x[0], &c.params))?;
    second(&c.vals, &[0], cubed(|g, x| g.permute(x[0], &c.params)))
}

/// `a` and `b` with broadcast batch axes (rank 0-2 each) and `params = [transpose_lhs,
/// transpose_rhs]`.
fn matmul_cases() -> Cases {
    (
        1usize..=4,
        1usize..=4,
        1usize..=4,
        any::<bool>(),
        any::<bool>(),
        broadcast_to_pair(),
        any::<bool>(),
    )
        .prop_flat_map(|(m, k, n, tl, tr, (small, full), swap)| {
            // Right-aligned suffixes of broadcast-compatible shapes stay compatible.
            let batch = |s: &[usize]| s[s.len().saturating_sub(2)..].to_vec();
            let (ba, bb) = if swap {
                (batch(&small), batch(&full))
            } else {
                (batch(&full), batch(&small))
            };
            let a: Vec<usize> = ba
                .iter()
                .copied()
                .chain(if tl { [k, m] } else { [m, k] })
                .collect();
            let b: Vec<usize> = bb
                .iter()
                .copied()
                .chain(if tr { [n, k] } else { [k, n] })
                .collect();
            (tensor(a), tensor(b)).prop_map(move |(a, b)| {
                Case::with(vec![a, b], vec![usize::from(tl), usize::from(tr)])
            })
        })
        .prop_filter("batch axes broadcast", |c| {
            let (a, b) = (c.vals[0].shape(), c.vals[1].shape());
            let (ba, bb) = (&a[..a.len() - 2], &b[..b.len() - 2]);
            ba.iter()
                .rev()
                .zip(bb.iter().rev())
                .all(|(&x, &y)| x == y || x == 1 || y == 1)
        })
        .boxed()
}

fn matmul(c: &Case) -> R {
    let (tl, tr) = (c.params[0] == 1, c.params[1] == 1);
    first(&c.vals, &[0, 1], |g, x| g.matmul_t(x[0], x[1], tl, tr))?;
    second(&c.vals, &[0, 1], |g, x| g.matmul_t(x[0], x[1], tl, tr))
}

/// A rank 1-4 tensor and `params = [axis, a, b]` with `a ≤ b ≤ dim` (a slice range, or pad
/// widths `a` and `b - a`).
fn slice_cases() -> Cases {
    (
        shape_with_rank(1..=4),
        any::<usize>(),
        any::<usize>(),
        any::<usize>(),
    )
        .prop_flat_map(|(s, ax, r1, r2)| {
            let axis = ax % s.len();
            let n = s[axis];
            let (a, b) = (r1 % (n + 1), r2 % (n + 1));
            let params = vec![axis, a.min(b), a.max(b)];
            tensor(s).prop_map(move |v| Case::with(vec![v], params.clone()))
        })
        .boxed()
}

fn slice(c: &Case) -> R {
    let (axis, start, end) = (c.params[0], c.params[1], c.params[2]);
    first(&c.vals, &[0], |g, x| g.slice(x[0], axis, start, end))?;
    second(&c.vals, &[0], cubed(|g, x| g.slice(x[0], axis, start, end)))
}

fn pad(c: &Case) -> R {
    let (axis, before, after) = (c.params[0], c.params[1], c.params[2] - c.params[1]);
    first(&c.vals, &[0], |g, x| g.pad(x[0], axis, before, after))?;
    second(
        &c.vals,
        &[0],
        cubed(|g, x| g.pad(x[0], axis, before, after)),
    )
}

/// 1-3 tensors that agree off `params[0]`, the concatenation axis.
fn concat_cases() -> Cases {
    (
        shape_with_rank(1..=3),
        any::<usize>(),
        vec(1usize..=3, 1..=3),
    )
        .prop_flat_map(|(s, ax, sizes)| {
            let axis = ax % s.len();
            let parts: Vec<_> = sizes
                .iter()
                .map(|&n| {
                    let mut p = s.clone();
                    p[axis] = n;
                    tensor(p)
                })
                .collect();
            parts.prop_map(move |vals| Case::with(vals, vec![axis]))
        })
        .boxed()
}

fn concat(c: &Case) -> R {
    let all: Vec<usize> = (0..c.vals.len()).collect();
    first(&c.vals, &all, |g, x| g.concat(x, c.params[0]))?;
    second(&c.vals, &all, cubed(|g, x| g.concat(x, c.params[0])))
}

/// `[x, indices]` with `params = [axis]`: `x` of rank 1-3, integer indices (repeats allowed)
/// of rank 0-2 in `0..x.shape[axis]`.
fn gather_cases() -> Cases {
    (
        shape_with_rank(1..=3),
        any::<usize>(),
        shape_with_rank(0..=2),
    )
        .prop_flat_map(|(s, ax, is)| {
            let axis = ax % s.len();
            let n = s[axis];
            let count: usize = is.iter().product();
            let idx = vec(0..n, count).prop_map(move |v| {
                let mut it = v.into_iter();
                ArrayD::from_shape_simple_fn(IxDyn(&is), || it.next().unwrap_or(0) as f64)
            });
            (tensor(s), idx).prop_map(move |(x, i)| Case::with(vec![x, i], vec![axis]))
        })
        .boxed()
}

/// `gather` is linear in `x`; the indices get a documented zero gradient.
fn gather(c: &Case) -> R {
    let axis = c.params[0];
    first(&c.vals, &[0], |g, x| g.gather(x[0], x[1], axis))?;
    second(&c.vals, &[0], cubed(|g, x| g.gather(x[0], x[1], axis)))?;
    let di = gradient_of(&c.vals, 1, |g, x| g.gather(x[0], x[1], axis))?;
    ensure(di.iter().all(|&v| v == 0.0), || {
        format!("gather: index gradient {di} is not zero")
    })
}

/// `scatter_add(src, idx, like)`: linear in `src`; `like` contributes its shape only.
fn scatter_add(c: &Case) -> R {
    let axis = c.params[0];
    // src has the gathered shape: x.shape[..axis] ++ idx.shape ++ x.shape[axis+1..].
    let (x, idx) = (&c.vals[0], &c.vals[1]);
    let s = x.shape();
    let src_shape: Vec<usize> = s[..axis]
        .iter()
        .chain(idx.shape())
        .chain(&s[axis + 1..])
        .copied()
        .collect();
    let n: usize = src_shape.iter().product();
    let mut k = 0usize;
    let src = ArrayD::from_shape_simple_fn(IxDyn(&src_shape), || {
        k += 1;
        ((k * 7 % 11) as f64 - 5.0) / 4.0 + 0.01 * n as f64
    });
    let vals = vec![src, idx.clone(), x.clone()];
    first(&vals, &[0, 2], |g, x| g.scatter_add(x[0], x[1], x[2], axis))?;
    second(
        &vals,
        &[0],
        cubed(|g, x| g.scatter_add(x[0], x[1], x[2], axis)),
    )
}

/// `one_hot` of integer labels: the labels cannot be nudged (they must stay integers), so the
/// check is that the gradient into them is a zero of their shape, not an error or a panic.
fn one_hot(c: &Case) -> R {
    let idx = &c.vals[1];
    let depth = c.vals[0].shape()[c.params[0]];
    let vals = vec![idx.clone()];
    let d = gradient_of(&vals, 0, |g, x| {
        let oh = g.one_hot(x[0], depth)?;
        g.tanh(oh)
    })?;
    ensure(
        d.shape() == idx.shape() && d.iter().all(|&v| v == 0.0),
        || {
            format!(
                "one_hot: gradient {d} is not a zero of shape {:?}",
                idx.shape()
            )
        },
    )
}

/// `stop_gradient(x) · x` has value `x²` but gradient `x`: the stopped factor counts as a
/// constant (documented), so the checker must not be used on it; the analytic value is checked.
fn stop_gradient(c: &Case) -> R {
    let d = gradient_of(&c.vals, 0, |g, x| {
        let s = g.stop_gradient(x[0])?;
        g.mul(s, x[0])
    })?;
    ensure(d == c.vals[0], || {
        format!("stop_gradient: gradient {d} is not x = {}", c.vals[0])
    })?;
    let z = gradient_of(&c.vals, 0, |g, x| g.stop_gradient(x[0]))?;
    ensure(z.iter().all(|&v| v == 0.0), || {
        format!("stop_gradient: gradient {z} is not zero")
    })
}

/// A tensor of rank 1-4 and one of its axes (params: `[axis]`).
fn log_softmax_cases() -> Cases {
    (shape(), any::<prop::sample::Index>())
        .prop_filter("log_softmax needs an axis", |(s, _)| !s.is_empty())
        .prop_flat_map(|(s, pick)| {
            let axis = pick.index(s.len());
            tensor(s).prop_map(move |v| Case::with(vec![v], vec![axis]))
        })
        .boxed()
}

/// `y = x - logsumexp(x)`; `x̄ = ȳ - softmax(x) Σȳ`, and the rule is twice differentiable.
fn log_softmax(c: &Case) -> R {
    let axis = c.params[0];
    first(&c.vals, &[0], |g, x| g.log_softmax(x[0], axis))?;
    second(&c.vals, &[0], |g, x| g.log_softmax(x[0], axis))
}

/// A tensor of rank 1-4, one of its axes and a direction (params: `[axis, reverse]`).
fn cumsum_cases() -> Cases {
    (shape(), any::<prop::sample::Index>(), any::<bool>())
        .prop_filter("cumsum needs an axis", |(s, _, _)| !s.is_empty())
        .prop_flat_map(|(s, pick, reverse)| {
            let axis = pick.index(s.len());
            tensor(s).prop_map(move |v| Case::with(vec![v], vec![axis, usize::from(reverse)]))
        })
        .boxed()
}

/// `cumsum` is linear: `x̄ = reversed cumsum(ȳ)`; second order through `cumsum(x)³`.
fn cumsum(c: &Case) -> R {
    let (axis, reverse) = (c.params[0], c.params[1] == 1);
    first(&c.vals, &[0], |g, x| g.cumsum(x[0], axis, reverse))?;
    second(&c.vals, &[0], cubed(|g, x| g.cumsum(x[0], axis, reverse)))
}

/// A tensor of rank 1-4 and a non-empty set of its axes (params: `[keep_dims, axes...]`).
fn logsumexp_cases() -> Cases {
    (
        shape(),
        any::<bool>(),
        vec(any::<bool>(), 4),
        any::<prop::sample::Index>(),
    )
        .prop_filter("logsumexp needs an axis", |(s, ..)| !s.is_empty())
        .prop_flat_map(|(s, keep, pick, first_axis)| {
            let forced = first_axis.index(s.len());
            let axes: Vec<usize> = (0..s.len()).filter(|&i| pick[i] || i == forced).collect();
            let params: Vec<usize> = std::iter::once(usize::from(keep)).chain(axes).collect();
            tensor(s).prop_map(move |v| Case::with(vec![v], params.clone()))
        })
        .boxed()
}

/// `y = log Σ e^x`; `x̄ = ȳ softmax(x)`, itself differentiable.
fn logsumexp(c: &Case) -> R {
    let (keep, axes) = (c.params[0] == 1, &c.params[1..]);
    first(&c.vals, &[0], |g, x| g.logsumexp(x[0], axes, keep))?;
    second(&c.vals, &[0], |g, x| g.logsumexp(x[0], axes, keep))
}
