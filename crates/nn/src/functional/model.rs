//! [`Model`]: a Functional graph trained as a [`Sequential`] of one block.

use super::block::Block;
use super::summary::FunctionalSummary;
use super::{Functional, Tensor};
use crate::error::{NnError, Result};
use crate::float::Float;
use crate::input::{Data, Features};
use crate::loss::Loss;
use crate::metrics::Metric;
use crate::model::{Evaluation, FitConfig, History, Sequential};
use crate::optim::Optimizer;
use crate::outputs::{Head, OutputLoss, OutputLosses};
use crate::persist::LayerRegistry;
use ndarray::{Array2, ArrayD, Axis, IxDyn};
use std::path::Path;

/// The tensors [`Model::new`] takes as inputs or outputs: one [`Tensor`], an array, a slice
/// or a `Vec` of them.
///
/// ```
/// use dendrite_nn::{Functional, Tensors};
/// let mut f = Functional::<f32>::new();
/// let (a, b) = (f.input([2])?, f.input([3])?);
/// assert_eq!(a.tensors(), vec![a]);
/// assert_eq!([a, b].tensors(), vec![a, b]);
/// # Ok::<(), dendrite_nn::NnError>(())
/// ```
pub trait Tensors {
    /// The tensors, in order.
    fn tensors(&self) -> Vec<Tensor>;
}

impl Tensors for Tensor {
    fn tensors(&self) -> Vec<Tensor> {
        vec![*self]
    }
}

impl<const N: usize> Tensors for [Tensor; N] {
    fn tensors(&self) -> Vec<Tensor> {
        self.to_vec()
    }
}

impl Tensors for &[Tensor] {
    fn tensors(&self) -> Vec<Tensor> {
        self.to_vec()
    }
}

impl Tensors for Vec<Tensor> {
    fn tensors(&self) -> Vec<Tensor> {
        self.clone()
    }
}

/// A model's input or output: its name and sample shape.
#[derive(Debug, Clone, PartialEq, Eq)]
struct End {
    name: String,
    shape: Vec<usize>,
}

/// A model built with the Functional API (Keras' `keras.Model(inputs, outputs)`).
///
/// It trains, evaluates, predicts, saves and exports as a [`Sequential`] does (it is one,
/// holding the recorded graph as its only layer, reachable with [`Model::sequential`]), with
/// weights named `functional/<layer>/<weight>`. Its [`summary`](Model::summary) lists every
/// step with the steps it reads, as Keras' does.
///
/// ```
/// use dendrite_nn::data::synthetic_digits;
/// use dendrite_nn::{Activation, Adam, Dense, FitConfig, Functional, Loss, Metric, Model};
/// let mut f = Functional::<f32>::new();
/// let x = f.input([784])?;
/// let h = f.apply(Dense::new(16).activation(Activation::Relu), x)?;
/// let r = f.apply(Dense::new(16).activation(Activation::Relu), h)?;
/// let skip = f.add(&[h, r])?;
/// let y = f.apply(Dense::new(10).activation(Activation::Softmax), skip)?;
/// let mut model = Model::new(f, x, y)?;
/// model.compile(Adam::default(), Loss::SparseCategoricalCrossentropy, &[Metric::Accuracy])?;
/// let data = synthetic_digits(64, 0)?;
/// let history = model.fit(&data, FitConfig::default().epochs(1).verbosity(0))?;
/// assert_eq!(history.loss.len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Model<F: Float = f32> {
    inner: Sequential<F>,
    summary: FunctionalSummary,
    inputs: Vec<End>,
    outputs: Vec<End>,
}

impl<F: Float> Model<F> {
    /// The model computing `outputs` from `inputs` (each one tensor or several: see
    /// [`Tensors`]).
    ///
    /// With several inputs, the model takes each sample as the inputs' values in turn, each
    /// flattened: [`Inputs`](super::Inputs) and [`MultiData`](super::MultiData) write them so.
    /// With several outputs, it outputs them in turn likewise; give each its loss with
    /// [`Model::compile_outputs`] and split predictions with [`Model::predict_outputs`].
    ///
    /// # Errors
    /// [`NnError::Disconnected`] when an input is not made by [`Functional::input`], is listed
    /// twice or is used by no output, when an output is listed twice or depends on an input
    /// not listed; [`NnError::ForeignTensor`] for a tensor of another builder.
    ///
    /// ```
    /// use dendrite_nn::{Dense, Functional, Model};
    /// let mut f = Functional::<f32>::new();
    /// let (x, unused) = (f.input([3])?, f.input([3])?);
    /// let y = f.apply(Dense::new(2), x)?;
    /// assert!(Model::new(f, [x, unused], y).is_err()); // no output reads `unused`
    /// # Ok::<(), dendrite_nn::NnError>(())
    /// ```
    pub fn new(
        functional: Functional<F>,
        inputs: impl Tensors,
        outputs: impl Tensors,
    ) -> Result<Self> {
        let block = Block::new(functional, &inputs.tensors(), &outputs.tensors())?;
        let mut inner = Sequential::<F>::default().named("functional");
        let model = Model::around(&block, Sequential::default())?;
        inner.add(block);
        Ok(Model { inner, ..model })
    }

    /// The model's parts that come from `block`, around `inner`.
    fn around(block: &Block<F>, inner: Sequential<F>) -> Result<Self> {
        let ends = |steps: &[usize]| {
            steps
                .iter()
                .map(|&i| End {
                    name: block.name_of(i),
                    shape: block.nodes[i].shape.clone(),
                })
                .collect()
        };
        Ok(Model {
            inner,
            summary: FunctionalSummary::of(block)?,
            inputs: ends(&block.inputs),
            outputs: ends(&block.outputs),
        })
    }

    /// Seeds the weights and the random layers (dropout) with `seed` (default 0).
    ///
    /// ```
    /// # let mut f = dendrite_nn::Functional::<f32>::new();
    /// # let x = f.input([2])?;
    /// # let y = f.apply(dendrite_nn::Dense::new(2), x)?;
    /// let model = dendrite_nn::Model::new(f, x, y)?.with_seed(7);
    /// # let _ = model;
    /// # Ok::<(), dendrite_nn::NnError>(())
    /// ```
    pub fn with_seed(self, seed: u64) -> Self {
        Model {
            inner: self.inner.with_seed(seed),
            ..self
        }
    }

    /// The `Sequential` of one block that trains this model: everything a `Sequential` has
    /// that `Model` does not repeat (seeds, callbacks' settings, weights by name...).
    ///
    /// ```
    /// # let mut f = dendrite_nn::Functional::<f32>::new();
    /// # let x = f.input([2])?;
    /// # let y = f.apply(dendrite_nn::Dense::new(2), x)?;
    /// let model = dendrite_nn::Model::new(f, x, y)?;
    /// assert_eq!(model.sequential().layer_names(), vec!["functional"]);
    /// # Ok::<(), dendrite_nn::NnError>(())
    /// ```
    pub fn sequential(&self) -> &Sequential<F> {
        &self.inner
    }

    /// Mutable access to the `Sequential` that trains this model.
    pub fn sequential_mut(&mut self) -> &mut Sequential<F> {
        &mut self.inner
    }

    /// As [`Sequential::build`]: the graph and the initial weights, without training parts.
    ///
    /// # Errors
    /// As [`Sequential::build`].
    pub fn build(&mut self) -> Result<()> {
        self.inner.build()
    }

    /// As [`Sequential::compile`]; with several outputs, `loss` and `metrics` apply to each
    /// output, with weight 1 (as Keras does with one loss for several outputs).
    ///
    /// # Errors
    /// As [`Sequential::compile`] and [`Model::compile_outputs`].
    pub fn compile(
        &mut self,
        optimizer: impl Optimizer<F> + 'static,
        loss: Loss,
        metrics: &[Metric],
    ) -> Result<()> {
        if self.outputs.len() == 1 {
            return self.inner.compile(optimizer, loss, metrics);
        }
        let each: Vec<OutputLoss> = self
            .outputs
            .iter()
            .map(|_| OutputLoss::new(loss.clone()).metrics(metrics))
            .collect();
        self.compile_outputs(optimizer, &each)
    }

    /// Compiles a model of several outputs with a loss, a weight and metrics per output, in
    /// the order of [`Model::new`]'s outputs (Keras' per-output `loss`, `loss_weights` and
    /// `metrics`). The loss minimized is `Σ_k w_k L_k`; `fit` and `evaluate` also report each
    /// output's loss as `<output>_loss` and its metrics as `<output>_<metric>`. The targets
    /// are each output's in turn ([`MultiData`](super::MultiData) writes them so).
    ///
    /// # Errors
    /// [`NnError::LossOutput`] when there is not one [`OutputLoss`] per output, or for a weight
    /// that is negative or not finite; otherwise as [`Sequential::compile`] for each output's
    /// loss and metrics.
    ///
    /// ```
    /// use dendrite_nn::{Activation, Adam, Dense, Functional, Loss, Metric, Model, OutputLoss};
    /// let mut f = Functional::<f32>::new();
    /// let x = f.input([4])?;
    /// let h = f.apply(Dense::new(8).activation(Activation::Relu), x)?;
    /// let class = f.apply(Dense::new(3).activation(Activation::Softmax).named("class"), h)?;
    /// let value = f.apply(Dense::new(1).named("value"), h)?;
    /// let mut model = Model::new(f, x, [class, value])?;
    /// model.compile_outputs(Adam::default(), &[
    ///     OutputLoss::new(Loss::SparseCategoricalCrossentropy).metrics(&[Metric::Accuracy]),
    ///     OutputLoss::new(Loss::MeanSquaredError).weight(0.5),
    /// ])?;
    /// # Ok::<(), dendrite_nn::NnError>(())
    /// ```
    pub fn compile_outputs(
        &mut self,
        optimizer: impl Optimizer<F> + 'static,
        outputs: &[OutputLoss],
    ) -> Result<()> {
        if outputs.len() != self.outputs.len() || outputs.len() < 2 {
            return Err(NnError::LossOutput {
                loss: "outputs",
                width: outputs.len(),
                reason: "give one OutputLoss per output of a model with several outputs (Model::compile for one output)",
            });
        }
        let heads = self
            .outputs
            .iter()
            .zip(outputs)
            .map(|(end, o)| Head {
                name: end.name.clone(),
                width: end.shape.iter().product(),
                loss: o.loss_value().clone(),
                weight: o.weight_value(),
            })
            .collect();
        let losses = OutputLosses::new(heads)?;
        let per_head: Vec<Vec<Metric>> =
            outputs.iter().map(|o| o.metrics_value().to_vec()).collect();
        let metrics = losses.metrics(&per_head);
        self.inner
            .compile(optimizer, Loss::Outputs(losses), &metrics)
    }

    /// As [`Sequential::fit`].
    ///
    /// # Errors
    /// As [`Sequential::fit`].
    pub fn fit<D: Data<F> + Sync + ?Sized>(
        &mut self,
        data: &D,
        config: FitConfig<'_, F>,
    ) -> Result<History> {
        self.inner.fit(data, config)
    }

    /// As [`Sequential::evaluate`].
    ///
    /// # Errors
    /// As [`Sequential::evaluate`].
    pub fn evaluate<D: Data<F> + ?Sized>(
        &mut self,
        data: &D,
        batch_size: usize,
    ) -> Result<Evaluation> {
        self.inner.evaluate(data, batch_size)
    }

    /// As [`Sequential::predict`].
    ///
    /// # Errors
    /// As [`Sequential::predict`].
    pub fn predict<X: Features<F> + ?Sized>(
        &mut self,
        x: &X,
        batch_size: usize,
    ) -> Result<Array2<F>> {
        self.inner.predict(x, batch_size)
    }

    /// Predictions split by output: one array per output, `[samples, ..output shape]`.
    ///
    /// # Errors
    /// As [`Sequential::predict`].
    ///
    /// ```
    /// use dendrite_nn::{Dense, Functional, Model};
    /// let mut f = Functional::<f32>::new();
    /// let x = f.input([2])?;
    /// let (a, b) = (f.apply(Dense::new(3), x)?, f.apply(Dense::new(1), x)?);
    /// let mut model = Model::new(f, x, [a, b])?;
    /// model.build()?;
    /// let out = model.predict_outputs(&ndarray::Array2::<f32>::zeros((5, 2)), 32)?;
    /// assert_eq!((out[0].shape(), out[1].shape()), (&[5, 3][..], &[5, 1][..]));
    /// # Ok::<(), dendrite_nn::NnError>(())
    /// ```
    pub fn predict_outputs<X: Features<F> + ?Sized>(
        &mut self,
        x: &X,
        batch_size: usize,
    ) -> Result<Vec<ArrayD<F>>> {
        let all = self.inner.predict(x, batch_size)?;
        let mut at = 0;
        let mut split = Vec::with_capacity(self.outputs.len());
        for end in &self.outputs {
            let width: usize = end.shape.iter().product();
            let columns = all.slice_axis(Axis(1), (at..at + width).into()).to_owned();
            let mut dims = vec![columns.nrows()];
            dims.extend_from_slice(&end.shape);
            let shaped = columns.into_shape_clone(IxDyn(&dims)).map_err(|_| {
                NnError::Graph(dendrite_graph::GraphError::Internal {
                    op: "predict_outputs",
                    node: end.name.clone(),
                    what: "an output's columns do not fill its shape",
                })
            })?;
            split.push(shaped);
            at += width;
        }
        Ok(split)
    }

    /// The names of the model's inputs, in order (`input_1`, ...).
    pub fn input_names(&self) -> Vec<&str> {
        self.inputs.iter().map(|e| e.name.as_str()).collect()
    }

    /// The names of the model's outputs, in order (the steps that make them).
    pub fn output_names(&self) -> Vec<&str> {
        self.outputs.iter().map(|e| e.name.as_str()).collect()
    }

    /// As [`Sequential::get_weights`]: the trainable weights in layer order, then the states.
    ///
    /// # Errors
    /// As [`Sequential::get_weights`].
    pub fn get_weights(&self) -> Result<Vec<ArrayD<F>>> {
        self.inner.get_weights()
    }

    /// As [`Sequential::save`]: the whole model in one file.
    ///
    /// # Errors
    /// As [`Sequential::save`].
    pub fn save(&mut self, path: impl AsRef<Path>) -> Result<()> {
        self.inner.save(path)
    }

    /// Loads a Functional model written by [`Model::save`] (its layers are rebuilt through
    /// the built-in layer registry).
    ///
    /// # Errors
    /// As [`Sequential::load`]; [`NnError::Disconnected`] for a file holding a `Sequential`.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        Self::load_with(path, &LayerRegistry::default())
    }

    /// [`Model::load`] with layer types of your own: the model's layers, inside its
    /// Functional block too, are rebuilt through `registry`.
    ///
    /// # Errors
    /// As [`Model::load`]; [`ModelFileError::UnknownLayer`](crate::ModelFileError) for a layer
    /// type the registry does not know.
    pub fn load_with(path: impl AsRef<Path>, registry: &LayerRegistry<F>) -> Result<Self> {
        let path = path.as_ref();
        let inner = Sequential::load_with(path, registry)?;
        let bad = |source| crate::ModelFileError::Config {
            path: path.to_path_buf(),
            source,
        };
        let config = match inner.first_layer() {
            Some(layer) if inner.layer_names().len() == 1 && layer.kind() == "Functional" => {
                layer.config().map_err(bad)?
            }
            _ => {
                return Err(NnError::Disconnected {
                    name: inner.layer_names().join(", "),
                    reason: "the file holds a Sequential model, not a Functional one: load it with Sequential::load",
                })
            }
        };
        let block = super::config::from_json::<F>(&config, registry).map_err(bad)?;
        Model::around(&block, inner)
    }

    /// As [`Sequential::export_onnx`].
    ///
    /// # Errors
    /// As [`Sequential::export_onnx`].
    pub fn export_onnx(&self, path: impl AsRef<Path>) -> Result<()> {
        self.inner.export_onnx(path)
    }

    /// Every step (input, layer call, merge) with its output shape, its parameters (a shared
    /// layer's at its first call) and the steps it reads.
    ///
    /// # Errors
    /// [`NnError::ParamCountOverflow`] when a count overflows.
    ///
    /// ```
    /// use dendrite_nn::{Dense, Functional, Model};
    /// let mut f = Functional::<f32>::new();
    /// let x = f.input([4])?;
    /// let h = f.apply(Dense::new(4), x)?;
    /// let y = f.add(&[x, h])?;
    /// let table = Model::new(f, x, y)?.summary()?.to_string();
    /// assert!(table.contains("add_1 (Add)") && table.contains("input_1, dense_1"));
    /// # Ok::<(), dendrite_nn::NnError>(())
    /// ```
    pub fn summary(&self) -> Result<FunctionalSummary> {
        Ok(self.summary.clone())
    }
}
