//! One property-based gradient check per primitive op, driven by the table in
//! `common/mod.rs`, and a test that the table covers `Op::primitive_names()` exactly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{run_primitive, table, table_names, Entry};
use dendrite_graph::Op;
use std::collections::BTreeSet;

/// Cases per primitive: each case runs a first- and (where twice differentiable) a
/// second-order check.
const CASES: u32 = 256;

#[test]
fn every_primitive_has_a_gradient_check() {
    let names = table_names();
    let listed: BTreeSet<&str> = names.iter().copied().collect();
    assert_eq!(
        listed.len(),
        names.len(),
        "a primitive appears twice in the table: {names:?}"
    );
    let primitives: BTreeSet<&str> = Op::primitive_names().iter().copied().collect();
    let missing: Vec<_> = primitives.difference(&listed).collect();
    let extra: Vec<_> = listed.difference(&primitives).collect();
    assert!(
        missing.is_empty(),
        "primitives without a gradient check: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "table entries that are not primitives: {extra:?}"
    );
}

#[test]
fn non_differentiable_primitives_are_the_documented_ones() {
    let non: BTreeSet<&str> = table()
        .into_iter()
        .filter(|(_, e)| matches!(e, Entry::NonDifferentiable(..)))
        .map(|(n, _)| n)
        .collect();
    let expected: BTreeSet<&str> = [
        "eq",
        "ne",
        "lt",
        "le",
        "gt",
        "ge",
        "dim_size",
        "argmax",
        "one_hot",
        "stop_gradient",
    ]
    .into_iter()
    .collect();
    assert_eq!(non, expected);
}

macro_rules! primitive_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                run_primitive(stringify!($name), CASES);
            }
        )*
        /// The names that got a test above, to check against the table.
        const TESTED: &[&str] = &[$(stringify!($name)),*];
    };
}

primitive_tests!(
    neg,
    exp,
    log,
    sqrt,
    tanh,
    abs,
    erf,
    sin,
    cos,
    log1p,
    expm1,
    sigmoid,
    softplus,
    pow,
    add,
    sub,
    mul,
    div,
    maximum,
    minimum,
    power,
    eq,
    ne,
    lt,
    le,
    gt,
    ge,
    select,
    broadcast_to,
    broadcast_like,
    sum_like,
    expand_dims,
    sum,
    max,
    min,
    prod,
    dim_size,
    argmax,
    reshape,
    permute,
    matmul,
    slice,
    pad,
    concat,
    gather,
    scatter_add,
    one_hot,
    log_softmax,
    logsumexp,
    cumsum,
    stop_gradient,
);

#[test]
fn every_table_entry_has_a_test() {
    let tested: BTreeSet<&str> = TESTED.iter().copied().collect();
    let listed: BTreeSet<&str> = table_names().into_iter().collect();
    assert_eq!(tested, listed);
}
