//! Custom ops shared by the tests of user-defined primitives.

use dendrite_graph::ops::{CustomOp, CustomOpError, OperandGrads};
use dendrite_graph::{Element, Graph, NodeId, Result, Shape};
use ndarray::{ArrayViewD, ArrayViewMutD, Zip};

/// The shape rule of an elementwise op: one operand, whose shape the output keeps.
pub fn same_shape(operands: &[&Shape]) -> Result<Shape, CustomOpError> {
    match operands {
        [x] => Ok((*x).clone()),
        _ => Err(CustomOpError::new(format!(
            "expects 1 operand, got {}",
            operands.len()
        ))),
    }
}

/// `y = x sin x`, with `dy/dx = sin x + x cos x` (a wrong rule drops the factor `x`).
#[derive(Debug, Clone, Copy)]
pub struct XSinX {
    /// Use the wrong derivative `sin x + cos x`.
    pub wrong: bool,
}

impl<F: Element> CustomOp<F> for XSinX {
    fn name(&self) -> &'static str {
        if self.wrong {
            "xsinx_wrong"
        } else {
            "xsinx"
        }
    }
    fn infer_shape(&self, operands: &[&Shape]) -> Result<Shape, CustomOpError> {
        same_shape(operands)
    }
    fn forward(
        &self,
        xs: &[ArrayViewD<'_, F>],
        out: ArrayViewMutD<'_, F>,
    ) -> Result<(), CustomOpError> {
        Zip::from(out)
            .and(&xs[0])
            .for_each(|y, &x| *y = x * x.sin());
        Ok(())
    }
    fn vjp(
        &self,
        g: &mut Graph<F>,
        xs: &[NodeId],
        _y: NodeId,
        y_bar: NodeId,
    ) -> Result<OperandGrads> {
        let x = xs[0];
        let (s, c) = (g.sin(x)?, g.cos(x)?);
        let xc = if self.wrong { c } else { g.mul(x, c)? };
        let d = g.add(s, xc)?;
        Ok(OperandGrads::from_slice(&[Some(g.mul(y_bar, d)?)]))
    }
}

/// `softsign(x) = x / (1 + |x|)`, `dy/dx = 1 / (1 + |x|)²`; with `jvp` it also has a JVP rule,
/// with `vjp` a VJP rule.
#[derive(Debug, Clone, Copy)]
pub struct Softsign {
    /// Provide the VJP rule.
    pub vjp: bool,
    /// Provide the JVP rule.
    pub jvp: bool,
}

/// `1 / (1 + |x|)²` as graph nodes.
fn softsign_slope<F: Element>(g: &mut Graph<F>, x: NodeId) -> Result<NodeId> {
    let a = g.abs(x)?;
    let one = g.scalar(1.0);
    let d = g.add(one, a)?;
    let d2 = g.square(d)?;
    let one = g.scalar(1.0);
    g.div(one, d2)
}

impl<F: Element> CustomOp<F> for Softsign {
    fn name(&self) -> &'static str {
        "softsign"
    }
    fn params(&self) -> Vec<f64> {
        vec![f64::from(u8::from(self.vjp)), f64::from(u8::from(self.jvp))]
    }
    fn infer_shape(&self, operands: &[&Shape]) -> Result<Shape, CustomOpError> {
        same_shape(operands)
    }
    fn forward(
        &self,
        xs: &[ArrayViewD<'_, F>],
        out: ArrayViewMutD<'_, F>,
    ) -> Result<(), CustomOpError> {
        Zip::from(out)
            .and(&xs[0])
            .for_each(|y, &x| *y = x / (F::one() + x.abs()));
        Ok(())
    }
    fn vjp(
        &self,
        g: &mut Graph<F>,
        xs: &[NodeId],
        y: NodeId,
        y_bar: NodeId,
    ) -> Result<OperandGrads> {
        if !self.vjp {
            return Err(dendrite_graph::GraphError::NotDifferentiable {
                op: "softsign",
                node: g.name(y)?.to_owned(),
                reason: "this custom op defines no VJP rule",
            });
        }
        let slope = softsign_slope(g, xs[0])?;
        Ok(OperandGrads::from_slice(&[Some(g.mul(y_bar, slope)?)]))
    }
    fn jvp(
        &self,
        g: &mut Graph<F>,
        xs: &[NodeId],
        _y: NodeId,
        tangents: &[Option<NodeId>],
    ) -> Option<Result<NodeId>> {
        let t = tangents[0]?;
        if !self.jvp {
            return None;
        }
        Some(softsign_slope(g, xs[0]).and_then(|slope| g.mul(t, slope)))
    }
}

/// `max(x, αx)`, whose slope `α` is a parameter.
#[derive(Debug, Clone, Copy)]
pub struct Leaky(pub f64);

impl<F: Element> CustomOp<F> for Leaky {
    fn name(&self) -> &'static str {
        "leaky"
    }
    fn params(&self) -> Vec<f64> {
        vec![self.0]
    }
    fn infer_shape(&self, operands: &[&Shape]) -> Result<Shape, CustomOpError> {
        same_shape(operands)
    }
    fn forward(
        &self,
        xs: &[ArrayViewD<'_, F>],
        out: ArrayViewMutD<'_, F>,
    ) -> Result<(), CustomOpError> {
        let a = F::of(self.0);
        Zip::from(out)
            .and(&xs[0])
            .for_each(|y, &x| *y = x.max(a * x));
        Ok(())
    }
}

/// An op of another type that shares [`Leaky`]'s name and parameters.
#[derive(Debug, Clone, Copy)]
pub struct Impostor(pub f64);

impl<F: Element> CustomOp<F> for Impostor {
    fn name(&self) -> &'static str {
        "leaky"
    }
    fn params(&self) -> Vec<f64> {
        vec![self.0]
    }
    fn infer_shape(&self, operands: &[&Shape]) -> Result<Shape, CustomOpError> {
        same_shape(operands)
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

/// `ln x`, refusing a non-positive `x` in its kernel; no derivative rule.
#[derive(Debug, Clone, Copy)]
pub struct CheckedLog;

impl<F: Element> CustomOp<F> for CheckedLog {
    fn name(&self) -> &'static str {
        "checked_log"
    }
    fn infer_shape(&self, operands: &[&Shape]) -> Result<Shape, CustomOpError> {
        same_shape(operands)
    }
    fn forward(
        &self,
        xs: &[ArrayViewD<'_, F>],
        mut out: ArrayViewMutD<'_, F>,
    ) -> Result<(), CustomOpError> {
        if let Some(i) = xs[0].iter().position(|&x| x <= F::zero()) {
            return Err(CustomOpError::new(format!(
                "non-positive value at flat index {i}"
            )));
        }
        Zip::from(&mut out)
            .and(&xs[0])
            .for_each(|y, &x| *y = x.ln());
        Ok(())
    }
}

/// A VJP rule that returns two gradients for its one operand.
#[derive(Debug, Clone, Copy)]
pub struct TooManyGradients;

impl<F: Element> CustomOp<F> for TooManyGradients {
    fn name(&self) -> &'static str {
        "too_many"
    }
    fn infer_shape(&self, operands: &[&Shape]) -> Result<Shape, CustomOpError> {
        same_shape(operands)
    }
    fn forward(
        &self,
        xs: &[ArrayViewD<'_, F>],
        mut out: ArrayViewMutD<'_, F>,
    ) -> Result<(), CustomOpError> {
        out.assign(&xs[0]);
        Ok(())
    }
    fn vjp(
        &self,
        _g: &mut Graph<F>,
        _xs: &[NodeId],
        _y: NodeId,
        y_bar: NodeId,
    ) -> Result<OperandGrads> {
        Ok(OperandGrads::from_slice(&[Some(y_bar), Some(y_bar)]))
    }
}
