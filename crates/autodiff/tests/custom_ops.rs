//! User-defined primitives: gradient checks of first and second order, jvp and hvp through
//! them, common-subexpression elimination, plans (buffer reuse, profiles), DOT export and the
//! errors naming the op and the node.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::custom::{CheckedLog, Impostor, Leaky, Softsign, TooManyGradients, XSinX};
use common::{first, prop, second, R};
use dendrite_autodiff::check::{check_gradients, CheckConfig};
use dendrite_autodiff::strategies::{shape, values_in};
use dendrite_autodiff::{grad, hessian, hvp, jacobian, jvp, simplify, AutodiffError};
use dendrite_graph::{compile, to_dot, Graph, GraphError, NodeId, Op};
use ndarray::{arr1, ArrayD};
use proptest::prelude::*;
use std::sync::Arc;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn xsinx(g: &mut Graph<f64>, x: NodeId) -> Result<NodeId, GraphError> {
    g.custom(Arc::new(XSinX { wrong: false }), &[x])
}

fn softsign(vjp: bool, jvp: bool) -> Arc<Softsign> {
    Arc::new(Softsign { vjp, jvp })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// First and second order of `x sin x`, whose VJP rule is built from primitives.
    #[test]
    fn xsinx_passes_first_and_second_order(
        x in shape().prop_flat_map(|s| values_in(s, -3.0..3.0)),
    ) {
        let f = |g: &mut Graph<f64>, xs: &[NodeId]| xsinx(g, xs[0]);
        prop(first(std::slice::from_ref(&x), &[0], f))?;
        prop(second(std::slice::from_ref(&x), &[0], f))?;
    }

    /// Softsign composed with built-ins on both sides, two operands reaching it.
    #[test]
    fn softsign_inside_a_composition_passes(
        x in values_in(vec![2, 3], -2.0..2.0),
        w in values_in(vec![3], -2.0..2.0),
    ) {
        let f = |g: &mut Graph<f64>, xs: &[NodeId]| {
            let h = g.mul(xs[0], xs[1])?;
            let s = g.custom(softsign(true, false), &[h])?;
            g.tanh(s)
        };
        let vals = [x, w];
        prop(first(&vals, &[0, 1], f))?;
        prop(second(&vals, &[0, 1], f))?;
    }
}

#[test]
fn a_wrong_rule_is_caught_by_the_checker() -> R {
    let x = arr1(&[0.3, -1.2, 2.0]).into_dyn();
    let mut g = Graph::<f64>::new();
    let xi = g.input("x", [3])?;
    let y = g.custom(Arc::new(XSinX { wrong: true }), &[xi])?;
    let report = check_gradients(
        &mut g,
        y,
        &[xi],
        &[("x", x.view())],
        &CheckConfig::default(),
    )?;
    common::ensure(!report.passed() && report.failures == 3, || {
        format!("{report}")
    })?;
    // The right rule passes on the same graph shape.
    first(&[x], &[0], |g, xs| xsinx(g, xs[0]))
}

/// `d²/dx² (x sin x) = 2 cos x - x sin x`: hvp through the custom op's rule, by hand.
#[test]
fn hvp_and_hessian_through_a_custom_op() -> TestResult {
    let xv = arr1(&[0.5, -1.5]).into_dyn();
    let vv = arr1(&[1.0, 2.0]).into_dyn();
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [2])?;
    let v = g.input("v", [2])?;
    let y = xsinx(&mut g, x)?;
    let f = g.sum_all(y)?;
    let hv = hvp(&mut g, f, &[x], &[v])?;
    let h = hessian(&mut g, f, x)?;
    let mut plan = compile(&g, &[hv[0], h])?;
    let out = plan.run(&g, &[("x", xv.view()), ("v", vv.view())])?;
    let second = |x: f64| 2.0 * x.cos() - x * x.sin();
    for i in 0..2 {
        let expected = second(xv[i]) * vv[i];
        assert!((out.get(0)?[i] - expected).abs() < 1e-12);
        assert!((out.get(1)?[[i, i]] - second(xv[i])).abs() < 1e-12);
    }
    assert_eq!(out.get(1)?[[0, 1]], 0.0);
    Ok(())
}

/// jvp through a custom op by its own JVP rule, and by transposing its VJP rule, agree with
/// the same function built from primitives.
#[test]
fn jvp_uses_the_jvp_rule_or_transposes_the_vjp_rule() -> TestResult {
    let xv = arr1(&[0.5, -1.5, 3.0]).into_dyn();
    let tv = arr1(&[1.0, -2.0, 0.5]).into_dyn();
    let mut results = Vec::new();
    for (vjp, jvp_rule) in [(true, true), (true, false), (false, true)] {
        let mut g = Graph::<f64>::new();
        let x = g.input("x", [3])?;
        let t = g.input("t", [3])?;
        let e = g.exp(x)?;
        let s = g.custom(softsign(vjp, jvp_rule), &[e])?;
        let y = g.mul(s, x)?;
        let jt = jvp(&mut g, y, &[x], &[t])?;
        let mut plan = compile(&g, &[jt])?;
        let out = plan.run(&g, &[("x", xv.view()), ("t", tv.view())])?;
        results.push(out.get(0)?.to_owned());
    }
    // The same function from primitives: y = x e / (1 + e), e = exp x.
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [3])?;
    let t = g.input("t", [3])?;
    let e = g.exp(x)?;
    let one = g.scalar(1.0);
    let d = g.add(one, e)?;
    let s = g.div(e, d)?;
    let y = g.mul(s, x)?;
    let jt = jvp(&mut g, y, &[x], &[t])?;
    let mut plan = compile(&g, &[jt])?;
    let reference = plan
        .run(&g, &[("x", xv.view()), ("t", tv.view())])?
        .get(0)?
        .to_owned();
    for r in &results {
        for (a, b) in r.iter().zip(reference.iter()) {
            assert!((a - b).abs() < 1e-12, "{r} vs {reference}");
        }
    }
    Ok(())
}

#[test]
fn a_jvp_only_op_has_no_gradient_and_an_op_without_rules_has_no_jvp() -> TestResult {
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [3])?;
    let y = g.custom(softsign(false, true), &[x])?;
    let f = g.sum_all(y)?;
    let err = grad(&mut g, f, &[x]).unwrap_err();
    assert!(matches!(
        err,
        AutodiffError::Graph(GraphError::NotDifferentiable { op: "softsign", ref node, .. })
            if node == "softsign"
    ));
    let t = g.input("t", [3])?;
    let leaky = g.custom(Arc::new(Leaky(0.1)), &[x])?;
    let err = jvp(&mut g, leaky, &[x], &[t]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "leaky `leaky`: not differentiable: this custom op defines neither a JVP nor a VJP rule"
    );
    Ok(())
}

#[test]
fn a_gradient_of_an_op_without_a_vjp_names_the_op_and_the_node() -> TestResult {
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [3])?;
    let y = g.custom(Arc::new(CheckedLog), &[x])?;
    let f = g.sum_all(y)?;
    let before = g.node_count();
    let err = grad(&mut g, f, &[x]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "checked_log `checked_log`: not differentiable: this custom op defines no VJP rule"
    );
    assert_eq!(
        g.node_count(),
        before,
        "a refused gradient leaves no nodes behind"
    );
    // Jacobians and the checker report the same.
    assert!(jacobian(&mut g, y, x).is_err());
    let xv = arr1(&[1.0, 2.0, 3.0]).into_dyn();
    let err = check_gradients(
        &mut g,
        f,
        &[x],
        &[("x", xv.view())],
        &CheckConfig::default(),
    );
    assert!(matches!(
        err,
        Err(AutodiffError::Graph(GraphError::NotDifferentiable {
            op: "checked_log",
            ..
        }))
    ));
    Ok(())
}

#[test]
fn a_kernel_error_is_a_run_error_naming_the_op_and_the_node() -> TestResult {
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [None, Some(2)])?;
    g.custom(Arc::new(CheckedLog), &[x])?;
    let y = g.custom(Arc::new(CheckedLog), &[x])?;
    let mut plan = compile(&g, &[y])?;
    let good = ndarray::arr2(&[[1.0, 2.0]]).into_dyn();
    assert!(plan.run(&g, &[("x", good.view())]).is_ok());
    let bad = ndarray::arr2(&[[1.0, 2.0], [3.0, -1.0]]).into_dyn();
    let err = plan.run(&g, &[("x", bad.view())]).unwrap_err();
    assert_eq!(
        err,
        GraphError::CustomKernel {
            op: "checked_log",
            node: "checked_log_1".into(),
            reason: "non-positive value at flat index 3".into(),
        }
    );
    assert_eq!(
        err.to_string(),
        "checked_log `checked_log_1`: kernel failed: non-positive value at flat index 3"
    );
    Ok(())
}

#[test]
fn a_shape_error_names_the_op_and_the_shapes() -> TestResult {
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [None, Some(2)])?;
    let before = g.node_count();
    let err = g
        .custom(Arc::new(XSinX { wrong: false }), &[x, x])
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "xsinx `xsinx`: expects 1 operand, got 2: operand shapes [?, 2], [?, 2]"
    );
    assert!(matches!(err, GraphError::CustomShape { op: "xsinx", .. }));
    assert_eq!(g.node_count(), before);
    Ok(())
}

#[test]
fn a_rule_returning_the_wrong_gradient_count_is_refused() -> TestResult {
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [3])?;
    let y = g.custom(Arc::new(TooManyGradients), &[x])?;
    let f = g.sum_all(y)?;
    let err = grad(&mut g, f, &[x]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "too_many `too_many`: invalid derivative rule: the VJP rule returned 2 gradients for 1 \
         operands"
    );
    Ok(())
}

#[test]
fn cse_merges_identical_custom_nodes_and_keeps_different_ones() -> TestResult {
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [3])?;
    let a = g.custom(Arc::new(Leaky(0.1)), &[x])?;
    let b = g.custom(Arc::new(Leaky(0.1)), &[x])?; // the same op, built twice
    let c = g.custom(Arc::new(Leaky(0.2)), &[x])?; // another slope
    let d = g.custom(Arc::new(Impostor(0.1)), &[x])?; // same name and slope, another type
    assert_eq!(g.op(a)?, g.op(b)?);
    assert_ne!(g.op(a)?, g.op(c)?);
    assert_ne!(g.op(a)?, g.op(d)?);
    let simple = simplify(&mut g, &[a, b, c, d])?;
    let [sa, sb, sc, sd] = simple.outputs[..] else {
        panic!("four outputs")
    };
    assert_eq!(sa, sb);
    assert!(sa != sc && sa != sd && sc != sd);
    assert_eq!(simple.stats.merged, 1);
    let xv = arr1(&[-1.0, 0.5, 2.0]).into_dyn();
    let before = compile(&g, &[a, b, c, d])?
        .run(&g, &[("x", xv.view())])?
        .to_vec()?;
    let after = compile(&g, &simple.outputs)?
        .run(&g, &[("x", xv.view())])?
        .to_vec()?;
    assert_eq!(before, after);
    assert_eq!(after[3], xv, "the impostor kept its own kernel");
    Ok(())
}

#[test]
fn constant_operands_fold_through_the_custom_kernel() -> TestResult {
    let mut g = Graph::<f64>::new();
    let c = g.constant(arr1(&[-2.0, 3.0]).into_dyn());
    let y = g.custom(Arc::new(Leaky(0.5)), &[c])?;
    let simple = simplify(&mut g, &[y])?;
    let out = simple.outputs[0];
    assert!(matches!(g.op(out)?, Op::Constant));
    assert_eq!(g.value(out)?, arr1(&[-1.0, 3.0]).into_dyn().view());
    Ok(())
}

#[test]
fn plans_reuse_buffers_of_custom_steps_and_profile_them() -> TestResult {
    let mut g = Graph::<f64>::new();
    let mut y = g.input("x", [None, Some(4)])?;
    for _ in 0..6 {
        y = xsinx(&mut g, y)?;
    }
    let mut plan = compile(&g, &[y])?;
    assert_eq!(plan.step_count(), 6);
    assert_eq!(plan.buffer_count(), 2, "a chain needs two buffers");
    let big = ArrayD::from_elem(ndarray::IxDyn(&[8, 4]), 0.5);
    let small = ArrayD::from_elem(ndarray::IxDyn(&[2, 4]), 0.5);
    plan.run(&g, &[("x", big.view())])?;
    let capacity = plan.buffer_capacity();
    assert_eq!(capacity, 2 * 8 * 4);
    let out_small = plan.run(&g, &[("x", small.view())])?.get(0)?.to_owned();
    plan.run(&g, &[("x", big.view())])?;
    assert_eq!(
        plan.buffer_capacity(),
        capacity,
        "no buffer grew after the largest run"
    );
    assert_eq!(out_small.shape(), &[2, 4]);
    let mut expected = 0.5_f64;
    for _ in 0..6 {
        expected *= expected.sin();
    }
    assert!(out_small.iter().all(|&v| v == expected));
    let steps = plan.profile(&g, &[("x", small.view())], 2)?;
    assert_eq!(steps.len(), 6);
    assert!(steps
        .iter()
        .all(|s| s.op == "xsinx" && s.shape.as_slice() == [2, 4]));
    assert_eq!(steps[5].node, "xsinx_5");
    Ok(())
}

#[test]
fn dot_export_shows_the_custom_op_by_name() -> TestResult {
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [3])?;
    let y = g.custom(Arc::new(Leaky(0.1)), &[x])?;
    let dot = to_dot(&g, Some(&[y]))?;
    assert!(dot.contains("leaky\\nleaky [3]"), "{dot}");
    assert!(dot.contains("rounded,bold"), "{dot}");
    Ok(())
}

#[test]
fn custom_ops_run_in_f32_graphs_too() -> TestResult {
    let mut g = Graph::<f32>::new();
    let x = g.input("x", [2])?;
    let y = g.custom(Arc::new(XSinX { wrong: false }), &[x])?;
    let xv = ndarray::arr1(&[1.0_f32, 2.0]).into_dyn();
    let mut plan = compile(&g, &[y])?;
    let out = plan.run(&g, &[("x", xv.view())])?.get(0)?.to_owned();
    assert!((out[1] - 2.0 * 2.0_f32.sin()).abs() < 1e-6);
    Ok(())
}

#[test]
fn check_fn_passes_a_right_rule_and_names_the_argument_of_a_wrong_one() -> TestResult {
    let right = dendrite_autodiff::check::check_fn(
        |g, args| {
            let h = g.mul(args[0], args[1])?;
            xsinx(g, h)
        },
        &[&[2, 3], &[3]],
        2,
    )?;
    assert!(right.passed(), "{right}");
    assert!(right.second.is_some());
    let wrong = dendrite_autodiff::check::check_fn(
        |g, args| g.custom(Arc::new(XSinX { wrong: true }), &[args[0]]),
        &[&[4]],
        1,
    )?;
    assert!(!wrong.passed());
    let text = wrong.to_string();
    assert!(text.contains("`arg0`["), "{text}");
    assert!(text.contains("random cotangent"), "{text}");
    assert!(dendrite_autodiff::check::check_fn(|g, a| g.exp(a[0]), &[&[2]], 3).is_err());
    Ok(())
}

#[test]
fn a_failed_direction_is_located_to_an_argument_and_an_element() -> TestResult {
    use dendrite_autodiff::check::{CheckMode, Contraction, Location};
    // Only element [1, 2] of w goes through the wrong rule; x and the rest are right.
    let config = CheckConfig::default().with_mode(CheckMode::Directional { trials: 4 });
    let x = ArrayD::from_shape_fn(ndarray::IxDyn(&[3]), |i| 0.3 * i[0] as f64 - 0.4);
    let w = ArrayD::from_shape_fn(ndarray::IxDyn(&[2, 3]), |i| {
        0.2 * (i[0] * 3 + i[1]) as f64 - 0.5
    });
    let report = dendrite_autodiff::check::check_fn_at(
        |g, args| {
            let right = xsinx(g, args[0])?;
            let rest = g.slice(args[1], 1, 0, 2)?; // w[:, 0..2], right
            let last = g.slice(args[1], 1, 2, 3)?; // w[:, 2]
            let row0 = g.slice(last, 0, 0, 1)?;
            let row1 = g.slice(last, 0, 1, 2)?; // w[1, 2], wrong
            let good = xsinx(g, rest)?;
            let a = g.custom(Arc::new(XSinX { wrong: false }), &[row0])?;
            let bad = g.custom(Arc::new(XSinX { wrong: true }), &[row1])?;
            let s = [
                g.sum_all(right)?,
                g.sum_all(good)?,
                g.sum_all(a)?,
                g.sum_all(bad)?,
            ];
            let t = g.add(s[0], s[1])?;
            let u = g.add(s[2], s[3])?;
            g.add(t, u)
        },
        &[x, w],
        1,
        &config,
    )?;
    let first = &report.first;
    assert!(!first.passed(), "{first}");
    let worst = first.worst.as_ref().unwrap();
    assert!(matches!(worst.location, Location::Direction { .. }));
    assert_eq!(worst.contraction, Contraction::CotangentAndTangent);
    let located = first.located.as_ref().unwrap();
    assert_eq!(
        located.location,
        Location::Element {
            node: "arg1".into(),
            index: vec![1, 2]
        }
    );
    assert!(
        !config.agree(located.analytic, located.numeric),
        "{located}"
    );
    let text = first.to_string();
    assert!(
        text.contains("located by bisecting that direction: `arg1`[1, 2]"),
        "{text}"
    );
    assert!(text.contains("random cotangent c and tangent t"), "{text}");
    Ok(())
}

#[test]
fn check_fn_strategy_returns_the_smallest_failing_case() -> TestResult {
    use dendrite_autodiff::check::check_fn_strategy;
    let args = || {
        shape()
            .prop_flat_map(|s| values_in(s, -2.0..2.0))
            .prop_map(|x| vec![x])
    };
    let config = CheckConfig::default();
    check_fn_strategy(|g, a| xsinx(g, a[0]), args(), 2, &config, 16)?;
    let err = check_fn_strategy(
        |g, a| g.custom(Arc::new(XSinX { wrong: true }), &[a[0]]),
        args(),
        1,
        &config,
        16,
    )
    .unwrap_err();
    let AutodiffError::CheckFailed(report) = err else {
        panic!("expected a failed check, got {err}")
    };
    assert!(!report.passed());
    Ok(())
}
