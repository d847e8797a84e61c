//! A primitive of your own, and the gradient checker on its derivative rule.
//!
//! Defines SiLU, `silu(x) = x σ(x)`, as a custom op twice: once with the right VJP rule,
//! `x̄ = ȳ (σ(x) + x σ(x) (1 - σ(x)))`, and once with a rule that forgets the product rule,
//! `x̄ = ȳ σ(x)`. Both are checked with `check_fn` (first and second order); the checker must
//! pass the first and catch the second.
//!
//! ```text
//! cargo run --example custom_op
//! ```
//!
//! The last two lines of standard output are exactly `custom_op_check: passed` and
//! `wrong_rule_caught: true` when all is well (`failed` / `false` otherwise, with exit code 1).

use dendrite::autodiff::check::{check_fn, FnCheckReport};
use dendrite::autodiff::AutodiffError;
use dendrite::graph::ops::{CustomOp, CustomOpError, OperandGrads};
use dendrite::graph::{Element, Graph, NodeId, Shape, UnaryOp};
use ndarray::{ArrayViewD, ArrayViewMutD, Zip};
use std::process::ExitCode;
use std::sync::Arc;

/// Defines SiLU as a custom op with a right and a wrong derivative rule, checks both, and
/// prints `custom_op_check: passed` and `wrong_rule_caught: true` on its last two lines.
#[derive(Debug, clap::Parser)]
#[command(name = "custom_op")]
struct Args {}

/// `silu(x) = x σ(x)`; `right` picks the right VJP rule or the one without the product rule.
pub struct Silu {
    /// Whether the VJP rule is the right one.
    pub right: bool,
}

impl<F: Element> CustomOp<F> for Silu {
    fn name(&self) -> &'static str {
        if self.right {
            "silu"
        } else {
            "silu_wrong"
        }
    }

    fn infer_shape(&self, operands: &[&Shape]) -> Result<Shape, CustomOpError> {
        match operands {
            [x] => Ok((*x).clone()),
            _ => Err(CustomOpError::new("expects one operand")),
        }
    }

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

    fn vjp(
        &self,
        g: &mut Graph<F>,
        xs: &[NodeId],
        _y: NodeId,
        y_bar: NodeId,
    ) -> dendrite::graph::Result<OperandGrads> {
        let x = xs[0];
        let s = g.sigmoid(x)?;
        let slope = if self.right {
            // σ + x σ (1 - σ)
            let one = g.scalar(1.0);
            let one_minus = g.sub(one, s)?;
            let xs_ = g.mul(x, s)?;
            let product = g.mul(xs_, one_minus)?;
            g.add(s, product)?
        } else {
            s // forgets the derivative of the factor x
        };
        Ok(OperandGrads::from_slice(&[Some(g.mul(y_bar, slope)?)]))
    }
}

/// Checks `silu(x · w)` with the right rule and with the wrong one, first and second order,
/// on random arguments of shapes `[4, 3]` and `[3]`.
///
/// # Errors
/// Whatever building or checking the function reports (not a failed check: that is in the
/// reports).
pub fn check_both() -> Result<(FnCheckReport, FnCheckReport), AutodiffError> {
    let check = |right: bool| {
        check_fn(
            |g, args| {
                let h = g.mul(args[0], args[1])?;
                g.custom(Arc::new(Silu { right }), &[h])
            },
            &[&[4, 3], &[3]],
            2,
        )
    };
    Ok((check(true)?, check(false)?))
}

/// The program's last two lines, from the two reports.
pub fn summary(right: &FnCheckReport, wrong: &FnCheckReport) -> [String; 2] {
    let passed = if right.passed() { "passed" } else { "failed" };
    [
        format!("custom_op_check: {passed}"),
        format!("wrong_rule_caught: {}", !wrong.passed()),
    ]
}

fn main() -> ExitCode {
    let Args {} = <Args as clap::Parser>::parse();
    let (right, wrong) = match check_both() {
        Ok(reports) => reports,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("right rule: {right}");
    println!("wrong rule: {wrong}");
    let lines = summary(&right, &wrong);
    for line in &lines {
        println!("{line}");
    }
    if right.passed() && !wrong.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
