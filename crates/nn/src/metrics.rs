//! Metrics: accuracies computed inside the graph, and a running mean to average them (and the
//! loss) over an epoch.

use crate::activation::Activation;
use crate::error::Result;
use crate::float::Float;
use crate::layer::LayerNodes;
use crate::loss::Loss;
use dendrite_graph::{Graph, NodeId};

/// A metric reported during training and evaluation.
///
/// `Accuracy` picks the right accuracy for the loss, as Keras' `"accuracy"` does: sparse
/// categorical for the sparse loss, binary for a single output, categorical otherwise.
///
/// ```
/// use dendrite_nn::{Loss, Metric};
/// assert_eq!(Metric::Accuracy.resolve(Loss::SparseCategoricalCrossentropy, 10), Metric::SparseCategoricalAccuracy);
/// assert_eq!(Metric::Accuracy.resolve(Loss::BinaryCrossentropy, 1), Metric::BinaryAccuracy);
/// assert_eq!(Metric::Accuracy.resolve(Loss::CategoricalCrossentropy, 10), Metric::CategoricalAccuracy);
/// ```
///
/// An accuracy is built as a graph node holding the *number* of correct predictions in the
/// batch (`Σ [argmax p = y]`), fetched with the loss on every step. Summing counts and dividing
/// by the number of samples at the end of the epoch gives the exact epoch accuracy, with no
/// per-step allocation and no copy of the predictions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// The accuracy that fits the loss (see [`Metric::resolve`]).
    Accuracy,
    /// `argmax p = y` for class-index targets.
    SparseCategoricalAccuracy,
    /// `argmax p = argmax y` for one-hot targets.
    CategoricalAccuracy,
    /// `[p > 0.5] = y`, element by element.
    BinaryAccuracy,
}

impl Metric {
    /// The metric's name, as Keras spells it.
    ///
    /// ```
    /// assert_eq!(dendrite_nn::Metric::BinaryAccuracy.name(), "binary_accuracy");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Metric::Accuracy => "accuracy",
            Metric::SparseCategoricalAccuracy => "sparse_categorical_accuracy",
            Metric::CategoricalAccuracy => "categorical_accuracy",
            Metric::BinaryAccuracy => "binary_accuracy",
        }
    }

    /// Replaces `Accuracy` by the accuracy matching `loss` and an output of `width` values.
    ///
    /// ```
    /// use dendrite_nn::{Loss, Metric};
    /// assert_eq!(Metric::BinaryAccuracy.resolve(Loss::MeanSquaredError, 3), Metric::BinaryAccuracy);
    /// ```
    pub fn resolve(self, loss: Loss, width: usize) -> Metric {
        match self {
            Metric::Accuracy if loss == Loss::SparseCategoricalCrossentropy => {
                Metric::SparseCategoricalAccuracy
            }
            Metric::Accuracy if width == 1 => Metric::BinaryAccuracy,
            Metric::Accuracy => Metric::CategoricalAccuracy,
            other => other,
        }
    }

    /// How many predictions one batch of `batch` samples with `width` outputs holds: the
    /// denominator of the accuracy.
    ///
    /// ```
    /// use dendrite_nn::Metric;
    /// assert_eq!(Metric::SparseCategoricalAccuracy.count(32, 10), 32);
    /// assert_eq!(Metric::BinaryAccuracy.count(32, 3), 96);
    /// ```
    pub fn count(self, batch: usize, width: usize) -> usize {
        match self {
            Metric::BinaryAccuracy => batch * width,
            _ => batch,
        }
    }

    /// Appends the number of correct predictions of `nodes` (a model's last layer) against
    /// `targets` to the graph, as a scalar node. After a softmax the class is read from the
    /// logits (the same argmax, without computing the probabilities). `Accuracy` must have been
    /// [resolved](Metric::resolve) (it counts as categorical otherwise).
    ///
    /// # Errors
    /// Graph errors when `targets` does not fit the metric.
    ///
    /// ```
    /// use dendrite_graph::compile;
    /// use dendrite_nn::{LayerNodes, Metric};
    /// use ndarray::array;
    /// let mut g = dendrite_graph::Graph::<f32>::new();
    /// let p = g.input("p", [None, Some(3)])?;
    /// let y = g.input("y", [None])?;
    /// let correct = Metric::SparseCategoricalAccuracy.build(&mut g, &LayerNodes::new(p), y)?;
    /// let mut plan = compile(&g, &[correct])?;
    /// let pv = array![[0.1_f32, 0.7, 0.2], [0.5, 0.3, 0.2]].into_dyn();
    /// let yv = array![1.0_f32, 2.0].into_dyn();
    /// assert_eq!(plan.run(&g, &[("p", pv.view()), ("y", yv.view())])?.scalar(0)?, 1.0);
    /// # Ok::<(), dendrite_nn::NnError>(())
    /// ```
    pub fn build<F: Float>(
        self,
        g: &mut Graph<F>,
        nodes: &LayerNodes,
        targets: NodeId,
    ) -> Result<NodeId> {
        // A metric refused half-way leaves the graph as it was.
        g.atomically(|g| self.build_nodes(g, nodes, targets))
    }

    fn build_nodes<F: Float>(
        self,
        g: &mut Graph<F>,
        nodes: &LayerNodes,
        targets: NodeId,
    ) -> Result<NodeId> {
        let p = nodes.output;
        let axis = g.shape(p)?.rank().saturating_sub(1);
        // Softmax keeps the order of its inputs, so the predicted class is the argmax of the
        // logits: the training plan then need not compute the probabilities at all.
        let scores = match nodes.pre_activation {
            Some(pre) if pre.activation == Activation::Softmax => pre.node,
            _ => p,
        };
        let hits = match self {
            Metric::SparseCategoricalAccuracy => {
                let class = g.argmax(scores, axis)?;
                g.equal(class, targets)?
            }
            Metric::BinaryAccuracy => {
                let half = g.scalar(0.5);
                let predicted = g.greater(p, half)?;
                g.equal(predicted, targets)?
            }
            Metric::Accuracy | Metric::CategoricalAccuracy => {
                let class = g.argmax(scores, axis)?;
                let truth = g.argmax(targets, axis)?;
                g.equal(class, truth)?
            }
        };
        Ok(g.sum_all(hits)?)
    }
}

/// A weighted running mean: `Σ wᵢ vᵢ / Σ wᵢ`, in `f64`.
///
/// The epoch loss is the mean of the batch losses weighted by batch size, so a shorter last
/// batch counts for what it holds.
///
/// ```
/// let mut mean = dendrite_nn::Mean::default();
/// mean.update(1.0, 3.0);
/// mean.update(3.0, 1.0);
/// assert_eq!(mean.result(), Some(1.5));
/// mean.reset();
/// assert_eq!(mean.result(), None);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Mean {
    total: f64,
    weight: f64,
}

impl Mean {
    /// Adds `value` with weight `weight`.
    ///
    /// ```
    /// let mut mean = dendrite_nn::Mean::default();
    /// mean.update(2.0, 1.0);
    /// assert_eq!(mean.result(), Some(2.0));
    /// ```
    pub fn update(&mut self, value: f64, weight: f64) {
        self.total += value * weight;
        self.weight += weight;
    }

    /// Adds a sum of values and the number of values it sums (a batch's correct count).
    ///
    /// ```
    /// let mut accuracy = dendrite_nn::Mean::default();
    /// accuracy.add_sum(30.0, 32.0);
    /// accuracy.add_sum(2.0, 4.0);
    /// assert_eq!(accuracy.result(), Some(32.0 / 36.0));
    /// ```
    pub fn add_sum(&mut self, sum: f64, count: f64) {
        self.total += sum;
        self.weight += count;
    }

    /// The mean so far, `None` before any weight was added.
    ///
    /// ```
    /// assert_eq!(dendrite_nn::Mean::default().result(), None);
    /// ```
    pub fn result(&self) -> Option<f64> {
        (self.weight > 0.0).then(|| self.total / self.weight)
    }

    /// Forgets everything.
    ///
    /// ```
    /// let mut mean = dendrite_nn::Mean::default();
    /// mean.update(1.0, 1.0);
    /// mean.reset();
    /// assert_eq!(mean, dendrite_nn::Mean::default());
    /// ```
    pub fn reset(&mut self) {
        *self = Mean::default();
    }
}
