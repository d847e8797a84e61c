//! Checks of the elementwise primitives: unary functions, `pow`, binary ops, comparisons and
//! `select`.

use super::{cases, cubed, ensure, first, gradient_of, second, Case, Cases, Entry, R};
use dendrite_autodiff::strategies::{
    away_from_zero, broadcast_pair, distinct_in, positive, shape, tensor, values_in,
};
use dendrite_graph::{BinaryOp, CompareOp, Graph, GraphError, NodeId};
use ndarray::ArrayD;
use proptest::collection::vec;
use proptest::prelude::*;

/// The table entries of this file.
pub fn entries() -> Vec<(&'static str, Entry)> {
    use Entry::{Differentiable as D, NonDifferentiable as N};
    vec![
        ("neg", D(any_values, neg)),
        ("exp", D(any_values, exp)),
        ("log", D(positive_values, log)),
        ("sqrt", D(positive_values, sqrt)),
        ("tanh", D(any_values, tanh)),
        ("abs", D(nonzero_values, abs)),
        ("erf", D(any_values, erf)),
        ("pow", D(pow_cases, pow)),
        ("add", D(pairs, add)),
        ("sub", D(pairs, sub)),
        ("mul", D(pairs, mul)),
        ("div", D(pairs_positive_rhs, div)),
        ("maximum", D(distinct_pairs, maximum)),
        ("minimum", D(distinct_pairs, minimum)),
        ("eq", N(distinct_pairs, |c| compare(c, CompareOp::Eq))),
        ("ne", N(distinct_pairs, |c| compare(c, CompareOp::Ne))),
        ("lt", N(distinct_pairs, |c| compare(c, CompareOp::Lt))),
        ("le", N(distinct_pairs, |c| compare(c, CompareOp::Le))),
        ("gt", N(distinct_pairs, |c| compare(c, CompareOp::Gt))),
        ("ge", N(distinct_pairs, |c| compare(c, CompareOp::Ge))),
        ("select", D(select_cases, select)),
    ]
}

fn any_values() -> Cases {
    cases(shape().prop_flat_map(|s| vec(tensor(s), 1)))
}

fn positive_values() -> Cases {
    cases(shape().prop_flat_map(|s| vec(positive(s), 1)))
}

fn nonzero_values() -> Cases {
    cases(shape().prop_flat_map(|s| vec(away_from_zero(s), 1)))
}

fn pairs() -> Cases {
    cases(
        broadcast_pair()
            .prop_flat_map(|(a, b)| (tensor(a), tensor(b)).prop_map(|(a, b)| vec![a, b])),
    )
}

fn pairs_positive_rhs() -> Cases {
    cases(
        broadcast_pair()
            .prop_flat_map(|(a, b)| (tensor(a), positive(b)).prop_map(|(a, b)| vec![a, b])),
    )
}

/// Two broadcast-compatible tensors whose values are all distinct: no ties between them.
fn distinct_pairs() -> Cases {
    cases(broadcast_pair().prop_flat_map(|(sa, sb)| {
        let (na, nb) = (sa.iter().product::<usize>(), sb.iter().product::<usize>());
        distinct_in(vec![na + nb], -2.0..2.0).prop_map(move |all| {
            let flat: Vec<f64> = all.iter().copied().collect();
            vec![reshape(&flat[..na], &sa), reshape(&flat[na..], &sb)]
        })
    }))
}

fn reshape(values: &[f64], shape: &[usize]) -> ArrayD<f64> {
    let mut it = values.iter().copied();
    ArrayD::from_shape_simple_fn(ndarray::IxDyn(shape), || it.next().unwrap_or(0.0))
}

type Build = fn(&mut Graph<f64>, &[NodeId]) -> Result<NodeId, GraphError>;

/// First- and second-order checks of a unary function of input 0.
fn unary(case: &Case, f: Build) -> R {
    first(&case.vals, &[0], f)?;
    second(&case.vals, &[0], f)
}

fn neg(c: &Case) -> R {
    first(&c.vals, &[0], |g, x| g.neg(x[0]))?;
    second(&c.vals, &[0], cubed(|g, x| g.neg(x[0])))
}

fn exp(c: &Case) -> R {
    unary(c, |g, x| g.exp(x[0]))
}

fn log(c: &Case) -> R {
    unary(c, |g, x| g.log(x[0]))
}

fn sqrt(c: &Case) -> R {
    unary(c, |g, x| g.sqrt(x[0]))
}

fn tanh(c: &Case) -> R {
    unary(c, |g, x| g.tanh(x[0]))
}

fn erf(c: &Case) -> R {
    unary(c, |g, x| g.erf(x[0]))
}

fn abs(c: &Case) -> R {
    // |x| is piecewise linear: its Hessian is zero away from 0; |x|³ makes it non-zero.
    first(&c.vals, &[0], |g, x| g.abs(x[0]))?;
    second(&c.vals, &[0], cubed(|g, x| g.abs(x[0])))
}

/// Exponents: integral ones (any sign of the base, |x| ≥ 0.1) and fractional ones (positive
/// base). The exponent is `params[0]` indexing `EXPONENTS`.
const EXPONENTS: [f64; 8] = [2.0, 3.0, -1.0, -2.0, 0.0, 1.0, 0.5, -1.5];

fn pow_cases() -> Cases {
    (shape(), 0..EXPONENTS.len())
        .prop_flat_map(|(s, k)| {
            let values = if EXPONENTS[k].fract() == 0.0 {
                away_from_zero(s).boxed()
            } else {
                positive(s).boxed()
            };
            values.prop_map(move |v| Case::with(vec![v], vec![k]))
        })
        .boxed()
}

fn pow(c: &Case) -> R {
    let p = EXPONENTS[c.params[0]];
    first(&c.vals, &[0], move |g, x| g.pow(x[0], p))?;
    second(&c.vals, &[0], move |g, x| g.pow(x[0], p))
}

fn binary(c: &Case, op: BinaryOp, bilinear: bool) -> R {
    first(&c.vals, &[0, 1], |g, x| g.binary(op, x[0], x[1]))?;
    if bilinear {
        second(&c.vals, &[0, 1], |g, x| g.binary(op, x[0], x[1]))
    } else {
        second(&c.vals, &[0, 1], cubed(|g, x| g.binary(op, x[0], x[1])))
    }
}

fn add(c: &Case) -> R {
    binary(c, BinaryOp::Add, false)
}

fn sub(c: &Case) -> R {
    binary(c, BinaryOp::Sub, false)
}

fn mul(c: &Case) -> R {
    binary(c, BinaryOp::Mul, true)
}

fn div(c: &Case) -> R {
    binary(c, BinaryOp::Div, true)
}

fn maximum(c: &Case) -> R {
    binary(c, BinaryOp::Maximum, false)
}

fn minimum(c: &Case) -> R {
    binary(c, BinaryOp::Minimum, false)
}

/// Comparisons are piecewise constant: the gradient through them is zero. Away from ties it is
/// also the true derivative, so `compare(a, b)` and `compare(a, b) · a` (whose derivative is
/// the comparison itself, not more) pass the numeric check.
fn compare(c: &Case, op: CompareOp) -> R {
    first(&c.vals, &[0, 1], |g, x| g.compare(op, x[0], x[1]))?;
    first(&c.vals, &[0, 1], |g, x| {
        let m = g.compare(op, x[0], x[1])?;
        g.mul(m, x[0])
    })?;
    let da = gradient_of(&c.vals, 0, |g, x| g.compare(op, x[0], x[1]))?;
    ensure(da.iter().all(|&v| v == 0.0), || {
        format!("{op:?}: gradient {da} is not zero")
    })
}

/// `select(cond, a, b)` with a 0/1 condition shaped like `a`: gradients flow to `a` and `b`;
/// into the condition, a documented zero.
fn select_cases() -> Cases {
    broadcast_pair()
        .prop_flat_map(|(sa, sb)| {
            let n: usize = sa.iter().product();
            let cond = vec(prop_oneof![Just(0.0), Just(1.0)], n).prop_map({
                let sa = sa.clone();
                move |v| reshape(&v, &sa)
            });
            (cond, tensor(sa), values_in(sb, -2.0..2.0))
                .prop_map(|(c, a, b)| Case::new(vec![c, a, b]))
        })
        .boxed()
}

fn select(c: &Case) -> R {
    first(&c.vals, &[1, 2], |g, x| g.select(x[0], x[1], x[2]))?;
    second(&c.vals, &[1, 2], cubed(|g, x| g.select(x[0], x[1], x[2])))?;
    let dc = gradient_of(&c.vals, 0, |g, x| g.select(x[0], x[1], x[2]))?;
    ensure(dc.iter().all(|&v| v == 0.0), || {
        format!("select: condition gradient {dc} is not zero")
    })
}
