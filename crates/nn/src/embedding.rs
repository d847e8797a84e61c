//! [`Embedding`]: a trainable lookup table, `y[.., k] = embeddings[x[..], k]`, for inputs that
//! hold integer indices (token ids, category codes) stored as floats.
//!
//! The layer is the graph's `gather` along the table's first axis, so its gradient is the
//! primitive's: `scatter_add`, which adds each position's cotangent into the row it read (rows
//! read twice get both). Its lookup node is named `<layer>/embedding_lookup`, which is how an
//! index error of the gather (a negative, fractional or too large index) becomes
//! [`NnError::EmbeddingIndex`] naming the layer, the sample and the position.

use crate::error::{NnError, Result};
use crate::float::Float;
use crate::initializer::Initializer;
use crate::layer::{Init, Layer, LayerNodes};
use crate::persist::json::{field, initializer_from_json, initializer_to_json, usize_field};
use crate::shape::{name_from_json, shape_from_json};
use crate::ConfigError;
use dendrite_graph::{Graph, NodeId};
use serde_json::{json, Value};

/// The last component of the name of an embedding's lookup node.
pub(crate) const LOOKUP: &str = "embedding_lookup";

/// The layer a node named `<layer>/embedding_lookup` belongs to, `None` for any other name.
/// The node the training graph's simplifier rebuilds from it is named inside that name
/// (`<layer>/embedding_lookup/gather`), and belongs to the layer too.
pub(crate) fn layer_of_lookup(node: &str) -> Option<&str> {
    let (layer, rest) = node.split_once(&format!("/{LOOKUP}"))?;
    (rest.is_empty() || rest.starts_with('/')).then_some(layer)
}

/// Maps integer indices to learned vectors (Keras' `Embedding`): each sample of shape `[n]`
/// holds `n` indices in `0..input_dim` (stored as floats) and becomes `[n, output_dim]`, row
/// `j` being row `x[j]` of the `[input_dim, output_dim]` table `embeddings`. Samples of any
/// shape work the same way (`[h, w]` becomes `[h, w, output_dim]`).
///
/// As in Keras the table starts uniform in `[-0.05, 0.05)`. An index that is negative, not an
/// integer, or `>= input_dim` stops `predict`, `fit` and `evaluate` with
/// [`NnError::EmbeddingIndex`]. Indices are exact in `f32` up to 2²⁴ (16,777,216): a larger
/// vocabulary needs an `f64` model.
///
/// ```
/// use dendrite_nn::{Embedding, Flatten, Dense, Sequential};
/// let mut model = Sequential::<f32>::default();
/// model.add(Embedding::new(1000, 8).input_length(5));
/// model.add(Flatten::new());
/// model.add(Dense::new(1));
/// assert_eq!(model.summary()?.total_params(), 1000 * 8 + 5 * 8 + 1);
/// # Ok::<(), dendrite_nn::NnError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding {
    input_dim: usize,
    output_dim: usize,
    input_shape: Option<Vec<usize>>,
    name: Option<String>,
    embeddings_initializer: Initializer,
}

impl Embedding {
    /// A table of `input_dim` vectors (the vocabulary size: indices `0..input_dim`) of
    /// `output_dim` values each.
    ///
    /// ```
    /// let layer = dendrite_nn::Embedding::new(100, 16);
    /// assert_eq!((layer.input_dim(), layer.output_dim()), (100, 16));
    /// ```
    pub fn new(input_dim: usize, output_dim: usize) -> Self {
        Embedding {
            input_dim,
            output_dim,
            input_shape: None,
            name: None,
            embeddings_initializer: Initializer::RandomUniform {
                minval: -0.05,
                maxval: 0.05,
            },
        }
    }

    /// The vocabulary size: valid indices are `0..input_dim`.
    ///
    /// ```
    /// assert_eq!(dendrite_nn::Embedding::new(10, 2).input_dim(), 10);
    /// ```
    pub fn input_dim(&self) -> usize {
        self.input_dim
    }

    /// The length of each vector.
    ///
    /// ```
    /// assert_eq!(dendrite_nn::Embedding::new(10, 2).output_dim(), 2);
    /// ```
    pub fn output_dim(&self) -> usize {
        self.output_dim
    }

    /// Declares samples of `length` indices (Keras' `input_length`), for a first layer: the
    /// same as `input_shape([length])`.
    ///
    /// ```
    /// use dendrite_nn::{Embedding, Layer};
    /// let layer = Embedding::new(10, 2).input_length(7);
    /// assert_eq!(Layer::<f32>::input_shape(&layer), Some(vec![7]));
    /// ```
    pub fn input_length(self, length: usize) -> Self {
        self.input_shape([length])
    }

    /// Declares the sample shape of the model's input, for a first layer.
    ///
    /// ```
    /// use dendrite_nn::{Embedding, Layer};
    /// let layer = Embedding::new(10, 2).input_shape([3, 4]);
    /// assert_eq!(Layer::<f32>::output_shape(&layer, &[3, 4])?, vec![3, 4, 2]);
    /// # Ok::<(), dendrite_nn::NnError>(())
    /// ```
    pub fn input_shape(mut self, shape: impl Into<Vec<usize>>) -> Self {
        self.input_shape = Some(shape.into());
        self
    }

    /// How the table starts (default: uniform in `[-0.05, 0.05)`, Keras' default).
    ///
    /// ```
    /// use dendrite_nn::{Embedding, Initializer};
    /// let layer = Embedding::new(10, 2).embeddings_initializer(Initializer::Zeros);
    /// # let _ = layer;
    /// ```
    pub fn embeddings_initializer(mut self, initializer: Initializer) -> Self {
        self.embeddings_initializer = initializer;
        self
    }

    /// Names the layer (instead of the automatic `embedding_k`).
    ///
    /// ```
    /// use dendrite_nn::{Embedding, Layer};
    /// assert_eq!(Layer::<f32>::name(&Embedding::new(4, 2).named("tokens")), Some("tokens"));
    /// ```
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The layer [`Layer::config`] describes (the registry's factory for `Embedding`).
    ///
    /// # Errors
    /// [`ConfigError`] naming the field that is missing or wrong.
    ///
    /// ```
    /// use dendrite_nn::{Embedding, Layer};
    /// let layer = Embedding::new(50, 4).input_length(6).named("e");
    /// assert_eq!(Embedding::from_config(&Layer::<f32>::config(&layer)?)?, layer);
    /// # Ok::<(), dendrite_nn::ConfigError>(())
    /// ```
    pub fn from_config(config: &Value) -> std::result::Result<Self, ConfigError> {
        Ok(Embedding {
            input_dim: usize_field(config, "input_dim")?,
            output_dim: usize_field(config, "output_dim")?,
            input_shape: shape_from_json(config, "input_shape")?,
            name: name_from_json(config)?,
            embeddings_initializer: initializer_from_json(field(config, "embeddings_initializer")?)
                .map_err(|e| e.within("embeddings_initializer"))?,
        })
    }

    fn refuse(&self, input: &[usize], reason: &'static str) -> NnError {
        NnError::LayerInput {
            layer: self.name.clone().unwrap_or_else(|| "embedding".into()),
            shape: input.to_vec(),
            reason,
        }
    }
}

impl<F: Float> Layer<F> for Embedding {
    fn kind(&self) -> &'static str {
        "Embedding"
    }

    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    fn input_shape(&self) -> Option<Vec<usize>> {
        self.input_shape.clone()
    }

    /// `input ++ [output_dim]`.
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        if self.input_dim == 0 || self.output_dim == 0 {
            return Err(self.refuse(
                input,
                "an embedding needs input_dim >= 1 (indices) and output_dim >= 1 (values per vector)",
            ));
        }
        if input.is_empty() || input.contains(&0) {
            return Err(self.refuse(
                input,
                "an embedding takes samples of at least one index, with no empty axis",
            ));
        }
        let mut out = input.to_vec();
        out.push(self.output_dim);
        Ok(out)
    }

    /// `input_dim × output_dim`, `None` when that overflows.
    fn param_count(&self, _input: &[usize]) -> Option<usize> {
        self.input_dim.checked_mul(self.output_dim)
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
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
            "input_shape": self.input_shape,
            "name": self.name,
            "embeddings_initializer": initializer_to_json(&self.embeddings_initializer)
                .map_err(|e| e.within("embeddings_initializer"))?,
        }))
    }
}

impl Embedding {
    fn build_nodes<F: Float>(
        &self,
        g: &mut Graph<F>,
        input: NodeId,
        input_shape: &[usize],
        init: &mut Init,
    ) -> Result<LayerNodes> {
        Layer::<F>::output_shape(self, input_shape)?;
        let table_value = init.initialize::<F>(
            &self.embeddings_initializer,
            &[self.input_dim, self.output_dim],
        )?;
        let table = g.parameter("embeddings", table_value)?;
        let y = g.gather(table, input, 0)?;
        // Named so that an index error of this gather is reported as this layer's.
        let lookup = match g.name(y)?.rsplit_once('/') {
            Some((scope, _)) => format!("{scope}/{LOOKUP}"),
            None => LOOKUP.to_owned(),
        };
        g.rename(y, &lookup)?;
        Ok(LayerNodes::new(y).with_parameters(vec![table]))
    }
}
