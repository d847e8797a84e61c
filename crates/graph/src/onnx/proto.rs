//! The subset of the ONNX protobuf schema that an export writes, as prost messages.
//!
//! Field names, types and tags are copied from the official `onnx/onnx.proto` (ONNX project,
//! MIT licence; the tags have been stable since IR version 3). Only the messages and fields an
//! exported inference graph uses are declared; prost does the wire encoding. The schema is
//! proto2: singular fields whose presence ONNX checks (`AttributeProto.f`, `.i`, `.t`, the
//! type discriminator, the data type of a tensor) are `optional`, so that a zero is still
//! written.

/// `ModelProto`: the top-level container.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelProto {
    /// `optional int64 ir_version = 1;`
    #[prost(int64, optional, tag = "1")]
    pub ir_version: Option<i64>,
    /// `repeated OperatorSetIdProto opset_import = 8;`
    #[prost(message, repeated, tag = "8")]
    pub opset_import: Vec<OperatorSetIdProto>,
    /// `optional string producer_name = 2;`
    #[prost(string, optional, tag = "2")]
    pub producer_name: Option<String>,
    /// `optional string producer_version = 3;`
    #[prost(string, optional, tag = "3")]
    pub producer_version: Option<String>,
    /// `optional GraphProto graph = 7;`
    #[prost(message, optional, tag = "7")]
    pub graph: Option<GraphProto>,
}

/// `OperatorSetIdProto`: an operator set and its version.
#[derive(Clone, PartialEq, prost::Message)]
pub struct OperatorSetIdProto {
    /// `optional string domain = 1;` (empty: the default ONNX domain)
    #[prost(string, optional, tag = "1")]
    pub domain: Option<String>,
    /// `optional int64 version = 2;`
    #[prost(int64, optional, tag = "2")]
    pub version: Option<i64>,
}

/// `GraphProto`: nodes in topological order, initializers, inputs and outputs.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GraphProto {
    /// `repeated NodeProto node = 1;`
    #[prost(message, repeated, tag = "1")]
    pub node: Vec<NodeProto>,
    /// `optional string name = 2;`
    #[prost(string, optional, tag = "2")]
    pub name: Option<String>,
    /// `repeated TensorProto initializer = 5;`
    #[prost(message, repeated, tag = "5")]
    pub initializer: Vec<TensorProto>,
    /// `repeated ValueInfoProto input = 11;`
    #[prost(message, repeated, tag = "11")]
    pub input: Vec<ValueInfoProto>,
    /// `repeated ValueInfoProto output = 12;`
    #[prost(message, repeated, tag = "12")]
    pub output: Vec<ValueInfoProto>,
}

/// `NodeProto`: one operator application.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NodeProto {
    /// `repeated string input = 1;`
    #[prost(string, repeated, tag = "1")]
    pub input: Vec<String>,
    /// `repeated string output = 2;`
    #[prost(string, repeated, tag = "2")]
    pub output: Vec<String>,
    /// `optional string name = 3;`
    #[prost(string, optional, tag = "3")]
    pub name: Option<String>,
    /// `optional string op_type = 4;`
    #[prost(string, optional, tag = "4")]
    pub op_type: Option<String>,
    /// `repeated AttributeProto attribute = 5;`
    #[prost(message, repeated, tag = "5")]
    pub attribute: Vec<AttributeProto>,
}

/// `AttributeProto.AttributeType` values used here.
pub mod attribute_type {
    /// `INT = 2;`
    pub const INT: i32 = 2;
    /// `STRING = 3;`
    pub const STRING: i32 = 3;
    /// `INTS = 7;`
    pub const INTS: i32 = 7;
}

/// `AttributeProto`: a named attribute holding one kind of value.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AttributeProto {
    /// `optional string name = 1;`
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    /// `optional AttributeType type = 20;`
    #[prost(int32, optional, tag = "20")]
    pub r#type: Option<i32>,
    /// `optional float f = 2;`
    #[prost(float, optional, tag = "2")]
    pub f: Option<f32>,
    /// `optional int64 i = 3;`
    #[prost(int64, optional, tag = "3")]
    pub i: Option<i64>,
    /// `optional bytes s = 4;`
    #[prost(bytes = "vec", optional, tag = "4")]
    pub s: Option<Vec<u8>>,
    /// `optional TensorProto t = 5;`
    #[prost(message, optional, tag = "5")]
    pub t: Option<TensorProto>,
    /// `repeated int64 ints = 8;`
    #[prost(int64, repeated, packed = "false", tag = "8")]
    pub ints: Vec<i64>,
}

/// `TensorProto.DataType` values used here.
pub mod data_type {
    /// `FLOAT = 1;`
    pub const FLOAT: i32 = 1;
    /// `INT64 = 7;`
    pub const INT64: i32 = 7;
    /// `DOUBLE = 11;`
    pub const DOUBLE: i32 = 11;
}

/// `TensorProto`: a tensor value (initializers and constant attributes), stored in `raw_data`
/// as little-endian fixed-width elements.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorProto {
    /// `repeated int64 dims = 1;`
    #[prost(int64, repeated, packed = "false", tag = "1")]
    pub dims: Vec<i64>,
    /// `optional int32 data_type = 2;`
    #[prost(int32, optional, tag = "2")]
    pub data_type: Option<i32>,
    /// `optional string name = 8;`
    #[prost(string, optional, tag = "8")]
    pub name: Option<String>,
    /// `optional bytes raw_data = 9;`
    #[prost(bytes = "vec", optional, tag = "9")]
    pub raw_data: Option<Vec<u8>>,
}

/// `ValueInfoProto`: the name and type of a graph input or output.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ValueInfoProto {
    /// `optional string name = 1;`
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    /// `optional TypeProto type = 2;`
    #[prost(message, optional, tag = "2")]
    pub r#type: Option<TypeProto>,
}

/// `TypeProto`, with only its `tensor_type` member of the `value` oneof.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TypeProto {
    /// `Tensor tensor_type = 1;` (a member of `oneof value`)
    #[prost(message, optional, tag = "1")]
    pub tensor_type: Option<TensorTypeProto>,
}

/// `TypeProto.Tensor`: element type and shape.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorTypeProto {
    /// `optional int32 elem_type = 1;`
    #[prost(int32, optional, tag = "1")]
    pub elem_type: Option<i32>,
    /// `optional TensorShapeProto shape = 2;`
    #[prost(message, optional, tag = "2")]
    pub shape: Option<TensorShapeProto>,
}

/// `TensorShapeProto`: a list of dimensions.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorShapeProto {
    /// `repeated Dimension dim = 1;`
    #[prost(message, repeated, tag = "1")]
    pub dim: Vec<Dimension>,
}

/// `TensorShapeProto.Dimension`: a size, a symbol, or neither (unknown).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Dimension {
    /// `oneof value { int64 dim_value = 1; string dim_param = 2; }`
    #[prost(oneof = "DimensionValue", tags = "1, 2")]
    pub value: Option<DimensionValue>,
}

/// The `value` oneof of `TensorShapeProto.Dimension`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum DimensionValue {
    /// `int64 dim_value = 1;`
    #[prost(int64, tag = "1")]
    DimValue(i64),
    /// `string dim_param = 2;`
    #[prost(string, tag = "2")]
    DimParam(String),
}
