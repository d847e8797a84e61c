//! Which layer types a model file can be loaded with: a factory per type name.

use super::error::ConfigError;
use crate::dense::Dense;
use crate::float::Float;
use crate::layer::Layer;
use serde_json::Value;

/// Rebuilds a layer from the configuration its [`Layer::config`] wrote.
pub type LayerFactory<F> = fn(&Value) -> Result<Box<dyn Layer<F>>, ConfigError>;

/// The layer types [`Sequential::load_with`](crate::Sequential::load_with) can rebuild, by
/// [`Layer::kind`]. The default registry knows the built-in layers (`Dense`, `Activation`);
/// register a layer type of your own with a factory that reads what its `config` wrote.
///
/// ```
/// use dendrite_nn::{ConfigError, Layer, LayerRegistry};
/// use dendrite_nn::Activation;
///
/// fn relu_only(config: &serde_json::Value) -> Result<Box<dyn Layer<f32>>, ConfigError> {
///     match config["name"].as_str() {
///         Some("relu") => Ok(Box::new(Activation::Relu)),
///         _ => Err(ConfigError::new("name", "only relu")),
///     }
/// }
///
/// let mut registry = LayerRegistry::<f32>::default();
/// registry.register("ReluOnly", relu_only);
/// assert!(registry.kinds().contains(&"ReluOnly"));
/// assert!(registry.factory("Dense").is_some());
/// ```
pub struct LayerRegistry<F: Float> {
    factories: Vec<(String, LayerFactory<F>)>,
    /// Whether `Functional` was registered anew (then its factory is used as given).
    own_functional: bool,
}

impl<F: Float> std::fmt::Debug for LayerRegistry<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.kinds()).finish()
    }
}

fn dense<F: Float>(config: &Value) -> Result<Box<dyn Layer<F>>, ConfigError> {
    Ok(Box::new(Dense::from_config(config)?))
}

fn flatten<F: Float>(config: &Value) -> Result<Box<dyn Layer<F>>, ConfigError> {
    Ok(Box::new(crate::shape::Flatten::from_config(config)?))
}

fn reshape<F: Float>(config: &Value) -> Result<Box<dyn Layer<F>>, ConfigError> {
    Ok(Box::new(crate::shape::Reshape::from_config(config)?))
}

fn conv2d<F: Float>(config: &Value) -> Result<Box<dyn Layer<F>>, ConfigError> {
    Ok(Box::new(crate::conv::Conv2D::from_config(config)?))
}

fn max_pooling2d<F: Float>(config: &Value) -> Result<Box<dyn Layer<F>>, ConfigError> {
    Ok(Box::new(crate::pooling::MaxPooling2D::from_config(config)?))
}

fn average_pooling2d<F: Float>(config: &Value) -> Result<Box<dyn Layer<F>>, ConfigError> {
    Ok(Box::new(crate::pooling::AveragePooling2D::from_config(
        config,
    )?))
}

fn global_average_pooling2d<F: Float>(config: &Value) -> Result<Box<dyn Layer<F>>, ConfigError> {
    Ok(Box::new(
        crate::pooling::GlobalAveragePooling2D::from_config(config)?,
    ))
}

fn batch_normalization<F: Float>(config: &Value) -> Result<Box<dyn Layer<F>>, ConfigError> {
    Ok(Box::new(
        crate::batch_norm::BatchNormalization::from_config(config)?,
    ))
}

/// A Functional block through the built-in registry (what [`LayerRegistry::factory`] gives;
/// [`LayerRegistry::rebuild`] passes its own registry instead).
fn functional<F: Float>(config: &Value) -> Result<Box<dyn Layer<F>>, ConfigError> {
    let registry = LayerRegistry::default();
    Ok(Box::new(crate::functional::block_from_config::<F>(
        config, &registry,
    )?))
}

fn dropout<F: Float>(config: &Value) -> Result<Box<dyn Layer<F>>, ConfigError> {
    Ok(Box::new(crate::dropout::Dropout::from_config(config)?))
}

fn layer_normalization<F: Float>(config: &Value) -> Result<Box<dyn Layer<F>>, ConfigError> {
    Ok(Box::new(
        crate::normalization::LayerNormalization::from_config(config)?,
    ))
}

fn embedding<F: Float>(config: &Value) -> Result<Box<dyn Layer<F>>, ConfigError> {
    Ok(Box::new(crate::embedding::Embedding::from_config(config)?))
}

fn activation<F: Float>(config: &Value) -> Result<Box<dyn Layer<F>>, ConfigError> {
    Ok(Box::new(super::json::activation_from_json(config)?))
}

impl<F: Float> Default for LayerRegistry<F> {
    fn default() -> Self {
        LayerRegistry {
            factories: vec![
                ("Dense".to_owned(), dense::<F> as LayerFactory<F>),
                ("Activation".to_owned(), activation::<F> as LayerFactory<F>),
                ("Flatten".to_owned(), flatten::<F> as LayerFactory<F>),
                ("Reshape".to_owned(), reshape::<F> as LayerFactory<F>),
                ("Dropout".to_owned(), dropout::<F> as LayerFactory<F>),
                ("Functional".to_owned(), functional::<F> as LayerFactory<F>),
                (
                    "BatchNormalization".to_owned(),
                    batch_normalization::<F> as LayerFactory<F>,
                ),
                ("Conv2D".to_owned(), conv2d::<F> as LayerFactory<F>),
                (
                    "MaxPooling2D".to_owned(),
                    max_pooling2d::<F> as LayerFactory<F>,
                ),
                (
                    "AveragePooling2D".to_owned(),
                    average_pooling2d::<F> as LayerFactory<F>,
                ),
                (
                    "GlobalAveragePooling2D".to_owned(),
                    global_average_pooling2d::<F> as LayerFactory<F>,
                ),
                (
                    "LayerNormalization".to_owned(),
                    layer_normalization::<F> as LayerFactory<F>,
                ),
                ("Embedding".to_owned(), embedding::<F> as LayerFactory<F>),
            ],
            own_functional: false,
        }
    }
}

impl<F: Float> LayerRegistry<F> {
    /// Registers `factory` for layers whose [`Layer::kind`] is `kind` (replacing any factory
    /// registered for it before).
    pub fn register(&mut self, kind: &str, factory: LayerFactory<F>) -> &mut Self {
        self.own_functional |= kind == "Functional";
        match self.factories.iter_mut().find(|(k, _)| k == kind) {
            Some(entry) => entry.1 = factory,
            None => self.factories.push((kind.to_owned(), factory)),
        }
        self
    }

    /// The factory registered for `kind`.
    pub fn factory(&self, kind: &str) -> Option<LayerFactory<F>> {
        self.factories
            .iter()
            .find(|(k, _)| k == kind)
            .map(|&(_, f)| f)
    }

    /// Rebuilds a layer of type `kind` from its configuration, or `None` for a type not
    /// registered. A Functional block rebuilds its inner layers through this same registry,
    /// so the layer types registered here may appear inside a Functional model too.
    ///
    /// # Errors
    /// The factory's [`ConfigError`].
    ///
    /// ```
    /// use dendrite_nn::LayerRegistry;
    /// let registry = LayerRegistry::<f32>::default();
    /// let config = serde_json::json!({ "name": "relu" });
    /// assert!(registry.rebuild("Activation", &config).is_some_and(|l| l.is_ok()));
    /// assert!(registry.rebuild("Unknown", &config).is_none());
    /// ```
    pub fn rebuild(
        &self,
        kind: &str,
        config: &Value,
    ) -> Option<Result<Box<dyn Layer<F>>, ConfigError>> {
        if kind == "Functional" && !self.own_functional {
            let block = crate::functional::block_from_config::<F>(config, self);
            return Some(block.map(|b| Box::new(b) as Box<dyn Layer<F>>));
        }
        self.factory(kind).map(|factory| factory(config))
    }

    /// The registered type names.
    pub fn kinds(&self) -> Vec<&str> {
        self.factories.iter().map(|(k, _)| k.as_str()).collect()
    }
}
