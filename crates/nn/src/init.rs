//! [`Init`]: what a layer's build is given besides the graph: its seeded weight generator,
//! the mode the graph is built for (training or inference), and the model's training step
//! (for layers that draw random numbers, such as dropout).

use crate::error::{NnError, Result};
use crate::float::Float;
use dendrite_graph::{limits, GraphError, NodeId};
use ndarray::{ArrayD, IxDyn};
use rand::{Rng, SeedableRng};
use rand_chacha::rand_core::RngCore;
use rand_chacha::ChaCha8Rng;

/// Seeded weight initialization for one layer.
///
/// The model gives each layer its own generator, derived from the model's seed and the layer's
/// position, so a layer's initial weights do not depend on the other layers. Values are drawn
/// in `f64` and rounded, so `f32` and `f64` models start from the same numbers (up to
/// rounding).
///
/// Every initializer allocates through the per-tensor limit
/// ([`dendrite_graph::limits`]) and fallibly, so a layer too large for memory is an error
/// naming the layer, not an abort.
///
/// ```
/// use dendrite_nn::Init;
/// let a = Init::for_layer(7, 0).glorot_uniform::<f32>(&[4, 3])?;
/// let b = Init::for_layer(7, 0).glorot_uniform::<f32>(&[4, 3])?;
/// assert_eq!(a, b);
/// let limit = (6.0_f32 / 7.0).sqrt();
/// assert!(a.iter().all(|w| w.abs() <= limit));
/// assert!(Init::new(0).zeros::<f32>(&[1 << 20, 1 << 20]).is_err());
/// # Ok::<(), dendrite_nn::NnError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Init {
    rng: ChaCha8Rng,
    /// The layer initialized, for errors.
    pub(crate) layer: String,
    /// The model's seed and the layer's position, from which [`Init::random_seed`] derives.
    seed: u64,
    position: u64,
    mode: Mode,
    step: Option<NodeId>,
    /// Whether the layer asked for the mode: only then can its graph differ between modes.
    asked_mode: bool,
}

/// What a graph is built for: training (`fit`'s steps, where dropout drops and batch
/// normalization uses the batch's statistics) or inference (`predict`, `evaluate`, the
/// validation data, an exported model).
///
/// A model builds its layers for inference; if any layer asked [`Init::mode`], it builds them
/// again from that layer on for training, reading the same weights
/// ([`Graph::with_shared_parameters`](dendrite_graph::Graph::with_shared_parameters)).
///
/// ```
/// use dendrite_nn::{Init, Mode};
/// assert_eq!(Init::new(0).mode(), Mode::Inference);
/// assert!(Init::new(0).with_mode(Mode::Training).is_training());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// The graph `fit` differentiates and steps.
    Training,
    /// The graph for predictions and evaluation.
    #[default]
    Inference,
}

impl Init {
    /// A generator seeded with `seed`.
    ///
    /// ```
    /// let w = dendrite_nn::Init::new(1).uniform::<f64>(&[3], -1.0, 1.0)?;
    /// assert_eq!(w.len(), 3);
    /// # Ok::<(), dendrite_nn::NnError>(())
    /// ```
    pub fn new(seed: u64) -> Self {
        Init::for_layer(seed, 0)
    }

    /// Names the layer being initialized, so that a tensor too large is reported as that
    /// layer's (the model names each layer's generator).
    ///
    /// ```
    /// let err = dendrite_nn::Init::new(0).named("dense_1").zeros::<f32>(&[usize::MAX]).unwrap_err();
    /// assert!(err.to_string().contains("dense_1"));
    /// ```
    pub fn named(mut self, layer: &str) -> Self {
        self.layer = layer.to_owned();
        self
    }

    /// A buffer for a tensor of shape `shape`, checked against the per-tensor limit and
    /// reserved fallibly.
    pub(crate) fn buffer<F: Float>(
        &self,
        op: &'static str,
        shape: &[usize],
    ) -> Result<(Vec<F>, usize)> {
        let n = limits::check_size::<F>(op, &self.layer, shape)?;
        let mut data = Vec::new();
        data.try_reserve_exact(n)
            .map_err(|_| GraphError::AllocationFailed {
                op,
                node: self.layer.clone(),
                bytes: n.saturating_mul(std::mem::size_of::<F>()),
            })?;
        Ok((data, n))
    }

    pub(crate) fn array<F: Float>(
        op: &'static str,
        shape: &[usize],
        data: Vec<F>,
    ) -> Result<ArrayD<F>> {
        ArrayD::from_shape_vec(IxDyn(shape), data).map_err(|_| {
            NnError::Graph(GraphError::Internal {
                op,
                node: String::new(),
                what: "an initializer's buffer disagrees with its shape",
            })
        })
    }

    /// The generator of layer number `layer` of a model seeded with `seed`: the seed picks the
    /// ChaCha key and the layer its stream.
    ///
    /// ```
    /// use dendrite_nn::Init;
    /// let a = Init::for_layer(0, 0).uniform::<f32>(&[2], 0.0, 1.0)?;
    /// let b = Init::for_layer(0, 1).uniform::<f32>(&[2], 0.0, 1.0)?;
    /// assert_ne!(a, b);
    /// # Ok::<(), dendrite_nn::NnError>(())
    /// ```
    pub fn for_layer(seed: u64, layer: usize) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(layer as u64);
        Init {
            rng,
            layer: String::new(),
            seed,
            position: layer as u64,
            mode: Mode::Inference,
            step: None,
            asked_mode: false,
        }
    }

    /// The same generator, building for `mode` (a model sets it; the default is inference).
    ///
    /// ```
    /// use dendrite_nn::{Init, Mode};
    /// assert_eq!(Init::new(0).with_mode(Mode::Training).mode(), Mode::Training);
    /// ```
    pub fn with_mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// The same generator, with `step` as the training-step node [`Init::step`] returns: a
    /// scalar holding the number of optimizer steps taken (a model feeds it on every run).
    ///
    /// ```
    /// let mut g = dendrite_graph::Graph::<f32>::new();
    /// let step = g.input("step", dendrite_graph::Shape::scalar())?;
    /// assert_eq!(dendrite_nn::Init::new(0).with_step(step).step()?, step);
    /// # Ok::<(), dendrite_nn::NnError>(())
    /// ```
    pub fn with_step(mut self, step: NodeId) -> Self {
        self.step = Some(step);
        self
    }

    /// The mode the layer is built for. A layer whose graph differs between training and
    /// inference must ask (the model builds a training graph only for layers from the first
    /// one that asked).
    ///
    /// ```
    /// assert_eq!(dendrite_nn::Init::new(0).mode(), dendrite_nn::Mode::Inference);
    /// ```
    pub fn mode(&mut self) -> Mode {
        self.asked_mode = true;
        self.mode
    }

    /// Whether the layer is built for training (asks [`Init::mode`]).
    ///
    /// ```
    /// assert!(!dendrite_nn::Init::new(0).is_training());
    /// ```
    pub fn is_training(&mut self) -> bool {
        self.mode() == Mode::Training
    }

    /// Whether the layer asked for the mode.
    pub(crate) fn asked_mode(&self) -> bool {
        self.asked_mode
    }

    /// The generator of the `index`-th layer inside this one (a Functional block's layers):
    /// its own stream of the model's seed, the same mode and step.
    pub(crate) fn child(&self, index: usize) -> Init {
        let mut derive = ChaCha8Rng::seed_from_u64(self.seed);
        derive.set_stream((2 << 32) | self.position);
        let mut seed = derive.next_u64();
        for _ in 0..index {
            seed = derive.next_u64();
        }
        let mut child = Init::for_layer(seed, index).with_mode(self.mode);
        child.step = self.step;
        child
    }

    /// Takes in what an inner layer's build asked (a block whose layer asked for the mode
    /// asked too).
    pub(crate) fn absorb(&mut self, child: &Init) {
        self.asked_mode |= child.asked_mode;
    }

    /// The training-step node: a scalar the model feeds with the number of optimizer steps
    /// taken before the current one (0 on the first step, and the step a resumed model
    /// continues from). Random draws keyed by it (`Graph::random_uniform(like, step, seed)`)
    /// change every step and repeat exactly on a resumed run.
    ///
    /// # Errors
    /// [`NnError::NoTrainingStep`] when the layer is built outside a model without
    /// [`Init::with_step`].
    ///
    /// ```
    /// assert!(dendrite_nn::Init::new(0).step().is_err());
    /// ```
    pub fn step(&self) -> Result<NodeId> {
        self.step.ok_or_else(|| NnError::NoTrainingStep {
            layer: self.layer.clone(),
        })
    }

    /// A seed for the layer's random draws, derived from the model's seed and the layer's
    /// position (not from the weight generator, so drawing weights does not change it): two
    /// dropout layers of one model draw different masks, and the same model seed gives the
    /// same masks.
    ///
    /// ```
    /// use dendrite_nn::Init;
    /// assert_eq!(Init::for_layer(7, 2).random_seed(), Init::for_layer(7, 2).random_seed());
    /// assert_ne!(Init::for_layer(7, 2).random_seed(), Init::for_layer(7, 3).random_seed());
    /// ```
    pub fn random_seed(&self) -> u64 {
        // Streams from 2^32 on are never a layer's weight stream (those are its position).
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream((1 << 32) | self.position);
        rng.next_u64()
    }

    /// The underlying generator, for initializers of your own.
    ///
    /// ```
    /// use rand::Rng;
    /// let mut init = dendrite_nn::Init::new(3);
    /// let coin: bool = init.rng().r#gen();
    /// # let _ = coin;
    /// ```
    pub fn rng(&mut self) -> &mut ChaCha8Rng {
        &mut self.rng
    }

    /// Values drawn uniformly from `[low, high)`.
    ///
    /// # Errors
    /// [`NnError::Hyperparameter`] unless `low` and `high` are finite with `low <= high` (the
    /// weights would not be); [`GraphError::TensorTooLarge`] (wrapped in [`NnError::Graph`])
    /// for a shape over the per-tensor limit, [`GraphError::AllocationFailed`] when memory runs
    /// out.
    ///
    /// ```
    /// let w = dendrite_nn::Init::new(0).uniform::<f32>(&[2, 2], -0.5, 0.5)?;
    /// assert!(w.iter().all(|v| (-0.5..0.5).contains(v)));
    /// assert!(dendrite_nn::Init::new(0).uniform::<f32>(&[2], f64::NAN, 1.0).is_err());
    /// # Ok::<(), dendrite_nn::NnError>(())
    /// ```
    pub fn uniform<F: Float>(&mut self, shape: &[usize], low: f64, high: f64) -> Result<ArrayD<F>> {
        let span = high - low;
        if !(low.is_finite() && high.is_finite() && span.is_finite() && span >= 0.0) {
            return Err(NnError::Hyperparameter {
                owner: "init",
                name: if low.is_finite() { "high" } else { "low" },
                value: if low.is_finite() { high } else { low },
                reason: "the bounds of a uniform initializer must be finite, with low <= high",
            });
        }
        let (mut data, n) = self.buffer::<F>("init", shape)?;
        data.extend((0..n).map(|_| F::of(low + span * self.rng.r#gen::<f64>())));
        Self::array("init", shape, data)
    }

    /// Glorot (Xavier) uniform, as Keras' default kernel initializer: uniform in
    /// `[-limit, limit]` with `limit = sqrt(6 / (fan_in + fan_out))`, where for a matrix
    /// `fan_in` is the number of rows and `fan_out` the number of columns.
    ///
    /// # Errors
    /// As [`Init::uniform`].
    ///
    /// ```
    /// let w = dendrite_nn::Init::new(0).glorot_uniform::<f32>(&[784, 32])?;
    /// let limit = (6.0_f32 / (784.0 + 32.0)).sqrt();
    /// assert!(w.iter().all(|v| v.abs() <= limit));
    /// # Ok::<(), dendrite_nn::NnError>(())
    /// ```
    pub fn glorot_uniform<F: Float>(&mut self, shape: &[usize]) -> Result<ArrayD<F>> {
        let (fan_in, fan_out) = fans(shape);
        let limit = (6.0 / fan_in.saturating_add(fan_out).max(1) as f64).sqrt();
        self.uniform(shape, -limit, limit)
    }

    /// Zeros (Keras' default bias initializer).
    ///
    /// # Errors
    /// As [`Init::uniform`].
    ///
    /// ```
    /// assert_eq!(dendrite_nn::Init::new(0).zeros::<f32>(&[3])?.sum(), 0.0);
    /// # Ok::<(), dendrite_nn::NnError>(())
    /// ```
    pub fn zeros<F: Float>(&mut self, shape: &[usize]) -> Result<ArrayD<F>> {
        self.filled(shape, F::zero())
    }

    /// Ones.
    ///
    /// # Errors
    /// As [`Init::uniform`].
    ///
    /// ```
    /// assert_eq!(dendrite_nn::Init::new(0).ones::<f32>(&[3])?.sum(), 3.0);
    /// # Ok::<(), dendrite_nn::NnError>(())
    /// ```
    pub fn ones<F: Float>(&mut self, shape: &[usize]) -> Result<ArrayD<F>> {
        self.filled(shape, F::one())
    }

    pub(crate) fn filled<F: Float>(&mut self, shape: &[usize], value: F) -> Result<ArrayD<F>> {
        let (mut data, n) = self.buffer::<F>("init", shape)?;
        data.resize(n, value);
        Self::array("init", shape, data)
    }
}

/// Keras' fans: for a matrix `[in, out]` the rows and the columns; for higher ranks the
/// leading axes multiply in as a receptive field; a vector counts as `[n, n]`.
pub(crate) fn fans(shape: &[usize]) -> (usize, usize) {
    match shape {
        [] => (1, 1),
        [n] => (*n, *n),
        [rows, cols] => (*rows, *cols),
        [field @ .., rows, cols] => {
            let r = field.iter().fold(1usize, |r, &d| r.saturating_mul(d));
            (rows.saturating_mul(r), cols.saturating_mul(r))
        }
    }
}
