//! A user-defined primitive inside a trained model: a layer of the user's own whose forward is
//! a custom op (softsign, with its VJP rule built from primitives), trained by `fit`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dendrite_graph::ops::{CustomOp, CustomOpError, OperandGrads};
use dendrite_graph::{Element, Graph, NodeId, Shape};
use dendrite_nn::{
    Activation, Adam, Dense, FitConfig, Float, Init, Layer, LayerNodes, Loss, Metric, NnError,
    Sequential,
};
use ndarray::{array, ArrayViewD, ArrayViewMutD, Zip};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Counts kernel calls, so the test knows the custom kernel (not some fallback) ran.
static SOFTSIGN_RUNS: AtomicUsize = AtomicUsize::new(0);

/// `softsign(x) = x / (1 + |x|)`, `dy/dx = 1 / (1 + |x|)²`.
struct Softsign;

impl<F: Element> CustomOp<F> for Softsign {
    fn name(&self) -> &'static str {
        "softsign"
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
        SOFTSIGN_RUNS.fetch_add(1, Ordering::Relaxed);
        Zip::from(out)
            .and(&xs[0])
            .for_each(|y, &x| *y = x / (F::one() + x.abs()));
        Ok(())
    }
    fn vjp(
        &self,
        g: &mut Graph<F>,
        xs: &[NodeId],
        _y: NodeId,
        y_bar: NodeId,
    ) -> dendrite_graph::Result<OperandGrads> {
        let a = g.abs(xs[0])?;
        let one = g.scalar(1.0);
        let d = g.add(one, a)?;
        let d2 = g.square(d)?;
        Ok(OperandGrads::from_slice(&[Some(g.div(y_bar, d2)?)]))
    }
}

/// A layer of the user's own: softsign of its input, no parameters.
#[derive(Debug)]
struct SoftsignLayer;

impl<F: Float> Layer<F> for SoftsignLayer {
    fn kind(&self) -> &'static str {
        "Softsign"
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, NnError> {
        Ok(input.to_vec())
    }
    fn param_count(&self, _input: &[usize]) -> Option<usize> {
        Some(0)
    }
    fn build(
        &mut self,
        g: &mut Graph<F>,
        input: NodeId,
        _input_shape: &[usize],
        _init: &mut Init,
    ) -> Result<LayerNodes, NnError> {
        Ok(LayerNodes::new(g.custom(Arc::new(Softsign), &[input])?))
    }
}

#[test]
fn a_model_with_a_custom_op_learns_xor() {
    let x = array![[0.0_f32, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]];
    let y = array![0.0_f32, 1.0, 1.0, 0.0];
    let mut model = Sequential::new().with_seed(3);
    model.add(Dense::new(8).input_dim(2));
    model.add(SoftsignLayer);
    model.add(Dense::new(1).activation(Activation::Sigmoid));
    model
        .compile(
            Adam::new(0.05),
            Loss::BinaryCrossentropy,
            &[Metric::Accuracy],
        )
        .unwrap();
    let config = FitConfig::default().epochs(400).batch_size(4).verbosity(0);
    let history = model.fit(&(x.view(), y.view()), config).unwrap();
    assert!(SOFTSIGN_RUNS.load(Ordering::Relaxed) >= 400);
    let (first, last) = (history.loss[0], *history.loss.last().unwrap());
    assert!(last < 0.1 && last < first / 4.0, "loss {first} -> {last}");
    assert_eq!(history.accuracy.last(), Some(&1.0));
}
