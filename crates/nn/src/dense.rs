//! [`Dense`]: the fully connected layer, `activation(x · kernel + bias)`.

use crate::activation::Activation;
use crate::error::{NnError, Result};
use crate::float::Float;
use crate::initializer::Initializer;
use crate::layer::{Init, Layer, LayerNodes};
use crate::regularizer::Regularizer;
use dendrite_graph::{Graph, NodeId};

/// A fully connected layer: `y = activation(x · kernel + bias)` with `kernel` of shape
/// `[inputs, units]` and `bias` of shape `[units]`.
///
/// As in Keras the kernel starts Glorot-uniform and the bias at zero (from the model's seed;
/// see [`Dense::kernel_initializer`]); the parameters are named `<layer>/kernel` and
/// `<layer>/bias`, and may carry a [`Regularizer`] each. When the activation is softmax
/// or sigmoid, the logits `x · kernel + bias` are kept as the layer's pre-activation, so the
/// matching cross-entropy is computed from them.
///
/// ```
/// use dendrite_nn::{Activation, Dense, Sequential};
/// let mut model = Sequential::new();
/// model.add(Dense::new(32).input_dim(784).activation(Activation::Relu));
/// model.add(Dense::new(10).activation(Activation::Softmax));
/// assert_eq!(model.summary()?.total_params(), 25_450);
/// # Ok::<(), dendrite_nn::NnError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Dense {
    units: usize,
    input_dim: Option<usize>,
    activation: Activation,
    use_bias: bool,
    name: Option<String>,
    kernel_initializer: Initializer,
    bias_initializer: Initializer,
    kernel_regularizer: Option<Regularizer>,
    bias_regularizer: Option<Regularizer>,
}

impl Dense {
    /// A dense layer with `units` outputs, no activation and a bias.
    ///
    /// ```
    /// let layer = dendrite_nn::Dense::new(32);
    /// assert_eq!(layer.units(), 32);
    /// ```
    pub fn new(units: usize) -> Self {
        Dense {
            units,
            input_dim: None,
            activation: Activation::Linear,
            use_bias: true,
            name: None,
            kernel_initializer: Initializer::GlorotUniform,
            bias_initializer: Initializer::Zeros,
            kernel_regularizer: None,
            bias_regularizer: None,
        }
    }

    /// How the kernel starts (default: [`Initializer::GlorotUniform`]).
    ///
    /// ```
    /// use dendrite_nn::{Activation, Dense, Initializer, Sequential};
    /// let mut model = Sequential::new();
    /// model.add(Dense::new(4).input_dim(3).kernel_initializer(Initializer::Ones).bias_initializer(Initializer::Constant(0.5)));
    /// model.build()?;
    /// let w = model.get_weights()?;
    /// assert!(w[0].iter().all(|&k| k == 1.0) && w[1].iter().all(|&b| b == 0.5));
    /// # Ok::<(), dendrite_nn::NnError>(())
    /// ```
    pub fn kernel_initializer(mut self, initializer: Initializer) -> Self {
        self.kernel_initializer = initializer;
        self
    }

    /// How the bias starts (default: [`Initializer::Zeros`]).
    pub fn bias_initializer(mut self, initializer: Initializer) -> Self {
        self.bias_initializer = initializer;
        self
    }

    /// A penalty on the kernel, added to the training loss (default: none).
    ///
    /// ```
    /// use dendrite_nn::{Dense, Regularizer};
    /// let layer = Dense::new(32).kernel_regularizer(Regularizer::l2(1e-4));
    /// # let _ = layer;
    /// ```
    pub fn kernel_regularizer(mut self, regularizer: Regularizer) -> Self {
        self.kernel_regularizer = Some(regularizer);
        self
    }

    /// A penalty on the bias, added to the training loss (default: none).
    pub fn bias_regularizer(mut self, regularizer: Regularizer) -> Self {
        self.bias_regularizer = Some(regularizer);
        self
    }

    /// Declares the number of input features; needed on the first layer of a model.
    ///
    /// ```
    /// let layer = dendrite_nn::Dense::new(32).input_dim(784);
    /// # let _ = layer;
    /// ```
    pub fn input_dim(mut self, features: usize) -> Self {
        self.input_dim = Some(features);
        self
    }

    /// Sets the activation (default: linear).
    ///
    /// ```
    /// use dendrite_nn::{Activation, Dense};
    /// let layer = Dense::new(10).activation(Activation::Softmax);
    /// assert_eq!(layer.activation_fn(), Activation::Softmax);
    /// ```
    pub fn activation(mut self, activation: Activation) -> Self {
        self.activation = activation;
        self
    }

    /// Whether to add a bias (default: yes).
    ///
    /// ```
    /// use dendrite_nn::{Dense, Layer};
    /// assert_eq!(Layer::<f32>::param_count(&Dense::new(2).use_bias(false), &[3]), Some(6));
    /// ```
    pub fn use_bias(mut self, use_bias: bool) -> Self {
        self.use_bias = use_bias;
        self
    }

    /// Names the layer (and so its parameters: `name/kernel`).
    ///
    /// ```
    /// use dendrite_nn::{Dense, Layer};
    /// assert_eq!(Layer::<f32>::name(&Dense::new(2).named("out")), Some("out"));
    /// ```
    pub fn named(mut self, name: &str) -> Self {
        self.name = Some(name.to_owned());
        self
    }

    /// Number of outputs.
    ///
    /// ```
    /// assert_eq!(dendrite_nn::Dense::new(7).units(), 7);
    /// ```
    pub fn units(&self) -> usize {
        self.units
    }

    /// The activation.
    ///
    /// ```
    /// assert_eq!(dendrite_nn::Dense::new(7).activation_fn(), dendrite_nn::Activation::Linear);
    /// ```
    pub fn activation_fn(&self) -> Activation {
        self.activation
    }

    fn inputs(&self, input: &[usize]) -> Result<usize> {
        let label = || self.name.clone().unwrap_or_else(|| "dense".into());
        if self.units == 0 {
            return Err(NnError::LayerInput {
                layer: label(),
                shape: input.to_vec(),
                reason: "a dense layer needs at least one unit",
            });
        }
        match input {
            [n] if *n > 0 => Ok(*n),
            _ => Err(NnError::LayerInput {
                layer: label(),
                shape: input.to_vec(),
                reason: "a dense layer takes a non-empty vector of features per sample",
            }),
        }
    }
}

impl<F: Float> Layer<F> for Dense {
    fn kind(&self) -> &'static str {
        "Dense"
    }

    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    fn input_shape(&self) -> Option<Vec<usize>> {
        self.input_dim.map(|n| vec![n])
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        self.inputs(input)?;
        Ok(vec![self.units])
    }

    /// `inputs × units (+ units)`, `None` when that overflows.
    fn param_count(&self, input: &[usize]) -> Option<usize> {
        let n = input.iter().try_fold(1usize, |n, &d| n.checked_mul(d))?;
        let bias = if self.use_bias { self.units } else { 0 };
        n.checked_mul(self.units)?.checked_add(bias)
    }

    fn build(
        &mut self,
        g: &mut Graph<F>,
        input: NodeId,
        input_shape: &[usize],
        init: &mut Init,
    ) -> Result<LayerNodes> {
        // A layer refused half-way (an input of another graph, say) leaves the graph as it was.
        g.atomically(|g| self.build_nodes(g, input, input_shape, init))
    }

    fn config(&self) -> std::result::Result<serde_json::Value, crate::ConfigError> {
        use crate::persist::json::{activation_to_json, initializer_to_json, regularizer_to_json};
        Ok(serde_json::json!({
            "units": self.units,
            "input_dim": self.input_dim,
            "activation": activation_to_json(self.activation),
            "use_bias": self.use_bias,
            "name": self.name,
            "kernel_initializer": initializer_to_json(&self.kernel_initializer)
                .map_err(|e| e.within("kernel_initializer"))?,
            "bias_initializer": initializer_to_json(&self.bias_initializer)
                .map_err(|e| e.within("bias_initializer"))?,
            "kernel_regularizer": regularizer_to_json(self.kernel_regularizer),
            "bias_regularizer": regularizer_to_json(self.bias_regularizer),
        }))
    }
}

impl Dense {
    /// The layer [`Layer::config`] describes (the factory a
    /// [`LayerRegistry`](crate::LayerRegistry) has for `Dense`).
    ///
    /// # Errors
    /// [`ConfigError`](crate::ConfigError) naming the field that is missing or wrong.
    ///
    /// ```
    /// use dendrite_nn::{Dense, Layer};
    /// let layer = Dense::new(4).input_dim(2).named("hidden");
    /// let copy = Dense::from_config(&Layer::<f32>::config(&layer)?)?;
    /// assert_eq!(copy, layer);
    /// # Ok::<(), dendrite_nn::ConfigError>(())
    /// ```
    pub fn from_config(
        config: &serde_json::Value,
    ) -> std::result::Result<Self, crate::ConfigError> {
        use crate::persist::json::{
            activation_from_json, bool_field, field, initializer_from_json, optional,
            regularizer_from_json, usize_field,
        };
        let within = |key: &'static str| move |e: crate::ConfigError| e.within(key);
        let input_dim = match optional(config, "input_dim") {
            None => None,
            Some(_) => Some(usize_field(config, "input_dim")?),
        };
        let name = match optional(config, "name") {
            None => None,
            Some(v) => Some(
                v.as_str()
                    .ok_or_else(|| crate::ConfigError::new("name", "must be a string or null"))?
                    .to_owned(),
            ),
        };
        Ok(Dense {
            units: usize_field(config, "units")?,
            input_dim,
            activation: activation_from_json(field(config, "activation")?)
                .map_err(within("activation"))?,
            use_bias: bool_field(config, "use_bias")?,
            name,
            kernel_initializer: initializer_from_json(field(config, "kernel_initializer")?)
                .map_err(within("kernel_initializer"))?,
            bias_initializer: initializer_from_json(field(config, "bias_initializer")?)
                .map_err(within("bias_initializer"))?,
            kernel_regularizer: regularizer_from_json(optional(config, "kernel_regularizer"))
                .map_err(within("kernel_regularizer"))?,
            bias_regularizer: regularizer_from_json(optional(config, "bias_regularizer"))
                .map_err(within("bias_regularizer"))?,
        })
    }
}

impl Dense {
    fn build_nodes<F: Float>(
        &self,
        g: &mut Graph<F>,
        input: NodeId,
        input_shape: &[usize],
        init: &mut Init,
    ) -> Result<LayerNodes> {
        let n = self.inputs(input_shape)?;
        let kernel_value = init.initialize::<F>(&self.kernel_initializer, &[n, self.units])?;
        let kernel = g.parameter("kernel", kernel_value)?;
        let mut parameters = vec![kernel];
        let mut penalties = Vec::new();
        if let Some(r) = self.kernel_regularizer {
            penalties.push(g.with_scope("regularizer", |g| r.penalty(g, kernel))?);
        }
        let mut z = g.matmul(input, kernel)?;
        if self.use_bias {
            let bias_value = init.initialize::<F>(&self.bias_initializer, &[self.units])?;
            let bias = g.parameter("bias", bias_value)?;
            parameters.push(bias);
            if let Some(r) = self.bias_regularizer {
                penalties.push(g.with_scope("regularizer", |g| r.penalty(g, bias))?);
            }
            z = g.add(z, bias)?;
        }
        let mut nodes = self.activation.nodes(g, z)?.with_parameters(parameters);
        nodes.penalties = penalties;
        Ok(nodes)
    }
}
