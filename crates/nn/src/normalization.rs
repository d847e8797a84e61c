//! Normalization layers: [`LayerNormalization`], which rescales each sample to mean 0 and
//! variance 1 over some of its axes, then applies a learned scale and offset.
//!
//! The layer is composed of graph primitives (`sum`, `sub`, `mul`, `pow`, `add`), so its
//! gradient, of any order, comes from their rules; the book's normalization chapter derives
//! it by hand.

use crate::error::{NnError, Result};
use crate::float::Float;
use crate::initializer::Initializer;
use crate::layer::{Init, Layer, LayerNodes};
use crate::persist::json::{
    bool_field, f64_field, field, initializer_from_json, initializer_to_json,
};
use crate::shape::{name_from_json, shape_from_json};
use crate::ConfigError;
use dendrite_graph::{Graph, NodeId};
use serde_json::{json, Value};

/// Layer normalization (Keras' `LayerNormalization`; Ba, Kiros and Hinton, 2016): each sample
/// is normalized on its own over its `axis`,
///
/// `y = gamma · (x - mean) / sqrt(var + epsilon) + beta`,
///
/// with the mean and the biased variance (divided by the count) taken over the normalized
/// axes, and `gamma` (the scale, starting at ones) and `beta` (the offset, starting at zeros)
/// shaped like those axes. Axes count as in Keras, with the batch as axis 0: the default
/// `-1` is the last axis, `[1, 2]` the first two axes of each sample. `epsilon` defaults to
/// `1e-3` and must be positive and finite.
///
/// ```
/// use dendrite_nn::{Dense, LayerNormalization, Sequential};
/// let mut model = Sequential::<f32>::default();
/// model.add(Dense::new(16).input_dim(8));
/// model.add(LayerNormalization::new());
/// assert_eq!(model.summary()?.total_params(), 8 * 16 + 16 + 2 * 16);
/// # Ok::<(), dendrite_nn::NnError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct LayerNormalization {
    axes: Vec<isize>,
    epsilon: f64,
    center: bool,
    scale: bool,
    input_shape: Option<Vec<usize>>,
    name: Option<String>,
    beta_initializer: Initializer,
    gamma_initializer: Initializer,
}

impl Default for LayerNormalization {
    fn default() -> Self {
        LayerNormalization {
            axes: vec![-1],
            epsilon: 1e-3,
            center: true,
            scale: true,
            input_shape: None,
            name: None,
            beta_initializer: Initializer::Zeros,
            gamma_initializer: Initializer::Ones,
        }
    }
}

impl LayerNormalization {
    /// Normalization over the last axis, `epsilon = 1e-3`, with `gamma` and `beta`.
    ///
    /// ```
    /// let layer = dendrite_nn::LayerNormalization::new();
    /// assert_eq!((layer.axis_values(), layer.epsilon_value()), (&[-1_isize][..], 1e-3));
    /// ```
    pub fn new() -> Self {
        LayerNormalization::default()
    }

    /// Normalizes over one axis (batch = 0, negative from the end; default `-1`).
    ///
    /// ```
    /// let layer = dendrite_nn::LayerNormalization::new().axis(1);
    /// assert_eq!(layer.axis_values(), &[1]);
    /// ```
    pub fn axis(self, axis: isize) -> Self {
        self.axes([axis])
    }

    /// Normalizes over several axes together (batch = 0, negative from the end); `gamma` and
    /// `beta` are shaped like them, in the input's order.
    ///
    /// ```
    /// use dendrite_nn::{Layer, LayerNormalization};
    /// let layer = LayerNormalization::new().axes([1, 2]);
    /// assert_eq!(Layer::<f32>::param_count(&layer, &[4, 5, 3]), Some(2 * 4 * 5));
    /// ```
    pub fn axes(mut self, axes: impl Into<Vec<isize>>) -> Self {
        self.axes = axes.into();
        self
    }

    /// The normalized axes, as given (batch = 0, negative from the end).
    ///
    /// ```
    /// assert_eq!(dendrite_nn::LayerNormalization::new().axes([2, -1]).axis_values(), &[2, -1]);
    /// ```
    pub fn axis_values(&self) -> &[isize] {
        &self.axes
    }

    /// The small constant added to the variance (default `1e-3`, Keras' default).
    ///
    /// ```
    /// let layer = dendrite_nn::LayerNormalization::new().epsilon(1e-5);
    /// assert_eq!(layer.epsilon_value(), 1e-5);
    /// ```
    pub fn epsilon(mut self, epsilon: f64) -> Self {
        self.epsilon = epsilon;
        self
    }

    /// The constant added to the variance.
    ///
    /// ```
    /// assert_eq!(dendrite_nn::LayerNormalization::new().epsilon_value(), 1e-3);
    /// ```
    pub fn epsilon_value(&self) -> f64 {
        self.epsilon
    }

    /// Whether to add the learned offset `beta` (default `true`).
    ///
    /// ```
    /// use dendrite_nn::{Layer, LayerNormalization};
    /// let layer = LayerNormalization::new().center(false);
    /// assert_eq!(Layer::<f32>::param_count(&layer, &[6]), Some(6));
    /// ```
    pub fn center(mut self, center: bool) -> Self {
        self.center = center;
        self
    }

    /// Whether to multiply by the learned scale `gamma` (default `true`).
    ///
    /// ```
    /// use dendrite_nn::{Layer, LayerNormalization};
    /// let layer = LayerNormalization::new().scale(false).center(false);
    /// assert_eq!(Layer::<f32>::param_count(&layer, &[6]), Some(0));
    /// ```
    pub fn scale(mut self, scale: bool) -> Self {
        self.scale = scale;
        self
    }

    /// How `beta` starts (default: [`Initializer::Zeros`]).
    ///
    /// ```
    /// use dendrite_nn::{Initializer, LayerNormalization};
    /// let layer = LayerNormalization::new().beta_initializer(Initializer::Constant(0.1));
    /// # let _ = layer;
    /// ```
    pub fn beta_initializer(mut self, initializer: Initializer) -> Self {
        self.beta_initializer = initializer;
        self
    }

    /// How `gamma` starts (default: [`Initializer::Ones`]).
    ///
    /// ```
    /// use dendrite_nn::{Initializer, LayerNormalization};
    /// let layer = LayerNormalization::new().gamma_initializer(Initializer::Constant(2.0));
    /// # let _ = layer;
    /// ```
    pub fn gamma_initializer(mut self, initializer: Initializer) -> Self {
        self.gamma_initializer = initializer;
        self
    }

    /// Declares the sample shape of the model's input, for a first layer.
    ///
    /// ```
    /// use dendrite_nn::{Layer, LayerNormalization};
    /// let layer = LayerNormalization::new().input_shape([8]);
    /// assert_eq!(Layer::<f32>::input_shape(&layer), Some(vec![8]));
    /// ```
    pub fn input_shape(mut self, shape: impl Into<Vec<usize>>) -> Self {
        self.input_shape = Some(shape.into());
        self
    }

    /// Names the layer (instead of the automatic `layernormalization_k`).
    ///
    /// ```
    /// use dendrite_nn::{Layer, LayerNormalization};
    /// assert_eq!(Layer::<f32>::name(&LayerNormalization::new().named("ln")), Some("ln"));
    /// ```
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The layer [`Layer::config`] describes (the registry's factory for
    /// `LayerNormalization`). `axis` may be one integer or a list, as in Keras.
    ///
    /// # Errors
    /// [`ConfigError`] naming the field that is missing or wrong.
    ///
    /// ```
    /// use dendrite_nn::{Layer, LayerNormalization};
    /// let layer = LayerNormalization::new().axes([1, -1]).epsilon(1e-5).named("ln");
    /// assert_eq!(LayerNormalization::from_config(&Layer::<f32>::config(&layer)?)?, layer);
    /// # Ok::<(), dendrite_nn::ConfigError>(())
    /// ```
    pub fn from_config(config: &Value) -> std::result::Result<Self, ConfigError> {
        let within = |key: &'static str| move |e: ConfigError| e.within(key);
        Ok(LayerNormalization {
            axes: axes_from_json(field(config, "axis")?)?,
            epsilon: f64_field(config, "epsilon")?,
            center: bool_field(config, "center")?,
            scale: bool_field(config, "scale")?,
            input_shape: shape_from_json(config, "input_shape")?,
            name: name_from_json(config)?,
            beta_initializer: initializer_from_json(field(config, "beta_initializer")?)
                .map_err(within("beta_initializer"))?,
            gamma_initializer: initializer_from_json(field(config, "gamma_initializer")?)
                .map_err(within("gamma_initializer"))?,
        })
    }

    fn refuse(&self, input: &[usize], reason: &'static str) -> NnError {
        NnError::LayerInput {
            layer: self
                .name
                .clone()
                .unwrap_or_else(|| "layernormalization".into()),
            shape: input.to_vec(),
            reason,
        }
    }

    /// The normalized axes of a sample of shape `input` (batch excluded, so Keras' axis `k`
    /// is sample axis `k - 1`), sorted; refuses the batch axis, an axis out of range, a repeat
    /// and a bad epsilon.
    fn sample_axes(&self, input: &[usize]) -> Result<Vec<usize>> {
        if !(self.epsilon.is_finite() && self.epsilon > 0.0) {
            return Err(NnError::Hyperparameter {
                owner: "LayerNormalization",
                name: "epsilon",
                value: self.epsilon,
                reason: "must be finite and > 0 (a constant sample would divide by zero)",
            });
        }
        if input.is_empty() || input.contains(&0) {
            return Err(self.refuse(input, "layer normalization needs a non-empty sample"));
        }
        if self.axes.is_empty() {
            return Err(self.refuse(input, "layer normalization needs at least one axis"));
        }
        let rank = input.len() as isize + 1;
        let mut axes = Vec::with_capacity(self.axes.len());
        for &a in &self.axes {
            let full = if a < 0 { a + rank } else { a };
            if !(1..rank).contains(&full) {
                return Err(self.refuse(
                    input,
                    "an axis is out of range or the batch axis 0 (each sample is normalized on its own)",
                ));
            }
            axes.push((full - 1) as usize);
        }
        axes.sort_unstable();
        if axes.windows(2).any(|w| w[0] == w[1]) {
            return Err(self.refuse(input, "an axis is named twice"));
        }
        Ok(axes)
    }
}

/// `[input[a] for a in axes]`: the shape of `gamma` and `beta`.
fn param_shape(input: &[usize], axes: &[usize]) -> Vec<usize> {
    axes.iter().filter_map(|&a| input.get(a).copied()).collect()
}

/// Keras writes `axis` as a list; one integer is read too.
fn axes_from_json(value: &Value) -> std::result::Result<Vec<isize>, ConfigError> {
    let one = |v: &Value| {
        v.as_i64()
            .and_then(|a| isize::try_from(a).ok())
            .ok_or_else(|| ConfigError::new("axis", "must be an integer or a list of integers"))
    };
    match value.as_array() {
        Some(items) => items.iter().map(one).collect(),
        None => Ok(vec![one(value)?]),
    }
}

impl<F: Float> Layer<F> for LayerNormalization {
    fn kind(&self) -> &'static str {
        "LayerNormalization"
    }

    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    fn input_shape(&self) -> Option<Vec<usize>> {
        self.input_shape.clone()
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        self.sample_axes(input)?;
        Ok(input.to_vec())
    }

    /// `(scale + center) × ∏ input[axes]`, `None` when that overflows (or the axes do not fit
    /// the input, which `output_shape` reports).
    fn param_count(&self, input: &[usize]) -> Option<usize> {
        let axes = self.sample_axes(input).ok()?;
        let per = crate::model::checked_product(&param_shape(input, &axes))?;
        per.checked_mul(usize::from(self.scale) + usize::from(self.center))
    }

    fn build(
        &mut self,
        g: &mut Graph<F>,
        input: NodeId,
        input_shape: &[usize],
        init: &mut Init,
    ) -> Result<LayerNodes> {
        // A layer refused half-way leaves the graph as it was.
        g.atomically(|g| self.build_nodes(g, input, input_shape, init))
    }

    fn config(&self) -> std::result::Result<Value, ConfigError> {
        Ok(json!({
            "axis": self.axes,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "input_shape": self.input_shape,
            "name": self.name,
            "beta_initializer": initializer_to_json(&self.beta_initializer)
                .map_err(|e| e.within("beta_initializer"))?,
            "gamma_initializer": initializer_to_json(&self.gamma_initializer)
                .map_err(|e| e.within("gamma_initializer"))?,
        }))
    }
}

impl LayerNormalization {
    /// `x̂ = (x - mean) · (var + ε)^(-1/2)` over the axes, then `gamma · x̂ + beta`.
    fn build_nodes<F: Float>(
        &self,
        g: &mut Graph<F>,
        input: NodeId,
        input_shape: &[usize],
        init: &mut Init,
    ) -> Result<LayerNodes> {
        let axes = self.sample_axes(input_shape)?;
        // Graph axes count the batch.
        let graph_axes: Vec<usize> = axes.iter().map(|&a| a + 1).collect();
        let mean = g.mean(input, &graph_axes, true)?;
        let centered = g.sub(input, mean)?;
        let squares = g.square(centered)?;
        let variance = g.mean(squares, &graph_axes, true)?;
        let eps = g.scalar(self.epsilon);
        let shifted = g.add(variance, eps)?;
        let inv_std = g.pow(shifted, -0.5)?;
        let mut y = g.mul(centered, inv_std)?;
        let mut parameters = Vec::new();
        let shape = param_shape(input_shape, &axes);
        if self.scale {
            let gamma_value = init.initialize::<F>(&self.gamma_initializer, &shape)?;
            let gamma = g.parameter("gamma", gamma_value)?;
            parameters.push(gamma);
            let gamma_b = broadcastable(g, gamma, input_shape, &axes)?;
            y = g.mul(y, gamma_b)?;
        }
        if self.center {
            let beta_value = init.initialize::<F>(&self.beta_initializer, &shape)?;
            let beta = g.parameter("beta", beta_value)?;
            parameters.push(beta);
            let beta_b = broadcastable(g, beta, input_shape, &axes)?;
            y = g.add(y, beta_b)?;
        }
        Ok(LayerNodes::new(y).with_parameters(parameters))
    }
}

/// `p` (shaped `input[axes]`) reshaped so that it broadcasts against a batch of `input`
/// samples: the sample's shape with 1 on the axes not normalized, from the first normalized
/// axis on. When the axes are the last ones this is `p`'s own shape and `p` is returned.
fn broadcastable<F: Float>(
    g: &mut Graph<F>,
    p: NodeId,
    input: &[usize],
    axes: &[usize],
) -> Result<NodeId> {
    let first = axes.first().copied().unwrap_or(0);
    let target: Vec<usize> = input
        .iter()
        .enumerate()
        .skip(first)
        .map(|(a, &d)| if axes.contains(&a) { d } else { 1 })
        .collect();
    if target == param_shape(input, axes) {
        return Ok(p);
    }
    Ok(g.reshape(p, target.as_slice())?)
}
