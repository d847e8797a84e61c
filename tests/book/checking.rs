//! Chapter 5: gradient checking.

// ANCHOR: central_difference
/// Central differences of a scalar plan output with respect to the input `name`, one element at a
/// time: `(f(x + ε eᵢ) - f(x - ε eᵢ)) / 2ε`. Costs 2n runs for n elements.
fn numeric_gradient(
    g: &dendrite_graph::Graph<f64>,
    plan: &mut dendrite_graph::Plan<f64>,
    name: &str,
    x: &ndarray::ArrayD<f64>,
    eps: f64,
) -> Result<ndarray::ArrayD<f64>, Box<dyn std::error::Error>> {
    let mut gradient = ndarray::ArrayD::zeros(x.raw_dim());
    let mut probe = x.clone();
    for (i, slot) in gradient.iter_mut().enumerate() {
        let x_i = x.iter().nth(i).copied().unwrap_or_default();
        let mut f_at = |value: f64| -> Result<f64, Box<dyn std::error::Error>> {
            if let Some(p) = probe.iter_mut().nth(i) {
                *p = value;
            }
            Ok(plan.run(g, &[(name, probe.view())])?.scalar(0)?)
        };
        let (up, down) = (f_at(x_i + eps)?, f_at(x_i - eps)?);
        f_at(x_i)?;
        *slot = (up - down) / (2.0 * eps);
    }
    Ok(gradient)
}
// ANCHOR_END: central_difference

// ANCHOR: elementwise_check
#[test]
fn elementwise_gradient_check() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite_autodiff::grad;
    use dendrite_graph::{compile, Graph};
    use ndarray::arr2;

    // A small softmax cross-entropy, in f64.
    let mut g = Graph::<f64>::new();
    let logits = g.input("logits", [2, 3])?;
    let labels = g.constant(ndarray::arr1(&[2.0, 0.0]).into_dyn());
    let log_p = g.log_softmax(logits, 1)?;
    let target = g.one_hot(labels, 3)?;
    let picked = g.mul(target, log_p)?;
    let total = g.sum_all(picked)?;
    let loss = g.neg(total)?;
    let analytic = grad(&mut g, loss, &[logits])?[0];

    let x = arr2(&[[0.3, -1.2, 2.0], [1.5, 0.1, -0.4]]).into_dyn();
    let mut loss_plan = compile(&g, &[loss])?;
    let numeric = numeric_gradient(&g, &mut loss_plan, "logits", &x, 1e-5)?;
    let mut grad_plan = compile(&g, &[analytic])?;
    let out = grad_plan.run(&g, &[("logits", x.view())])?;
    for (&a, &n) in out.get(0)?.iter().zip(numeric.iter()) {
        // |a - n| ≤ atol + rtol |n|, with tolerances far above the ~1e-10 error of the method.
        assert!(
            (a - n).abs() <= 1e-7 + 1e-6 * n.abs(),
            "analytic {a} vs numeric {n}"
        );
    }
    Ok(())
}
// ANCHOR_END: elementwise_check

// ANCHOR: step_size
#[test]
fn step_size_tradeoff() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite_graph::{compile, Graph, Shape};

    // f(x) = eˣ at x = 1, whose derivative e is known exactly.
    let mut g = Graph::<f64>::new();
    let x = g.input("x", Shape::scalar())?;
    let f = g.exp(x)?;
    let mut plan = compile(&g, &[f])?;
    let x0 = ndarray::arr0(1.0).into_dyn();

    let mut errors = Vec::new();
    for k in 1..=12 {
        let eps = 10f64.powi(-k);
        let d = numeric_gradient(&g, &mut plan, "x", &x0, eps)?;
        errors.push((eps, (d.sum() - std::f64::consts::E).abs()));
    }
    let (best_eps, best_error) =
        errors
            .iter()
            .copied()
            .fold((0.0, f64::INFINITY), |a, b| if b.1 < a.1 { b } else { a });
    // Truncation error ~ ε² f'''/6 falls as ε shrinks, rounding error ~ u |f| / ε grows:
    // the best ε is near ∛u ≈ 6e-6 for f64, and the error there near u^(2/3) ≈ 1e-11.
    assert!((1e-7..=1e-4).contains(&best_eps), "best step {best_eps}");
    assert!(best_error < 1e-9);
    // Too large a step: truncation dominates. Too small: rounding dominates.
    assert!(errors[0].1 > 1e-3); // ε = 0.1
    assert!(errors[11].1 > 1e3 * best_error); // ε = 1e-12
    Ok(())
}
// ANCHOR_END: step_size

// ANCHOR: directional_check
/// Autodidax-style check of a VJP along random directions: for a tangent t and a cotangent c,
/// ⟨c, (f(x + εt) - f(x - εt)) / 2ε⟩ must equal ⟨vjp(c), t⟩. Two runs of f, whatever the size.
fn directional_check(
    build: impl Fn(
        &mut dendrite_graph::Graph<f64>,
        dendrite_graph::NodeId,
    ) -> dendrite_graph::Result<dendrite_graph::NodeId>,
    x: &ndarray::ArrayD<f64>,
    t: &ndarray::ArrayD<f64>,
    c_of: impl Fn(&[usize]) -> ndarray::ArrayD<f64>,
) -> Result<(f64, f64), Box<dyn std::error::Error>> {
    use dendrite_graph::{compile, Graph, Shape};
    let mut g = Graph::<f64>::new();
    let xi = g.input("x", Shape::fixed(x.shape()))?;
    let y = build(&mut g, xi)?;
    let ci = g.input("c", g.shape(y)?.clone())?;
    let x_bar = dendrite_autodiff::vjp(&mut g, y, &[xi], ci)?[0];

    let mut f = compile(&g, &[y])?;
    let eps = 1e-5;
    let (xp, xm) = (x + &(t * eps), x - &(t * eps));
    let yp = f.run(&g, &[("x", xp.view())])?.get(0)?.to_owned();
    let ym = f.run(&g, &[("x", xm.view())])?.get(0)?.to_owned();
    let c = c_of(yp.shape());
    let numeric = (&c * &((&yp - &ym) / (2.0 * eps))).sum();

    let mut back = compile(&g, &[x_bar])?;
    let analytic = (&back.run(&g, &[("x", x.view()), ("c", c.view())])?.get(0)? * t).sum();
    Ok((numeric, analytic))
}
// ANCHOR_END: directional_check

// ANCHOR: proptest_check
mod property_checks {
    use super::directional_check;
    use ndarray::{Array, ArrayD, IxDyn};
    use proptest::prelude::*;

    /// A tensor of the given shape with values in [-2, 2].
    fn tensor(shape: Vec<usize>) -> impl Strategy<Value = ArrayD<f64>> {
        let n = shape.iter().product::<usize>();
        proptest::collection::vec(-2.0..2.0_f64, n)
            .prop_map(move |v| Array::from_shape_vec(IxDyn(&shape), v).expect("length matches"))
    }

    /// x, a tangent t and a cotangent seed, on a random [rows, cols] shape.
    fn case() -> impl Strategy<Value = (ArrayD<f64>, ArrayD<f64>, f64)> {
        (1..5usize, 1..6usize)
            .prop_flat_map(|(r, c)| (tensor(vec![r, c]), tensor(vec![r, c]), 0.1..1.0_f64))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn softmax_vjp_matches_finite_differences((x, t, seed) in case()) {
            // A cotangent that varies along the softmax axis (a constant one would see nothing).
            let c_of = |shape: &[usize]| {
                Array::from_shape_fn(IxDyn(shape), |i| ((3 * i[0] + 7 * i[1] + 1) as f64 * seed).sin())
            };
            let (numeric, analytic) = directional_check(|g, x| g.softmax(x, 1), &x, &t, c_of)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!((numeric - analytic).abs() <= 1e-7 + 1e-6 * analytic.abs(),
                "numeric {} vs analytic {}", numeric, analytic);
        }

        #[test]
        fn tanh_of_product_vjp_matches((x, t, seed) in case()) {
            let c_of = |shape: &[usize]| Array::from_elem(IxDyn(shape), seed);
            let build = |g: &mut dendrite_graph::Graph<f64>, x| {
                let sq = g.mul(x, x)?;
                let s = g.sum_keep_dims(sq, &[1])?;
                let y = g.mul(x, s)?;
                g.tanh(y)
            };
            let (numeric, analytic) = directional_check(build, &x, &t, c_of)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!((numeric - analytic).abs() <= 1e-6 + 1e-6 * analytic.abs(),
                "numeric {} vs analytic {}", numeric, analytic);
        }
    }
}
// ANCHOR_END: proptest_check

// ANCHOR: why_f64
#[test]
fn why_f64() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite_graph::{compile, Graph, Shape};

    // The same central difference of eˣ at x = 1, in f32 and in f64, each at its best step ∛u.
    let mut g32 = Graph::<f32>::new();
    let x32 = g32.input("x", Shape::scalar())?;
    let f32_node = g32.exp(x32)?;
    let mut p32 = compile(&g32, &[f32_node])?;
    let mut run32 = |x: f32| -> Result<f32, Box<dyn std::error::Error>> {
        let xv = ndarray::arr0(x).into_dyn();
        Ok(p32.run(&g32, &[("x", xv.view())])?.scalar(0)?)
    };
    let eps = f32::EPSILON.cbrt(); // ≈ 4.9e-3
    let d32 = (run32(1.0 + eps)? - run32(1.0 - eps)?) / (2.0 * eps);
    let error32 = (f64::from(d32) - std::f64::consts::E).abs();

    let eps = f64::EPSILON.cbrt(); // ≈ 6.1e-6
    let d64 = ((1.0 + eps).exp() - (1.0 - eps).exp()) / (2.0 * eps);
    let error64 = (d64 - std::f64::consts::E).abs();

    // f32 checks can only resolve about 1e-5 relative error: too coarse to catch a subtle bug.
    assert!(error32 > 1e-6);
    assert!(error64 < 1e-9);
    Ok(())
}
// ANCHOR_END: why_f64

// ANCHOR: library_checker
#[test]
fn the_library_checker() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite_autodiff::check::{check_gradients, CheckConfig, CheckMode};
    use dendrite_graph::Graph;
    use ndarray::arr2;

    // A dense layer with a tanh: check the gradients of both the input and the weights.
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [2, 3])?;
    let w = g.parameter(
        "w",
        arr2(&[[0.5, -1.0], [0.25, 0.0], [1.0, 2.0]]).into_dyn(),
    )?;
    let h = g.matmul(x, w)?;
    let y = g.tanh(h)?; // not a scalar: the checker contracts it with a random cotangent
    let xv = arr2(&[[0.3, -0.2, 0.1], [0.0, 0.4, -0.5]]).into_dyn();

    let elementwise = CheckConfig::default().with_mode(CheckMode::Elementwise);
    let report = check_gradients(&mut g, y, &[x, w], &[("x", xv.view())], &elementwise)?;
    assert!(report.passed(), "{report}");
    assert_eq!(report.checked, 6 + 6); // every element of x and of w

    let directional = CheckConfig::default().with_mode(CheckMode::Directional { trials: 4 });
    let report = check_gradients(&mut g, y, &[x, w], &[("x", xv.view())], &directional)?;
    assert!(report.passed(), "{report}");
    assert_eq!(report.checked, 4); // four random directions, whatever the sizes
    Ok(())
}
// ANCHOR_END: library_checker

// ANCHOR: kink_check_fails
#[test]
fn a_check_across_a_kink_fails() -> Result<(), Box<dyn std::error::Error>> {
    use dendrite_autodiff::check::{check_gradients, CheckConfig, CheckMode, Location};
    use dendrite_graph::Graph;
    use ndarray::arr1;

    // relu at exactly 0: the rule says 0, the central difference (ε - 0) / 2ε says ½.
    let mut g = Graph::<f64>::new();
    let x = g.input("x", [2])?;
    let r = g.relu(x)?;
    let y = g.sum_all(r)?;
    let xv = arr1(&[0.0, 1.0]).into_dyn();
    let config = CheckConfig::default().with_mode(CheckMode::Elementwise);
    let report = check_gradients(&mut g, y, &[x], &[("x", xv.view())], &config)?;

    assert!(!report.passed());
    assert_eq!(report.failures, 1);
    let worst = report
        .worst
        .ok_or("a failed check reports its worst comparison")?;
    assert_eq!(
        worst.location,
        Location::Element {
            node: "x".into(),
            index: vec![0]
        }
    );
    assert_eq!(worst.analytic, 0.0);
    assert!((worst.numeric - 0.5).abs() < 1e-9);
    Ok(())
}
// ANCHOR_END: kink_check_fails

// ANCHOR: checker_property
mod checker_properties {
    use dendrite_autodiff::check::{check_gradients, CheckConfig};
    use dendrite_autodiff::strategies::{away_from_zero, shape_with_rank};
    use dendrite_graph::{Graph, Shape};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// leaky_relu on random shapes (rank 1-3, size-1 dimensions on purpose) and values kept
        /// away from its kink at 0.
        #[test]
        fn leaky_relu_gradient(x in shape_with_rank(1..=3).prop_flat_map(away_from_zero)) {
            let mut g = Graph::<f64>::new();
            let xi = g.input("x", Shape::fixed(x.shape()))?;
            let y = g.leaky_relu(xi, 0.1)?;
            let report = check_gradients(&mut g, y, &[xi], &[("x", x.view())], &CheckConfig::default())?;
            prop_assert!(report.passed(), "{}", report);
        }
    }
}
// ANCHOR_END: checker_property
