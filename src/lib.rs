//! # Dendrite
//!
//! Computational graphs, reverse-mode automatic differentiation and Keras-like neural networks
//! in Rust. This crate is the facade over the three crates that do the work:
//!
//! - [`graph`] (`dendrite-graph`): a shape-checked graph of tensor ops over ndarray, compiled
//!   into a buffer-reusing execution plan;
//! - [`autodiff`] (`dendrite-autodiff`): gradients as new nodes of the same graph, so they can
//!   be compiled, inspected and differentiated again;
//! - [`nn`] (`dendrite-nn`): layers, losses, optimizers, metrics, the `Sequential` model,
//!   safetensors checkpoints and the MNIST data module.
//!
//! [`prelude`] brings the names most programs use into scope.
//!
//! ```
//! use dendrite::prelude::*;
//! use ndarray::array;
//!
//! // A gradient, by hand: d/dx Σ x² = 2x.
//! let mut g = Graph::<f64>::new();
//! let x = g.input("x", [3])?;
//! let sq = g.square(x)?;
//! let loss = g.sum_all(sq)?;
//! let dx = grad(&mut g, loss, &[x])?;
//! let mut plan = compile(&g, &dx)?;
//! let xv = array![1.0, -2.0, 0.5].into_dyn();
//! assert_eq!(plan.run(&g, &[("x", xv.view())])?.get(0)?, array![2.0, -4.0,
//! 1.0].into_dyn().view());
//!
//! // A model, Keras style.
//! let mut model = Sequential::new();
//! model.add(Dense::new(32).input_dim(784).activation(Activation::Relu));
//! model.add(Dense::new(10).activation(Activation::Softmax));
//! model.compile(Adam::default(), Loss::SparseCategoricalCrossentropy, &[Metric::Accuracy])?;
//! assert_eq!(model.summary()?.total_params(), 25_450);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub use dendrite_autodiff as autodiff;
pub use dendrite_graph as graph;
pub use dendrite_nn as nn;
/// The ndarray version the crates are built on (0.16), so that arrays passed in and out have
/// the same type: `use dendrite::ndarray;` rather than a separate `ndarray` dependency.
pub use ndarray;

/// The names most programs use: graphs and plans, `grad`, `hvp`, the gradient checker, DOT
/// export, and the nn crate's model, layers, losses, metrics, initializers, regularizers,
/// optimizers and data.
///
/// ```
/// use dendrite::prelude::*;
/// let model: Sequential = Sequential::new();
/// assert!(model.is_empty());
/// // An optimizer chosen at run time.
/// let optimizer: Box<dyn Optimizer<f32>> = Box::new(Sgd::new(0.1).clipnorm(1.0));
/// assert_eq!(optimizer.name(), "sgd");
/// ```
pub mod prelude {
    pub use dendrite_autodiff::{check_gradients, grad, hvp, vjp, AutodiffError};
    pub use dendrite_graph::{compile, to_dot, Graph, GraphError, NodeId, Plan};
    pub use dendrite_nn::data::{load_mnist, mnist_dir_from_env, synthetic_mnist, Dataset, Mnist};
    pub use dendrite_nn::{
        Activation, Adam, AdamW, Clipping, Dense, EarlyStopping, FitConfig, History, Initializer,
        Layer, Loss, LossFn, Metric, MetricFn, Monitor, NnError, Optimizer, Regularizer, RmsProp,
        Schedule, Sequential, Sgd,
    };
}

/// The README's example, compiled and run as a doctest so it cannot drift from the code.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
