//! The ONNX graph under construction: nodes, initializers, and names that never collide.
//!
//! Every Dendrite node becomes the ONNX value of the same name. A node that lowers to several
//! ONNX operators names its intermediate values (and its constant operands, stored as
//! initializers) after itself with a numeric suffix, skipping any name already taken, so the
//! exported graph reads like the original and no value is defined twice.

use super::error::{OnnxError, Result};
use super::proto::{attribute_type, data_type, AttributeProto, NodeProto, TensorProto};
use crate::{Element, GraphError};
use ndarray::ArrayViewD;
use std::collections::{HashMap, HashSet};

/// The ONNX element type of `F`: `FLOAT` for `f32`, `DOUBLE` for `f64`.
pub(super) fn elem_type<F: Element>() -> i32 {
    if std::mem::size_of::<F>() == 4 {
        data_type::FLOAT
    } else {
        data_type::DOUBLE
    }
}

/// A size as an ONNX `int64`, or an error naming the node.
pub(super) fn to_i64(node: &str, value: usize) -> Result<i64> {
    i64::try_from(value).map_err(|_| OnnxError::SizeOverflow {
        node: node.to_owned(),
        value,
    })
}

/// Sizes as ONNX `int64`s.
pub(super) fn to_i64s(node: &str, values: &[usize]) -> Result<Vec<i64>> {
    values.iter().map(|&v| to_i64(node, v)).collect()
}

/// An `INT` attribute.
pub(super) fn attr_int(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.to_owned()),
        r#type: Some(attribute_type::INT),
        i: Some(value),
        ..AttributeProto::default()
    }
}

/// An `INTS` attribute.
pub(super) fn attr_ints(name: &str, values: Vec<i64>) -> AttributeProto {
    AttributeProto {
        name: Some(name.to_owned()),
        r#type: Some(attribute_type::INTS),
        ints: values,
        ..AttributeProto::default()
    }
}

/// A `STRING` attribute.
pub(super) fn attr_string(name: &str, value: &str) -> AttributeProto {
    AttributeProto {
        name: Some(name.to_owned()),
        r#type: Some(attribute_type::STRING),
        s: Some(value.as_bytes().to_vec()),
        ..AttributeProto::default()
    }
}

/// The nodes and initializers of the graph being exported.
pub(super) struct Builder {
    pub nodes: Vec<NodeProto>,
    pub initializers: Vec<TensorProto>,
    values: HashSet<String>,
    value_suffix: HashMap<String, usize>,
    node_names: HashSet<String>,
    node_suffix: HashMap<String, usize>,
    elem: i32,
    elem_bytes: usize,
}

impl Builder {
    /// An empty builder for elements of type `F`; `taken` are the value names already in use
    /// (every node name of the Dendrite graph).
    pub fn new<F: Element>(taken: impl IntoIterator<Item = String>) -> Self {
        Builder {
            nodes: Vec::new(),
            initializers: Vec::new(),
            values: taken.into_iter().collect(),
            value_suffix: HashMap::new(),
            node_names: HashSet::new(),
            node_suffix: HashMap::new(),
            elem: elem_type::<F>(),
            elem_bytes: std::mem::size_of::<F>(),
        }
    }

    /// The element type of the exported tensors.
    pub fn elem(&self) -> i32 {
        self.elem
    }

    /// A value name derived from `base` that is not yet used, now reserved: `base` itself
    /// if free, else `base:1`, `base:2`, ...
    pub fn fresh(&mut self, base: &str) -> String {
        unique(&mut self.values, &mut self.value_suffix, base)
    }

    /// A node name derived from `base` in the same way (node names are a namespace of their
    /// own).
    fn node_name(&mut self, base: &str) -> String {
        unique(&mut self.node_names, &mut self.node_suffix, base)
    }

    /// Appends `op_type(inputs) -> output`, the ONNX node named after Dendrite node `node`.
    pub fn emit(
        &mut self,
        op_type: &str,
        node: &str,
        inputs: Vec<String>,
        output: &str,
        attribute: Vec<AttributeProto>,
    ) {
        let name = self.node_name(node);
        self.nodes.push(NodeProto {
            input: inputs,
            output: vec![output.to_owned()],
            name: Some(name),
            op_type: Some(op_type.to_owned()),
            attribute,
        });
    }

    /// Appends `op_type(inputs)` with a fresh output value for Dendrite node `node`, and
    /// returns that value's name.
    pub fn step(
        &mut self,
        op_type: &str,
        node: &str,
        inputs: Vec<String>,
        attribute: Vec<AttributeProto>,
    ) -> String {
        let out = self.fresh(node);
        self.emit(op_type, node, inputs, &out, attribute);
        out
    }

    /// An `int64` constant operand of shape `dims` (an initializer), returning its name.
    pub fn int64s(&mut self, node: &str, values: &[i64], dims: &[i64]) -> String {
        let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let name = self.fresh(node);
        self.initializers
            .push(tensor(&name, data_type::INT64, dims, raw));
        name
    }

    /// A constant operand of the element type, of shape `dims`, returning its name.
    pub fn floats(&mut self, node: &str, values: &[f64], dims: &[i64]) -> String {
        let mut raw = Vec::with_capacity(values.len() * self.elem_bytes);
        for &v in values {
            self.push_elem(&mut raw, v);
        }
        let name = self.fresh(node);
        self.initializers.push(tensor(&name, self.elem, dims, raw));
        name
    }

    /// A scalar constant of the element type.
    pub fn scalar(&mut self, node: &str, value: f64) -> String {
        self.floats(node, &[value], &[])
    }

    /// A Dendrite leaf's value as the initializer named `name`. The bytes are reserved
    /// fallibly, so a value too large to copy is an error, not an abort.
    pub fn initializer<F: Element>(&mut self, name: &str, value: ArrayViewD<'_, F>) -> Result<()> {
        let dims = to_i64s(name, value.shape())?;
        let bytes = value.len().saturating_mul(self.elem_bytes);
        let mut raw = Vec::new();
        raw.try_reserve_exact(bytes)
            .map_err(|_| GraphError::AllocationFailed {
                op: "onnx_export",
                node: name.to_owned(),
                bytes,
            })?;
        for v in value.iter() {
            self.push_elem(&mut raw, v.as_f64());
        }
        self.initializers.push(tensor(name, self.elem, &dims, raw));
        Ok(())
    }

    /// One element in the exported type, little-endian (`f32` values round-trip exactly
    /// through `f64`).
    fn push_elem(&self, raw: &mut Vec<u8>, v: f64) {
        if self.elem == data_type::FLOAT {
            raw.extend_from_slice(&(v as f32).to_le_bytes());
        } else {
            raw.extend_from_slice(&v.to_le_bytes());
        }
    }
}

/// `base` if not in `taken`, else the first `base:k` that is not, counting on from the last
/// suffix given for `base`; the name returned is added to `taken`.
fn unique(taken: &mut HashSet<String>, suffix: &mut HashMap<String, usize>, base: &str) -> String {
    if taken.insert(base.to_owned()) {
        return base.to_owned();
    }
    let k = suffix.entry(base.to_owned()).or_insert(0);
    loop {
        *k += 1;
        let name = format!("{base}:{k}");
        if taken.insert(name.clone()) {
            return name;
        }
    }
}

fn tensor(name: &str, data_type: i32, dims: &[i64], raw: Vec<u8>) -> TensorProto {
    TensorProto {
        dims: dims.to_vec(),
        data_type: Some(data_type),
        name: Some(name.to_owned()),
        raw_data: Some(raw),
    }
}
