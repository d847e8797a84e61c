//! `stop_gradient(x)`: the identity forward, and no gradient backward.
//!
//! Shape rule: the output has the operand's shape. Kernel: a copy. Derivative rule: none flows
//! (the derivative is taken to be 0), which is what makes a value a constant to the reverse
//! sweep: the stopped maximum that shifts a softmax, a target computed from the model.

use crate::error::Result;
use crate::ops::{check_arity, OperandGrads};
use crate::shape::Shape;
use crate::{Element, Graph, NodeId, Op};
use ndarray::{ArrayViewD, ArrayViewMutD};
use smallvec::smallvec;

/// The op's name.
pub(crate) const NAME: &str = "stop_gradient";

pub(crate) fn infer(node: &str, operands: &[&Shape]) -> Result<Shape> {
    check_arity(NAME, node, operands, 1)?;
    Ok(operands[0].clone())
}

pub(crate) fn forward<F: Element>(
    x: &ArrayViewD<'_, F>,
    mut out: ArrayViewMutD<'_, F>,
) -> Result<()> {
    out.assign(x);
    Ok(())
}

/// No gradient flows into the operand.
pub(crate) fn vjp() -> OperandGrads {
    smallvec![None]
}

impl<F: Element> Graph<F> {
    /// Identity forward; blocks gradients backward (the derivative is taken to be 0).
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// # let x = g.input("x", [2])?;
    /// let frozen = g.stop_gradient(x)?;
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn stop_gradient(&mut self, x: NodeId) -> Result<NodeId> {
        self.add_op(Op::StopGradient, &[x])
    }
}
