//! Random graphs from the autodiff crate's DAG strategy (every differentiable primitive has a
//! place in it), exported with every node as an output and each one checked against
//! onnxruntime. A DAG holding a primitive that cannot be exported must be refused with that
//! primitive's name (the strategy draws none today: its `scatter_add`, gather's adjoint, is
//! exported as `ScatterElements`); the test draws until it has checked [`CASES`] exportable
//! DAGs.

use crate::primitives::UNSUPPORTED;
use crate::runtime::{assert_close, Runtime};
use dendrite_autodiff::strategies::{dag_with_values, RandomDag};
use dendrite_graph::onnx::{self, OnnxError};
use dendrite_graph::{compile, Graph, NodeId};
use ndarray::ArrayD;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

/// Exportable DAGs checked (each is one onnxruntime process).
const CASES: usize = 24;

/// DAGs drawn at most.
const DRAWS: usize = 200;

#[test]
fn random_dags_match_onnxruntime() {
    let Some(rt) = Runtime::from_env("random_dags_match_onnxruntime") else {
        return;
    };
    let rng = TestRng::deterministic_rng(RngAlgorithm::ChaCha);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    let strategy = dag_with_values(2..=14);
    let (mut checked, mut refused) = (0, 0);
    for case in 0..DRAWS {
        if checked == CASES {
            break;
        }
        let (dag, values) = strategy.new_tree(&mut runner).expect("a DAG").current();
        if check(&rt, case, &dag, &values) {
            checked += 1;
        } else {
            refused += 1;
        }
    }
    eprintln!("random DAGs: {checked} checked against onnxruntime, {refused} refused by name");
    assert_eq!(checked, CASES, "too few exportable DAGs drawn");
}

/// Checks one DAG; `false` when it was (rightly) refused.
fn check(rt: &Runtime, case: usize, dag: &RandomDag, values: &[ArrayD<f64>]) -> bool {
    let mut g = Graph::<f32>::new();
    let (inputs, _) = dag.build(&mut g).expect("the DAG builds");
    let outputs: Vec<NodeId> = g
        .nodes()
        .filter(|&n| g.op(n).is_ok_and(|op| !op.is_leaf()))
        .collect();
    let model = match onnx::export(&g, &inputs, &outputs) {
        Ok(model) => model,
        Err(OnnxError::Unsupported { op, .. }) if UNSUPPORTED.contains(&op) => return false,
        Err(e) => panic!("case {case}: {e}\n{dag:?}"),
    };
    let feeds: Vec<ArrayD<f32>> = values.iter().map(|v| v.mapv(|x| x as f32)).collect();
    let names: Vec<String> = (0..feeds.len()).map(RandomDag::input_name).collect();
    let run: Vec<_> = names
        .iter()
        .map(String::as_str)
        .zip(feeds.iter().map(|f| f.view()))
        .collect();
    let theirs = rt.run(&model, std::slice::from_ref(&run));
    let mut plan = compile(&g, &outputs).expect("compiles");
    let ours = plan.run(&g, &run).expect("runs");
    for (k, &node) in outputs.iter().enumerate() {
        let what = format!(
            "case {case}: {} ({})\n{dag:?}",
            g.name(node).unwrap(),
            g.op(node).unwrap().name()
        );
        assert_close(
            &what,
            ours.get(k).unwrap(),
            theirs[0][k].1.view(),
            1e-5,
            1e-6,
        );
    }
    true
}
