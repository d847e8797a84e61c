//! [`Dropout`]: zeroes a random fraction of its inputs while training, and is the identity
//! otherwise.
//!
//! In training, each value is kept with probability `1 - rate` and divided by `1 - rate`
//! ("inverted" dropout), so a value's expected output is the value itself and inference needs
//! no rescaling: the layer there is the identity. The mask is `[u < 1 - rate]` for
//! `u = random_uniform(input, step, seed)`, a counter-based draw: it depends only on the
//! layer's seed, the training step and the value's position, so the same seed gives the same
//! masks at any thread count, and a resumed run draws the masks the uninterrupted run drew.
//!
//! Derivative: `∂y/∂x = mask / (1 - rate)` elementwise (the mask is constant in `x`).

use crate::error::{NnError, Result};
use crate::float::Float;
use crate::layer::{Init, Layer, LayerNodes};
use crate::persist::json::{f64_field, optional};
use crate::shape::name_from_json;
use crate::ConfigError;
use dendrite_graph::{Graph, NodeId};
use serde_json::{json, Value};

/// Inverted dropout at rate `rate` (Keras' `Dropout`): in training each value is zeroed with
/// probability `rate` and the others are divided by `1 - rate`; in inference the identity.
///
/// ```
/// use dendrite_nn::{Dense, Dropout, Sequential};
/// let mut model = Sequential::<f32>::default();
/// model.add(Dense::new(8).input_dim(4));
/// model.add(Dropout::new(0.5));
/// model.add(Dense::new(2));
/// // No parameters of its own: 4*8+8 + 8*2+2.
/// assert_eq!(model.summary()?.total_params(), 58);
/// # Ok::<(), dendrite_nn::NnError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Dropout {
    rate: f64,
    seed: Option<u64>,
    name: Option<String>,
}

impl Dropout {
    /// Dropout of a fraction `rate` of the values, in `[0, 1)` (checked when the model is
    /// built or summarized).
    ///
    /// ```
    /// let layer = dendrite_nn::Dropout::new(0.25);
    /// assert_eq!(layer.rate(), 0.25);
    /// ```
    pub fn new(rate: f64) -> Self {
        Dropout {
            rate,
            seed: None,
            name: None,
        }
    }

    /// The fraction of values dropped in training.
    ///
    /// ```
    /// assert_eq!(dendrite_nn::Dropout::new(0.5).rate(), 0.5);
    /// ```
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Keys the masks by `seed` instead of one derived from the model's seed and the layer's
    /// position ([`Init::random_seed`]).
    ///
    /// ```
    /// let layer = dendrite_nn::Dropout::new(0.5).seed(42);
    /// # let _ = layer;
    /// ```
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Names the layer (instead of the automatic `dropout_k`).
    ///
    /// ```
    /// use dendrite_nn::{Dropout, Layer};
    /// assert_eq!(Layer::<f32>::name(&Dropout::new(0.5).named("drop")), Some("drop"));
    /// ```
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The layer [`Layer::config`] describes (the registry's factory for `Dropout`).
    ///
    /// # Errors
    /// [`ConfigError`] naming the field that is wrong.
    ///
    /// ```
    /// use dendrite_nn::{Dropout, Layer};
    /// let layer = Dropout::new(0.5).seed(3).named("d");
    /// assert_eq!(Dropout::from_config(&Layer::<f32>::config(&layer)?)?, layer);
    /// # Ok::<(), dendrite_nn::ConfigError>(())
    /// ```
    pub fn from_config(config: &Value) -> std::result::Result<Self, ConfigError> {
        let seed = match optional(config, "seed") {
            None => None,
            Some(v) => Some(
                v.as_u64()
                    .ok_or_else(|| ConfigError::new("seed", "must be a non-negative integer"))?,
            ),
        };
        Ok(Dropout {
            rate: f64_field(config, "rate")?,
            seed,
            name: name_from_json(config)?,
        })
    }

    fn check_rate(&self) -> Result<()> {
        match (0.0..1.0).contains(&self.rate) {
            true => Ok(()),
            false => Err(NnError::Hyperparameter {
                owner: "Dropout",
                name: "rate",
                value: self.rate,
                reason: "the dropout rate must be in [0, 1) (at 1 nothing would be kept)",
            }),
        }
    }
}

impl<F: Float> Layer<F> for Dropout {
    fn kind(&self) -> &'static str {
        "Dropout"
    }

    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        self.check_rate()?;
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
        init: &mut Init,
    ) -> Result<LayerNodes> {
        self.check_rate()?;
        // At rate 0 the layer is the identity in both modes: not asking for the mode spares
        // the model a separate training graph.
        if self.rate == 0.0 || !init.is_training() {
            return Ok(LayerNodes::new(input));
        }
        let keep = 1.0 - self.rate;
        let seed = self.seed.unwrap_or_else(|| init.random_seed());
        let mask = g.bernoulli(input, init.step()?, seed, keep)?;
        let kept = g.mul(input, mask)?;
        // Divided, as Keras does (`x / keep` rather than `x * (1 / keep)`, which can differ
        // in the last bit).
        let keep = g.scalar(keep);
        Ok(LayerNodes::new(g.div(kept, keep)?))
    }

    fn config(&self) -> std::result::Result<Value, ConfigError> {
        Ok(json!({ "name": self.name, "rate": self.rate, "seed": self.seed }))
    }
}
