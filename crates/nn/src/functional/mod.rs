//! Functional models: layers applied to symbolic tensors, so that a model can branch, merge
//! (residual connections) and share layers, as Keras' Functional API.
//!
//! A [`Functional`] builder records each step as it is written: an input declared by shape,
//! a layer applied to a tensor (its output shape checked there and then, by the layer's shape
//! rule), a merge of tensors. [`Model::new`] then checks that the output depends on the input
//! and wraps the recorded graph as one block that a [`Sequential`](crate::Sequential) model
//! trains, so everything a `Sequential` does (compile, fit with its training and inference
//! graphs, evaluate, predict, callbacks, model files, ONNX) a [`Model`] does too.
//!
//! Tensors are created only from an input or from earlier tensors, so a cycle cannot be
//! written down. A layer added once with [`Functional::layer`] and called twice shares its
//! weights: the second call is built inside
//! [`Graph::with_shared_parameters`](dendrite_graph::Graph::with_shared_parameters).

mod block;
mod config;
mod data;
mod model;
mod summary;

pub use data::{Inputs, MultiData};
pub use model::{Model, Tensors};
pub use summary::{FunctionalRow, FunctionalSummary};

/// The registry's factory for a Functional block (inside a model file).
pub(crate) fn block_from_config<F: Float>(
    config: &serde_json::Value,
    registry: &crate::LayerRegistry<F>,
) -> std::result::Result<block::Block<F>, crate::ConfigError> {
    config::from_json(config, registry)
}

use crate::error::{NnError, Result};
use crate::float::Float;
use crate::layer::Layer;
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT_BUILDER: AtomicU32 = AtomicU32::new(1);

/// A symbolic tensor of a [`Functional`] builder: an input, a layer's output or a merge.
///
/// ```
/// let mut f = dendrite_nn::Functional::<f32>::new();
/// let x = f.input([784])?;
/// assert_eq!(f.shape(x)?, &[784]);
/// # Ok::<(), dendrite_nn::NnError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tensor {
    builder: u32,
    index: usize,
}

/// A layer added to a [`Functional`] builder, which [`Functional::call`] applies to tensors;
/// every call reads the same weights.
///
/// ```
/// use dendrite_nn::{Dense, Functional};
/// let mut f = Functional::<f32>::new();
/// let shared = f.layer(Dense::new(4));
/// let (a, b) = (f.input([4])?, f.input([4])?);
/// let (ya, yb) = (f.call(shared, a)?, f.call(shared, b)?);
/// # let _ = (ya, yb);
/// # Ok::<(), dendrite_nn::NnError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerRef {
    builder: u32,
    index: usize,
}

/// How [`Functional::merge`] combines tensors: elementwise (equal shapes) or joined along a
/// sample axis.
///
/// ```
/// assert_eq!(dendrite_nn::Merge::Add.name(), "add");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Merge {
    /// The elementwise sum (Keras' `add`).
    Add,
    /// The elementwise product (`multiply`).
    Multiply,
    /// The elementwise mean (`average`).
    Average,
    /// Joined along a sample axis, negative counting from the end (`concatenate`).
    Concatenate {
        /// The sample axis (the batch axis is not counted).
        axis: isize,
    },
}

impl Merge {
    /// The merge's Keras name.
    ///
    /// ```
    /// assert_eq!(dendrite_nn::Merge::Concatenate { axis: -1 }.name(), "concatenate");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Merge::Add => "add",
            Merge::Multiply => "multiply",
            Merge::Average => "average",
            Merge::Concatenate { .. } => "concatenate",
        }
    }

    /// The merged shape of `shapes`, or why they cannot be merged.
    fn shape(self, shapes: &[&[usize]]) -> std::result::Result<Vec<usize>, &'static str> {
        let first = shapes.first().ok_or("a merge needs at least two tensors")?;
        if shapes.len() < 2 {
            return Err("a merge needs at least two tensors");
        }
        let Merge::Concatenate { axis } = self else {
            return match shapes.iter().all(|s| s == first) {
                true => Ok(first.to_vec()),
                false => Err("an elementwise merge needs tensors of one shape"),
            };
        };
        let axis =
            sample_axis(axis, first.len()).ok_or("the axis is not an axis of the samples")?;
        let mut joined = first.to_vec();
        for s in &shapes[1..] {
            let fits = s.len() == first.len()
                && s.iter()
                    .zip(*first)
                    .enumerate()
                    .all(|(a, (x, y))| a == axis || x == y);
            if !fits {
                return Err("tensors joined along an axis must agree on every other axis");
            }
            joined[axis] = joined[axis]
                .checked_add(s[axis])
                .ok_or("the joined axis overflows")?;
        }
        Ok(joined)
    }
}

/// `axis` of a sample of `rank` axes, negative counting from the end.
fn sample_axis(axis: isize, rank: usize) -> Option<usize> {
    let rank = isize::try_from(rank).ok()?;
    let a = if axis < 0 { axis + rank } else { axis };
    (0..rank).contains(&a).then_some(a as usize)
}

/// One recorded step.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Input,
    Call { layer: usize, input: usize },
    Merge { merge: Merge, inputs: Vec<usize> },
}

/// A recorded tensor: how it is computed and its sample shape.
#[derive(Debug, Clone, PartialEq)]
struct Node {
    step: Step,
    shape: Vec<usize>,
}

/// Records a Functional model: inputs, layer calls and merges (the Functional API).
///
/// ```
/// use dendrite_nn::{Activation, Dense, Functional, Model};
/// let mut f = Functional::<f32>::new();
/// let x = f.input([784])?;
/// let h = f.apply(Dense::new(64).activation(Activation::Relu), x)?;
/// let r = f.apply(Dense::new(64), h)?;
/// let sum = f.add(&[h, r])?; // a residual connection
/// let y = f.apply(Dense::new(10).activation(Activation::Softmax), sum)?;
/// let model = Model::new(f, x, y)?;
/// assert_eq!(model.summary()?.total_params(), 784 * 64 + 64 + 64 * 64 + 64 + 64 * 10 + 10);
/// # Ok::<(), dendrite_nn::NnError>(())
/// ```
#[derive(Debug)]
pub struct Functional<F: Float = f32> {
    id: u32,
    layers: Vec<(String, Box<dyn Layer<F>>)>,
    nodes: Vec<Node>,
}

impl<F: Float> Default for Functional<F> {
    fn default() -> Self {
        Functional {
            id: NEXT_BUILDER.fetch_add(1, Ordering::Relaxed),
            layers: Vec::new(),
            nodes: Vec::new(),
        }
    }
}

impl<F: Float> Functional<F> {
    /// An empty builder.
    ///
    /// ```
    /// let f = dendrite_nn::Functional::<f32>::new();
    /// # let _ = f;
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Declares an input with samples of `shape` (Keras' `keras.Input(shape=...)`).
    ///
    /// # Errors
    /// [`NnError::LayerInput`] for a shape with no axis, more than 7, or an axis of size 0.
    ///
    /// ```
    /// let mut f = dendrite_nn::Functional::<f32>::new();
    /// assert!(f.input([28, 28, 1]).is_ok());
    /// assert!(f.input([0]).is_err());
    /// # Ok::<(), dendrite_nn::NnError>(())
    /// ```
    pub fn input(&mut self, shape: impl Into<Vec<usize>>) -> Result<Tensor> {
        let shape = shape.into();
        let fits = !shape.is_empty() && shape.len() <= 7 && !shape.contains(&0);
        if !fits || crate::model::checked_product(&shape).is_none() {
            return Err(NnError::LayerInput {
                layer: format!("input_{}", self.nodes.len() + 1),
                shape,
                reason: "an input takes samples of 1 to 7 axes, none of size 0, with a size that fits in usize",
            });
        }
        Ok(self.push(Step::Input, shape))
    }

    /// Adds `layer` without calling it, for calling it on several tensors (shared weights).
    /// It is named like a `Sequential` layer (`dense_1`) unless it names itself.
    ///
    /// ```
    /// let mut f = dendrite_nn::Functional::<f32>::new();
    /// let d = f.layer(dendrite_nn::Dense::new(3));
    /// assert_eq!(f.layer_name(d)?, "dense_1");
    /// # Ok::<(), dendrite_nn::NnError>(())
    /// ```
    pub fn layer(&mut self, layer: impl Layer<F> + 'static) -> LayerRef {
        let name = match layer.name() {
            Some(name) => name.to_owned(),
            None => {
                let base = crate::model::snake_case(layer.kind());
                let mut k = 1;
                while self.layers.iter().any(|(n, _)| *n == format!("{base}_{k}")) {
                    k += 1;
                }
                format!("{base}_{k}")
            }
        };
        self.layer_boxed(&name, Box::new(layer))
    }

    /// Adds a boxed layer under `name`.
    pub(crate) fn layer_boxed(&mut self, name: &str, layer: Box<dyn Layer<F>>) -> LayerRef {
        self.layers.push((name.to_owned(), layer));
        LayerRef {
            builder: self.id,
            index: self.layers.len() - 1,
        }
    }

    /// Applies an added layer to `x`; its output shape is checked now.
    ///
    /// # Errors
    /// [`NnError::ForeignTensor`] for a tensor or layer of another builder;
    /// [`NnError::LayerInput`] naming the layer when it cannot take `x`'s shape.
    ///
    /// ```
    /// use dendrite_nn::{Dense, Flatten, Functional};
    /// let mut f = Functional::<f32>::new();
    /// let x = f.input([28, 28, 1])?;
    /// let dense = f.layer(Dense::new(10));
    /// assert!(f.call(dense, x).is_err()); // Dense takes vectors: flatten first
    /// let flat = f.apply(Flatten::new(), x)?;
    /// let y = f.call(dense, flat)?;
    /// assert_eq!(f.shape(y)?, &[10]);
    /// # Ok::<(), dendrite_nn::NnError>(())
    /// ```
    pub fn call(&mut self, layer: LayerRef, x: Tensor) -> Result<Tensor> {
        let input = self.index(x)?;
        if layer.builder != self.id || layer.index >= self.layers.len() {
            return Err(NnError::ForeignTensor {
                what: "layer".into(),
            });
        }
        let (name, l) = &self.layers[layer.index];
        let shape = &self.nodes[input].shape;
        let out = l.output_shape(shape).map_err(|e| e.for_layer(name))?;
        l.param_count(shape)
            .ok_or_else(|| NnError::ParamCountOverflow {
                layer: name.clone(),
                kind: l.kind(),
                input: shape.clone(),
            })?;
        let step = Step::Call {
            layer: layer.index,
            input,
        };
        Ok(self.push(step, out))
    }

    /// Adds `layer` and applies it to `x` (Keras' `layer(x)`).
    ///
    /// # Errors
    /// As [`Functional::call`].
    ///
    /// ```
    /// let mut f = dendrite_nn::Functional::<f32>::new();
    /// let x = f.input([3])?;
    /// let y = f.apply(dendrite_nn::Dense::new(2), x)?;
    /// assert_eq!(f.shape(y)?, &[2]);
    /// # Ok::<(), dendrite_nn::NnError>(())
    /// ```
    pub fn apply(&mut self, layer: impl Layer<F> + 'static, x: Tensor) -> Result<Tensor> {
        let layer = self.layer(layer);
        self.call(layer, x)
    }

    /// Merges `tensors` (at least two) as `merge` says.
    ///
    /// # Errors
    /// [`NnError::MergeShapes`] naming the merge and the shapes when they do not fit;
    /// [`NnError::ForeignTensor`] for a tensor of another builder.
    ///
    /// ```
    /// use dendrite_nn::{Functional, Merge};
    /// let mut f = Functional::<f32>::new();
    /// let (a, b) = (f.input([3])?, f.input([2])?);
    /// let joined = f.merge(Merge::Concatenate { axis: -1 }, &[a, b])?;
    /// assert_eq!(f.shape(joined)?, &[5]);
    /// assert!(f.merge(Merge::Add, &[a, b]).is_err());
    /// # Ok::<(), dendrite_nn::NnError>(())
    /// ```
    pub fn merge(&mut self, merge: Merge, tensors: &[Tensor]) -> Result<Tensor> {
        let inputs: Vec<usize> = tensors
            .iter()
            .map(|&t| self.index(t))
            .collect::<Result<_>>()?;
        let shapes: Vec<&[usize]> = inputs
            .iter()
            .map(|&i| self.nodes[i].shape.as_slice())
            .collect();
        let shape = merge
            .shape(&shapes)
            .map_err(|reason| NnError::MergeShapes {
                merge: merge.name(),
                shapes: shapes.iter().map(|s| s.to_vec()).collect(),
                reason,
            })?;
        Ok(self.push(Step::Merge { merge, inputs }, shape))
    }

    /// The elementwise sum of `tensors` (Keras' `layers.add`).
    ///
    /// # Errors
    /// As [`Functional::merge`].
    ///
    /// ```
    /// let mut f = dendrite_nn::Functional::<f32>::new();
    /// let x = f.input([3])?;
    /// let twice = f.add(&[x, x])?;
    /// # let _ = twice;
    /// # Ok::<(), dendrite_nn::NnError>(())
    /// ```
    pub fn add(&mut self, tensors: &[Tensor]) -> Result<Tensor> {
        self.merge(Merge::Add, tensors)
    }

    /// The elementwise product of `tensors` (Keras' `layers.multiply`).
    ///
    /// # Errors
    /// As [`Functional::merge`].
    pub fn multiply(&mut self, tensors: &[Tensor]) -> Result<Tensor> {
        self.merge(Merge::Multiply, tensors)
    }

    /// The elementwise mean of `tensors` (Keras' `layers.average`).
    ///
    /// # Errors
    /// As [`Functional::merge`].
    pub fn average(&mut self, tensors: &[Tensor]) -> Result<Tensor> {
        self.merge(Merge::Average, tensors)
    }

    /// `tensors` joined along the sample axis `axis`, negative counting from the end (Keras'
    /// `layers.concatenate`, whose default axis is -1).
    ///
    /// # Errors
    /// As [`Functional::merge`].
    ///
    /// ```
    /// let mut f = dendrite_nn::Functional::<f32>::new();
    /// let (a, b) = (f.input([4, 2])?, f.input([4, 3])?);
    /// let joined = f.concatenate(&[a, b], -1)?;
    /// assert_eq!(f.shape(joined)?, &[4, 5]);
    /// # Ok::<(), dendrite_nn::NnError>(())
    /// ```
    pub fn concatenate(&mut self, tensors: &[Tensor], axis: isize) -> Result<Tensor> {
        self.merge(Merge::Concatenate { axis }, tensors)
    }

    /// The sample shape of `x`.
    ///
    /// # Errors
    /// [`NnError::ForeignTensor`] for a tensor of another builder.
    ///
    /// ```
    /// let mut f = dendrite_nn::Functional::<f32>::new();
    /// let x = f.input([2, 3])?;
    /// assert_eq!(f.shape(x)?, &[2, 3]);
    /// # Ok::<(), dendrite_nn::NnError>(())
    /// ```
    pub fn shape(&self, x: Tensor) -> Result<&[usize]> {
        Ok(&self.nodes[self.index(x)?].shape)
    }

    /// The name of an added layer.
    ///
    /// # Errors
    /// [`NnError::ForeignTensor`] for a layer of another builder.
    ///
    /// ```
    /// let mut f = dendrite_nn::Functional::<f32>::new();
    /// let d = f.layer(dendrite_nn::Dense::new(3).named("hidden"));
    /// assert_eq!(f.layer_name(d)?, "hidden");
    /// # Ok::<(), dendrite_nn::NnError>(())
    /// ```
    pub fn layer_name(&self, layer: LayerRef) -> Result<&str> {
        match (layer.builder == self.id)
            .then(|| self.layers.get(layer.index))
            .flatten()
        {
            Some((name, _)) => Ok(name),
            None => Err(NnError::ForeignTensor {
                what: "layer".into(),
            }),
        }
    }

    fn push(&mut self, step: Step, shape: Vec<usize>) -> Tensor {
        self.nodes.push(Node { step, shape });
        Tensor {
            builder: self.id,
            index: self.nodes.len() - 1,
        }
    }

    fn index(&self, x: Tensor) -> Result<usize> {
        match x.builder == self.id && x.index < self.nodes.len() {
            true => Ok(x.index),
            false => Err(NnError::ForeignTensor {
                what: "tensor".into(),
            }),
        }
    }
}
