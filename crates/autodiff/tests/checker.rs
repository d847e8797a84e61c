//! Self-tests of the gradient checker: it reports wrong gradients with a sensible worst
//! element, in both modes; it restores what it perturbs; it rejects what it cannot perturb.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dendrite_autodiff::check::{
    assert_gradients, check_gradients, check_second_order, CheckConfig, CheckMode, Location,
};
use dendrite_autodiff::AutodiffError;
use dendrite_graph::{compile, Graph, GraphError};
use ndarray::{arr1, arr2, ArrayD};

/// `f(x) = Σ x · stop_gradient(x)` has value `Σ x²` (true gradient `2x`) but the derived
/// gradient is `x`: a deliberately wrong gradient.
fn wrong_gradient_graph() -> (Graph<f64>, dendrite_graph::NodeId, dendrite_graph::NodeId) {
    let mut g = Graph::new();
    let x = g.input("x", [2, 3]).unwrap();
    let s = g.stop_gradient(x).unwrap();
    let p = g.mul(x, s).unwrap();
    let y = g.sum_all(p).unwrap();
    (g, x, y)
}

#[test]
fn a_wrong_gradient_fails_with_the_worst_element_named() {
    let (mut g, x, y) = wrong_gradient_graph();
    // The error 2x - x = x is largest in magnitude at [1, 2].
    let xv = arr2(&[[0.1, -0.2, 0.3], [0.4, 0.5, -3.0]]).into_dyn();
    let report = check_gradients(
        &mut g,
        y,
        &[x],
        &[("x", xv.view())],
        &CheckConfig::default(),
    )
    .unwrap();
    assert!(!report.passed());
    assert_eq!(report.mode, CheckMode::Elementwise);
    assert_eq!(report.checked, 6);
    assert_eq!(report.failures, 6);
    let worst = report.worst.clone().unwrap();
    assert_eq!(
        worst.location,
        Location::Element {
            node: "x".into(),
            index: vec![1, 2]
        }
    );
    assert!((worst.analytic - -3.0).abs() < 1e-12, "{worst}");
    assert!((worst.numeric - -6.0).abs() < 1e-6, "{worst}");
    assert!((worst.abs_error - 3.0).abs() < 1e-6 && (worst.rel_error - 0.5).abs() < 1e-6);
    let text = report.to_string();
    assert!(
        text.contains("6 of 6") && text.contains("`x`[1, 2]"),
        "{text}"
    );
    match report.into_result() {
        Err(AutodiffError::CheckFailed(r)) => assert_eq!(r.failures, 6),
        other => panic!("expected CheckFailed, got {other:?}"),
    }
}

#[test]
fn a_wrong_gradient_fails_in_directional_mode() {
    let (mut g, x, y) = wrong_gradient_graph();
    let xv = arr2(&[[0.1, -0.2, 0.3], [0.4, 0.5, -3.0]]).into_dyn();
    let config = CheckConfig::default().with_mode(CheckMode::Directional { trials: 5 });
    let err = assert_gradients(&mut g, y, &[x], &[("x", xv.view())], &config).unwrap_err();
    let AutodiffError::CheckFailed(report) = err else {
        panic!("expected CheckFailed")
    };
    assert_eq!(report.mode, CheckMode::Directional { trials: 5 });
    assert_eq!(report.checked, 5);
    assert!(report.failures >= 4, "{report}");
    assert!(matches!(
        report.worst.unwrap().location,
        Location::Direction { .. }
    ));
}

#[test]
fn a_small_wrong_term_is_caught_among_large_correct_ones() {
    // f = Σ 100 x² + x₀ · stop_gradient(x₀): only element 0 is wrong, by x₀.
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [4]).unwrap();
    let sq = g.square(x).unwrap();
    let big = g.scale(sq, 100.0).unwrap();
    let first = g.slice(x, 0, 0, 1).unwrap();
    let stopped = g.stop_gradient(first).unwrap();
    let wrong = g.mul(first, stopped).unwrap();
    let a = g.sum_all(big).unwrap();
    let b = g.sum_all(wrong).unwrap();
    let y = g.add(a, b).unwrap();
    let xv = arr1(&[0.5, 1.0, -1.0, 2.0]).into_dyn();
    let report = check_gradients(
        &mut g,
        y,
        &[x],
        &[("x", xv.view())],
        &CheckConfig::default(),
    )
    .unwrap();
    assert_eq!(report.failures, 1, "{report}");
    assert_eq!(
        report.worst.unwrap().location,
        Location::Element {
            node: "x".into(),
            index: vec![0]
        }
    );
}

#[test]
fn correct_gradients_pass_in_both_modes_with_non_scalar_outputs() {
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [None, Some(3)]).unwrap();
    let w = g
        .parameter("w", arr2(&[[0.5, -1.0], [2.0, 0.1], [0.3, 0.3]]).into_dyn())
        .unwrap();
    let h = g.matmul(x, w).unwrap();
    let y = g.tanh(h).unwrap();
    let xv = ArrayD::from_shape_fn(ndarray::IxDyn(&[4, 3]), |i| {
        (i[0] as f64 - 1.5) * 0.3 + i[1] as f64 * 0.1
    });
    for mode in [
        CheckMode::Elementwise,
        CheckMode::Directional { trials: 6 },
        CheckMode::Auto,
    ] {
        let config = CheckConfig::default().with_mode(mode);
        let report = check_gradients(&mut g, y, &[x, w], &[("x", xv.view())], &config).unwrap();
        assert!(report.passed(), "{mode:?}: {report}");
    }
}

#[test]
fn auto_mode_switches_to_directional_above_the_limit() {
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [20, 20]).unwrap();
    let t = g.tanh(x).unwrap();
    let y = g.sum_all(t).unwrap();
    let xv = ArrayD::from_shape_fn(ndarray::IxDyn(&[20, 20]), |i| {
        ((i[0] * 20 + i[1]) as f64).sin()
    });
    let report = check_gradients(
        &mut g,
        y,
        &[x],
        &[("x", xv.view())],
        &CheckConfig::default(),
    )
    .unwrap();
    assert_eq!(report.mode, CheckMode::Directional { trials: 8 });
    assert!(report.passed(), "{report}");
}

#[test]
fn parameters_are_restored_after_a_check() {
    let mut g = Graph::<f64>::new();
    let w = g.parameter("w", arr1(&[1.0, 2.0, 3.0]).into_dyn()).unwrap();
    let e = g.exp(w).unwrap();
    let y = g.sum_all(e).unwrap();
    let before = g.value(w).unwrap().to_owned();
    for mode in [CheckMode::Elementwise, CheckMode::Directional { trials: 3 }] {
        let config = CheckConfig::default().with_mode(mode);
        assert_gradients(&mut g, y, &[w], &[], &config).unwrap();
        check_second_order(&mut g, y, &[w], &[], &config)
            .unwrap()
            .into_result()
            .unwrap();
        assert_eq!(g.value(w).unwrap(), before.view(), "bit-exact restore");
    }
}

#[test]
fn the_checker_refuses_what_it_cannot_perturb() {
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [2]).unwrap();
    let e = g.exp(x).unwrap();
    let y = g.sum_all(e).unwrap();
    let xv = arr1(&[1.0, 2.0]).into_dyn();
    let err = check_gradients(
        &mut g,
        y,
        &[e],
        &[("x", xv.view())],
        &CheckConfig::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, AutodiffError::NotPerturbable { ref node, op: "exp" } if node == "exp"),
        "{err}"
    );
    let err = check_gradients(&mut g, y, &[x], &[], &CheckConfig::default()).unwrap_err();
    assert!(
        matches!(err, AutodiffError::Graph(GraphError::MissingFeed { .. })),
        "{err}"
    );
}

#[test]
fn a_wrong_second_derivative_fails_the_second_order_check() {
    // f = Σ x² · stop_gradient(x): gradient 2x·sg(x) + 0 is wrong already; its own derivative
    // (the Hessian) misses the terms through the stopped factor. The first-order check and the
    // second-order check both fail.
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [3]).unwrap();
    let sq = g.square(x).unwrap();
    let s = g.stop_gradient(x).unwrap();
    let p = g.mul(sq, s).unwrap();
    let y = g.sum_all(p).unwrap();
    let xv = arr1(&[0.5, -1.0, 1.5]).into_dyn();
    let feeds = [("x", xv.view())];
    let report = check_second_order(&mut g, y, &[x], &feeds, &CheckConfig::default()).unwrap();
    assert!(!report.passed());
    // The right function (x³) passes.
    let cube = g.pow(x, 3.0).unwrap();
    let y3 = g.sum_all(cube).unwrap();
    let report = check_second_order(&mut g, y3, &[x], &feeds, &CheckConfig::default()).unwrap();
    assert!(report.passed(), "{report}");
}

#[test]
fn checks_leave_existing_plans_working() {
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [2]).unwrap();
    let y = g.tanh(x).unwrap();
    let mut plan = compile(&g, &[y]).unwrap();
    let xv = arr1(&[0.5, -0.5]).into_dyn();
    for _ in 0..2 {
        assert_gradients(
            &mut g,
            y,
            &[x],
            &[("x", xv.view())],
            &CheckConfig::default(),
        )
        .unwrap();
    }
    let out = plan.run(&g, &[("x", xv.view())]).unwrap();
    assert_eq!(out.get(0).unwrap()[[0]], 0.5_f64.tanh());
    // Two checks added two cotangent inputs, with distinct names.
    assert!(
        g.node_by_name("check/cotangent").is_some()
            && g.node_by_name("check/cotangent_1").is_some()
    );
}

#[test]
fn tolerances_decide_agreement() {
    let c = CheckConfig::default().with_tolerances(1e-3, 0.0);
    assert!(c.agree(100.0, 100.05));
    assert!(!c.agree(100.0, 100.2));
    assert!(!c.agree(f64::NAN, 1.0));
    let c = CheckConfig::default().with_tolerances(0.0, 1e-3);
    assert!(c.agree(0.0, 5e-4) && !c.agree(0.0, 2e-3));
}

#[test]
fn settings_out_of_range_are_refused_before_anything_is_checked() {
    let nan = f64::NAN;
    let cases: Vec<(CheckConfig, &str)> = vec![
        (
            CheckConfig::default().with_tolerances(-1e-5, 1e-6),
            "rtol = -0.00001",
        ),
        (
            CheckConfig::default().with_tolerances(nan, 1e-6),
            "rtol = NaN",
        ),
        (
            CheckConfig::default().with_tolerances(1e-5, -1.0),
            "atol = -1",
        ),
        (
            CheckConfig::default().with_tolerances(1e-5, f64::INFINITY),
            "atol = inf",
        ),
        (CheckConfig::default().with_eps(0.0), "eps = 0"),
        (CheckConfig::default().with_eps(nan), "eps = NaN"),
        (CheckConfig::default().with_eps(-1e-6), "eps = -0.000001"),
        (
            CheckConfig::default().with_mode(CheckMode::Directional { trials: 0 }),
            "trials = 0",
        ),
        (
            CheckConfig {
                auto_trials: 0,
                ..CheckConfig::default()
            },
            "auto_trials = 0",
        ),
    ];
    for (config, expected) in cases {
        // The wrong gradient would fail any real check: a refused config must not "pass".
        let (mut g, x, y) = wrong_gradient_graph();
        let xv = ArrayD::from_elem(ndarray::IxDyn(&[2, 3]), 0.5);
        for second_order in [false, true] {
            let result = if second_order {
                check_second_order(&mut g, y, &[x], &[("x", xv.view())], &config)
            } else {
                check_gradients(&mut g, y, &[x], &[("x", xv.view())], &config)
            };
            let err = result.unwrap_err();
            assert!(
                matches!(err, AutodiffError::InvalidCheckConfig { .. }),
                "{config:?}: {err:?}"
            );
            assert!(
                err.to_string()
                    .starts_with(&format!("check config: {expected} is invalid")),
                "{err}"
            );
        }
    }
}

#[test]
fn a_feed_given_twice_is_refused_instead_of_checking_the_wrong_value() {
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [2]).unwrap();
    let sq = g.square(x).unwrap();
    let y = g.sum_all(sq).unwrap();
    let (a, b) = (arr1(&[1.0, 2.0]).into_dyn(), arr1(&[3.0, 4.0]).into_dyn());
    let err = check_gradients(
        &mut g,
        y,
        &[x],
        &[("x", a.view()), ("x", b.view())],
        &CheckConfig::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, AutodiffError::Graph(GraphError::DuplicateFeed { .. })),
        "{err:?}"
    );
}
