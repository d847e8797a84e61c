//! # dendrite-nn
//!
//! Keras-like neural networks on top of Dendrite graphs: layers, losses, optimizers, metrics,
//! a [`Sequential`] model with `compile` / `fit` / `evaluate` / `predict` / `summary`,
//! safetensors checkpoints, and the [`data`] module (MNIST reader, synthetic digits, batching).
//!
//! The Keras reference program reads almost line for line:
//!
//! ```
//! use dendrite_nn::data::synthetic_mnist;
//! use dendrite_nn::{Activation, Adam, Dense, FitConfig, Loss, Metric, Sequential};
//!
//! let mnist = synthetic_mnist(0)?; // procedurally drawn digits, not MNIST
//! let (train, test) = (mnist.train.take(512), mnist.test.take(128));
//!
//! let mut model = Sequential::new();
//! model.add(Dense::new(32).input_dim(784).activation(Activation::Relu));
//! model.add(Dense::new(10).activation(Activation::Softmax));
//! model.compile(Adam::default(), Loss::SparseCategoricalCrossentropy, &[Metric::Accuracy])?;
//! assert_eq!(model.summary()?.total_params(), 25_450);
//!
//! let history = model.fit(&train, FitConfig::default().epochs(2).batch_size(32).verbosity(0))?;
//! let result = model.evaluate(&test, 32)?;
//! assert!(history.loss[1] < history.loss[0]);
//! assert!(result.accuracy.is_some());
//! # Ok::<(), dendrite_nn::NnError>(())
//! ```
//!
//! How it runs: `compile` builds the forward graph, the loss, the metrics and the gradients
//! once, as nodes of one [`dendrite_graph::Graph`], and compiles them into plans; `fit` runs
//! the training plan once per batch and updates the parameters in place. See [`Sequential`].
#![deny(missing_docs)]

mod activation;
mod batch_norm;
mod checkpoint;
mod conv;
pub mod data;
pub mod datasets;
mod dense;
mod dropout;
mod embedding;
mod error;
mod file_read;
mod float;
mod functional;
mod init;
mod initializer;
mod input;
mod layer;
mod loss;
mod metrics;
mod model;
mod normalization;
mod optim;
mod outputs;
mod persist;
mod pooling;
mod regularizer;
mod shape;

pub use activation::Activation;
pub use batch_norm::BatchNormalization;
pub use checkpoint::write_atomic;
pub use conv::Conv2D;
pub use dense::Dense;
pub use dropout::Dropout;
pub use embedding::Embedding;
pub use error::{NnError, Result};
pub use float::Float;
pub use functional::{
    Functional, FunctionalRow, FunctionalSummary, Inputs, LayerRef, Merge, Model, MultiData,
    Tensor, Tensors,
};
pub use initializer::{CustomInitializer, InitFn, Initializer};
pub use input::{Data, Features, Targets, SCAN_CHUNK};
pub use layer::{Init, Layer, LayerNodes, Mode, PreActivation};
pub use loss::{CustomLoss, Loss, LossFn, EPSILON};
pub use metrics::{CustomMetric, Mean, Metric, MetricFn};
pub use model::{
    BatchLogs, Callback, Control, CsvLogger, EarlyStopping, EpochLogs, Evaluation, FitConfig,
    History, LearningRateScheduler, ModelCheckpoint, Monitor, Sequential, Summary, SummaryRow,
    TerminateOnNaN, INPUT_NAME, LABELS_NAME, STEP_NAME, TARGETS_NAME,
};
pub use normalization::LayerNormalization;
pub use optim::{Adam, AdamW, Clipping, Optimizer, RmsProp, Schedule, Sgd};
pub use outputs::{Head, OutputLoss, OutputLosses, OutputMetric};
pub use persist::{ConfigError, LayerFactory, LayerRegistry, ModelFileError};
pub use pooling::{AveragePooling2D, GlobalAveragePooling2D, MaxPooling2D};
pub use regularizer::Regularizer;
pub use shape::{Flatten, Reshape};
