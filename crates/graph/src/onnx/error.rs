//! What can stop an export, each case naming the node it is about.

use crate::GraphError;

/// Why a graph could not be exported to ONNX.
///
/// ```
/// use dendrite_graph::{onnx, Graph};
/// let mut g = Graph::<f32>::new();
/// let x = g.input("x", [2])?;
/// let step = g.scalar(0.0);
/// let noise = g.random_uniform(x, step, 7)?;
/// let err = onnx::export(&g, &[x], &[noise]).unwrap_err();
/// assert!(matches!(err, onnx::OnnxError::Unsupported { op: "random_uniform", .. }));
/// # Ok::<(), dendrite_graph::GraphError>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OnnxError {
    /// A node's primitive has no ONNX equivalent (random draws, custom ops, the gradient maps
    /// of convolution and pooling, ...) or is used in a configuration ONNX cannot express.
    #[error("node `{node}`: `{op}` cannot be exported to ONNX: {reason}")]
    Unsupported {
        /// The primitive's name.
        op: &'static str,
        /// The node's name.
        node: String,
        /// Why there is no equivalent.
        reason: String,
    },
    /// A node listed among the inputs is not an input (placeholder) node.
    #[error("node `{node}` is listed as a model input but is a `{op}`, not an input")]
    NotAnInput {
        /// The node's name.
        node: String,
        /// Its op.
        op: &'static str,
    },
    /// An input node the outputs depend on is not among the listed inputs.
    #[error("the outputs depend on input `{node}`, which is not among the listed inputs")]
    MissingInput {
        /// The input's name.
        node: String,
    },
    /// A node is listed twice among the inputs or the outputs.
    #[error("node `{node}` is listed twice among the model's {role}")]
    Duplicate {
        /// The node's name.
        node: String,
        /// `inputs` or `outputs`.
        role: &'static str,
    },
    /// No outputs were asked for.
    #[error("an ONNX model needs at least one output")]
    NoOutputs,
    /// A size does not fit ONNX's 64-bit signed integers.
    #[error("node `{node}`: size {value} does not fit in an ONNX int64")]
    SizeOverflow {
        /// The node's name.
        node: String,
        /// The size.
        value: usize,
    },
    /// A graph error (a foreign or stale handle, say).
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// Writing the encoded model failed.
    #[error("writing the ONNX model failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Results of ONNX export.
pub type Result<T> = std::result::Result<T, OnnxError>;
