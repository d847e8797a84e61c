//! The code listings of the book's chapter "Extending Dendrite: a primitive of your own"
//! (`docs/src/extending/custom-ops.md`), compiled and run by `cargo test --test
//! book_extending_ops`. The book pulls the regions between `// ANCHOR: name` and
//! `// ANCHOR_END: name` out of this file, as it does from `tests/book/`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::result_large_err
)]

use std::error::Error;

type TestResult = Result<(), Box<dyn Error>>;

/// Compares a listing's printed output with the copy the book shows
/// (`docs/src/output/NAME.txt`), as `tests/book/` does; `DENDRITE_BLESS=1` writes it.
fn shows(name: &str, printed: &str) -> TestResult {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("docs/src/output/{name}.txt"));
    if std::env::var_os("DENDRITE_BLESS").is_some() {
        std::fs::write(&path, printed)?;
        return Ok(());
    }
    let shown = std::fs::read_to_string(&path)
        .map_err(|e| format!("{}: {e} (DENDRITE_BLESS=1 writes it)", path.display()))?;
    assert_eq!(
        shown,
        printed,
        "{} is stale (DENDRITE_BLESS=1 rewrites it)",
        path.display()
    );
    Ok(())
}

// ANCHOR: silu_op
use dendrite::graph::ops::{CustomOp, CustomOpError, OperandGrads};
use dendrite::graph::{Element, Graph, NodeId, Shape, UnaryOp};
use ndarray::{ArrayViewD, ArrayViewMutD, Zip};

/// SiLU (also called swish): `silu(x) = x σ(x)`.
struct Silu;

impl<F: Element> CustomOp<F> for Silu {
    fn name(&self) -> &'static str {
        "silu"
    }

    // The shape rule: one operand, whose shape (dynamic batch dimension included) the output
    // keeps. It runs when the node is added, and again with concrete sizes at run time.
    fn infer_shape(&self, operands: &[&Shape]) -> Result<Shape, CustomOpError> {
        match operands {
            [x] => Ok((*x).clone()),
            _ => Err(CustomOpError::new("expects one operand")),
        }
    }

    // The kernel writes every element of a buffer the plan owns and reuses.
    fn forward(
        &self,
        xs: &[ArrayViewD<'_, F>],
        out: ArrayViewMutD<'_, F>,
    ) -> Result<(), CustomOpError> {
        Zip::from(out)
            .and(&xs[0])
            .for_each(|y, &x| *y = x * UnaryOp::Sigmoid.apply(x));
        Ok(())
    }

    // The VJP, built from primitives: x̄ = ȳ (σ + x σ (1 - σ)).
    fn vjp(
        &self,
        g: &mut Graph<F>,
        xs: &[NodeId],
        _y: NodeId,
        y_bar: NodeId,
    ) -> dendrite::graph::Result<OperandGrads> {
        let x = xs[0];
        let s = g.sigmoid(x)?;
        let one = g.scalar(1.0);
        let one_minus_s = g.sub(one, s)?;
        let x_s = g.mul(x, s)?;
        let x_s_one_minus_s = g.mul(x_s, one_minus_s)?;
        let slope = g.add(s, x_s_one_minus_s)?;
        Ok(OperandGrads::from_slice(&[Some(g.mul(y_bar, slope)?)]))
    }
}
// ANCHOR_END: silu_op

#[test]
fn silu_in_a_graph() -> TestResult {
    // ANCHOR: use_silu
    use dendrite::graph::{compile, to_dot};
    use std::sync::Arc;

    let mut g = Graph::<f64>::new();
    let x = g.input("x", [None, Some(3)])?; // a dynamic batch dimension
    let y = g.custom(Arc::new(Silu), &[x])?;
    assert_eq!(g.shape(y)?.to_string(), "[?, 3]");

    let mut plan = compile(&g, &[y])?;
    let xv = ndarray::arr2(&[[-1.0, 0.0, 2.0]]).into_dyn();
    let out = plan.run(&g, &[("x", xv.view())])?;
    let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
    assert!((out.get(0)?[[0, 2]] - 2.0 * sigmoid(2.0)).abs() < 1e-15);

    // It shows up under its own name in profiles and in DOT output.
    let steps = plan.profile(&g, &[("x", xv.view())], 1)?;
    assert_eq!(steps[0].op, "silu");
    assert!(to_dot(&g, Some(&[y]))?.contains("silu"));
    // ANCHOR_END: use_silu
    Ok(())
}

#[test]
fn second_order_comes_free() -> TestResult {
    // ANCHOR: silu_hvp
    use dendrite::autodiff::hvp;
    use dendrite::graph::compile;
    use std::sync::Arc;

    let mut g = Graph::<f64>::new();
    let x = g.input("x", [3])?;
    let v = g.input("v", [3])?;
    let y = g.custom(Arc::new(Silu), &[x])?;
    let f = g.sum_all(y)?;
    // The Hessian of Σ silu(x) is diagonal: silu''(x) = σ'(x) (2 + x (1 - 2σ(x))).
    let hv = hvp(&mut g, f, &[x], &[v])?;

    let mut plan = compile(&g, &hv)?;
    let xv = ndarray::arr1(&[-1.0, 0.5, 3.0]).into_dyn();
    let vv = ndarray::arr1(&[1.0, 1.0, 2.0]).into_dyn();
    let out = plan.run(&g, &[("x", xv.view()), ("v", vv.view())])?;
    let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
    for i in 0..3 {
        let (x, s) = (xv[[i]], sigmoid(xv[[i]]));
        let second = s * (1.0 - s) * (2.0 + x * (1.0 - 2.0 * s));
        assert!((out.get(0)?[[i]] - second * vv[[i]]).abs() < 1e-12);
    }
    // ANCHOR_END: silu_hvp
    Ok(())
}

#[test]
fn checking_silu() -> TestResult {
    // ANCHOR: check_silu
    use dendrite::autodiff::check::check_fn;
    use std::sync::Arc;

    // silu(x · w) for random x: [4, 3] and w: [3], first and second order.
    let report = check_fn(
        |g, args| {
            let h = g.mul(args[0], args[1])?;
            g.custom(Arc::new(Silu), &[h])
        },
        &[&[4, 3], &[3]],
        2,
    )?;
    assert!(report.passed(), "{report}");
    // ANCHOR_END: check_silu
    Ok(())
}

// ANCHOR: wrong_silu
/// SiLU with the product rule forgotten: x̄ = ȳ σ(x), as if x were a constant factor.
struct WrongSilu;

impl<F: Element> CustomOp<F> for WrongSilu {
    fn name(&self) -> &'static str {
        "wrong_silu"
    }
    fn infer_shape(&self, operands: &[&Shape]) -> Result<Shape, CustomOpError> {
        CustomOp::<F>::infer_shape(&Silu, operands)
    }
    fn forward(
        &self,
        xs: &[ArrayViewD<'_, F>],
        out: ArrayViewMutD<'_, F>,
    ) -> Result<(), CustomOpError> {
        Silu.forward(xs, out)
    }
    fn vjp(
        &self,
        g: &mut Graph<F>,
        xs: &[NodeId],
        _y: NodeId,
        y_bar: NodeId,
    ) -> dendrite::graph::Result<OperandGrads> {
        let s = g.sigmoid(xs[0])?;
        Ok(OperandGrads::from_slice(&[Some(g.mul(y_bar, s)?)]))
    }
}
// ANCHOR_END: wrong_silu

#[test]
fn the_checker_catches_the_wrong_rule() -> TestResult {
    // ANCHOR: catch_wrong_silu
    use dendrite::autodiff::check::{check_fn, Location};
    use std::sync::Arc;

    let report = check_fn(
        |g, args| g.custom(Arc::new(WrongSilu), &[args[0]]),
        &[&[5]],
        1,
    )?;
    assert!(!report.passed());
    assert_eq!(report.first.failures, 5); // every element is wrong
    let worst = report.first.worst.as_ref().ok_or("no comparison")?;
    assert!(matches!(&worst.location, Location::Element { node, .. } if node == "arg0"));
    println!("{report}");
    // ANCHOR_END: catch_wrong_silu
    shows("extending_wrong_silu", &format!("{report}\n"))
}

#[test]
fn a_failed_direction_is_located() -> TestResult {
    // ANCHOR: locate_wrong_silu
    use dendrite::autodiff::check::{check_fn_at, CheckConfig, CheckMode, Location};
    use std::sync::Arc;

    // 1,000 elements: checked along 4 random directions, not element by element. The wrong
    // rule is applied to element 737 alone.
    let x = ndarray::ArrayD::from_shape_fn(ndarray::IxDyn(&[1000]), |i| (i[0] as f64).sin());
    let config = CheckConfig::default().with_mode(CheckMode::Directional { trials: 4 });
    let report = check_fn_at(
        |g, args| {
            let before = g.slice(args[0], 0, 0, 737)?;
            let one = g.slice(args[0], 0, 737, 738)?;
            let after = g.slice(args[0], 0, 738, 1000)?;
            let (a, b, c) = (
                g.custom(Arc::new(Silu), &[before])?,
                g.custom(Arc::new(WrongSilu), &[one])?,
                g.custom(Arc::new(Silu), &[after])?,
            );
            g.concat(&[a, b, c], 0)
        },
        &[x],
        1,
        &config,
    )?;
    assert!(!report.passed());
    // The failed direction, bisected: the argument and the element responsible.
    let located = report.first.located.as_ref().ok_or("not located")?;
    assert_eq!(
        located.location,
        Location::Element {
            node: "arg0".into(),
            index: vec![737]
        }
    );
    // ANCHOR_END: locate_wrong_silu
    Ok(())
}

#[test]
fn a_rule_can_be_missing() -> TestResult {
    // ANCHOR: no_vjp
    use dendrite::autodiff::{grad, AutodiffError};
    use dendrite::graph::GraphError;
    use std::sync::Arc;

    /// A kernel with no derivative rule: fine to run, refused when differentiated.
    struct Opaque;
    impl<F: Element> CustomOp<F> for Opaque {
        fn name(&self) -> &'static str {
            "opaque"
        }
        fn infer_shape(&self, xs: &[&Shape]) -> Result<Shape, CustomOpError> {
            CustomOp::<F>::infer_shape(&Silu, xs)
        }
        fn forward(
            &self,
            xs: &[ArrayViewD<'_, F>],
            mut out: ArrayViewMutD<'_, F>,
        ) -> Result<(), CustomOpError> {
            out.assign(&xs[0]);
            Ok(())
        }
    }

    let mut g = Graph::<f64>::new();
    let x = g.input("x", [3])?;
    let y = g.custom(Arc::new(Opaque), &[x])?;
    let f = g.sum_all(y)?;
    let err = grad(&mut g, f, &[x]).unwrap_err();
    assert!(matches!(
        err,
        AutodiffError::Graph(GraphError::NotDifferentiable { op: "opaque", .. })
    ));
    assert_eq!(
        err.to_string(),
        "opaque `opaque`: not differentiable: this custom op defines no VJP rule"
    );
    // ANCHOR_END: no_vjp
    Ok(())
}
