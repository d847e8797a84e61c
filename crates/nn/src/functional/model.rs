//! [`Model`]: a Functional graph trained as a [`Sequential`] of one block, and its summary.

use super::block::Block;
use super::{Functional, Step, Tensor};
use crate::error::{NnError, Result};
use crate::float::Float;
use crate::input::{Data, Features};
use crate::loss::Loss;
use crate::metrics::Metric;
use crate::model::{Evaluation, FitConfig, History, Sequential};
use crate::optim::Optimizer;
use ndarray::{Array2, ArrayD};
use std::fmt;
use std::path::Path;

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
}

impl<F: Float> Model<F> {
    /// The model computing `output` from `input`.
    ///
    /// # Errors
    /// [`NnError::Disconnected`] when `input` is not an input, when `output` does not depend
    /// on it, or depends on another input; [`NnError::ForeignTensor`] for a tensor of another
    /// builder.
    ///
    /// ```
    /// use dendrite_nn::{Dense, Functional, Model};
    /// let mut f = Functional::<f32>::new();
    /// let (x, unused) = (f.input([3])?, f.input([3])?);
    /// let y = f.apply(Dense::new(2), x)?;
    /// assert!(Model::new(f, unused, y).is_err());
    /// # Ok::<(), dendrite_nn::NnError>(())
    /// ```
    pub fn new(functional: Functional<F>, input: Tensor, output: Tensor) -> Result<Self> {
        let block = Block::new(functional, input, output)?;
        let summary = FunctionalSummary::of(&block)?;
        let mut inner = Sequential::<F>::default().named("functional");
        inner.add(block);
        Ok(Model { inner, summary })
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
            summary: self.summary,
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

    /// As [`Sequential::compile`].
    ///
    /// # Errors
    /// As [`Sequential::compile`].
    pub fn compile(
        &mut self,
        optimizer: impl Optimizer<F> + 'static,
        loss: Loss,
        metrics: &[Metric],
    ) -> Result<()> {
        self.inner.compile(optimizer, loss, metrics)
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
        let path = path.as_ref();
        let inner = Sequential::load(path)?;
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
        let block = super::config::from_json::<F>(&config).map_err(bad)?;
        let summary = FunctionalSummary::of(&block)?;
        Ok(Model { inner, summary })
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

/// One step of a [`FunctionalSummary`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionalRow {
    /// `input_1`, the layer's name, or `add_1`.
    pub name: String,
    /// `InputLayer`, the layer's type, or the merge (`Add`).
    pub kind: String,
    /// The output shape without the batch dimension.
    pub output_shape: Vec<usize>,
    /// Values this step adds (trainable and not; 0 for a shared layer's later calls).
    pub params: usize,
    /// The steps it reads.
    pub connected_to: Vec<String>,
}

/// A Functional model's summary; `Display` prints Keras' table with its "Connected to"
/// column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionalSummary {
    rows: Vec<FunctionalRow>,
    trainable: usize,
    non_trainable: usize,
}

impl FunctionalSummary {
    fn of<F: Float>(block: &Block<F>) -> Result<Self> {
        let mut rows = Vec::new();
        let (mut trainable, mut non_trainable) = (0usize, 0usize);
        let mut seen = vec![false; block.layers.len()];
        for (i, node) in block
            .nodes
            .iter()
            .enumerate()
            .filter(|&(i, _)| block.needed[i])
        {
            let (kind, params, reads) = match &node.step {
                Step::Input => ("InputLayer".to_owned(), 0, Vec::new()),
                Step::Merge { merge, inputs } => (capitalized(merge.name()), 0, inputs.clone()),
                Step::Call { layer, input } => {
                    let (name, l) = &block.layers[*layer];
                    let shape = &block.nodes[*input].shape;
                    let overflow = || NnError::ParamCountOverflow {
                        layer: name.clone(),
                        kind: l.kind(),
                        input: shape.clone(),
                    };
                    let first = !std::mem::replace(&mut seen[*layer], true);
                    let (t, n) = match first {
                        true => (
                            l.param_count(shape).ok_or_else(overflow)?,
                            l.non_trainable_count(shape).ok_or_else(overflow)?,
                        ),
                        false => (0, 0),
                    };
                    trainable = trainable.checked_add(t).ok_or_else(overflow)?;
                    non_trainable = non_trainable.checked_add(n).ok_or_else(overflow)?;
                    trainable.checked_add(non_trainable).ok_or_else(overflow)?;
                    (l.kind().to_owned(), t + n, vec![*input])
                }
            };
            rows.push(FunctionalRow {
                name: block.name_of(i),
                kind,
                output_shape: node.shape.clone(),
                params,
                connected_to: reads.iter().map(|&j| block.name_of(j)).collect(),
            });
        }
        Ok(FunctionalSummary {
            rows,
            trainable,
            non_trainable,
        })
    }

    /// The rows, one per step the output needs.
    pub fn rows(&self) -> &[FunctionalRow] {
        &self.rows
    }

    /// Total values, trainable and not.
    pub fn total_params(&self) -> usize {
        self.trainable + self.non_trainable
    }

    /// Values trained by gradients.
    pub fn trainable_params(&self) -> usize {
        self.trainable
    }

    /// Values no gradient updates.
    pub fn non_trainable_params(&self) -> usize {
        self.non_trainable
    }
}

fn capitalized(name: &str) -> String {
    let mut c = name.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

impl fmt::Display for FunctionalSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let labels: Vec<String> = self
            .rows
            .iter()
            .map(|r| format!("{} ({})", r.name, r.kind))
            .collect();
        let width = labels
            .iter()
            .map(|l| l.chars().count())
            .fold(27, usize::max);
        let rule = "_".repeat(width + 64);
        writeln!(f, "Model: \"functional\"")?;
        writeln!(f, "{rule}")?;
        let head = ("Layer (type)", "Output Shape", "Param #", "Connected to");
        writeln!(
            f,
            " {:<w$} {:<22}{:>9}  {}",
            head.0,
            head.1,
            head.2,
            head.3,
            w = width
        )?;
        writeln!(f, "{}", "=".repeat(width + 64))?;
        for (i, (r, label)) in self.rows.iter().zip(&labels).enumerate() {
            let shape = format!(
                "(None, {})",
                r.output_shape
                    .iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let params = crate::model::thousands(r.params);
            let reads = r.connected_to.join(", ");
            let line = format!(" {label:<width$} {shape:<22}{params:>9}  {reads}");
            writeln!(f, "{}", line.trim_end())?;
            if i + 1 < self.rows.len() {
                writeln!(f)?;
            }
        }
        writeln!(f, "{}", "=".repeat(width + 64))?;
        writeln!(
            f,
            "Total params: {}",
            crate::model::thousands(self.total_params())
        )?;
        writeln!(
            f,
            "Trainable params: {}",
            crate::model::thousands(self.trainable)
        )?;
        writeln!(
            f,
            "Non-trainable params: {}",
            crate::model::thousands(self.non_trainable)
        )?;
        write!(f, "{rule}")
    }
}
