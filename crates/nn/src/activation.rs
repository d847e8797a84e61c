//! Activation functions, usable inside a [`Dense`](crate::Dense) layer or as a layer of their
//! own.
//!
//! Each is a composite of graph primitives, so its derivative comes for free. The softmax and
//! sigmoid outputs are marked with their pre-activation (see
//! [`PreActivation`](crate::PreActivation)), which lets the cross-entropy losses work from the
//! logits.

use crate::error::{NnError, Result};
use crate::float::Float;
use crate::layer::{Init, Layer, LayerNodes};
use dendrite_graph::{Graph, GraphError, NodeId};

/// An activation function.
///
/// | variant | function |
/// | --- | --- |
/// | `Linear` | `x` |
/// | `Relu` | `max(x, 0)` (derivative 0 at 0) |
/// | `LeakyRelu(alpha)` | `x` for `x > 0`, else `alpha x` (Keras' default `alpha` is 0.2) |
/// | `Sigmoid` | `1 / (1 + e^-x)` |
/// | `Tanh` | `tanh x` |
/// | `Softmax` | `e^x_i / Σ_j e^x_j` over the last axis |
/// | `Gelu` | `x Φ(x) = ½ x (1 + erf(x/√2))` (Keras' `gelu`, whose default is the exact form) |
/// | `GeluTanh` | `½ x (1 + tanh(√(2/π)(x + 0.044715 x³)))` (Keras' `gelu(approximate=True)`) |
///
/// As a layer it has no parameters and keeps the shape:
///
/// ```
/// use dendrite_nn::{Activation, Dense, Sequential};
/// let mut model = Sequential::new();
/// model.add(Dense::new(10).input_dim(4));
/// model.add(Activation::Softmax);
/// assert_eq!(model.summary()?.rows()[1].output_shape, vec![10]);
/// # Ok::<(), dendrite_nn::NnError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Activation {
    /// The identity.
    #[default]
    Linear,
    /// Rectified linear unit.
    Relu,
    /// Leaky ReLU with the given negative slope.
    LeakyRelu(f64),
    /// The logistic function.
    Sigmoid,
    /// Hyperbolic tangent.
    Tanh,
    /// Softmax over the last axis.
    Softmax,
    /// Gaussian error linear unit, exact (through `erf`).
    Gelu,
    /// Gaussian error linear unit, tanh approximation (within 0.0005 of `Gelu`).
    GeluTanh,
}

impl Activation {
    /// The activation's name, as Keras spells it.
    ///
    /// ```
    /// assert_eq!(dendrite_nn::Activation::LeakyRelu(0.1).name(), "leaky_relu");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Activation::Linear => "linear",
            Activation::Relu => "relu",
            Activation::LeakyRelu(_) => "leaky_relu",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
            Activation::Softmax => "softmax",
            Activation::Gelu => "gelu",
            Activation::GeluTanh => "gelu_tanh",
        }
    }

    /// Appends `self(x)` to the graph; `Linear` returns `x` itself.
    ///
    /// # Errors
    /// Graph errors (softmax needs at least one axis).
    ///
    /// ```
    /// use dendrite_graph::compile;
    /// use dendrite_nn::Activation;
    /// let mut g = dendrite_graph::Graph::<f32>::new();
    /// let x = g.input("x", [3])?;
    /// let y = Activation::Relu.apply(&mut g, x)?;
    /// let mut plan = compile(&g, &[y])?;
    /// let v = ndarray::arr1(&[-1.0_f32, 0.0, 2.0]).into_dyn();
    /// assert_eq!(plan.run(&g, &[("x", v.view())])?.get(0)?.as_slice(), Some(&[0.0, 0.0, 2.0][..]));
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn apply<F: Float>(self, g: &mut Graph<F>, x: NodeId) -> Result<NodeId, GraphError> {
        match self {
            Activation::Linear => Ok(x),
            Activation::Relu => g.relu(x),
            Activation::LeakyRelu(alpha) => g.leaky_relu(x, alpha),
            Activation::Sigmoid => g.sigmoid(x),
            Activation::Tanh => g.tanh(x),
            Activation::Softmax => {
                let rank = g.shape(x)?.rank();
                g.softmax(x, rank.saturating_sub(1))
            }
            Activation::Gelu => g.gelu(x),
            Activation::GeluTanh => g.gelu_tanh(x),
        }
    }

    /// Applies the activation to `z` and describes the result as [`LayerNodes`] (with `z` as
    /// the pre-activation unless the activation is linear).
    ///
    /// # Errors
    /// As [`Activation::apply`].
    ///
    /// ```
    /// use dendrite_nn::Activation;
    /// let mut g = dendrite_graph::Graph::<f32>::new();
    /// let z = g.input("z", [None, Some(3)])?;
    /// let nodes = Activation::Sigmoid.nodes(&mut g, z)?;
    /// assert_eq!(nodes.pre_activation.map(|p| p.node), Some(z));
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn nodes<F: Float>(self, g: &mut Graph<F>, z: NodeId) -> Result<LayerNodes, GraphError> {
        let output = self.apply(g, z)?;
        Ok(match self {
            Activation::Linear => LayerNodes::new(output),
            _ => LayerNodes::new(output).with_pre_activation(z, self),
        })
    }
}

impl<F: Float> Layer<F> for Activation {
    fn kind(&self) -> &'static str {
        "Activation"
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        if input.is_empty() && *self == Activation::Softmax {
            return Err(NnError::LayerInput {
                layer: "activation".into(),
                shape: input.to_vec(),
                reason: "softmax needs at least one axis",
            });
        }
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
    ) -> Result<LayerNodes> {
        Ok(self.nodes(g, input)?)
    }

    fn config(&self) -> std::result::Result<serde_json::Value, crate::ConfigError> {
        Ok(crate::persist::json::activation_to_json(*self))
    }
}
