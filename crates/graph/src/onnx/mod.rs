//! Export of inference graphs to ONNX, for serving with onnxruntime and other engines.
//!
//! [`export`] writes the part of a graph that `outputs` depend on as an ONNX model (IR version
//! [`IR_VERSION`], default-domain opset [`OPSET_VERSION`]):
//!
//! - each listed input becomes a graph input of the same name and declared shape, a dynamic
//!   dimension (`?`) becoming a symbolic one (`batch` on the first axis, `{input}_{axis}`
//!   elsewhere), so the file accepts any batch size;
//! - parameters and constants become initializers of the same name;
//! - every other node becomes one ONNX operator, or a few, whose result is the value of the
//!   node's name (so `dense_1/matmul` is findable in the exported graph);
//! - each output becomes a graph output named after its node.
//!
//! `f32` graphs export as `FLOAT` tensors, `f64` graphs as `DOUBLE`. A primitive without an
//! ONNX equivalent (random draws, custom ops, the gradient maps of convolution, pooling and
//! gather) is an [`OnnxError::Unsupported`] naming the node; the book's ONNX chapter tables
//! what maps to what. The protobuf messages are prost structs with the tags of the official
//! `onnx.proto` ([`proto`](self) is private; prost does the encoding).
//!
//! ```
//! use dendrite_graph::{onnx, Graph};
//! use ndarray::array;
//!
//! let mut g = Graph::<f32>::new();
//! let x = g.input("x", [None, Some(2)])?;
//! let w = g.parameter("w", array![[1.0_f32], [-1.0]].into_dyn())?;
//! let z = g.matmul(x, w)?;
//! let y = g.sigmoid(z)?;
//! let bytes = onnx::export(&g, &[x], &[y])?;
//! assert!(bytes.len() > 100);
//! # Ok::<(), onnx::OnnxError>(())
//! ```

mod builder;
mod error;
mod lower;
mod lower_shape;
mod lower_window;
mod proto;

pub use error::{OnnxError, Result};

use crate::{Dim, Element, Graph, NodeId, Op, Shape};
use builder::{elem_type, to_i64, Builder};
use prost::Message;
use proto::{
    Dimension, DimensionValue, GraphProto, ModelProto, OperatorSetIdProto, TensorShapeProto,
    TensorTypeProto, TypeProto, ValueInfoProto,
};
use std::io::Write;

/// The ONNX IR version of exported models (8: ONNX 1.10 and later read it).
pub const IR_VERSION: i64 = 8;

/// The version of the default ONNX operator set the exported operators are taken from.
pub const OPSET_VERSION: i64 = 17;

/// Exports the graph computing `outputs` from `inputs` as an encoded ONNX model.
///
/// # Errors
/// [`OnnxError::Unsupported`] for a node without an ONNX equivalent; [`OnnxError::NotAnInput`],
/// [`OnnxError::MissingInput`], [`OnnxError::Duplicate`] and [`OnnxError::NoOutputs`] for
/// lists that do not describe a model; [`OnnxError::Graph`] for foreign or stale handles.
///
/// ```
/// use dendrite_graph::{onnx, Graph};
/// let mut g = Graph::<f32>::new();
/// let x = g.input("x", [3])?;
/// let y = g.exp(x)?;
/// assert!(matches!(onnx::export(&g, &[], &[y]), Err(onnx::OnnxError::MissingInput { .. })));
/// assert!(onnx::export(&g, &[x], &[y])?.len() > 0);
/// # Ok::<(), onnx::OnnxError>(())
/// ```
pub fn export<F: Element>(
    graph: &Graph<F>,
    inputs: &[NodeId],
    outputs: &[NodeId],
) -> Result<Vec<u8>> {
    Ok(model(graph, inputs, outputs)?.encode_to_vec())
}

/// As [`export`], writing the encoded model to `writer`.
///
/// # Errors
/// Those of [`export`], and [`OnnxError::Io`] when writing fails.
///
/// ```
/// use dendrite_graph::{onnx, Graph};
/// let mut g = Graph::<f64>::new();
/// let x = g.input("x", [None, Some(4)])?;
/// let y = g.tanh(x)?;
/// let mut file = Vec::new();
/// onnx::export_to(&g, &[x], &[y], &mut file)?;
/// assert_eq!(file, onnx::export(&g, &[x], &[y])?);
/// # Ok::<(), onnx::OnnxError>(())
/// ```
pub fn export_to<F: Element>(
    graph: &Graph<F>,
    inputs: &[NodeId],
    outputs: &[NodeId],
    mut writer: impl Write,
) -> Result<()> {
    writer.write_all(&export(graph, inputs, outputs)?)?;
    Ok(())
}

/// The model: signature checked, needed nodes lowered in order, inputs and outputs declared.
fn model<F: Element>(g: &Graph<F>, inputs: &[NodeId], outputs: &[NodeId]) -> Result<ModelProto> {
    check_signature(g, inputs, outputs)?;
    let needed = needed_nodes(g, outputs)?;
    for &id in &needed {
        if matches!(g.op(id)?, Op::Input) && !inputs.contains(&id) {
            return Err(OnnxError::MissingInput {
                node: g.name(id)?.to_owned(),
            });
        }
    }
    let mut b = Builder::new::<F>(
        g.nodes()
            .filter_map(|id| g.name(id).ok().map(str::to_owned)),
    );
    for &id in &needed {
        lower::lower(&mut b, g, id)?;
    }
    let mut input = Vec::with_capacity(inputs.len());
    for &id in inputs {
        let name = g.name(id)?;
        input.push(value_info::<F>(name, g.shape(id)?, |axis| {
            if axis == 0 {
                "batch".to_owned()
            } else {
                format!("{name}_{axis}")
            }
        })?);
    }
    let mut output = Vec::with_capacity(outputs.len());
    for &id in outputs {
        let name = output_value(&mut b, g, id)?;
        output.push(value_info::<F>(&name, g.shape(id)?, |_| String::new())?);
    }
    Ok(ModelProto {
        ir_version: Some(IR_VERSION),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(OPSET_VERSION),
        }],
        producer_name: Some("dendrite".to_owned()),
        producer_version: Some(env!("CARGO_PKG_VERSION").to_owned()),
        graph: Some(GraphProto {
            node: b.nodes,
            name: Some("dendrite".to_owned()),
            initializer: b.initializers,
            input,
            output,
        }),
    })
}

/// Inputs must be input nodes, outputs at least one, neither list repeating a node.
fn check_signature<F: Element>(g: &Graph<F>, inputs: &[NodeId], outputs: &[NodeId]) -> Result<()> {
    if outputs.is_empty() {
        return Err(OnnxError::NoOutputs);
    }
    for (role, list) in [("inputs", inputs), ("outputs", outputs)] {
        for (i, &id) in list.iter().enumerate() {
            if list[..i].contains(&id) {
                return Err(OnnxError::Duplicate {
                    node: g.name(id)?.to_owned(),
                    role,
                });
            }
        }
    }
    for &id in inputs {
        let op = g.op(id)?;
        if !matches!(op, Op::Input) {
            return Err(OnnxError::NotAnInput {
                node: g.name(id)?.to_owned(),
                op: op.name(),
            });
        }
    }
    Ok(())
}

/// The nodes the outputs depend on, in insertion order (a topological order).
fn needed_nodes<F: Element>(g: &Graph<F>, outputs: &[NodeId]) -> Result<Vec<NodeId>> {
    let mut needed = vec![false; g.node_count()];
    let mut stack = outputs.to_vec();
    while let Some(id) = stack.pop() {
        g.check(id)?;
        if std::mem::replace(&mut needed[id.index()], true) {
            continue;
        }
        stack.extend(g.operands(id)?);
    }
    Ok(g.nodes().filter(|id| needed[id.index()]).collect())
}

/// The value an output is read from: the node's own, or for a leaf (an input or initializer
/// cannot also be a node's result) an `Identity` of it named `{name}:output`.
fn output_value<F: Element>(b: &mut Builder, g: &Graph<F>, id: NodeId) -> Result<String> {
    let name = g.name(id)?;
    if !g.op(id)?.is_leaf() {
        return Ok(name.to_owned());
    }
    let out = b.fresh(&format!("{name}:output"));
    b.emit("Identity", name, vec![name.to_owned()], &out, vec![]);
    Ok(out)
}

/// A tensor value's name, element type and shape; `symbol` names a dynamic axis (an empty
/// name leaves it unknown).
fn value_info<F: Element>(
    name: &str,
    shape: &Shape,
    symbol: impl Fn(usize) -> String,
) -> Result<ValueInfoProto> {
    let dim = shape
        .dims()
        .iter()
        .enumerate()
        .map(|(axis, d)| {
            let value = match d {
                Dim::Fixed(n) => Some(DimensionValue::DimValue(to_i64(name, *n)?)),
                Dim::Dynamic => Some(symbol(axis))
                    .filter(|s| !s.is_empty())
                    .map(DimensionValue::DimParam),
            };
            Ok(Dimension { value })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(ValueInfoProto {
        name: Some(name.to_owned()),
        r#type: Some(TypeProto {
            tensor_type: Some(TensorTypeProto {
                elem_type: Some(elem_type::<F>()),
                shape: Some(TensorShapeProto { dim }),
            }),
        }),
    })
}
