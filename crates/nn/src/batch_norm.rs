//! [`BatchNormalization`]: normalizes each feature (channel) over the batch in training, and
//! with moving statistics in inference.
//!
//! For a feature with values \\( x_i \\) in a batch (over the batch and, for images, every
//! position), training computes the batch mean \\( \mu \\) and the biased variance
//! \\( \sigma^2 \\), and outputs \\( y_i = \gamma (x_i - \mu) / \sqrt{\sigma^2 + \epsilon} + \beta \\).
//! The gradient flows through \\( \mu \\) and \\( \sigma^2 \\) too (they depend on every
//! \\( x_i \\)), which reverse mode gets from the graph of means. After each step the moving
//! statistics (non-trainable state) take `m ← momentum·m + (1 - momentum)·μ` and the same for
//! the variance; inference uses them in place of the batch's, so a prediction does not depend
//! on the rest of its batch.

use crate::error::{NnError, Result};
use crate::float::Float;
use crate::layer::{Init, Layer, LayerNodes};
use crate::persist::json::{bool_field, f64_field, optional};
use crate::shape::name_from_json;
use crate::ConfigError;
use dendrite_graph::{Graph, NodeId};
use serde_json::{json, Value};

/// Keras' `BatchNormalization` (axis -1, momentum 0.99, epsilon 1e-3, `center` with a `beta`
/// of zeros, `scale` with a `gamma` of ones; moving mean zeros, moving variance ones).
///
/// ```
/// use dendrite_nn::{BatchNormalization, Dense, Sequential};
/// let mut model = Sequential::<f32>::default();
/// model.add(Dense::new(8).input_dim(4));
/// model.add(BatchNormalization::new());
/// let summary = model.summary()?;
/// // gamma and beta train; the moving mean and variance do not.
/// assert_eq!((summary.trainable_params(), summary.non_trainable_params()), (4 * 8 + 8 + 16, 16));
/// # Ok::<(), dendrite_nn::NnError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct BatchNormalization {
    axis: isize,
    momentum: f64,
    epsilon: f64,
    center: bool,
    scale: bool,
    name: Option<String>,
}

impl Default for BatchNormalization {
    fn default() -> Self {
        BatchNormalization {
            axis: -1,
            momentum: 0.99,
            epsilon: 1e-3,
            center: true,
            scale: true,
            name: None,
        }
    }
}

impl BatchNormalization {
    /// Keras' defaults.
    ///
    /// ```
    /// let layer = dendrite_nn::BatchNormalization::new();
    /// # let _ = layer;
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// The feature axis of a sample (negative counts from the end; default -1, the channels
    /// of an NHWC image).
    ///
    /// ```
    /// let layer = dendrite_nn::BatchNormalization::new().axis(0);
    /// # let _ = layer;
    /// ```
    pub fn axis(mut self, axis: isize) -> Self {
        self.axis = axis;
        self
    }

    /// How much of the moving statistics each step keeps, in `[0, 1]` (default 0.99).
    ///
    /// ```
    /// let layer = dendrite_nn::BatchNormalization::new().momentum(0.9);
    /// # let _ = layer;
    /// ```
    pub fn momentum(mut self, momentum: f64) -> Self {
        self.momentum = momentum;
        self
    }

    /// Added to the variance before the square root, positive (default 1e-3).
    ///
    /// ```
    /// let layer = dendrite_nn::BatchNormalization::new().epsilon(1e-5);
    /// # let _ = layer;
    /// ```
    pub fn epsilon(mut self, epsilon: f64) -> Self {
        self.epsilon = epsilon;
        self
    }

    /// Whether to add a learned offset `beta` (default yes).
    ///
    /// ```
    /// let layer = dendrite_nn::BatchNormalization::new().center(false);
    /// # let _ = layer;
    /// ```
    pub fn center(mut self, center: bool) -> Self {
        self.center = center;
        self
    }

    /// Whether to multiply by a learned `gamma` (default yes).
    ///
    /// ```
    /// let layer = dendrite_nn::BatchNormalization::new().scale(false);
    /// # let _ = layer;
    /// ```
    pub fn scale(mut self, scale: bool) -> Self {
        self.scale = scale;
        self
    }

    /// Names the layer (instead of the automatic `batch_normalization_k`).
    ///
    /// ```
    /// use dendrite_nn::{BatchNormalization, Layer};
    /// let layer = BatchNormalization::new().named("bn");
    /// assert_eq!(Layer::<f32>::name(&layer), Some("bn"));
    /// ```
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The layer [`Layer::config`] describes (the registry's factory).
    ///
    /// # Errors
    /// [`ConfigError`] naming the field that is wrong.
    ///
    /// ```
    /// use dendrite_nn::{BatchNormalization, Layer};
    /// let layer = BatchNormalization::new().momentum(0.9).center(false);
    /// let config = Layer::<f32>::config(&layer)?;
    /// assert_eq!(BatchNormalization::from_config(&config)?, layer);
    /// # Ok::<(), dendrite_nn::ConfigError>(())
    /// ```
    pub fn from_config(config: &Value) -> std::result::Result<Self, ConfigError> {
        let axis = match optional(config, "axis") {
            None => -1,
            Some(v) => v
                .as_i64()
                .and_then(|a| isize::try_from(a).ok())
                .ok_or_else(|| ConfigError::new("axis", "must be an integer"))?,
        };
        Ok(BatchNormalization {
            axis,
            momentum: f64_field(config, "momentum")?,
            epsilon: f64_field(config, "epsilon")?,
            center: bool_field(config, "center")?,
            scale: bool_field(config, "scale")?,
            name: name_from_json(config)?,
        })
    }

    /// The feature axis within a sample of `input` axes, and the checked settings.
    fn feature_axis(&self, input: &[usize]) -> Result<usize> {
        let bad = |name, value, reason| NnError::Hyperparameter {
            owner: "BatchNormalization",
            name,
            value,
            reason,
        };
        if !(0.0..=1.0).contains(&self.momentum) {
            return Err(bad("momentum", self.momentum, "must be in [0, 1]"));
        }
        if !(self.epsilon.is_finite() && self.epsilon > 0.0) {
            return Err(bad("epsilon", self.epsilon, "must be positive and finite"));
        }
        let rank = input.len() as isize;
        let axis = if self.axis < 0 {
            self.axis + rank
        } else {
            self.axis
        };
        match (0..rank).contains(&axis) {
            true => Ok(axis as usize),
            false => Err(NnError::LayerInput {
                layer: "batch_normalization".into(),
                shape: input.to_vec(),
                reason: "the feature axis is not an axis of the sample",
            }),
        }
    }
}

/// The graph pieces both modes share: the statistics' broadcast shape and the affine part.
struct Affine {
    /// `[1, .., C, .., 1]`, the batched rank with the features on their axis.
    broadcast: Vec<usize>,
    gamma: Option<NodeId>,
    beta: Option<NodeId>,
}

impl Affine {
    /// `gamma * normalized + beta`, each part only when the layer has it.
    fn apply<F: Float>(&self, g: &mut Graph<F>, normalized: NodeId) -> Result<NodeId> {
        let mut y = normalized;
        if let Some(gamma) = self.gamma {
            let gamma = g.reshape(gamma, self.broadcast.as_slice())?;
            y = g.mul(y, gamma)?;
        }
        if let Some(beta) = self.beta {
            let beta = g.reshape(beta, self.broadcast.as_slice())?;
            y = g.add(y, beta)?;
        }
        Ok(y)
    }
}

impl<F: Float> Layer<F> for BatchNormalization {
    fn kind(&self) -> &'static str {
        "BatchNormalization"
    }

    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        self.feature_axis(input)?;
        Ok(input.to_vec())
    }

    fn param_count(&self, input: &[usize]) -> Option<usize> {
        let features = self.feature_axis(input).ok().map(|a| input[a])?;
        features.checked_mul(usize::from(self.center) + usize::from(self.scale))
    }

    fn non_trainable_count(&self, input: &[usize]) -> Option<usize> {
        let features = self.feature_axis(input).ok().map(|a| input[a])?;
        features.checked_mul(2)
    }

    fn build(
        &mut self,
        g: &mut Graph<F>,
        input: NodeId,
        input_shape: &[usize],
        init: &mut Init,
    ) -> Result<LayerNodes> {
        let axis = self.feature_axis(input_shape)?;
        let features = [input_shape[axis]];
        let gamma = match self.scale {
            true => Some(g.parameter("gamma", init.ones::<F>(&features)?)?),
            false => None,
        };
        let beta = match self.center {
            true => Some(g.parameter("beta", init.zeros::<F>(&features)?)?),
            false => None,
        };
        let moving_mean = g.parameter("moving_mean", init.zeros::<F>(&features)?)?;
        let moving_variance = g.parameter("moving_variance", init.ones::<F>(&features)?)?;
        let mut broadcast = vec![1; input_shape.len() + 1];
        broadcast[axis + 1] = features[0];
        let affine = Affine {
            broadcast,
            gamma,
            beta,
        };
        let params: Vec<NodeId> = gamma.into_iter().chain(beta).collect();
        let states = vec![moving_mean, moving_variance];
        let nodes = match init.is_training() {
            true => self.training(g, input, axis, &affine, (moving_mean, moving_variance))?,
            false => {
                let mean = g.reshape(moving_mean, affine.broadcast.as_slice())?;
                let variance = g.reshape(moving_variance, affine.broadcast.as_slice())?;
                let y = self.normalize(g, input, mean, variance)?;
                LayerNodes::new(affine.apply(g, y)?)
            }
        };
        Ok(nodes.with_parameters(params).with_states(states))
    }

    fn config(&self) -> std::result::Result<Value, ConfigError> {
        Ok(json!({
            "name": self.name,
            "axis": self.axis,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
        }))
    }
}

impl BatchNormalization {
    /// `(x - mean) / sqrt(variance + epsilon)`, the statistics in the broadcast shape.
    fn normalize<F: Float>(
        &self,
        g: &mut Graph<F>,
        x: NodeId,
        mean: NodeId,
        variance: NodeId,
    ) -> Result<NodeId> {
        let centered = g.sub(x, mean)?;
        let eps = g.scalar(self.epsilon);
        let shifted = g.add(variance, eps)?;
        let std = g.sqrt(shifted)?;
        Ok(g.div(centered, std)?)
    }

    /// The training graph: the batch's statistics over every axis but the features', the
    /// normalized output, and the moving statistics' new values.
    fn training<F: Float>(
        &self,
        g: &mut Graph<F>,
        x: NodeId,
        axis: usize,
        affine: &Affine,
        (moving_mean, moving_variance): (NodeId, NodeId),
    ) -> Result<LayerNodes> {
        let reduced: Vec<usize> = (0..affine.broadcast.len())
            .filter(|&a| a != axis + 1)
            .collect();
        let mean = g.mean(x, &reduced, true)?;
        let centered = g.sub(x, mean)?;
        let squares = g.square(centered)?;
        // The biased variance (divided by the count), as Keras normalizes and averages.
        let variance = g.mean(squares, &reduced, true)?;
        let y = self.normalize(g, x, mean, variance)?;
        let output = affine.apply(g, y)?;
        let features = [affine.broadcast[axis + 1]];
        let moving = |g: &mut Graph<F>, state: NodeId, batch: NodeId| -> Result<NodeId> {
            let batch = g.reshape(batch, features.as_slice())?;
            let kept = g.scale(state, self.momentum)?;
            let new = g.scale(batch, 1.0 - self.momentum)?;
            Ok(g.add(kept, new)?)
        };
        let new_mean = moving(g, moving_mean, mean)?;
        let new_variance = moving(g, moving_variance, variance)?;
        Ok(LayerNodes::new(output)
            .with_state_update(moving_mean, new_mean)
            .with_state_update(moving_variance, new_variance))
    }
}
