//! The [`Layer`] trait: how a layer adds itself to a graph, and what it reports.

use crate::activation::Activation;
use crate::error::Result;
use crate::float::Float;
pub(crate) use crate::init::fans;
pub use crate::init::{Init, Mode};
use dendrite_graph::{Graph, NodeId};
use std::fmt::Debug;

/// A layer of a [`Sequential`](crate::Sequential) model.
///
/// Shapes passed to and returned by a layer leave out the batch dimension: a dense layer on
/// 784 features takes `[784]` and returns `[32]`. Layers must be `Send` so that models are.
///
/// A layer is a recipe: [`Layer::build`] appends its nodes (parameters and ops) to a
/// [`Graph`], inside a name scope the model chooses (`dense_1`), so its parameters are named
/// `dense_1/kernel` and `dense_1/bias`. Before any graph exists the layer answers
/// [`Layer::output_shape`] and [`Layer::param_count`], which is what
/// [`Sequential::summary`](crate::Sequential::summary) prints.
///
/// # Writing a layer
///
/// Any composition of graph ops is a layer. This one scales its input by a learned vector:
///
/// ```
/// use dendrite_graph::{limits, Graph, GraphError, NodeId};
/// use dendrite_nn::{Float, Init, Layer, LayerNodes, NnError};
///
/// #[derive(Debug)]
/// struct Scale;
///
/// impl<F: Float> Layer<F> for Scale {
///     fn kind(&self) -> &'static str {
///         "Scale"
///     }
///     fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, NnError> {
///         Ok(input.to_vec())
///     }
///     fn param_count(&self, input: &[usize]) -> Option<usize> {
///         input.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
///     }
///     fn build(
///         &mut self,
///         g: &mut Graph<F>,
///         input: NodeId,
///         input_shape: &[usize],
///         init: &mut Init,
///     ) -> Result<LayerNodes, NnError> {
///         let scale = g.parameter("scale", init.ones::<F>(input_shape)?)?;
///         let output = g.mul(input, scale)?;
///         Ok(LayerNodes::new(output).with_parameters(vec![scale]))
///     }
/// }
///
/// let mut model = dendrite_nn::Sequential::new();
/// model.add(dendrite_nn::Dense::new(3).input_dim(4));
/// model.add(Scale);
/// assert_eq!(model.summary()?.total_params(), 4 * 3 + 3 + 3);
/// # Ok::<(), NnError>(())
/// ```
pub trait Layer<F: Float>: Send + Debug {
    /// The layer's type as shown by the summary (`"Dense"`); its lowercase form names the
    /// layer (`dense_1`) unless [`Layer::name`] gives a name.
    ///
    /// ```
    /// use dendrite_nn::{Dense, Layer};
    /// assert_eq!(Layer::<f32>::kind(&Dense::new(3)), "Dense");
    /// ```
    fn kind(&self) -> &'static str;

    /// A name chosen by the user, used instead of the automatic `kind_k`.
    ///
    /// ```
    /// use dendrite_nn::{Dense, Layer};
    /// assert_eq!(Layer::<f32>::name(&Dense::new(3).named("hidden")), Some("hidden"));
    /// ```
    fn name(&self) -> Option<&str> {
        None
    }

    /// The input shape this layer declares (without the batch dimension), for a first layer.
    ///
    /// ```
    /// use dendrite_nn::{Dense, Layer};
    /// assert_eq!(Layer::<f32>::input_shape(&Dense::new(3).input_dim(8)), Some(vec![8]));
    /// ```
    fn input_shape(&self) -> Option<Vec<usize>> {
        None
    }

    /// The output shape for an input of shape `input` (both without the batch dimension).
    ///
    /// # Errors
    /// [`NnError::LayerInput`](crate::NnError::LayerInput) when the layer cannot take `input`.
    ///
    /// ```
    /// use dendrite_nn::{Dense, Layer};
    /// assert_eq!(Layer::<f32>::output_shape(&Dense::new(32), &[784])?, vec![32]);
    /// # Ok::<(), dendrite_nn::NnError>(())
    /// ```
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>>;

    /// Number of trainable values for an input of shape `input`, or `None` when it does not
    /// fit in `usize` (compute it with checked arithmetic). The summary turns `None` into
    /// [`NnError::ParamCountOverflow`](crate::NnError::ParamCountOverflow) naming the layer.
    ///
    /// ```
    /// use dendrite_nn::{Dense, Layer};
    /// assert_eq!(Layer::<f32>::param_count(&Dense::new(32), &[784]), Some(784 * 32 + 32));
    /// assert_eq!(Layer::<f32>::param_count(&Dense::new(usize::MAX), &[2]), None);
    /// ```
    fn param_count(&self, input: &[usize]) -> Option<usize>;

    /// Number of non-trainable values (the [`LayerNodes::states`]) for an input of shape
    /// `input`, or `None` on overflow; the summary counts them apart, as Keras does. Zero
    /// unless the layer has state.
    ///
    /// ```
    /// use dendrite_nn::{Dense, Layer};
    /// assert_eq!(Layer::<f32>::non_trainable_count(&Dense::new(32), &[784]), Some(0));
    /// ```
    fn non_trainable_count(&self, input: &[usize]) -> Option<usize> {
        let _ = input;
        Some(0)
    }

    /// Appends the layer's nodes to `g`, reading `input` (of run-time shape
    /// `[batch, input_shape...]`). The model calls this inside the layer's name scope, so a
    /// parameter named `"kernel"` becomes `dense_1/kernel`. `init` is a generator seeded for
    /// this layer alone.
    ///
    /// # Errors
    /// Graph errors from the ops; [`NnError::LayerInput`](crate::NnError::LayerInput) for an
    /// input the layer cannot take.
    ///
    /// ```
    /// use dendrite_graph::Graph;
    /// use dendrite_nn::{Dense, Init, Layer};
    /// let mut g = Graph::<f32>::new();
    /// let x = g.input("x", [None, Some(4)])?;
    /// let nodes = g.with_scope("dense_1", |g| Dense::new(2).build(g, x, &[4], &mut Init::new(0)))?;
    /// assert_eq!(g.name(nodes.parameters[0])?, "dense_1/kernel");
    /// # Ok::<(), dendrite_nn::NnError>(())
    /// ```
    fn build(
        &mut self,
        g: &mut Graph<F>,
        input: NodeId,
        input_shape: &[usize],
        init: &mut Init,
    ) -> Result<LayerNodes>;

    /// The layer's settings as JSON, from which the factory registered for its
    /// [`kind`](Layer::kind) in a [`LayerRegistry`](crate::LayerRegistry) rebuilds it: what
    /// [`Sequential::save`](crate::Sequential::save) writes into a model file. The built-in
    /// layers describe themselves; the default refuses, so a model with a layer of your own
    /// is saved only once that layer implements this and is registered for loading.
    ///
    /// # Errors
    /// [`ConfigError`](crate::ConfigError) when the layer cannot be described (a custom
    /// initializer is code, not data).
    ///
    /// ```
    /// use dendrite_nn::{Activation, Dense, Layer};
    /// let config = Layer::<f32>::config(&Dense::new(3).activation(Activation::Relu))?;
    /// assert_eq!(config["units"], 3);
    /// assert_eq!(config["activation"]["name"], "relu");
    /// # Ok::<(), dendrite_nn::ConfigError>(())
    /// ```
    fn config(&self) -> std::result::Result<serde_json::Value, crate::ConfigError> {
        Err(crate::ConfigError::new(
            "",
            format!(
                "the layer type `{}` does not implement Layer::config",
                self.kind()
            ),
        ))
    }
}

/// A node and the activation that turns it into a layer's output: `output = activation(node)`.
///
/// Losses use it to compute cross-entropies from logits (through `log_softmax` or
/// `softplus`) instead of from saturated probabilities.
///
/// ```
/// use dendrite_nn::{Activation, PreActivation};
/// let mut g = dendrite_graph::Graph::<f32>::new();
/// let z = g.input("z", [None, Some(3)])?;
/// let pre = PreActivation { node: z, activation: Activation::Softmax };
/// assert_eq!(pre.activation, Activation::Softmax);
/// # Ok::<(), dendrite_graph::GraphError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PreActivation {
    /// The pre-activation node (the logits for softmax and sigmoid).
    pub node: NodeId,
    /// The activation applied to it.
    pub activation: Activation,
}

/// What [`Layer::build`] added: the output node, the pre-activation if the output is an
/// activation of another node, and the layer's trainable parameters.
///
/// ```
/// use dendrite_nn::LayerNodes;
/// let mut g = dendrite_graph::Graph::<f32>::new();
/// let x = g.input("x", [2])?;
/// let nodes = LayerNodes::new(x);
/// assert!(nodes.parameters.is_empty() && nodes.pre_activation.is_none());
/// # Ok::<(), dendrite_graph::GraphError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct LayerNodes {
    /// The layer's output.
    pub output: NodeId,
    /// `Some` when `output = activation(node)`; lets losses work from logits.
    pub pre_activation: Option<PreActivation>,
    /// The layer's trainable parameters, in a fixed order.
    pub parameters: Vec<NodeId>,
    /// Scalar penalty nodes ([`Regularizer::penalty`](crate::Regularizer::penalty)) the model
    /// adds to its training loss.
    pub penalties: Vec<NodeId>,
    /// The layer's non-trainable state (parameter nodes no gradient updates, such as batch
    /// normalization's moving statistics), saved and loaded with the weights.
    pub states: Vec<NodeId>,
    /// In a training build, each state's value after the step (`(state, new value)`): `fit`
    /// computes the new values with the step and writes them into the states after it.
    pub state_updates: Vec<(NodeId, NodeId)>,
    /// A model's several outputs, in order, each flattened to `[batch, values]` with its own
    /// pre-activation (so each output's loss can work from its logits); `output` is then
    /// their concatenation. Empty for a layer or a model with one output.
    pub heads: Vec<LayerNodes>,
}

impl LayerNodes {
    /// An output with no pre-activation and no parameters.
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// # let x = g.input("x", [2])?;
    /// let nodes = dendrite_nn::LayerNodes::new(x);
    /// assert_eq!(nodes.output, x);
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn new(output: NodeId) -> Self {
        LayerNodes {
            output,
            pre_activation: None,
            parameters: Vec::new(),
            penalties: Vec::new(),
            states: Vec::new(),
            state_updates: Vec::new(),
            heads: Vec::new(),
        }
    }

    /// Records the layer's parameters.
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// # let x = g.input("x", [2])?;
    /// let w = g.parameter("w", ndarray::arr1(&[1.0_f32, 2.0]).into_dyn())?;
    /// let y = g.mul(x, w)?;
    /// let nodes = dendrite_nn::LayerNodes::new(y).with_parameters(vec![w]);
    /// assert_eq!(nodes.parameters, vec![w]);
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn with_parameters(mut self, parameters: Vec<NodeId>) -> Self {
        self.parameters = parameters;
        self
    }

    /// Records a regularization penalty (a scalar node) for the model's training loss.
    ///
    /// ```
    /// use dendrite_nn::{LayerNodes, Regularizer};
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// let w = g.parameter("w", ndarray::arr1(&[1.0_f32, 2.0]).into_dyn())?;
    /// let penalty = Regularizer::l2(0.01).penalty(&mut g, w)?;
    /// let nodes = LayerNodes::new(w).with_parameters(vec![w]).with_penalty(penalty);
    /// assert_eq!(nodes.penalties, vec![penalty]);
    /// # Ok::<(), dendrite_nn::NnError>(())
    /// ```
    pub fn with_penalty(mut self, penalty: NodeId) -> Self {
        self.penalties.push(penalty);
        self
    }

    /// Records the layer's non-trainable state nodes (parameters that no gradient updates).
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// let x = g.input("x", [None, Some(2)])?;
    /// let mean = g.parameter("moving_mean", ndarray::arr1(&[0.0_f32, 0.0]).into_dyn())?;
    /// let y = g.sub(x, mean)?;
    /// let nodes = dendrite_nn::LayerNodes::new(y).with_states(vec![mean]);
    /// assert_eq!(nodes.states, vec![mean]);
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn with_states(mut self, states: Vec<NodeId>) -> Self {
        self.states = states;
        self
    }

    /// Records that after each training step `state` takes the value of `new_value` (a node
    /// of the state's shape computed in the same step), as a moving average does.
    ///
    /// ```
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// let count = g.parameter("count", ndarray::arr0(0.0_f32).into_dyn())?;
    /// let one = g.scalar(1.0);
    /// let next = g.add(count, one)?;
    /// let nodes = dendrite_nn::LayerNodes::new(next).with_state_update(count, next);
    /// assert_eq!(nodes.state_updates, vec![(count, next)]);
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn with_state_update(mut self, state: NodeId, new_value: NodeId) -> Self {
        self.state_updates.push((state, new_value));
        self
    }

    /// Records that the output is `activation(node)`.
    ///
    /// ```
    /// use dendrite_nn::{Activation, LayerNodes};
    /// # let mut g = dendrite_graph::Graph::<f32>::new();
    /// # let z = g.input("z", [None, Some(3)])?;
    /// let p = g.softmax(z, 1)?;
    /// let nodes = LayerNodes::new(p).with_pre_activation(z, Activation::Softmax);
    /// assert_eq!(nodes.pre_activation.map(|pre| pre.node), Some(z));
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn with_pre_activation(mut self, node: NodeId, activation: Activation) -> Self {
        self.pre_activation = Some(PreActivation { node, activation });
        self
    }
}
