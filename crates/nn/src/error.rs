//! The one error type of the nn crate.
//!
//! [`NnError`] wraps the errors of the layers below ([`GraphError`], [`AutodiffError`],
//! [`DataError`]) and adds the model-level ones: bad training input (labels out of range, `x` and
//! `y` of different lengths, a wrong feature count, an empty dataset), bad configuration (batch
//! size 0, epochs 0), a loss that stops being finite, and checkpoints that do not match the model.
//! Every variant carries the facts needed to find the problem as structured fields.

use crate::data::DataError;
use dendrite_autodiff::AutodiffError;
use dendrite_graph::GraphError;
use std::path::PathBuf;

/// Result alias of the nn crate.
pub type Result<T, E = NnError> = std::result::Result<T, E>;

/// Everything that can go wrong while building, training, evaluating or checkpointing a model.
///
/// ```
/// use dendrite_nn::{Activation, Dense, Loss, Metric, NnError, Sequential, Adam, FitConfig};
/// use ndarray::array;
///
/// let mut model = Sequential::new();
/// model.add(Dense::new(2).input_dim(2).activation(Activation::Softmax));
/// model.compile(Adam::default(), Loss::SparseCategoricalCrossentropy, &[Metric::Accuracy])?;
/// let x = array![[0.0_f32, 1.0], [1.0, 0.0]];
/// let y = array![0.0_f32, 2.0]; // class 2 does not exist: the model has 2 outputs
/// let err = model.fit(&(x.view(), y.view()), FitConfig::default()).unwrap_err();
/// assert!(matches!(err, NnError::LabelOutOfRange { index: 1, classes: 2, .. }));
/// assert_eq!(err.to_string(), "label 2 at sample 1 is not a class index in 0..2");
/// # Ok::<(), NnError>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NnError {
    /// An error of the graph crate: a shape mismatch while building, a bad feed while running.
    /// (An index error of an [`Embedding`](crate::Embedding)'s lookup becomes
    /// [`NnError::EmbeddingIndex`] instead.)
    #[error(transparent)]
    Graph(GraphError),
    /// A whole-model file could not be written or read (see
    /// [`Sequential::save`](crate::Sequential::save)).
    #[error(transparent)]
    ModelFile(#[from] crate::persist::ModelFileError),
    /// An error of the autodiff crate while deriving the gradients.
    #[error(transparent)]
    Autodiff(#[from] AutodiffError),
    /// An error of the data module: a bad file, a bad batch buffer.
    #[error(transparent)]
    Data(#[from] DataError),
    /// An error of the ONNX export (a layer built from a primitive ONNX cannot express).
    #[error(transparent)]
    Onnx(#[from] dendrite_graph::onnx::OnnxError),

    /// A model with no layers was built or compiled.
    #[error("the model has no layers: add at least one before building it")]
    NoLayers,
    /// The first layer does not say how many features its input has.
    #[error("layer `{layer}` is the first layer but declares no input size (use `.input_dim(n)`)")]
    UnknownInputShape {
        /// The first layer's name.
        layer: String,
    },
    /// A layer asked [`Init::step`](crate::Init::step) for the training step, but was built
    /// with an [`Init`](crate::Init) that has none (outside a model, give one with
    /// [`Init::with_step`](crate::Init::with_step)).
    #[error("layer `{layer}` draws random numbers but was built without a training-step node (give one with Init::with_step)")]
    NoTrainingStep {
        /// The layer's name.
        layer: String,
    },
    /// A layer created different parameters when built for training than for inference
    /// (both graphs must read the same weights).
    #[error("layer `{layer}` creates different parameters for training than for inference: a layer must create the same parameters in both modes")]
    ModeParameters {
        /// The layer's name.
        layer: String,
    },
    /// A layer's state update does not fit its state.
    #[error("state `{name}` cannot be updated: {reason}")]
    StateUpdate {
        /// The state's name.
        name: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A tensor or layer of another [`Functional`](crate::Functional) builder (or none).
    #[error("the {what} does not belong to this Functional builder")]
    ForeignTensor {
        /// `tensor` or `layer`.
        what: String,
    },
    /// Tensors a [`Merge`](crate::Merge) cannot combine.
    #[error("cannot {merge} tensors of shapes {shapes:?}: {reason}")]
    MergeShapes {
        /// The merge (`add`, `concatenate`...).
        merge: &'static str,
        /// The sample shapes given.
        shapes: Vec<Vec<usize>>,
        /// What does not fit.
        reason: &'static str,
    },
    /// A Functional model whose output and input are not connected as a model needs.
    #[error("`{name}`: {reason}")]
    Disconnected {
        /// The step (or layers) concerned.
        name: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// Training ran past the last step an `f32` model can number exactly (2^24): its random
    /// draws (dropout masks) would start repeating.
    #[error("training step {step} cannot be fed exactly to a model of this element type (at most {limit}): its random draws would repeat; train in f64 or start again")]
    StepLimit {
        /// The step that could not be represented.
        step: u64,
        /// The last exactly representable step.
        limit: u64,
    },
    /// A layer given an input shape it cannot take.
    #[error("layer `{layer}` cannot take input of shape {shape:?}: {reason}")]
    LayerInput {
        /// The layer's name.
        layer: String,
        /// The input shape, without the batch dimension.
        shape: Vec<usize>,
        /// What the layer expected.
        reason: &'static str,
    },
    /// Two layers with the same explicit name.
    #[error("two layers are named `{name}`; layer names must be unique")]
    DuplicateLayerName {
        /// The repeated name.
        name: String,
    },
    /// A method that needs a compiled model (`fit`, `evaluate`) was called before `compile`.
    #[error("`{method}` needs a compiled model: call `compile` first")]
    NotCompiled {
        /// The method called.
        method: &'static str,
    },
    /// A method that needs only the built graph and weights (`predict`, `weights`,
    /// `save_weights`, `load_weights`) was called before `build` or `compile`.
    #[error("`{method}` needs a built model: call `build` (or `compile`) first")]
    NotBuilt {
        /// The method called.
        method: &'static str,
    },
    /// A layer whose parameter count does not fit in `usize` for the input it is given.
    #[error(
        "layer `{layer}` ({kind}) on input shape {input:?}: its parameter count overflows usize"
    )]
    ParamCountOverflow {
        /// The layer's name in the model (`dense_1`).
        layer: String,
        /// The layer's type (`Dense`).
        kind: &'static str,
        /// The input shape, without the batch dimension.
        input: Vec<usize>,
    },
    /// A model whose total parameter count does not fit in `usize`.
    #[error("the model's total parameter count overflows usize when layer `{layer}` ({params} parameters) is added")]
    TotalParamsOverflow {
        /// The layer whose count made the total overflow.
        layer: String,
        /// That layer's own count.
        params: usize,
    },
    /// A metric that cannot measure what the loss trains (sparse vs one-hot targets, binary vs
    /// categorical outputs), refused by `compile`.
    #[error("metric {metric} does not fit loss {loss} with {width} output(s): {reason}")]
    MetricMismatch {
        /// The metric's name (`sparse_categorical_accuracy`).
        metric: &'static str,
        /// The loss's name (`categorical_crossentropy`).
        loss: &'static str,
        /// The model's outputs per sample.
        width: usize,
        /// Why they do not fit, and what fits.
        reason: &'static str,
    },
    /// A loss that cannot train the model's output (a categorical cross-entropy on a single
    /// output), refused by `compile`.
    #[error("loss {loss} does not fit a model with {width} output(s): {reason}")]
    LossOutput {
        /// The loss's name.
        loss: &'static str,
        /// The model's outputs per sample.
        width: usize,
        /// Why, and what fits.
        reason: &'static str,
    },
    /// A custom loss whose per-sample node is neither `[batch]` nor a scalar.
    #[error("custom loss {loss} built a per-sample loss of shape {shape}: it must be [batch] (one value per sample) or a scalar")]
    LossShape {
        /// The loss's name.
        loss: &'static str,
        /// The shape it built.
        shape: dendrite_graph::Shape,
    },
    /// A custom metric whose per-sample node is not `[batch]`.
    #[error("custom metric {metric} built values of shape {shape}: it must be [batch] (one value per sample)")]
    MetricShape {
        /// The metric's name.
        metric: &'static str,
        /// The shape it built.
        shape: dendrite_graph::Shape,
    },
    /// `set_weights` given a different number of arrays than the model has parameters.
    #[error("set_weights: the model has {expected} weight arrays, {actual} were given")]
    WeightCount {
        /// The model's parameter count (arrays, not elements).
        expected: usize,
        /// The arrays given.
        actual: usize,
    },
    /// `set_weights` given an array whose shape differs from its parameter's.
    #[error(
        "set_weights: weight `{name}` has shape {expected:?}, the array given has shape {actual:?}"
    )]
    WeightShape {
        /// The parameter's name (`dense_1/kernel`).
        name: String,
        /// The parameter's shape.
        expected: Vec<usize>,
        /// The array's shape.
        actual: Vec<usize>,
    },
    /// A weight that is NaN or infinite, refused by `set_weights` or produced by an initializer.
    #[error("weight `{name}` would hold {value} at flat index {index}: weights must be finite")]
    NonFiniteWeight {
        /// The parameter's name (`dense_1/kernel`).
        name: String,
        /// The flat (row-major) index of the first non-finite value.
        index: usize,
        /// The value.
        value: f64,
    },
    /// A metric that could not be added to the graph.
    #[error("metric {metric} with loss {loss}: {source}")]
    Metric {
        /// The metric's name.
        metric: &'static str,
        /// The loss's name.
        loss: &'static str,
        /// What went wrong.
        #[source]
        source: Box<NnError>,
    },

    /// A class label that is not an integer in `0..classes`.
    #[error("label {label} at sample {index} is not a class index in 0..{classes}")]
    LabelOutOfRange {
        /// The sample's position in the data given (within the batch if only the graph saw it).
        index: usize,
        /// The label found.
        label: f64,
        /// The number of classes of the model's output.
        classes: usize,
    },
    /// An [`Embedding`](crate::Embedding) input that is not an integer in `0..input_dim`.
    #[error("layer `{layer}`: sample {sample} of the batch holds {value} at position {position}, which is not an index in 0..{input_dim}")]
    EmbeddingIndex {
        /// The embedding layer's name (`embedding_1`).
        layer: String,
        /// The sample's row in the batch the model ran.
        sample: usize,
        /// The value's flat (row-major) position within the sample.
        position: usize,
        /// The value found.
        value: f64,
        /// The layer's vocabulary size: valid indices are `0..input_dim`.
        input_dim: usize,
    },
    /// Features and targets with different numbers of samples.
    #[error("x has {x} samples but y has {y}: they must have one target per sample")]
    LengthMismatch {
        /// Samples (rows) in `x`.
        x: usize,
        /// Samples in `y`.
        y: usize,
    },
    /// Data whose feature count differs from the model's input size.
    #[error("the model takes {expected} features per sample, but the data has {actual}")]
    FeatureMismatch {
        /// The model's input size.
        expected: usize,
        /// The data's feature count.
        actual: usize,
    },
    /// Data whose sample shape differs from the model's input shape (same count or not).
    #[error(
        "the model takes samples of shape {expected:?}, but the data's samples are {actual:?}"
    )]
    SampleShapeMismatch {
        /// The model's sample shape (the first layer's `input_shape`).
        expected: Vec<usize>,
        /// The data's sample shape.
        actual: Vec<usize>,
    },
    /// Targets whose width differs from what the loss needs.
    #[error("{loss} needs {expected} target value(s) per sample, but the data have {actual}{}", target_hint(loss, *expected, *actual))]
    TargetMismatch {
        /// The loss's name (`sparse_categorical_crossentropy`), or `the loss` when the data
        /// were checked without one.
        loss: &'static str,
        /// Values per sample the loss needs (1 for class indices, the output width otherwise).
        expected: usize,
        /// Values per sample the data provides.
        actual: usize,
    },
    /// An error in the validation data given to `fit` (the inner error says what).
    #[error("in the {data} data: {source}")]
    InData {
        /// `"validation"`.
        data: &'static str,
        /// The error.
        #[source]
        source: Box<NnError>,
    },
    /// A feature or target that is NaN or infinite (checked once per dataset before training,
    /// evaluating or predicting; see `Sequential::with_finite_check`).
    #[error("the {data} data hold {value} at sample {sample}, {part} {index}: features and targets must be finite (fix or drop the sample, or turn the check off with `with_finite_check(false)`)")]
    NonFiniteData {
        /// `"training"`, `"validation"`, `"evaluation"` or `"prediction"`.
        data: &'static str,
        /// `"feature"` or `"target"`.
        part: &'static str,
        /// The sample's position in the dataset given (for a validation split, in the whole
        /// training dataset).
        sample: usize,
        /// The feature's (or target's) position within the sample.
        index: usize,
        /// The value found.
        value: f64,
    },
    /// A target outside the range the loss is defined on (binary and categorical
    /// cross-entropy need `[0, 1]`).
    #[error("{loss} needs targets in [{low}, {high}], but the {data} data hold {value} at sample {sample}, target {index}")]
    TargetOutOfRange {
        /// The loss's name.
        loss: &'static str,
        /// `"training"`, `"validation"` or `"evaluation"`.
        data: &'static str,
        /// The sample's position.
        sample: usize,
        /// The target's position within the sample.
        index: usize,
        /// The value found.
        value: f64,
        /// The smallest valid target.
        low: f64,
        /// The largest valid target.
        high: f64,
    },
    /// Data without targets given where targets are needed.
    #[error(
        "these data have no targets; fit and evaluate need (x, y) pairs or a labelled dataset"
    )]
    NoTargets,
    /// A dataset with no samples.
    #[error("the {what} data are empty: at least one sample is needed")]
    EmptyDataset {
        /// "training", "validation" or "evaluation".
        what: &'static str,
    },
    /// A batch size of zero.
    #[error("batch size must be at least 1, got 0")]
    ZeroBatchSize,
    /// Zero epochs asked of `fit`.
    #[error("epochs must be at least 1, got 0")]
    ZeroEpochs,
    /// A validation split outside `[0, 1)`, or one that leaves a side empty.
    #[error("validation split {split} is invalid for {samples} samples: {reason}")]
    ValidationSplit {
        /// The fraction given.
        split: f64,
        /// The number of samples it applies to.
        samples: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A hyperparameter out of its valid range.
    #[error("{owner}: {name} = {value} is invalid: {reason}")]
    Hyperparameter {
        /// The optimizer, schedule or layer it belongs to.
        owner: &'static str,
        /// The hyperparameter.
        name: &'static str,
        /// The value given.
        value: f64,
        /// The valid range.
        reason: &'static str,
    },
    /// Early stopping asked to watch a quantity that this fit does not compute.
    #[error("early stopping monitors `{monitor}`, which this fit does not compute{hint}")]
    MonitorUnavailable {
        /// The monitored quantity.
        monitor: &'static str,
        /// How to make it available.
        hint: &'static str,
    },

    /// The thread writing batches ahead of the training steps stopped without a result (it
    /// reports its errors as values, so this is only the answer to its panicking).
    #[error("the batch-writing thread stopped during epoch {epoch}; training stopped with the weights of the last completed step")]
    BatchWriterStopped {
        /// 1-based epoch.
        epoch: usize,
    },

    /// The training loss became NaN or infinite; the update of that step was not applied.
    #[error("loss became {value} at epoch {epoch}, step {step}; training stopped and the weights are those after the last finite step")]
    NonFiniteLoss {
        /// The epoch (1-based).
        epoch: usize,
        /// The step within the epoch (1-based).
        step: usize,
        /// The loss value.
        value: f64,
    },
    /// A parameter, or the optimizer's state for it (momenta, moments), that became NaN or
    /// infinite in an optimizer update. The step was undone: the weights and the optimizer's
    /// state are those after the last finite step, so training can go on (with a lower
    /// learning rate, or clipped data) without compiling again.
    #[error("parameter `{name}`{} became {value} at epoch {epoch}, step {step}; training stopped and the weights and optimizer state are those after the last finite step (lower the learning rate, or clip the data)", if *in_optimizer_state { " (its optimizer state)" } else { "" })]
    NonFiniteParameter {
        /// The parameter's name (`dense_1/kernel`).
        name: String,
        /// Whether the value is in the optimizer's state for the parameter rather than in the
        /// parameter itself (Adam's second moment overflows when a gradient's square does).
        in_optimizer_state: bool,
        /// The epoch (1-based).
        epoch: usize,
        /// The step within the epoch (1-based).
        step: usize,
        /// The first non-finite value found.
        value: f64,
    },
    /// A learning rate that a schedule made NaN, infinite or negative during training; the
    /// step was not taken.
    #[error("{optimizer}: the learning rate at epoch {epoch}, step {step} is {value}; it must be finite and >= 0 (check the schedule)")]
    LearningRate {
        /// The optimizer's name.
        optimizer: &'static str,
        /// The epoch (1-based).
        epoch: usize,
        /// The step within the epoch (1-based).
        step: usize,
        /// The rate.
        value: f64,
    },
    /// A parameter or gradient that is not laid out contiguously in row-major order.
    #[error("parameter `{name}` is not a contiguous row-major array; create parameters with standard layout")]
    NonContiguous {
        /// The parameter's name.
        name: String,
    },
    /// An optimizer asked to update a parameter it has no state for, or with the wrong length.
    #[error(
        "optimizer state for parameter #{index} holds {expected} values, but {actual} were given"
    )]
    OptimizerState {
        /// The parameter's position.
        index: usize,
        /// The size of the prepared state.
        expected: usize,
        /// The size given.
        actual: usize,
    },

    /// Reading or writing a checkpoint failed.
    #[error("{}: I/O error: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A checkpoint path that names something other than a regular file (a directory, a
    /// device such as `/dev/zero`, a FIFO, a socket): refused without reading it, because only a
    /// regular file's length bounds what reading it returns.
    #[error("{}: {kind}, not a regular file: checkpoints are read only from regular files, whose length bounds what is read", path.display())]
    NotAFile {
        /// The path given.
        path: PathBuf,
        /// What it is instead, in words (`"a character device"`, `"a directory"`, ...).
        kind: &'static str,
    },
    /// A checkpoint longer than one of this model can be (an 8-byte prefix, a header of at
    /// most 100 MB, and the parameters' bytes): refused before it is read.
    #[error("{}: the file holds {len} bytes, more than the {limit} bytes a checkpoint of this model can take", path.display())]
    FileTooLarge {
        /// The file.
        path: PathBuf,
        /// Its length, from its metadata.
        len: u64,
        /// The most a checkpoint of this model can take.
        limit: u64,
    },
    /// A checkpoint holding more bytes than its metadata gave: it grew while being read, or it
    /// is a special file (such as those under `/proc`). Reading stopped one byte past `len`.
    #[error("{}: the file holds more than the {len} bytes its metadata gives (it grew while being read, or it is a special file); reading stopped there", path.display())]
    FileGrew {
        /// The file.
        path: PathBuf,
        /// The length its metadata gave.
        len: u64,
    },
    /// The allocator refused a buffer for a checkpoint's bytes.
    #[error("{}: could not allocate {bytes} bytes to read the checkpoint", path.display())]
    AllocationFailed {
        /// The file.
        path: PathBuf,
        /// The bytes asked for.
        bytes: u64,
    },
    /// A checkpoint that is not a valid safetensors file.
    #[error("{}: not a valid safetensors checkpoint: {reason}", path.display())]
    CorruptCheckpoint {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        reason: String,
    },
    /// A checkpoint tensor holding NaN or an infinite value; nothing was loaded.
    #[error("{}: tensor `{name}` holds {value} at element {index} (row-major); a checkpoint must hold finite weights, nothing was loaded", path.display())]
    NonFiniteCheckpoint {
        /// The file.
        path: PathBuf,
        /// The tensor's name.
        name: String,
        /// The element's row-major index.
        index: usize,
        /// The value.
        value: f64,
    },
    /// A checkpoint lacking a tensor the model has.
    #[error("{}: checkpoint has no tensor `{name}`", path.display())]
    MissingTensor {
        /// The file.
        path: PathBuf,
        /// The parameter's name.
        name: String,
    },
    /// A checkpoint holding a tensor the model does not have.
    #[error("{}: checkpoint holds tensor `{name}`, which the model does not have", path.display())]
    UnexpectedTensor {
        /// The file.
        path: PathBuf,
        /// The tensor's name.
        name: String,
    },
    /// A checkpoint tensor whose shape differs from the parameter's.
    #[error("{}: tensor `{name}` has shape {actual:?}, but the model's parameter has shape {expected:?}", path.display())]
    TensorShape {
        /// The file.
        path: PathBuf,
        /// The tensor's name.
        name: String,
        /// The parameter's shape.
        expected: Vec<usize>,
        /// The tensor's shape.
        actual: Vec<usize>,
    },
    /// A checkpoint tensor whose element type differs from the model's.
    #[error("{}: tensor `{name}` has dtype {actual}, but the model uses {expected}", path.display())]
    TensorDtype {
        /// The file.
        path: PathBuf,
        /// The tensor's name.
        name: String,
        /// The model's element type.
        expected: &'static str,
        /// The tensor's element type.
        actual: String,
    },
}

/// The suggestion that ends a [`NnError::TargetMismatch`] message.
fn target_hint(loss: &str, expected: usize, actual: usize) -> &'static str {
    match (loss, expected, actual) {
        ("sparse_categorical_crossentropy", 1, a) if a > 1 => {
            ": these look like one-hot rows; use Loss::CategoricalCrossentropy for them, or give one class index per sample"
        }
        (_, e, 1) if e > 1 => {
            ": these look like class indices; use Loss::SparseCategoricalCrossentropy for them, or give one-hot rows as wide as the output"
        }
        _ => "",
    }
}

/// A graph error, with the index errors of an embedding's lookup told in the layer's terms:
/// the lookup node is named `<layer>/embedding_lookup` (and the training graph's simplified
/// copy of it `<layer>/embedding_lookup/gather`), and the index tensor's shape turns the flat
/// position into the sample's row and the place within it.
impl NnError {
    /// This error with `layer` as the layer's name when it is a [`NnError::LayerInput`] (a
    /// layer raises it under the only name it knows; the model knows the name it was given).
    pub(crate) fn for_layer(self, layer: &str) -> NnError {
        match self {
            NnError::LayerInput { shape, reason, .. } => NnError::LayerInput {
                layer: layer.to_owned(),
                shape,
                reason,
            },
            other => other,
        }
    }
}

impl From<GraphError> for NnError {
    fn from(err: GraphError) -> Self {
        match err {
            GraphError::IndexOutOfRange {
                op: "gather",
                node,
                value,
                position,
                bound,
                indices_shape,
            } if crate::embedding::layer_of_lookup(&node).is_some() => {
                let per_sample = indices_shape
                    .get(1..)
                    .map_or(1, |d| d.iter().product::<usize>())
                    .max(1);
                NnError::EmbeddingIndex {
                    layer: crate::embedding::layer_of_lookup(&node)
                        .unwrap_or_default()
                        .to_owned(),
                    sample: position / per_sample,
                    position: position % per_sample,
                    value,
                    input_dim: bound,
                }
            }
            other => NnError::Graph(other),
        }
    }
}

/// Turns the graph's out-of-range index from `one_hot` (a sparse label the data checks did
/// not see) into the clear label error.
pub(crate) fn label_error(err: GraphError) -> NnError {
    match err {
        GraphError::IndexOutOfRange {
            op: "one_hot",
            value,
            position,
            bound,
            ..
        } => NnError::LabelOutOfRange {
            index: position,
            label: value,
            classes: bound,
        },
        other => NnError::from(other),
    }
}
