//! The one error type of the graph crate.
//!
//! Every variant carries the structured facts a user needs to find the problem: the op, the
//! node's name and the shapes involved. Building a node and running a plan report through the
//! same type, so a runtime mismatch of a dynamic dimension reads like a build-time one.

use crate::shape::Shape;

/// Result alias used throughout the graph crate.
pub type Result<T, E = GraphError> = std::result::Result<T, E>;

/// Everything that can go wrong while building, compiling or running a graph.
///
/// ```
/// use dendrite_graph::{Graph, GraphError};
/// let mut g = Graph::<f32>::new();
/// let a = g.input("a", [None, Some(784)])?;
/// let b = g.input("b", [32, 10])?;
/// let err = g.matmul(a, b).unwrap_err();
/// assert!(matches!(err, GraphError::IncompatibleShapes { .. }));
/// assert_eq!(
///     err.to_string(),
///     "matmul `matmul`: inner dimensions differ: lhs [?, 784] vs rhs [32, 10]"
/// );
/// # Ok::<(), GraphError>(())
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum GraphError {
    /// Two operands whose shapes cannot be combined by this op.
    #[error("{op} `{node}`: {reason}: lhs {lhs} vs rhs {rhs}")]
    IncompatibleShapes {
        /// The op being added or run.
        op: &'static str,
        /// The name of the node (the name it would have had, when building fails).
        node: String,
        /// What rule the shapes break.
        reason: &'static str,
        /// Shape of the first operand involved.
        lhs: Shape,
        /// Shape of the second operand involved.
        rhs: Shape,
    },
    /// An operand or argument whose shape the op does not accept.
    #[error("{op} `{node}`: {reason}: got shape {shape}")]
    InvalidShape {
        /// The op being added or run.
        op: &'static str,
        /// The node's name.
        node: String,
        /// What the op expected.
        reason: String,
        /// The offending shape.
        shape: Shape,
    },
    /// An axis outside `0..rank`.
    #[error("{op} `{node}`: axis {axis} is invalid for an operand of rank {rank}")]
    InvalidAxis {
        /// The op being added.
        op: &'static str,
        /// The node's name.
        node: String,
        /// The axis as given.
        axis: usize,
        /// The operand's rank.
        rank: usize,
    },
    /// The wrong number of operands for an op.
    #[error("{op} `{node}`: expects {expected}, got {actual}")]
    Arity {
        /// The op being added.
        op: &'static str,
        /// The node's name.
        node: String,
        /// How many operands the op takes.
        expected: &'static str,
        /// How many were given.
        actual: usize,
    },
    /// A node handle that belongs to another graph.
    #[error("node #{index} belongs to graph {node_graph}, not to graph {graph}")]
    ForeignNode {
        /// Index of the node within its own graph.
        index: usize,
        /// The graph the node was created in.
        node_graph: u32,
        /// The graph it was used with.
        graph: u32,
    },
    /// A node handle whose index this graph does not have.
    #[error("graph {graph} has no node #{index}")]
    UnknownNode {
        /// The graph asked.
        graph: u32,
        /// The index asked for.
        index: usize,
    },
    /// A handle to a node that a failed [`Graph::atomically`](crate::Graph::atomically)
    /// removed: its index now belongs to another node, or to none.
    #[error("node #{index} of graph {graph} was removed when the builder that made it failed")]
    StaleNode {
        /// The graph asked.
        graph: u32,
        /// The index the handle holds.
        index: usize,
    },
    /// Two nodes of the same graph were given the same explicit name.
    #[error("a node named `{name}` already exists in this graph")]
    DuplicateName {
        /// The repeated name.
        name: String,
    },
    /// A node used where a node of another kind is required (a constant where a parameter is).
    #[error("`{node}` is a node of kind {actual}, but this needs a {expected}")]
    WrongNodeKind {
        /// The node's name.
        node: String,
        /// The kind required.
        expected: &'static str,
        /// The node's actual op.
        actual: &'static str,
    },
    /// A run without a value for an input the fetches depend on.
    #[error("missing feed for input `{input}` of shape {expected}")]
    MissingFeed {
        /// The input's name.
        input: String,
        /// Its declared shape.
        expected: Shape,
    },
    /// A feed whose name matches no input of the graph.
    #[error("feed `{name}` matches no input of this graph")]
    UnknownFeed {
        /// The name given with the feed.
        name: String,
    },
    /// A feed whose shape disagrees with the input's declared shape.
    #[error("feed for input `{input}` has shape {actual}, expected {expected}")]
    FeedShape {
        /// The input's name.
        input: String,
        /// The declared shape (`?` for a dynamic dimension).
        expected: Shape,
        /// The shape of the value fed.
        actual: Shape,
    },
    /// A feed containing NaN or an infinity, when the plan checks for them.
    #[error("feed for input `{input}` holds a non-finite value {value} at flat index {index}")]
    NonFiniteFeed {
        /// The input's name.
        input: String,
        /// Flat (row-major) index of the first bad element.
        index: usize,
        /// The value found there.
        value: f64,
    },
    /// An index operand with a value that is not an integer in `0..bound`.
    #[error(
        "{op} `{node}`: index {value} at flat position {position} is not an integer in 0..{bound}"
    )]
    IndexOutOfRange {
        /// The op being run.
        op: &'static str,
        /// The node's name.
        node: String,
        /// The value found.
        value: f64,
        /// Its flat position in the index tensor.
        position: usize,
        /// The exclusive upper bound.
        bound: usize,
        /// The index tensor's run-time shape: with it `position` becomes a multi-index (the
        /// row of a batch and the place within it, say).
        indices_shape: Vec<usize>,
    },
    /// A value given for a parameter or constant whose shape differs from the node's.
    #[error("value for `{node}` has shape {actual}, expected {expected}")]
    ValueShape {
        /// The node's name.
        node: String,
        /// The node's shape.
        expected: Shape,
        /// The value's shape.
        actual: Shape,
    },
    /// A gradient asked of an op that has none here (see the op's documentation).
    #[error("{op} `{node}`: not differentiable: {reason}")]
    NotDifferentiable {
        /// The op.
        op: &'static str,
        /// The node's name.
        node: String,
        /// Why no derivative rule applies.
        reason: &'static str,
    },
    /// A broken internal invariant: a bug in this crate, never a consequence of the input
    /// (the shape rules admit only what the kernels can run, so this cannot be caused by
    /// building or feeding a graph).
    #[error("{op} `{node}`: internal invariant broken: {what}")]
    Internal {
        /// The op being run.
        op: &'static str,
        /// The node's name (empty where the kernel does not know it).
        node: String,
        /// The invariant that does not hold.
        what: &'static str,
    },
    /// A plan used with a graph other than the one it was compiled from.
    #[error("plan was compiled from graph {plan_graph} but run with graph {graph}")]
    PlanGraphMismatch {
        /// The graph the plan was compiled from.
        plan_graph: u32,
        /// The graph it was run with.
        graph: u32,
    },
    /// A tensor bigger than the per-tensor limit (see [`crate::limits`]), or whose byte count
    /// does not fit in `usize`.
    #[error(
        "{op} `{node}`: a tensor of shape {shape} needs {} bytes, over the per-tensor limit of \
         {limit} (raise it with `limits::set_max_tensor_bytes`)",
        bytes.map_or_else(|| "more than usize::MAX".to_owned(), |b| b.to_string())
    )]
    TensorTooLarge {
        /// The op (or loader, or layer) that needed the tensor.
        op: &'static str,
        /// The node's name.
        node: String,
        /// The tensor's shape.
        shape: Shape,
        /// Its size in bytes, `None` when that overflows `usize`.
        bytes: Option<usize>,
        /// The limit in force.
        limit: usize,
    },
    /// The allocator refused memory for a tensor within the limit.
    #[error("{op} `{node}`: could not allocate {bytes} bytes")]
    AllocationFailed {
        /// The op that needed the memory.
        op: &'static str,
        /// The node's name.
        node: String,
        /// The bytes asked for.
        bytes: usize,
    },
    /// The same input fed twice in one run.
    #[error("input `{input}` is fed twice: give each input one value per run")]
    DuplicateFeed {
        /// The input's name.
        input: String,
    },
    /// A fetch position the plan does not have.
    #[error("fetch #{index} does not exist: the plan has {fetches} fetches")]
    NoSuchFetch {
        /// The position asked for.
        index: usize,
        /// How many values the plan fetches.
        fetches: usize,
    },
    /// A custom op's shape rule refused its operands' shapes.
    #[error("{op} `{node}`: {reason}: operand shapes {}", shape_list(operands))]
    CustomShape {
        /// The custom op's name.
        op: &'static str,
        /// The node's name (the name it would have had, when building fails).
        node: String,
        /// What the op's shape rule reported.
        reason: String,
        /// The operands' shapes, in slot order.
        operands: Vec<Shape>,
    },
    /// A custom op's kernel refused its operands' values at run time.
    #[error("{op} `{node}`: kernel failed: {reason}")]
    CustomKernel {
        /// The custom op's name.
        op: &'static str,
        /// The node's name.
        node: String,
        /// What the kernel reported.
        reason: String,
    },
    /// A custom op's derivative rule returned something the reverse sweep cannot use: a
    /// gradient count or shape that does not fit the operands.
    #[error("{op} `{node}`: invalid derivative rule: {reason}")]
    CustomRule {
        /// The custom op's name.
        op: &'static str,
        /// The node's name.
        node: String,
        /// What is wrong with what the rule returned.
        reason: String,
    },
    /// An axis given twice where axes must be distinct.
    #[error("{op} `{node}`: axis {axis} is repeated")]
    RepeatedAxis {
        /// The op being added.
        op: &'static str,
        /// The node's name.
        node: String,
        /// The axis given more than once.
        axis: usize,
    },
}

/// `[2, 3], [3]` for a list of shapes.
fn shape_list(shapes: &[Shape]) -> String {
    let list: Vec<String> = shapes.iter().map(ToString::to_string).collect();
    list.join(", ")
}
