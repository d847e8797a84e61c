//! Pooling layers over NHWC images: [`MaxPooling2D`], [`AveragePooling2D`] (a window sliding
//! over height and width, each channel on its own) and [`GlobalAveragePooling2D`] (the mean of
//! each channel over the whole image).
//!
//! They have no parameters and are thin wrappers of the graph's `max_pool2d`, `avg_pool2d` and
//! `mean`: the output shape is asked of the graph's own shape rule (a one-node graph built for
//! the question), so a layer and the primitive cannot disagree about sizes or refusals. The
//! tie rule and the gradients are the primitives' (see the book's convolution chapter).

use crate::error::{NnError, Result};
use crate::float::Float;
use crate::layer::{Init, Layer, LayerNodes};
use crate::persist::json::optional;
use crate::shape::{name_from_json, shape_from_json};
use crate::ConfigError;
use dendrite_graph::ops::{Padding, Pool2d};
use dendrite_graph::{Graph, GraphError, NodeId};
use serde_json::{json, Value};

/// The settings shared by the two windowed pooling layers.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Window {
    pool: Pool2d,
    name: Option<String>,
}

impl Window {
    fn new(pool_size: [usize; 2]) -> Self {
        Window {
            pool: Pool2d::new(pool_size),
            name: None,
        }
    }

    fn config(&self) -> Value {
        json!({
            "name": self.name,
            "pool_size": self.pool.size,
            "strides": self.pool.strides,
            "padding": padding_name(self.pool.padding),
        })
    }

    fn from_config(config: &Value) -> std::result::Result<Self, ConfigError> {
        let size =
            pair(config, "pool_size")?.ok_or_else(|| ConfigError::new("pool_size", "missing"))?;
        let strides = pair(config, "strides")?.unwrap_or(size);
        let padding = padding_from_json(config)?;
        Ok(Window {
            pool: Pool2d {
                size,
                strides,
                padding,
            },
            name: name_from_json(config)?,
        })
    }
}

/// The optional `padding` (`"valid"` when absent).
pub(crate) fn padding_from_json(config: &Value) -> std::result::Result<Padding, ConfigError> {
    match optional(config, "padding").map(|v| v.as_str()) {
        None | Some(Some("valid")) => Ok(Padding::Valid),
        Some(Some("same")) => Ok(Padding::Same),
        Some(_) => Err(ConfigError::new("padding", "must be \"valid\" or \"same\"")),
    }
}

/// Keras' name of a padding.
pub(crate) fn padding_name(padding: Padding) -> &'static str {
    match padding {
        Padding::Valid => "valid",
        Padding::Same => "same",
    }
}

/// An optional `[a, b]` of sizes at `key`.
pub(crate) fn pair(
    config: &Value,
    key: &'static str,
) -> std::result::Result<Option<[usize; 2]>, ConfigError> {
    match shape_from_json(config, key)?.as_deref() {
        None => Ok(None),
        Some(&[a, b]) => Ok(Some([a, b])),
        Some(_) => Err(ConfigError::new(key, "must hold two sizes")),
    }
}

/// The output shape (without the batch axis) of `op` applied to a batch of `input` images, as
/// the graph's shape rule gives it (the image layers' output shapes, so that a layer and its
/// primitive cannot disagree).
pub(crate) fn image_output_shape(
    layer: &'static str,
    input: &[usize],
    op: impl FnOnce(&mut Graph<f32>, NodeId) -> std::result::Result<NodeId, GraphError>,
) -> Result<Vec<usize>> {
    if input.len() != 3 {
        return Err(NnError::LayerInput {
            layer: layer.into(),
            shape: input.to_vec(),
            reason: "a 2-D image layer takes samples of shape [height, width, channels]",
        });
    }
    let mut g = Graph::<f32>::new();
    let dims: Vec<Option<usize>> = std::iter::once(None)
        .chain(input.iter().map(|&d| Some(d)))
        .collect();
    let x = g.input("x", dims.as_slice())?;
    let y = op(&mut g, x)?;
    let shape = g.shape(y)?;
    Ok(shape
        .dims()
        .iter()
        .skip(1)
        .filter_map(|d| d.fixed())
        .collect())
}

macro_rules! window_layer {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $lower:literal, $op:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name {
            window: Window,
        }

        impl $name {
            #[doc = concat!("A `", $kind, "` over `pool_size` windows, moving by the window")]
            #[doc = "(Keras' default strides), with `valid` padding."]
            ///
            /// ```
            #[doc = concat!("let layer = dendrite_nn::", $kind, "::new([2, 2]);")]
            /// assert_eq!(layer.pool().strides, [2, 2]);
            /// ```
            pub fn new(pool_size: [usize; 2]) -> Self {
                $name { window: Window::new(pool_size) }
            }

            /// Steps between windows along height and width.
            ///
            /// ```
            #[doc = concat!("let layer = dendrite_nn::", $kind, "::new([3, 3]).strides([1, 1]);")]
            /// assert_eq!(layer.pool().strides, [1, 1]);
            /// ```
            pub fn strides(mut self, strides: [usize; 2]) -> Self {
                self.window.pool.strides = strides;
                self
            }

            /// `valid` (windows inside the image) or `same` (output `⌈n / stride⌉`).
            ///
            /// ```
            /// use dendrite_graph::ops::Padding;
            #[doc = concat!("let layer = dendrite_nn::", $kind, "::new([2, 2]).padding(Padding::Same);")]
            /// assert_eq!(layer.pool().padding, Padding::Same);
            /// ```
            pub fn padding(mut self, padding: Padding) -> Self {
                self.window.pool.padding = padding;
                self
            }

            #[doc = concat!("Names the layer (instead of the automatic `", $lower, "_k`).")]
            ///
            /// ```
            /// use dendrite_nn::Layer;
            #[doc = concat!("let layer = dendrite_nn::", $kind, "::new([2, 2]).named(\"pool\");")]
            /// assert_eq!(Layer::<f32>::name(&layer), Some("pool"));
            /// ```
            pub fn named(mut self, name: impl Into<String>) -> Self {
                self.window.name = Some(name.into());
                self
            }

            /// The window, strides and padding.
            ///
            /// ```
            #[doc = concat!("assert_eq!(dendrite_nn::", $kind, "::new([2, 3]).pool().size, [2, 3]);")]
            /// ```
            pub fn pool(&self) -> Pool2d {
                self.window.pool
            }

            /// The layer [`Layer::config`] describes (the registry's factory).
            ///
            /// # Errors
            /// [`ConfigError`] naming the field that is missing or wrong.
            ///
            /// ```
            /// use dendrite_nn::Layer;
            #[doc = concat!("let layer = dendrite_nn::", $kind, "::new([2, 2]).strides([1, 2]);")]
            #[doc = concat!("let back = dendrite_nn::", $kind, "::from_config(&Layer::<f32>::config(&layer)?)?;")]
            /// assert_eq!(back, layer);
            /// # Ok::<(), dendrite_nn::ConfigError>(())
            /// ```
            pub fn from_config(config: &Value) -> std::result::Result<Self, ConfigError> {
                Ok($name { window: Window::from_config(config)? })
            }
        }

        impl<F: Float> Layer<F> for $name {
            fn kind(&self) -> &'static str {
                $kind
            }

            fn name(&self) -> Option<&str> {
                self.window.name.as_deref()
            }

            fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
                let pool = self.window.pool;
                image_output_shape($lower, input, |g, x| g.$op(x, pool))
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
                Ok(LayerNodes::new(g.$op(input, self.window.pool)?))
            }

            fn config(&self) -> std::result::Result<Value, ConfigError> {
                Ok(self.window.config())
            }
        }
    };
}

window_layer!(
    /// The largest value of each window, per channel (Keras' `MaxPooling2D`): `[26, 26, 32]`
    /// becomes `[13, 13, 32]` with 2x2 windows. The gradient goes to the first maximum of a
    /// window in row-major order.
    ///
    /// ```
    /// use dendrite_nn::{Layer, MaxPooling2D};
    /// assert_eq!(Layer::<f32>::output_shape(&MaxPooling2D::new([2, 2]), &[26, 26, 32])?, vec![13, 13, 32]);
    /// # Ok::<(), dendrite_nn::NnError>(())
    /// ```
    MaxPooling2D, "MaxPooling2D", "max_pooling2d", max_pool2d
);

window_layer!(
    /// The mean of each window, per channel (Keras' `AveragePooling2D`); with `same` padding
    /// the padded positions are not counted.
    ///
    /// ```
    /// use dendrite_nn::{AveragePooling2D, Layer};
    /// assert_eq!(Layer::<f32>::output_shape(&AveragePooling2D::new([2, 2]), &[5, 5, 3])?, vec![2, 2, 3]);
    /// # Ok::<(), dendrite_nn::NnError>(())
    /// ```
    AveragePooling2D, "AveragePooling2D", "average_pooling2d", avg_pool2d
);

/// The mean of each channel over the whole image (Keras' `GlobalAveragePooling2D`):
/// `[h, w, c]` becomes `[c]`.
///
/// ```
/// use dendrite_nn::{GlobalAveragePooling2D, Layer};
/// assert_eq!(Layer::<f32>::output_shape(&GlobalAveragePooling2D::new(), &[5, 5, 64])?, vec![64]);
/// # Ok::<(), dendrite_nn::NnError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GlobalAveragePooling2D {
    name: Option<String>,
}

impl GlobalAveragePooling2D {
    /// A global average pooling layer.
    ///
    /// ```
    /// use dendrite_nn::GlobalAveragePooling2D;
    /// assert_eq!(GlobalAveragePooling2D::new(), GlobalAveragePooling2D::default());
    /// ```
    pub fn new() -> Self {
        GlobalAveragePooling2D::default()
    }

    /// Names the layer (instead of the automatic `global_average_pooling2d_k`).
    ///
    /// ```
    /// use dendrite_nn::{GlobalAveragePooling2D, Layer};
    /// let layer = GlobalAveragePooling2D::new().named("gap");
    /// assert_eq!(Layer::<f32>::name(&layer), Some("gap"));
    /// ```
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The layer [`Layer::config`] describes (the registry's factory).
    ///
    /// # Errors
    /// [`ConfigError`] when the name is not a string.
    ///
    /// ```
    /// use dendrite_nn::{GlobalAveragePooling2D, Layer};
    /// let layer = GlobalAveragePooling2D::new().named("gap");
    /// assert_eq!(GlobalAveragePooling2D::from_config(&Layer::<f32>::config(&layer)?)?, layer);
    /// # Ok::<(), dendrite_nn::ConfigError>(())
    /// ```
    pub fn from_config(config: &Value) -> std::result::Result<Self, ConfigError> {
        Ok(GlobalAveragePooling2D {
            name: name_from_json(config)?,
        })
    }
}

impl<F: Float> Layer<F> for GlobalAveragePooling2D {
    fn kind(&self) -> &'static str {
        "GlobalAveragePooling2D"
    }

    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        image_output_shape("global_average_pooling2d", input, |g, x| {
            g.mean(x, &[1, 2], false)
        })
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
        Ok(LayerNodes::new(g.mean(input, &[1, 2], false)?))
    }

    fn config(&self) -> std::result::Result<Value, ConfigError> {
        Ok(json!({ "name": self.name }))
    }
}
