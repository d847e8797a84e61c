//! [`Sequential`]: a stack of layers, compiled once into a training graph and run batch by
//! batch.

mod build;
mod callback;
mod callbacks;
mod compile;
mod config;
mod fit;
mod onnx;
mod prefetch;
mod progress;
mod run;
mod state;
mod stopping;
pub(crate) mod summary;
mod update;
mod weights;

pub(crate) use build::checked_product;
pub use callback::{BatchLogs, Callback};
pub use callbacks::{CsvLogger, LearningRateScheduler, ModelCheckpoint, TerminateOnNaN};
pub use config::{Control, EarlyStopping, EpochLogs, Evaluation, FitConfig, History, Monitor};
pub use summary::{Summary, SummaryRow};

use crate::error::{NnError, Result};
use crate::float::Float;
use crate::input::Targets;
use crate::layer::{Layer, LayerNodes};
use crate::loss::Loss;
use crate::metrics::Metric;
use crate::optim::Optimizer;
use dendrite_graph::{Graph, NodeId, Plan};
use ndarray::ArrayD;

/// Name of the model's input node.
pub const INPUT_NAME: &str = "inputs";
/// Name of the targets input for losses that take values (one-hot rows, regression targets).
pub const TARGETS_NAME: &str = "targets";
/// Name of the targets input for losses that take class indices.
pub const LABELS_NAME: &str = "labels";
/// Name of the scalar input holding the number of optimizer steps taken, which every run
/// feeds (layers that draw random numbers key them by it: [`Init::step`](crate::Init::step)).
pub const STEP_NAME: &str = "training_step";

#[derive(Debug)]
struct Entry<F: Float> {
    name: String,
    /// Whether the name was chosen by the model (`dense_2`) rather than the layer.
    auto: bool,
    layer: Box<dyn Layer<F>>,
}

/// The forward graph and what it is made of.
#[derive(Debug)]
struct Network<F: Float> {
    graph: Graph<F>,
    /// Values per sample: the product of `input_shape`.
    features: usize,
    /// The sample shape the input takes (without the batch axis).
    input_shape: Vec<usize>,
    width: usize,
    /// The inference graph's output (`predict`, `evaluate`, export).
    output: LayerNodes,
    /// The trainable parameters, in layer order.
    params: Vec<NodeId>,
    /// Everything saved: the trainable parameters, then every layer's non-trainable state.
    weights: Vec<NodeId>,
    /// Each state and the node of its value after a training step, which `fit` writes back.
    state_updates: Vec<(NodeId, NodeId)>,
    /// Every layer's regularization penalties (scalar nodes) in the inference graph.
    penalties: Vec<NodeId>,
    /// The training graph, when a layer builds differently for training (dropout); `None`
    /// when it is the inference graph.
    training: Option<Forward>,
    predict: Plan<F>,
}

/// The end of a forward pass through the layers: the output and the penalties the loss adds.
#[derive(Debug, Clone)]
struct Forward {
    output: LayerNodes,
    penalties: Vec<NodeId>,
}

/// Where a training or evaluation plan's outputs are: the loss first (with the penalties in
/// it), then the penalty when there is one, the metrics' sums, and (training) the gradients.
#[derive(Debug, Clone, Copy)]
struct Fetched {
    penalty: Option<usize>,
    metrics: usize,
    grads: usize,
    /// Where the states' new values start (training plan only).
    state_updates: usize,
}

/// What `compile` adds: loss, metrics, gradients, their plans and the optimizer.
#[derive(Debug)]
struct Training<F: Float> {
    optimizer: Box<dyn Optimizer<F>>,
    loss: Loss,
    /// The metrics, resolved for the loss ([`Metric::resolve`]).
    metrics: Vec<Metric>,
    /// The metrics' names as given to `compile` (`accuracy` for [`Metric::Accuracy`], as
    /// Keras reports it).
    names: Vec<&'static str>,
    /// The metrics as given to `compile` (what a model file records).
    given: Vec<Metric>,
    targets: Targets,
    train: Plan<F>,
    eval: Plan<F>,
    fetched: Fetched,
    /// The optimizer's clipping, and the buffers the clipped gradients are written into
    /// (allocated at compile time, empty without clipping).
    clipping: crate::optim::Clipping,
    clipped: Vec<Vec<F>>,
    /// Optimizer steps taken so far (across `fit` calls).
    step: u64,
    /// Where training has got to (what a resumed `fit` continues from).
    position: Position,
    /// The parameters before the current step's update, to undo an update that made one of
    /// them non-finite (allocated once, at compile time).
    backup: Vec<Vec<F>>,
}

/// Where training has got to: the last epoch completed and the shuffling seed of the fit
/// that ran it. Epoch `e`'s sample order depends only on `(seed, e)`, so these two are all the
/// random state a resumed fit needs (the weights' seed is the model's).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Position {
    epoch: usize,
    shuffle_seed: u64,
}

/// A linear stack of layers, trained like a Keras `Sequential` model.
///
/// `F` is the element type (`f32` by default). The model is `Send`.
///
/// ```
/// use dendrite_nn::{Activation, Adam, Dense, FitConfig, Loss, Metric, Sequential};
/// use ndarray::array;
///
/// let x = array![[0.0_f32, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]];
/// let y = array![0.0_f32, 1.0, 1.0, 0.0];
///
/// let mut model = Sequential::new().with_seed(1);
/// model.add(Dense::new(8).input_dim(2).activation(Activation::Tanh));
/// model.add(Dense::new(1).activation(Activation::Sigmoid));
/// model.compile(Adam::new(0.05), Loss::BinaryCrossentropy, &[Metric::Accuracy])?;
/// let history = model.fit(&(x.view(), y.view()), FitConfig::default().epochs(300).batch_size(4).verbosity(0))?;
/// assert!(history.loss.last() < history.loss.first());
/// let p = model.predict(&x.view(), 4)?;
/// assert_eq!(p.dim(), (4, 1));
/// # Ok::<(), dendrite_nn::NnError>(())
/// ```
///
/// # What is built, and when
///
/// [`Sequential::compile`] builds everything once:
///
/// 1. the forward graph: an input `inputs` of shape `[?, sample_shape...]` (`[?, 784]`, or
///    `[?, 28, 28, 1]` for a first layer declaring `input_shape([28, 28, 1])`), then each layer inside its
///    name scope (`dense_1/kernel`, `dense_1/matmul`, ...), with weights drawn from the model's
///    seed;
/// 2. the loss (scope `loss`) against a targets input (`targets`, or `labels` for class
///    indices), the metrics' correct counts (scope `metrics`), and the gradients of the loss
///    with respect to every parameter (by `dendrite_autodiff::grad`);
/// 3. three compiled plans: training (loss, counts, gradients), evaluation (loss, counts) and
///    prediction (the output).
///
/// `fit` then runs the training plan once per batch and hands the fetched gradients to the
/// optimizer, which updates the parameters in place. No node is added and nothing is
/// allocated per step: batches are written into buffers allocated once per `fit`.
///
/// # Threads
///
/// A model owns its graph, plans and optimizer state and is `Send`: models can be trained on
/// different threads at once.
#[derive(Debug)]
pub struct Sequential<F: Float = f32> {
    name: String,
    seed: u64,
    layers: Vec<Entry<F>>,
    net: Option<Network<F>>,
    training: Option<Training<F>>,
    /// Whether `fit`, `evaluate` and `predict` check that the data are finite.
    finite_check: bool,
}

impl Sequential<f32> {
    /// An empty `f32` model named `sequential`, seeded with 0. Use
    /// `Sequential::<f64>::default()` for `f64`.
    ///
    /// ```
    /// let model = dendrite_nn::Sequential::new();
    /// assert_eq!(model.len(), 0);
    /// ```
    pub fn new() -> Self {
        Sequential::default()
    }
}

impl<F: Float> Default for Sequential<F> {
    fn default() -> Self {
        Sequential {
            name: "sequential".into(),
            seed: 0,
            layers: Vec::new(),
            net: None,
            training: None,
            finite_check: true,
        }
    }
}

impl<F: Float> Sequential<F> {
    /// Sets the seed of the initial weights (each layer draws from its own stream of it).
    /// Must come before `compile`.
    ///
    /// ```
    /// let model = dendrite_nn::Sequential::new().with_seed(42);
    /// assert_eq!(model.seed(), 42);
    /// ```
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self.net = None;
        self.training = None;
        self
    }

    /// Whether `fit`, `evaluate` and `predict` first check that every feature and target is
    /// finite (default: yes). The check reads each dataset once before the first step (for
    /// ndarray data a scan of the elements; `u8` datasets are finite by construction) and
    /// refuses a NaN or infinite value with [`NnError::NonFiniteData`] naming the data
    /// (training or validation), the sample and the feature. Turn it off only for data known
    /// to be finite whose scan costs too much; a NaN that gets through then still stops `fit`
    /// at the first step it reaches a parameter ([`NnError::NonFiniteParameter`]).
    ///
    /// ```
    /// use dendrite_nn::{Dense, NnError, Sequential};
    /// let mut model = Sequential::new();
    /// model.add(Dense::new(1).input_dim(2));
    /// model.build()?;
    /// let x = ndarray::array![[1.0_f32, f32::NAN]];
    /// let err = model.predict(&x.view(), 1).unwrap_err();
    /// assert!(matches!(err, NnError::NonFiniteData { sample: 0, index: 1, .. }));
    /// let unchecked = Sequential::new().with_finite_check(false);
    /// assert!(!unchecked.finite_check());
    /// # Ok::<(), NnError>(())
    /// ```
    pub fn with_finite_check(mut self, check: bool) -> Self {
        self.finite_check = check;
        self
    }

    /// Whether the data are checked for NaN and infinities (see
    /// [`Sequential::with_finite_check`]).
    ///
    /// ```
    /// assert!(dendrite_nn::Sequential::new().finite_check());
    /// ```
    pub fn finite_check(&self) -> bool {
        self.finite_check
    }

    /// Renames the model (shown by the summary).
    ///
    /// ```
    /// let model = dendrite_nn::Sequential::new().named("mnist");
    /// assert_eq!(model.name(), "mnist");
    /// ```
    pub fn named(mut self, name: &str) -> Self {
        self.name = name.to_owned();
        self
    }

    /// The model's name.
    ///
    /// ```
    /// assert_eq!(dendrite_nn::Sequential::new().name(), "sequential");
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The weight seed.
    ///
    /// ```
    /// assert_eq!(dendrite_nn::Sequential::new().seed(), 0);
    /// ```
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Number of layers.
    ///
    /// ```
    /// let mut model = dendrite_nn::Sequential::new();
    /// model.add(dendrite_nn::Dense::new(2).input_dim(2));
    /// assert_eq!(model.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// Whether the model has no layers.
    ///
    /// ```
    /// assert!(dendrite_nn::Sequential::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// Appends a layer. It is named `<kind>_<k>` with the kind in snake case, as Keras names
    /// layers (`dense_1`, `dense_2`, `max_pooling2d_1`, ...; layers named by the user do not
    /// count) unless it names itself. Adding a layer to a compiled model discards the built
    /// graph and its weights: compile again.
    ///
    /// ```
    /// use dendrite_nn::{Dense, Sequential};
    /// let mut model = Sequential::new();
    /// model.add(Dense::new(4).input_dim(3)).add(Dense::new(2));
    /// assert_eq!(model.layer_names(), vec!["dense_1", "dense_2"]);
    /// model.add(dendrite_nn::Dropout::new(0.5));
    /// assert_eq!(model.layer_names()[2], "dropout_1");
    /// ```
    pub fn add(&mut self, layer: impl Layer<F> + 'static) -> &mut Self {
        let name = match layer.name() {
            Some(name) => name.to_owned(),
            None => {
                let base = snake_case(layer.kind());
                let mut k = self
                    .layers
                    .iter()
                    .filter(|e| e.auto && e.layer.kind() == layer.kind())
                    .count()
                    + 1;
                while self.layers.iter().any(|e| e.name == format!("{base}_{k}")) {
                    k += 1;
                }
                format!("{base}_{k}")
            }
        };
        self.layers.push(Entry {
            name,
            auto: layer.name().is_none(),
            layer: Box::new(layer),
        });
        self.net = None;
        self.training = None;
        self
    }

    /// The first layer, if any.
    pub(crate) fn first_layer(&self) -> Option<&dyn Layer<F>> {
        self.layers.first().map(|e| e.layer.as_ref())
    }

    /// The layers' names, in order.
    ///
    /// ```
    /// use dendrite_nn::{Activation, Dense, Sequential};
    /// let mut model = Sequential::new();
    /// model.add(Dense::new(2).input_dim(2)).add(Activation::Softmax);
    /// assert_eq!(model.layer_names(), vec!["dense_1", "activation_1"]);
    /// ```
    pub fn layer_names(&self) -> Vec<&str> {
        self.layers.iter().map(|e| e.name.as_str()).collect()
    }

    /// The model's graph, once built (by [`Sequential::build`] or `compile`): inspect it, or
    /// render it with `dendrite_graph::to_dot`.
    ///
    /// ```
    /// use dendrite_nn::{Dense, Sequential};
    /// let mut model = Sequential::new();
    /// model.add(Dense::new(2).input_dim(3));
    /// model.build()?;
    /// let g = model.graph().ok_or(dendrite_nn::NnError::NotBuilt { method: "graph" })?;
    /// assert!(g.node_by_name("dense_1/kernel").is_some());
    /// # Ok::<(), dendrite_nn::NnError>(())
    /// ```
    pub fn graph(&self) -> Option<&Graph<F>> {
        self.net.as_ref().map(|n| &n.graph)
    }

    /// Builds the forward graph and initial weights, if not built yet. `compile` calls it.
    ///
    /// Each layer's output shape and parameter count are checked before its weights are drawn,
    /// and the weights are allocated within the per-tensor limit
    /// (`dendrite_graph::limits`), so a layer too large for memory is an error, not an abort.
    ///
    /// # Errors
    /// [`NnError::NoLayers`], [`NnError::UnknownInputShape`], [`NnError::LayerInput`],
    /// [`NnError::DuplicateLayerName`], [`NnError::ParamCountOverflow`]; graph errors from the
    /// layers (`TensorTooLarge`, `AllocationFailed` for weights too large).
    ///
    /// ```
    /// use dendrite_nn::{Dense, NnError, Sequential};
    /// let mut model = Sequential::new();
    /// model.add(Dense::new(2));
    /// assert!(matches!(model.build(), Err(NnError::UnknownInputShape { .. })));
    /// ```
    pub fn build(&mut self) -> Result<()> {
        if self.net.is_none() {
            self.net = Some(self.build_network()?);
        }
        Ok(())
    }

    /// Builds the model (if needed) and prepares it for training: appends the loss, the
    /// metrics and the gradients to the graph, compiles the training and evaluation plans, and
    /// has the optimizer allocate its state. Compiling again keeps the weights and resets the
    /// optimizer.
    ///
    /// Every metric is resolved for the loss ([`Metric::resolve`]) and must fit it: sparse
    /// categorical accuracy needs the sparse loss (class-index targets), categorical accuracy
    /// one-hot targets and at least two outputs, binary accuracy a loss that is not a
    /// categorical cross-entropy.
    ///
    /// # Errors
    /// Those of [`Sequential::build`]; [`NnError::Hyperparameter`] for a bad optimizer or
    /// schedule setting; [`NnError::MetricMismatch`] for a metric that does not fit the loss,
    /// [`NnError::Metric`] for one that cannot be built; graph errors (optimizer state over the
    /// per-tensor limit among them) and autodiff errors.
    ///
    /// ```
    /// use dendrite_nn::{Activation, Adam, Dense, Loss, Metric, NnError, Sequential};
    /// let mut model = Sequential::new();
    /// model.add(Dense::new(10).input_dim(4).activation(Activation::Softmax));
    /// let err = model
    ///     .compile(Adam::default(), Loss::CategoricalCrossentropy, &[Metric::SparseCategoricalAccuracy])
    ///     .unwrap_err();
    /// assert!(matches!(err, NnError::MetricMismatch { loss: "categorical_crossentropy", .. }));
    /// # Ok::<(), NnError>(())
    /// ```
    ///
    /// ```
    /// use dendrite_nn::{Activation, Adam, Dense, Loss, Metric, Sequential};
    /// let mut model = Sequential::new();
    /// model.add(Dense::new(32).input_dim(784).activation(Activation::Relu));
    /// model.add(Dense::new(10).activation(Activation::Softmax));
    /// model.compile(Adam::default(), Loss::SparseCategoricalCrossentropy, &[Metric::Accuracy])?;
    /// assert!(model.is_compiled());
    /// # Ok::<(), dendrite_nn::NnError>(())
    /// ```
    pub fn compile(
        &mut self,
        optimizer: impl Optimizer<F> + 'static,
        loss: Loss,
        metrics: &[Metric],
    ) -> Result<()> {
        let optimizer: Box<dyn Optimizer<F>> = Box::new(optimizer);
        optimizer.validate()?;
        self.build()?;
        self.training = Some(self.training(optimizer, loss, metrics)?);
        Ok(())
    }

    /// The loss the model was compiled with.
    ///
    /// ```
    /// assert_eq!(dendrite_nn::Sequential::new().loss(), None);
    /// ```
    pub fn loss(&self) -> Option<Loss> {
        self.training.as_ref().map(|t| t.loss.clone())
    }

    /// Whether `compile` has run (since the last `add`).
    ///
    /// ```
    /// assert!(!dendrite_nn::Sequential::new().is_compiled());
    /// ```
    pub fn is_compiled(&self) -> bool {
        self.training.is_some()
    }

    /// The number of optimizer steps taken so far.
    ///
    /// ```
    /// assert_eq!(dendrite_nn::Sequential::new().steps_taken(), 0);
    /// ```
    pub fn steps_taken(&self) -> u64 {
        self.training.as_ref().map_or(0, |t| t.step)
    }

    /// The last epoch `fit` completed (counted from 1, across `fit` calls and kept in model
    /// files; 0 before training): give it to [`FitConfig::initial_epoch`] to continue.
    ///
    /// ```
    /// assert_eq!(dendrite_nn::Sequential::new().epochs_trained(), 0);
    /// ```
    pub fn epochs_trained(&self) -> usize {
        self.training.as_ref().map_or(0, |t| t.position.epoch)
    }

    /// The shuffling seed ([`FitConfig::seed`]) of the last `fit` (kept in model files): a
    /// resumed fit given the same seed visits the samples in the same orders as an
    /// uninterrupted one.
    ///
    /// ```
    /// assert_eq!(dendrite_nn::Sequential::new().shuffle_seed(), 0);
    /// ```
    pub fn shuffle_seed(&self) -> u64 {
        self.training
            .as_ref()
            .map_or(0, |t| t.position.shuffle_seed)
    }

    /// The model's parameters, by name (`dense_1/kernel`, ...), as copies, in layer order.
    ///
    /// # Errors
    /// [`NnError::NotBuilt`] before the model is built.
    ///
    /// ```
    /// use dendrite_nn::{Dense, Sequential};
    /// let mut model = Sequential::new();
    /// model.add(Dense::new(2).input_dim(3));
    /// model.build()?;
    /// let weights = model.weights()?;
    /// assert_eq!(weights[0].0, "dense_1/kernel");
    /// assert_eq!(weights[1].1.shape(), &[2]);
    /// # Ok::<(), dendrite_nn::NnError>(())
    /// ```
    pub fn weights(&self) -> Result<Vec<(String, ArrayD<F>)>> {
        let net = self
            .net
            .as_ref()
            .ok_or(NnError::NotBuilt { method: "weights" })?;
        net.weights
            .iter()
            .map(|&p| {
                Ok((
                    net.graph.name(p)?.to_owned(),
                    net.graph.value(p)?.to_owned(),
                ))
            })
            .collect()
    }

    /// The weight nodes (the trainable parameters in layer order, then the non-trainable
    /// states); [`NnError::NotBuilt`] naming `method` before the model is built.
    pub(crate) fn parameter_nodes(&self, method: &'static str) -> Result<(&Graph<F>, &[NodeId])> {
        self.net
            .as_ref()
            .map(|n| (&n.graph, n.weights.as_slice()))
            .ok_or(NnError::NotBuilt { method })
    }

    /// Mutable access to the graph holding the parameters, and the parameter nodes;
    /// [`NnError::NotBuilt`] naming `method` before the model is built.
    pub(crate) fn parameter_nodes_mut(
        &mut self,
        method: &'static str,
    ) -> Result<(&mut Graph<F>, &[NodeId])> {
        self.net
            .as_mut()
            .map(|n| (&mut n.graph, n.weights.as_slice()))
            .ok_or(NnError::NotBuilt { method })
    }
}

/// `MaxPooling2D` as `max_pooling2d`: an underscore before each capital that follows a
/// lowercase letter, then lowercase (Keras' rule; a digit does not start a word).
pub(crate) fn snake_case(kind: &str) -> String {
    let mut out = String::with_capacity(kind.len() + 4);
    let mut after_lower = false;
    for c in kind.chars() {
        if c.is_uppercase() && after_lower {
            out.push('_');
        }
        after_lower = c.is_lowercase();
        out.extend(c.to_lowercase());
    }
    out
}
