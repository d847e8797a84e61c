//! The graph itself: an append-only petgraph DAG of named, shape-checked nodes.

mod leaves;
mod naming;
mod rollback;

use crate::error::{GraphError, Result};
use crate::ops::Op;
use crate::shape::Shape;
use crate::Element;
use ndarray::ArrayD;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use petgraph::Direction;
use smallvec::SmallVec;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT_GRAPH_ID: AtomicU32 = AtomicU32::new(1);

/// A typed handle to a node of one particular [`Graph`].
///
/// Handles are small and `Copy`. Each remembers the graph it came from, so using it with
/// another graph is an error ([`GraphError::ForeignNode`]) rather than a silent wrong answer.
///
/// ```
/// use dendrite_graph::Graph;
/// let mut g = Graph::<f32>::new();
/// let x = g.input("x", [2])?;
/// assert_eq!(x.index(), 0);
/// let mut other = Graph::<f32>::new();
/// assert!(other.neg(x).is_err());
/// # Ok::<(), dendrite_graph::GraphError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    graph: u32,
    index: u32,
    /// The node's creation number in its graph: equal to `index` unless a failed
    /// [`Graph::atomically`] removed nodes and their indices were given out again. A handle
    /// to a removed node then no longer matches, and is refused ([`GraphError::StaleNode`]).
    serial: u32,
}

impl NodeId {
    /// Position of the node in its graph (nodes are numbered in insertion order).
    ///
    /// ```
    /// let mut g = dendrite_graph::Graph::<f64>::new();
    /// assert_eq!(g.scalar(1.0).index(), 0);
    /// ```
    pub fn index(self) -> usize {
        self.index as usize
    }

    /// Identifier of the graph this node belongs to.
    ///
    /// ```
    /// let mut g = dendrite_graph::Graph::<f64>::new();
    /// assert_eq!(g.scalar(1.0).graph_id(), g.id());
    /// ```
    pub fn graph_id(self) -> u32 {
        self.graph
    }
}

/// One node: its name, its op and its declared output shape.
///
/// ```
/// let mut g = dendrite_graph::Graph::<f32>::new();
/// let x = g.input("x", [3])?;
/// let node = g.node(x)?;
/// assert_eq!(node.name(), "x");
/// assert_eq!(node.op().name(), "input");
/// assert_eq!(node.shape().to_string(), "[3]");
/// # Ok::<(), dendrite_graph::GraphError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Node<F: Element> {
    name: String,
    op: Op<F>,
    shape: Shape,
    /// Creation number, never reused (see [`NodeId`]).
    serial: u32,
}

impl<F: Element> Node<F> {
    /// The node's unique name within its graph.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The op that computes the node.
    pub fn op(&self) -> &Op<F> {
        &self.op
    }
    /// The declared output shape (dynamic dimensions shown as `?`).
    pub fn shape(&self) -> &Shape {
        &self.shape
    }
}

/// A computational graph of tensor ops over elements of type `F` (`f32` or `f64`).
///
/// Nodes are only ever appended (a builder that fails part way takes back what it added, see
/// [`Graph::atomically`]), so a [`NodeId`] stays valid for the graph's lifetime and a
/// compiled [`Plan`](crate::Plan) stays valid as the graph grows (gradients, say). Operand edges
/// carry their slot number, so `mul(x, x)` is two edges and never depends on neighbour order.
///
/// Parameter values live in the graph and are updated in place between runs.
///
/// ```
/// use dendrite_graph::{Graph, compile};
/// use ndarray::array;
/// let mut g = Graph::<f64>::new();
/// let x = g.input("x", [None, Some(2)])?;
/// let w = g.parameter("w", array![[1.0], [2.0]].into_dyn())?;
/// let y = g.matmul(x, w)?;
/// let mut plan = compile(&g, &[y])?;
/// let x_value = array![[1.0, 1.0], [3.0, 0.5]].into_dyn();
/// let out = plan.run(&g, &[("x", x_value.view())])?;
/// assert_eq!(out.get(0)?, array![[3.0], [4.0]].into_dyn().view());
/// # Ok::<(), dendrite_graph::GraphError>(())
/// ```
///
/// Cloning a graph gives it a new id: the two diverge from then on, so a handle or plan of one
/// used with the other is an error ([`GraphError::ForeignNode`]), never a silently wrong answer.
/// Use [`Graph::node_by_name`] to find a node's counterpart in the clone.
#[derive(Debug)]
pub struct Graph<F: Element> {
    id: u32,
    dag: DiGraph<Node<F>, usize, u32>,
    values: Vec<Option<ArrayD<F>>>,
    names: HashMap<String, NodeId>,
    next_suffix: HashMap<String, usize>,
    scopes: Vec<String>,
    /// Inside [`Graph::with_shared_parameters`]: a parameter whose name exists is reused.
    sharing_parameters: bool,
    /// Counts renames, so that a plan can tell its copy of the names is stale.
    name_generation: u64,
    /// Nodes ever created, rolled-back ones included: the next node's serial.
    created: u32,
}

impl<F: Element> Clone for Graph<F> {
    fn clone(&self) -> Self {
        let id = NEXT_GRAPH_ID.fetch_add(1, Ordering::Relaxed);
        Graph {
            id,
            dag: self.dag.clone(),
            values: self.values.clone(),
            names: self
                .names
                .iter()
                .map(|(name, n)| (name.clone(), NodeId { graph: id, ..*n }))
                .collect(),
            next_suffix: self.next_suffix.clone(),
            scopes: self.scopes.clone(),
            sharing_parameters: self.sharing_parameters,
            name_generation: self.name_generation,
            created: self.created,
        }
    }
}

impl<F: Element> Default for Graph<F> {
    fn default() -> Self {
        Self::new()
    }
}

impl<F: Element> Graph<F> {
    /// An empty graph with a process-unique id.
    ///
    /// ```
    /// let g = dendrite_graph::Graph::<f32>::new();
    /// assert_eq!(g.node_count(), 0);
    /// ```
    pub fn new() -> Self {
        Graph {
            id: NEXT_GRAPH_ID.fetch_add(1, Ordering::Relaxed),
            dag: DiGraph::default(),
            values: Vec::new(),
            names: HashMap::new(),
            next_suffix: HashMap::new(),
            scopes: Vec::new(),
            sharing_parameters: false,
            name_generation: 0,
            created: 0,
        }
    }

    /// The graph's process-unique id (the one [`NodeId::graph_id`] reports).
    ///
    /// ```
    /// let (a, b) = (dendrite_graph::Graph::<f32>::new(), dendrite_graph::Graph::<f32>::new());
    /// assert_ne!(a.id(), b.id());
    /// ```
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Number of nodes.
    ///
    /// ```
    /// let mut g = dendrite_graph::Graph::<f32>::new();
    /// g.scalar(2.0);
    /// assert_eq!(g.node_count(), 1);
    /// ```
    pub fn node_count(&self) -> usize {
        self.dag.node_count()
    }

    /// Checks that `id` belongs to this graph.
    ///
    /// ```
    /// let mut g = dendrite_graph::Graph::<f32>::new();
    /// let x = g.scalar(1.0);
    /// assert!(g.check(x).is_ok());
    /// assert!(dendrite_graph::Graph::<f32>::new().check(x).is_err());
    /// ```
    pub fn check(&self, id: NodeId) -> Result<()> {
        if id.graph != self.id {
            return Err(GraphError::ForeignNode {
                index: id.index(),
                node_graph: id.graph,
                graph: self.id,
            });
        }
        match self.dag.node_weight(NodeIndex::new(id.index())) {
            None => Err(GraphError::UnknownNode {
                graph: self.id,
                index: id.index(),
            }),
            Some(node) if node.serial != id.serial => Err(GraphError::StaleNode {
                graph: self.id,
                index: id.index(),
            }),
            Some(_) => Ok(()),
        }
    }

    /// The node behind a handle.
    ///
    /// ```
    /// let mut g = dendrite_graph::Graph::<f32>::new();
    /// let c = g.scalar(1.0);
    /// assert_eq!(g.node(c)?.op().name(), "constant");
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn node(&self, id: NodeId) -> Result<&Node<F>> {
        self.check(id)?;
        Ok(&self.dag[NodeIndex::new(id.index())])
    }

    /// The declared shape of a node.
    ///
    /// ```
    /// let mut g = dendrite_graph::Graph::<f32>::new();
    /// let x = g.input("x", [None, Some(3)])?;
    /// assert_eq!(g.shape(x)?.to_string(), "[?, 3]");
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn shape(&self, id: NodeId) -> Result<&Shape> {
        Ok(&self.node(id)?.shape)
    }

    /// The op of a node.
    ///
    /// ```
    /// let mut g = dendrite_graph::Graph::<f32>::new();
    /// let x = g.input("x", [2])?;
    /// let y = g.exp(x)?;
    /// assert_eq!(g.op(y)?.name(), "exp");
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn op(&self, id: NodeId) -> Result<&Op<F>> {
        Ok(&self.node(id)?.op)
    }

    /// The name of a node.
    ///
    /// ```
    /// let mut g = dendrite_graph::Graph::<f32>::new();
    /// let x = g.input("pixels", [2])?;
    /// assert_eq!(g.name(x)?, "pixels");
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn name(&self, id: NodeId) -> Result<&str> {
        Ok(&self.node(id)?.name)
    }

    /// The operands of a node, in slot order (`mul(x, x)` gives `[x, x]`).
    ///
    /// ```
    /// let mut g = dendrite_graph::Graph::<f32>::new();
    /// let x = g.input("x", [2])?;
    /// let y = g.mul(x, x)?;
    /// assert_eq!(g.operands(y)?.as_slice(), &[x, x]);
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn operands(&self, id: NodeId) -> Result<SmallVec<[NodeId; 3]>> {
        self.check(id)?;
        let mut edges: SmallVec<[(usize, NodeId); 3]> = self
            .dag
            .edges_directed(NodeIndex::new(id.index()), Direction::Incoming)
            .map(|e| (*e.weight(), self.handle(e.source())))
            .collect();
        edges.sort_unstable_by_key(|&(slot, _)| slot);
        Ok(edges.into_iter().map(|(_, n)| n).collect())
    }

    /// Looks a node up by its name.
    ///
    /// ```
    /// let mut g = dendrite_graph::Graph::<f32>::new();
    /// let x = g.input("x", [2])?;
    /// assert_eq!(g.node_by_name("x"), Some(x));
    /// assert_eq!(g.node_by_name("y"), None);
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn node_by_name(&self, name: &str) -> Option<NodeId> {
        self.names.get(name).copied()
    }

    /// All nodes in insertion order (which is a topological order).
    ///
    /// ```
    /// let mut g = dendrite_graph::Graph::<f32>::new();
    /// let x = g.input("x", [2])?;
    /// let y = g.neg(x)?;
    /// assert_eq!(g.nodes().collect::<Vec<_>>(), vec![x, y]);
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn nodes(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.dag.node_indices().map(|i| self.handle(i))
    }

    /// All parameter nodes, in insertion order.
    ///
    /// ```
    /// let mut g = dendrite_graph::Graph::<f32>::new();
    /// let w = g.parameter("w", ndarray::arr1(&[1.0_f32]).into_dyn())?;
    /// assert_eq!(g.parameters(), vec![w]);
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn parameters(&self) -> Vec<NodeId> {
        self.nodes_with_op(|op| matches!(op, Op::Parameter))
    }

    /// All input (placeholder) nodes, in insertion order.
    ///
    /// ```
    /// let mut g = dendrite_graph::Graph::<f32>::new();
    /// let x = g.input("x", [2])?;
    /// assert_eq!(g.inputs(), vec![x]);
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn inputs(&self) -> Vec<NodeId> {
        self.nodes_with_op(|op| matches!(op, Op::Input))
    }

    fn nodes_with_op(&self, pred: impl Fn(&Op<F>) -> bool) -> Vec<NodeId> {
        self.dag
            .node_indices()
            .filter(|&i| pred(&self.dag[i].op))
            .map(|i| self.handle(i))
            .collect()
    }

    pub(crate) fn handle(&self, index: NodeIndex<u32>) -> NodeId {
        NodeId {
            graph: self.id,
            index: index.index() as u32,
            serial: self.dag.node_weight(index).map_or(u32::MAX, |n| n.serial),
        }
    }

    pub(crate) fn dag(&self) -> &DiGraph<Node<F>, usize, u32> {
        &self.dag
    }

    /// Adds a node computing `op` on `operands`: the general form of every builder method
    /// (`g.exp(x)` is `g.add_op(Op::Unary(UnaryOp::Exp), &[x])`), for code that rewrites graphs.
    /// It validates the operands, infers the shape (so a refused shape names the op and the
    /// node it would have been) and names the node after its op.
    ///
    /// # Errors
    /// As the builders: bad handles, operand shapes the op rejects; leaves are added with
    /// [`Graph::input`], [`Graph::parameter`] and [`Graph::constant`] instead.
    ///
    /// ```
    /// use dendrite_graph::{Graph, Op, UnaryOp};
    /// let mut g = Graph::<f32>::new();
    /// let x = g.input("x", [2])?;
    /// let y = g.add_op(Op::Unary(UnaryOp::Exp), &[x])?;
    /// assert_eq!(g.op(y)?.name(), "exp");
    /// assert!(g.add_op(Op::Input, &[]).is_err());
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn add_op(&mut self, op: Op<F>, operands: &[NodeId]) -> Result<NodeId> {
        for &id in operands {
            self.check(id)?;
        }
        let name = self.auto_name(op.name());
        let shapes: SmallVec<[&Shape; 3]> = operands
            .iter()
            .map(|id| &self.dag[NodeIndex::new(id.index())].shape)
            .collect();
        let shape = op.infer_shape(&name, &shapes)?;
        drop(shapes);
        representable(op.name(), &name, &shape)?;
        Ok(self.append(name, op, shape, operands, None))
    }

    /// Appends a node: the one place a node enters the graph (op nodes through
    /// [`Graph::add_op`], leaves through their builders, which check what this assumes: the
    /// operands are valid handles, the name is free and the shape representable).
    fn append(
        &mut self,
        name: String,
        op: Op<F>,
        shape: Shape,
        operands: &[NodeId],
        value: Option<ArrayD<F>>,
    ) -> NodeId {
        let serial = self.created;
        // Wraps only after 2^32 creations, rolled-back ones included.
        self.created = self.created.wrapping_add(1);
        let index = self.dag.add_node(Node {
            name: name.clone(),
            op,
            shape,
            serial,
        });
        for (slot, operand) in operands.iter().enumerate() {
            self.dag
                .add_edge(NodeIndex::new(operand.index()), index, slot);
        }
        self.values.push(value);
        let id = self.handle(index);
        self.names.insert(name, id);
        id
    }

    /// A leaf's explicit name, refused when taken; its shape, refused when no tensor can
    /// have it.
    fn check_leaf(&self, name: &str, op: &Op<F>, shape: &Shape) -> Result<()> {
        if self.names.contains_key(name) {
            return Err(GraphError::DuplicateName {
                name: name.to_owned(),
            });
        }
        representable(op.name(), name, shape)
    }
}

/// Refuses a shape whose fixed dimensions multiply past `usize::MAX`: no tensor can have it,
/// and every later size computation on the node would have to guard against it.
fn representable(op: &'static str, node: &str, shape: &Shape) -> Result<()> {
    if shape.fixed_size_overflows() {
        return Err(GraphError::InvalidShape {
            op,
            node: node.to_owned(),
            reason: "the element count overflows usize".to_owned(),
            shape: shape.clone(),
        });
    }
    Ok(())
}
