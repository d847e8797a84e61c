//! [`Conv2D`]: the 2-D convolution layer, `activation(conv2d(x, kernel) + bias)` over NHWC
//! images with an HWIO kernel (Keras' `channels_last`).

use crate::activation::Activation;
use crate::error::Result;
use crate::float::Float;
use crate::initializer::Initializer;
use crate::layer::{Init, Layer, LayerNodes};
use crate::persist::json::{
    activation_from_json, activation_to_json, bool_field, field, initializer_from_json,
    initializer_to_json, usize_field,
};
use crate::pooling::{image_output_shape, padding_from_json, padding_name, pair};
use crate::shape::{name_from_json, shape_from_json};
use crate::ConfigError;
use dendrite_graph::ops::{Conv2d, Padding};
use dendrite_graph::{Graph, NodeId};
use serde_json::{json, Value};

/// A 2-D convolution: `filters` kernels of `kernel_size` slide over the image, each giving one
/// output channel, `y = activation(conv2d(x, kernel) + bias)`, kernel `[kh, kw, channels,
/// filters]`, bias `[filters]`.
///
/// As in Keras the kernel starts Glorot-uniform (fans `kh·kw·channels` and `kh·kw·filters`)
/// and the bias at zero; parameters are named `<layer>/kernel` and `<layer>/bias`. Strides 1,
/// dilation 1 and `valid` padding by default.
///
/// ```
/// use dendrite_nn::{Activation, Conv2D, Layer};
/// let conv = Conv2D::new(32, [3, 3]).activation(Activation::Relu).input_shape([28, 28, 1]);
/// assert_eq!(Layer::<f32>::output_shape(&conv, &[28, 28, 1])?, vec![26, 26, 32]);
/// assert_eq!(Layer::<f32>::param_count(&conv, &[28, 28, 1]), Some(3 * 3 * 32 + 32));
/// # Ok::<(), dendrite_nn::NnError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Conv2D {
    filters: usize,
    kernel_size: [usize; 2],
    conv: Conv2d,
    activation: Activation,
    use_bias: bool,
    input_shape: Option<Vec<usize>>,
    name: Option<String>,
    kernel_initializer: Initializer,
    bias_initializer: Initializer,
}

impl Conv2D {
    /// `filters` output channels from `kernel_size` windows; no activation, a bias.
    ///
    /// ```
    /// assert_eq!(dendrite_nn::Conv2D::new(64, [3, 3]).filters(), 64);
    /// ```
    pub fn new(filters: usize, kernel_size: [usize; 2]) -> Self {
        Conv2D {
            filters,
            kernel_size,
            conv: Conv2d::default(),
            activation: Activation::Linear,
            use_bias: true,
            input_shape: None,
            name: None,
            kernel_initializer: Initializer::GlorotUniform,
            bias_initializer: Initializer::Zeros,
        }
    }

    /// The number of output channels.
    ///
    /// ```
    /// assert_eq!(dendrite_nn::Conv2D::new(8, [5, 5]).filters(), 8);
    /// ```
    pub fn filters(&self) -> usize {
        self.filters
    }

    /// Steps between windows along height and width.
    ///
    /// ```
    /// use dendrite_nn::{Conv2D, Layer};
    /// let conv = Conv2D::new(4, [3, 3]).strides([2, 2]);
    /// assert_eq!(Layer::<f32>::output_shape(&conv, &[9, 9, 1])?, vec![4, 4, 4]);
    /// # Ok::<(), dendrite_nn::NnError>(())
    /// ```
    pub fn strides(mut self, strides: [usize; 2]) -> Self {
        self.conv.strides = strides;
        self
    }

    /// Spacing between kernel taps (1 is a plain convolution).
    ///
    /// ```
    /// use dendrite_nn::{Conv2D, Layer};
    /// let conv = Conv2D::new(4, [3, 3]).dilation([2, 2]);
    /// assert_eq!(Layer::<f32>::output_shape(&conv, &[9, 9, 1])?, vec![5, 5, 4]);
    /// # Ok::<(), dendrite_nn::NnError>(())
    /// ```
    pub fn dilation(mut self, dilation: [usize; 2]) -> Self {
        self.conv.dilation = dilation;
        self
    }

    /// `valid` (windows inside the image) or `same` (output `⌈n / stride⌉`).
    ///
    /// ```
    /// use dendrite_graph::ops::Padding;
    /// use dendrite_nn::{Conv2D, Layer};
    /// let conv = Conv2D::new(4, [3, 3]).padding(Padding::Same);
    /// assert_eq!(Layer::<f32>::output_shape(&conv, &[9, 9, 1])?, vec![9, 9, 4]);
    /// # Ok::<(), dendrite_nn::NnError>(())
    /// ```
    pub fn padding(mut self, padding: Padding) -> Self {
        self.conv.padding = padding;
        self
    }

    /// The activation applied to `conv2d(x, kernel) + bias`.
    ///
    /// ```
    /// use dendrite_nn::{Activation, Conv2D};
    /// let conv = Conv2D::new(4, [3, 3]).activation(Activation::Relu);
    /// assert_eq!(conv.activation_fn(), Activation::Relu);
    /// ```
    pub fn activation(mut self, activation: Activation) -> Self {
        self.activation = activation;
        self
    }

    /// The layer's activation.
    ///
    /// ```
    /// use dendrite_nn::{Activation, Conv2D};
    /// assert_eq!(Conv2D::new(4, [3, 3]).activation_fn(), Activation::Linear);
    /// ```
    pub fn activation_fn(&self) -> Activation {
        self.activation
    }

    /// Whether the layer adds a bias (default `true`).
    ///
    /// ```
    /// use dendrite_nn::{Conv2D, Layer};
    /// let conv = Conv2D::new(4, [3, 3]).use_bias(false);
    /// assert_eq!(Layer::<f32>::param_count(&conv, &[8, 8, 2]), Some(3 * 3 * 2 * 4));
    /// ```
    pub fn use_bias(mut self, use_bias: bool) -> Self {
        self.use_bias = use_bias;
        self
    }

    /// How the kernel starts (Glorot-uniform by default).
    ///
    /// ```
    /// use dendrite_nn::{Conv2D, Initializer};
    /// let conv = Conv2D::new(4, [3, 3]).kernel_initializer(Initializer::HeNormal);
    /// # let _ = conv;
    /// ```
    pub fn kernel_initializer(mut self, initializer: Initializer) -> Self {
        self.kernel_initializer = initializer;
        self
    }

    /// How the bias starts (zeros by default).
    ///
    /// ```
    /// use dendrite_nn::{Conv2D, Initializer};
    /// let conv = Conv2D::new(4, [3, 3]).bias_initializer(Initializer::Constant(0.1));
    /// # let _ = conv;
    /// ```
    pub fn bias_initializer(mut self, initializer: Initializer) -> Self {
        self.bias_initializer = initializer;
        self
    }

    /// Declares the sample shape of the model's input, for a first layer.
    ///
    /// ```
    /// use dendrite_nn::{Conv2D, Layer};
    /// let conv = Conv2D::new(32, [3, 3]).input_shape([28, 28, 1]);
    /// assert_eq!(Layer::<f32>::input_shape(&conv), Some(vec![28, 28, 1]));
    /// ```
    pub fn input_shape(mut self, shape: impl Into<Vec<usize>>) -> Self {
        self.input_shape = Some(shape.into());
        self
    }

    /// Names the layer (instead of the automatic `conv2d_k`).
    ///
    /// ```
    /// use dendrite_nn::{Conv2D, Layer};
    /// assert_eq!(Layer::<f32>::name(&Conv2D::new(4, [3, 3]).named("c")), Some("c"));
    /// ```
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The kernel's shape for samples of `input` channels.
    fn kernel_shape(&self, channels: usize) -> [usize; 4] {
        [
            self.kernel_size[0],
            self.kernel_size[1],
            channels,
            self.filters,
        ]
    }
}

impl<F: Float> Layer<F> for Conv2D {
    fn kind(&self) -> &'static str {
        "Conv2D"
    }

    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    fn input_shape(&self) -> Option<Vec<usize>> {
        self.input_shape.clone()
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        let channels = input.last().copied().unwrap_or(0);
        let kernel = self.kernel_shape(channels);
        let conv = self.conv;
        image_output_shape("conv2d", input, |g, x| {
            let w = g.input("w", kernel)?;
            g.conv2d(x, w, conv)
        })
    }

    fn param_count(&self, input: &[usize]) -> Option<usize> {
        let kernel = self.kernel_shape(*input.last()?);
        let weights = kernel.iter().try_fold(1usize, |n, &d| n.checked_mul(d))?;
        let bias = if self.use_bias { self.filters } else { 0 };
        weights.checked_add(bias)
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
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.conv.strides,
            "dilation_rate": self.conv.dilation,
            "padding": padding_name(self.conv.padding),
            "activation": activation_to_json(self.activation),
            "use_bias": self.use_bias,
            "input_shape": self.input_shape,
            "name": self.name,
            "kernel_initializer": initializer_to_json(&self.kernel_initializer)
                .map_err(|e| e.within("kernel_initializer"))?,
            "bias_initializer": initializer_to_json(&self.bias_initializer)
                .map_err(|e| e.within("bias_initializer"))?,
        }))
    }
}

impl Conv2D {
    /// The layer [`Layer::config`] describes (the registry's factory for `Conv2D`).
    ///
    /// # Errors
    /// [`ConfigError`] naming the field that is missing or wrong.
    ///
    /// ```
    /// use dendrite_nn::{Conv2D, Layer};
    /// let conv = Conv2D::new(4, [3, 3]).strides([2, 1]).named("c");
    /// assert_eq!(Conv2D::from_config(&Layer::<f32>::config(&conv)?)?, conv);
    /// # Ok::<(), dendrite_nn::ConfigError>(())
    /// ```
    pub fn from_config(config: &Value) -> std::result::Result<Self, ConfigError> {
        let within = |key: &'static str| move |e: ConfigError| e.within(key);
        let kernel_size = pair(config, "kernel_size")?
            .ok_or_else(|| ConfigError::new("kernel_size", "missing"))?;
        Ok(Conv2D {
            filters: usize_field(config, "filters")?,
            kernel_size,
            conv: Conv2d {
                strides: pair(config, "strides")?.unwrap_or([1, 1]),
                dilation: pair(config, "dilation_rate")?.unwrap_or([1, 1]),
                padding: padding_from_json(config)?,
            },
            activation: activation_from_json(field(config, "activation")?)
                .map_err(within("activation"))?,
            use_bias: bool_field(config, "use_bias")?,
            input_shape: shape_from_json(config, "input_shape")?,
            name: name_from_json(config)?,
            kernel_initializer: initializer_from_json(field(config, "kernel_initializer")?)
                .map_err(within("kernel_initializer"))?,
            bias_initializer: initializer_from_json(field(config, "bias_initializer")?)
                .map_err(within("bias_initializer"))?,
        })
    }

    fn build_nodes<F: Float>(
        &self,
        g: &mut Graph<F>,
        input: NodeId,
        input_shape: &[usize],
        init: &mut Init,
    ) -> Result<LayerNodes> {
        Layer::<F>::output_shape(self, input_shape)?;
        let channels = input_shape.last().copied().unwrap_or(0);
        let kernel_value =
            init.initialize::<F>(&self.kernel_initializer, &self.kernel_shape(channels))?;
        let kernel = g.parameter("kernel", kernel_value)?;
        let mut parameters = vec![kernel];
        let z = if self.use_bias {
            let bias_value = init.initialize::<F>(&self.bias_initializer, &[self.filters])?;
            let bias = g.parameter("bias", bias_value)?;
            parameters.push(bias);
            g.conv2d_bias(input, kernel, bias, self.conv)?
        } else {
            g.conv2d(input, kernel, self.conv)?
        };
        Ok(self.activation.nodes(g, z)?.with_parameters(parameters))
    }
}
