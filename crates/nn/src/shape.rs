//! Layers that only change how each sample's values are shaped: [`Flatten`] and [`Reshape`].
//!
//! Both keep the row-major order of a sample's values (a reshape in the graph, no copy of
//! meaning), have no parameters, and may be the first layer of a model, declaring the sample
//! shape the model takes with `input_shape` (`Flatten::new().input_shape([28, 28, 1])`).

use crate::error::{NnError, Result};
use crate::float::Float;
use crate::layer::{Init, Layer, LayerNodes};
use crate::persist::json::optional;
use crate::ConfigError;
use dendrite_graph::{Graph, NodeId};
use serde_json::{json, Value};

/// Flattens each sample to a vector: `[28, 28, 1]` becomes `[784]` (Keras' `Flatten`).
///
/// ```
/// use dendrite_nn::{Dense, Flatten, Sequential};
/// let mut model = Sequential::<f32>::default();
/// model.add(Flatten::new().input_shape([28, 28, 1]));
/// model.add(Dense::new(10));
/// assert_eq!(model.summary()?.total_params(), 784 * 10 + 10);
/// # Ok::<(), dendrite_nn::NnError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flatten {
    input_shape: Option<Vec<usize>>,
    name: Option<String>,
}

impl Flatten {
    /// A flatten layer.
    ///
    /// ```
    /// assert_eq!(dendrite_nn::Flatten::new(), dendrite_nn::Flatten::default());
    /// ```
    pub fn new() -> Self {
        Flatten::default()
    }

    /// Declares the sample shape of the model's input, for a first layer.
    ///
    /// ```
    /// use dendrite_nn::{Flatten, Layer};
    /// let layer = Flatten::new().input_shape([4, 4]);
    /// assert_eq!(Layer::<f32>::input_shape(&layer), Some(vec![4, 4]));
    /// ```
    pub fn input_shape(mut self, shape: impl Into<Vec<usize>>) -> Self {
        self.input_shape = Some(shape.into());
        self
    }

    /// Names the layer (instead of the automatic `flatten_k`).
    ///
    /// ```
    /// use dendrite_nn::{Flatten, Layer};
    /// assert_eq!(Layer::<f32>::name(&Flatten::new().named("flat")), Some("flat"));
    /// ```
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The layer [`Layer::config`] describes (the registry's factory for `Flatten`).
    ///
    /// # Errors
    /// [`ConfigError`] naming the field that is wrong.
    ///
    /// ```
    /// use dendrite_nn::{Flatten, Layer};
    /// let layer = Flatten::new().input_shape([2, 3]).named("f");
    /// assert_eq!(Flatten::from_config(&Layer::<f32>::config(&layer)?)?, layer);
    /// # Ok::<(), dendrite_nn::ConfigError>(())
    /// ```
    pub fn from_config(config: &Value) -> std::result::Result<Self, ConfigError> {
        Ok(Flatten {
            input_shape: shape_from_json(config, "input_shape")?,
            name: name_from_json(config)?,
        })
    }
}

impl<F: Float> Layer<F> for Flatten {
    fn kind(&self) -> &'static str {
        "Flatten"
    }

    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    fn input_shape(&self) -> Option<Vec<usize>> {
        self.input_shape.clone()
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        Ok(vec![elements(input)?])
    }

    fn param_count(&self, _input: &[usize]) -> Option<usize> {
        Some(0)
    }

    fn build(
        &mut self,
        g: &mut Graph<F>,
        input: NodeId,
        input_shape: &[usize],
        _init: &mut Init,
    ) -> Result<LayerNodes> {
        let n = elements(input_shape)?;
        Ok(LayerNodes::new(g.reshape(input, [None, Some(n)])?))
    }

    fn config(&self) -> std::result::Result<Value, ConfigError> {
        Ok(json!({ "name": self.name, "input_shape": self.input_shape }))
    }
}

/// Gives each sample a new shape with the same number of values, row-major (Keras' `Reshape`):
/// `Reshape::new([28, 28, 1])` turns `[784]` into `[28, 28, 1]`.
///
/// ```
/// use dendrite_nn::{Layer, Reshape};
/// assert_eq!(Layer::<f32>::output_shape(&Reshape::new([2, 6]), &[3, 4])?, vec![2, 6]);
/// assert!(Layer::<f32>::output_shape(&Reshape::new([5]), &[3, 4]).is_err());
/// # Ok::<(), dendrite_nn::NnError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reshape {
    target_shape: Vec<usize>,
    input_shape: Option<Vec<usize>>,
    name: Option<String>,
}

impl Reshape {
    /// A layer reshaping each sample to `target_shape` (without the batch axis).
    ///
    /// ```
    /// let layer = dendrite_nn::Reshape::new([28, 28, 1]);
    /// assert_eq!(layer.target_shape(), &[28, 28, 1]);
    /// ```
    pub fn new(target_shape: impl Into<Vec<usize>>) -> Self {
        Reshape {
            target_shape: target_shape.into(),
            input_shape: None,
            name: None,
        }
    }

    /// The shape each sample is given.
    ///
    /// ```
    /// assert_eq!(dendrite_nn::Reshape::new([3]).target_shape(), &[3]);
    /// ```
    pub fn target_shape(&self) -> &[usize] {
        &self.target_shape
    }

    /// Declares the sample shape of the model's input, for a first layer.
    ///
    /// ```
    /// use dendrite_nn::{Layer, Reshape};
    /// let layer = Reshape::new([28, 28, 1]).input_shape([784]);
    /// assert_eq!(Layer::<f32>::input_shape(&layer), Some(vec![784]));
    /// ```
    pub fn input_shape(mut self, shape: impl Into<Vec<usize>>) -> Self {
        self.input_shape = Some(shape.into());
        self
    }

    /// Names the layer (instead of the automatic `reshape_k`).
    ///
    /// ```
    /// use dendrite_nn::{Layer, Reshape};
    /// assert_eq!(Layer::<f32>::name(&Reshape::new([1]).named("r")), Some("r"));
    /// ```
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The layer [`Layer::config`] describes (the registry's factory for `Reshape`).
    ///
    /// # Errors
    /// [`ConfigError`] naming the field that is missing or wrong.
    ///
    /// ```
    /// use dendrite_nn::{Layer, Reshape};
    /// let layer = Reshape::new([4, 1]).input_shape([4]);
    /// assert_eq!(Reshape::from_config(&Layer::<f32>::config(&layer)?)?, layer);
    /// # Ok::<(), dendrite_nn::ConfigError>(())
    /// ```
    pub fn from_config(config: &Value) -> std::result::Result<Self, ConfigError> {
        Ok(Reshape {
            target_shape: shape_from_json(config, "target_shape")?
                .ok_or_else(|| ConfigError::new("target_shape", "missing"))?,
            input_shape: shape_from_json(config, "input_shape")?,
            name: name_from_json(config)?,
        })
    }
}

impl<F: Float> Layer<F> for Reshape {
    fn kind(&self) -> &'static str {
        "Reshape"
    }

    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    fn input_shape(&self) -> Option<Vec<usize>> {
        self.input_shape.clone()
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        let fits = !self.target_shape.is_empty()
            && self.target_shape.iter().all(|&d| d > 0)
            && elements(&self.target_shape).ok() == Some(elements(input)?);
        match fits {
            true => Ok(self.target_shape.clone()),
            false => Err(NnError::LayerInput {
                layer: "reshape".into(),
                shape: input.to_vec(),
                reason: "the target shape must have no zero axis and as many values as the input",
            }),
        }
    }

    fn param_count(&self, _input: &[usize]) -> Option<usize> {
        Some(0)
    }

    fn build(
        &mut self,
        g: &mut Graph<F>,
        input: NodeId,
        input_shape: &[usize],
        _init: &mut Init,
    ) -> Result<LayerNodes> {
        let target = Layer::<F>::output_shape(self, input_shape)?;
        let dims: Vec<Option<usize>> = std::iter::once(None)
            .chain(target.iter().map(|&d| Some(d)))
            .collect();
        Ok(LayerNodes::new(g.reshape(input, dims.as_slice())?))
    }

    fn config(&self) -> std::result::Result<Value, ConfigError> {
        Ok(json!({
            "name": self.name,
            "target_shape": self.target_shape,
            "input_shape": self.input_shape,
        }))
    }
}

/// The number of values in a sample of shape `shape`, refused when it overflows `usize`.
fn elements(shape: &[usize]) -> Result<usize> {
    crate::model::checked_product(shape).ok_or_else(|| NnError::LayerInput {
        layer: "flatten".into(),
        shape: shape.to_vec(),
        reason: "the sample has more values than fit in usize",
    })
}

/// An optional array of sizes at `key`.
pub(crate) fn shape_from_json(
    config: &Value,
    key: &'static str,
) -> std::result::Result<Option<Vec<usize>>, ConfigError> {
    let Some(v) = optional(config, key) else {
        return Ok(None);
    };
    let items = v
        .as_array()
        .ok_or_else(|| ConfigError::new(key, "must be an array of sizes or null"))?;
    items
        .iter()
        .map(|d| {
            d.as_u64()
                .and_then(|d| usize::try_from(d).ok())
                .ok_or_else(|| {
                    ConfigError::new(
                        key,
                        "every size must be a non-negative integer that fits usize",
                    )
                })
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map(Some)
}

/// The optional `name` string.
pub(crate) fn name_from_json(config: &Value) -> std::result::Result<Option<String>, ConfigError> {
    match optional(config, "name") {
        None => Ok(None),
        Some(v) => v
            .as_str()
            .map(|s| Some(s.to_owned()))
            .ok_or_else(|| ConfigError::new("name", "must be a string or null")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::ArrayD;

    /// Flatten keeps the row-major order: sample `[[1, 2], [3, 4]]` becomes `[1, 2, 3, 4]`,
    /// and Reshape back gives the sample again.
    #[test]
    fn flatten_then_reshape_keeps_row_major_order() -> Result<()> {
        let mut g = Graph::<f64>::new();
        let x = g.input("x", [None, Some(2), Some(2)])?;
        let mut init = Init::new(0);
        let flat = Flatten::new().build(&mut g, x, &[2, 2], &mut init)?;
        let back = Reshape::new([2, 2]).build(&mut g, flat.output, &[4], &mut init)?;
        let mut plan = dendrite_graph::compile(&g, &[flat.output, back.output])?;
        let values =
            ArrayD::from_shape_vec(ndarray::IxDyn(&[2, 2, 2]), (1..=8).map(f64::from).collect())
                .map_err(|_| NnError::NoLayers)?;
        let out = plan.run(&g, &[("x", values.view())])?;
        let flat = out.get(0)?;
        assert_eq!(flat.shape(), &[2, 4]);
        assert_eq!(
            flat.iter().copied().collect::<Vec<_>>(),
            (1..=8).map(f64::from).collect::<Vec<_>>()
        );
        assert_eq!(out.get(1)?.view(), values.view());
        Ok(())
    }

    #[test]
    fn reshape_refuses_a_different_count() {
        assert!(Layer::<f32>::output_shape(&Reshape::new([3, 3]), &[8]).is_err());
        assert!(Layer::<f32>::output_shape(&Reshape::new([0, 8]), &[0]).is_err());
    }
}
