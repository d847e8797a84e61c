//! One property-based gradient check per primitive op, driven by the table in
//! `common/mod.rs`, and a test that the table covers `Op::primitive_names()` exactly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{run_primitive, table, table_names, Entry};
use dendrite_graph::{BinaryOp, CompareOp, Op, ReduceOp, UnaryOp};
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
    let primitives: BTreeSet<&str> = Op::<f64>::primitive_names().iter().copied().collect();
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
        "random_uniform",
        "random_normal",
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
        /// The names that got a test of their own above, to check against the table.
        const TESTED: &[&str] = &[$(stringify!($name)),*];
    };
}

/// The families whose members share one generic check run every member of their `ALL` list:
/// a new member is checked without a line here.
macro_rules! family_tests {
    ($($name:ident: $family:ty),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                for op in <$family>::ALL {
                    run_primitive(op.name(), CASES);
                }
            }
        )*
        /// The names checked by the family tests.
        fn family_members() -> Vec<&'static str> {
            let mut names = Vec::new();
            $(names.extend(<$family>::ALL.iter().map(|op| op.name()));)*
            names
        }
    };
}

family_tests!(
    unary_family: UnaryOp,
    binary_family: BinaryOp,
    compare_family: CompareOp,
    reduce_family: ReduceOp,
);

// The primitives with checks of their own.
primitive_tests!(
    pow,
    select,
    broadcast_to,
    broadcast_like,
    sum_like,
    expand_dims,
    dim_size,
    argmax,
    cumsum,
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
    stop_gradient,
    conv2d,
    conv2d_bias,
    conv2d_input_grad,
    conv2d_kernel_grad,
    max_pool2d,
    max_pool2d_scatter,
    max_pool2d_gather,
    avg_pool2d,
    avg_pool2d_grad,
    random_uniform,
    random_normal,
);

#[test]
fn every_table_entry_has_a_test() {
    let tested: BTreeSet<&str> = TESTED.iter().copied().chain(family_members()).collect();
    let listed: BTreeSet<&str> = table_names().into_iter().collect();
    assert_eq!(tested, listed);
}
