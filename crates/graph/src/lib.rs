//! # dendrite-graph
//!
//! A computational graph of tensor operations: a shape-checked, append-only petgraph DAG over
//! ndarray, compiled into an execution plan that runs only what the fetches need, in
//! topological order, reusing buffers.
//!
//! - [`Graph`] builds nodes; every builder checks shapes when the node is added and reports a
//!   typed [`GraphError`] naming the op, the node and the shapes.
//! - [`ops`] holds the closed set of primitives, one file per family with its math, shape rule,
//!   kernel and derivative rule; [`composite`] builds relu, softmax & co. from them. A user
//!   adds primitives of their own with [`CustomOp`] and [`Graph::custom`].
//! - [`compile`] turns fetches into a [`Plan`]; [`Plan::run`] feeds inputs by name.
//! - [`to_dot`] renders a graph for Graphviz; [`onnx::export`] writes it as an ONNX model.
//!
//! ```
//! use dendrite_graph::{compile, Graph};
//! use ndarray::array;
//!
//! let mut g = Graph::<f32>::new();
//! let x = g.input("x", [None, Some(3)])?;
//! let w = g.parameter("w", array![[1.0_f32], [0.0], [-1.0]].into_dyn())?;
//! let logits = g.matmul(x, w)?;
//! let y = g.sigmoid(logits)?;
//!
//! let mut plan = compile(&g, &[y])?;
//! let batch = array![[2.0_f32, 5.0, 2.0], [0.0, 0.0, 0.0]].into_dyn();
//! let out = plan.run(&g, &[("x", batch.view())])?;
//! assert_eq!(out.get(0)?.shape(), &[2, 1]);
//! assert!((out.get(0)?[[1, 0]] - 0.5).abs() < 1e-6);
//! # Ok::<(), dendrite_graph::GraphError>(())
//! ```

pub mod composite;
pub mod cpu;
mod dot;
mod element;
mod error;
mod gemm;
mod graph;
#[cfg(target_arch = "x86_64")]
mod lanes;
pub mod limits;
pub mod onnx;
pub mod ops;
mod plan;
mod shape;
mod team;
mod vexp;

pub use dot::to_dot;
pub use element::Element;
pub use error::{GraphError, Result};
pub use graph::{Graph, Node, NodeId};
pub use ops::{
    Axes, AxisOp, BinaryOp, BroadcastOp, CompareOp, Custom, CustomOp, CustomOpError, IndexOp,
    LayoutOp, Op, OperandGrads, ReduceOp, SliceOp, SoftmaxOp, UnaryOp,
};
pub use plan::{compile, Outputs, Plan, StepProfile};
pub use shape::{broadcast_dim, broadcast_shapes, ConcreteShape, Dim, Dims, Shape};
pub use team::MAX_THREADS;
