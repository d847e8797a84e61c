//! End-to-end gradient checks of random DAGs of 2-30 ops composed from the primitives.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use dendrite_autodiff::check::{check_gradients, check_second_order, CheckConfig};
use dendrite_autodiff::strategies::{dag_with_values, random_dag, RandomDag};
use dendrite_graph::Graph;
use ndarray::{ArrayD, ArrayViewD};
use proptest::prelude::*;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use std::collections::BTreeSet;

fn feeds<'a>(
    names: &'a [String],
    values: &'a [ArrayD<f64>],
) -> Vec<(&'a str, ArrayViewD<'a, f64>)> {
    names
        .iter()
        .zip(values)
        .map(|(n, v)| (n.as_str(), v.view()))
        .collect()
}

/// Points closer than this to a kink (see `RandomDag::kink_distance`) are not checked: a
/// finite difference with step ε moves an intermediate value by about ε·|∂v/∂x|, which stays
/// below it for the slopes these DAGs have (|∂v/∂x| ≲ 10³ at ε = 10⁻⁶, 10² at ε = 10⁻⁵).
const KINK_MARGIN: f64 = 1e-3;

/// Values of random DAGs reach ~10³, so the finite-difference noise (~|f|·1e-16/ε) gets an
/// absolute tolerance to match.
fn config() -> CheckConfig {
    CheckConfig::default().with_tolerances(1e-5, 1e-5)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 1024,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_dags_have_correct_gradients((dag, values) in dag_with_values(2..=30)) {
        prop_assume!(dag.kink_distance(&values).unwrap() > KINK_MARGIN);
        let mut g = Graph::<f64>::new();
        let (inputs, output) = dag.build(&mut g).unwrap();
        let names: Vec<String> = (0..inputs.len()).map(RandomDag::input_name).collect();
        let feeds = feeds(&names, &values);
        let report = check_gradients(&mut g, output, &inputs, &feeds, &config()).unwrap();
        prop_assert!(report.passed(), "{}\n{:?}", report, dag);
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_dags_have_correct_hessian_vector_products((dag, values) in dag_with_values(2..=12)) {
        prop_assume!(dag.kink_distance(&values).unwrap() > KINK_MARGIN);
        let mut g = Graph::<f64>::new();
        let (inputs, output) = dag.build(&mut g).unwrap();
        let names: Vec<String> = (0..inputs.len()).map(RandomDag::input_name).collect();
        let feeds = feeds(&names, &values);
        let config = config().with_eps(1e-5);
        let report = check_second_order(&mut g, output, &inputs, &feeds, &config).unwrap();
        prop_assert!(report.passed(), "{}\n{:?}", report, dag);
    }
}

/// Every differentiable primitive (the gradient-check table's differentiable entries, which
/// cover `Op::primitive_names()`) appears in the random DAGs: a new primitive that the DAG
/// strategy cannot draw fails here.
#[test]
fn random_dags_use_every_differentiable_primitive() {
    let differentiable: BTreeSet<&str> = common::table()
        .into_iter()
        .filter(|(_, e)| matches!(e, common::Entry::Differentiable(..)))
        .map(|(n, _)| n)
        .collect();
    let mut seen = BTreeSet::new();
    let mut runner = TestRunner::deterministic();
    let strategy = random_dag(2..=30);
    for _ in 0..3000 {
        let dag = strategy.new_tree(&mut runner).unwrap().current();
        let mut g = Graph::<f64>::new();
        dag.build(&mut g).unwrap();
        for id in g.nodes() {
            seen.insert(g.op(id).unwrap().name());
        }
    }
    let missing: Vec<&&str> = differentiable
        .iter()
        .filter(|n| !seen.contains(**n))
        .collect();
    assert!(
        missing.is_empty(),
        "never drawn in random DAGs: {missing:?}"
    );
}
