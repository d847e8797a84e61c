//! Checks of the elementwise primitives: unary functions, `pow`, binary ops, comparisons and
//! `select`.

use super::{cases, cubed, d, ensure, first, gradient_of, n, second, Case, Cases, Entry, R};
use dendrite_autodiff::strategies::{
    away_from_zero, broadcast_pair, distinct_in, positive, shape, tensor, values_in,
};
use dendrite_graph::{BinaryOp, CompareOp, Graph, NodeId, UnaryOp};
use ndarray::ArrayD;
use proptest::collection::vec;
use proptest::prelude::*;

/// The table entries of this file: one per member of the unary, binary and compare families
/// (from their `ALL` lists, each asked for its domain by an exhaustive match), `pow` and
/// `select`.
pub fn entries() -> Vec<(&'static str, Entry)> {
    let mut t: Vec<(&'static str, Entry)> = Vec::new();
    for &op in UnaryOp::ALL {
        t.push((op.name(), d(unary_domain(op), move |c| unary(c, op))));
    }
    t.push(("pow", d(pow_cases, pow)));
    for &op in BinaryOp::ALL {
        t.push((op.name(), d(binary_domain(op), move |c| binary(c, op))));
    }
    for &op in CompareOp::ALL {
        t.push((op.name(), n(distinct_pairs, move |c| compare(c, op))));
    }
    t.push(("select", d(select_cases, select)));
    t
}

/// Where each unary function is checked: its domain, away from kinks and poles.
fn unary_domain(op: UnaryOp) -> fn() -> Cases {
    use UnaryOp::*;
    match op {
        Neg | Exp | Tanh | Erf | Sin | Cos | Expm1 | Sigmoid | Softplus => any_values,
        Log | Sqrt => positive_values,
        Log1p => above_minus_one,
        Abs => nonzero_values,
    }
}

/// Whether the function's Hessian is non-zero; linear and piecewise-linear ones are checked
/// at second order through `f(x)³`, which differentiates through their rule.
fn curved(op: UnaryOp) -> bool {
    use UnaryOp::*;
    match op {
        Neg | Abs => false,
        Exp | Log | Sqrt | Tanh | Erf | Sin | Cos | Log1p | Expm1 | Sigmoid | Softplus => true,
    }
}

/// Where each binary op is checked, and whether its Hessian is non-zero.
fn binary_domain(op: BinaryOp) -> fn() -> Cases {
    use BinaryOp::*;
    match op {
        Add | Sub | Mul => pairs,
        Div => pairs_positive_rhs,
        Maximum | Minimum => distinct_pairs,
        Power => power_pairs,
    }
}

fn binary_curved(op: BinaryOp) -> bool {
    use BinaryOp::*;
    match op {
        Add | Sub | Maximum | Minimum => false,
        Mul | Div | Power => true,
    }
}

fn any_values() -> Cases {
    cases(shape().prop_flat_map(|s| vec(tensor(s), 1)))
}

fn positive_values() -> Cases {
    cases(shape().prop_flat_map(|s| vec(positive(s), 1)))
}

fn above_minus_one() -> Cases {
    cases(shape().prop_flat_map(|s| vec(values_in(s, -0.8..2.0), 1)))
}

/// A positive base and an exponent in `-2..2`, broadcasting: the domain of both gradients.
fn power_pairs() -> Cases {
    cases(
        broadcast_pair()
            .prop_flat_map(|(a, b)| (positive(a), tensor(b)).prop_map(|(a, b)| vec![a, b])),
    )
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

/// First- and second-order checks of a unary function of input 0.
fn unary(c: &Case, op: UnaryOp) -> R {
    let f = move |g: &mut Graph<f64>, x: &[NodeId]| g.unary(op, x[0]);
    first(&c.vals, &[0], f)?;
    if curved(op) {
        second(&c.vals, &[0], f)
    } else {
        second(&c.vals, &[0], cubed(f))
    }
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

fn binary(c: &Case, op: BinaryOp) -> R {
    first(&c.vals, &[0, 1], |g, x| g.binary(op, x[0], x[1]))?;
    if binary_curved(op) {
        second(&c.vals, &[0, 1], |g, x| g.binary(op, x[0], x[1]))
    } else {
        second(&c.vals, &[0, 1], cubed(|g, x| g.binary(op, x[0], x[1])))
    }
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
