//! [`compile`]: from fetches to a [`Plan`], in five named phases.
//!
//! 1. [`needed_nodes`]: what the fetches depend on (an explicit stack, no recursion).
//! 2. [`input_slots`]: one feed slot per input of the graph, needed or not, so that feeding an
//!    input the fetches do not read is accepted.
//! 3. [`build_steps`]: one step per needed computed node in ascending index order (the graph is
//!    append-only and an operand always exists before its user, so that *is* a topological
//!    order), plus a copy step for each fetched leaf, so that outputs borrow only the plan.
//!    Operands still refer to the *nodes* they read ([`Operand`]).
//! 4. [`fuse_pooled_convolutions`](super::fuse::fuse_pooled_convolutions): a convolution
//!    that only a 2×2 max pool and its gradient read runs inside them (see `plan/fuse.rs`).
//! 5. [`assign_slots`]: liveness and slot reuse, turning node operands into buffer slots.

use super::{Buffer, InputSlot, Plan, Source, Step};
use crate::error::Result;
use crate::ops::Op;
use crate::shape::ConcreteShape;
use crate::{Element, Graph, NodeId};
use petgraph::graph::NodeIndex;
use smallvec::SmallVec;
use std::collections::HashMap;

/// Where a step under construction reads an operand: by node, before slots exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Operand {
    /// The feed of input slot `k`.
    Feed(usize),
    /// A parameter's or constant's value, read from the graph at run time.
    Stored(usize),
    /// The value computed by the step of node `i`.
    Node(usize),
}

/// A step whose operands are still nodes.
pub(super) struct PendingStep<F: Element> {
    pub node: usize,
    pub step: Step<F>,
    pub operands: SmallVec<[Operand; 3]>,
}

/// Compiles the part of `graph` that `fetches` depend on into a [`Plan`].
///
/// # Errors
/// [`GraphError::ForeignNode`](crate::GraphError::ForeignNode) or
/// [`GraphError::UnknownNode`](crate::GraphError::UnknownNode) for a bad fetch handle.
///
/// # Complexity
/// O(V log V + E) over the needed nodes, iterative (no recursion).
///
/// ```
/// use dendrite_graph::{compile, Graph};
/// let mut g = Graph::<f64>::new();
/// let x = g.input("x", [2])?;
/// let unused = g.exp(x)?;
/// let y = g.neg(x)?;
/// let plan = compile(&g, &[y])?;
/// assert_eq!(plan.step_count(), 1); // `unused` is not part of the plan
/// # Ok::<(), dendrite_graph::GraphError>(())
/// ```
pub fn compile<F: Element>(graph: &Graph<F>, fetches: &[NodeId]) -> Result<Plan<F>> {
    for &f in fetches {
        graph.check(f)?;
    }
    let needed = needed_nodes(graph, fetches);
    let (inputs, input_of) = input_slots(graph, &needed)?;
    let pending = build_steps(graph, fetches, &needed, &input_of)?;
    let fetch_nodes: Vec<usize> = fetches.iter().map(|f| f.index()).collect();
    let pending = super::fuse::fuse_pooled_convolutions(graph, pending, &fetch_nodes);
    let (steps, fetches, slots) = assign_slots(pending, &fetch_nodes, graph.node_count());
    let input_index = inputs
        .iter()
        .enumerate()
        .map(|(k, slot)| (slot.name.clone(), k))
        .collect();
    Ok(Plan {
        graph: graph.id(),
        names_seen: graph.name_generation(),
        inputs,
        input_index,
        steps,
        buffers: vec![Buffer::default(); slots],
        fetches,
        check_finite: false,
        team: crate::team::Team::ONE,
    })
}

/// Marks every node some fetch depends on.
fn needed_nodes<F: Element>(graph: &Graph<F>, fetches: &[NodeId]) -> Vec<bool> {
    let dag = graph.dag();
    let mut needed = vec![false; graph.node_count()];
    let mut stack: Vec<usize> = fetches.iter().map(|f| f.index()).collect();
    while let Some(i) = stack.pop() {
        if std::mem::replace(&mut needed[i], true) {
            continue;
        }
        stack.extend(
            dag.neighbors_directed(NodeIndex::new(i), petgraph::Direction::Incoming)
                .map(|p| p.index()),
        );
    }
    needed
}

/// One slot per input of the graph, and the slot of each input node.
fn input_slots<F: Element>(
    graph: &Graph<F>,
    needed: &[bool],
) -> Result<(Vec<InputSlot>, HashMap<usize, usize>)> {
    let mut inputs = Vec::new();
    let mut input_of = HashMap::new();
    for id in graph.inputs() {
        let node = graph.node(id)?;
        input_of.insert(id.index(), inputs.len());
        inputs.push(InputSlot {
            node: id.index(),
            name: node.name().to_owned(),
            shape: node.shape().clone(),
            needed: needed[id.index()],
        });
    }
    Ok((inputs, input_of))
}

/// One step per needed computed node, then a copy step per fetched leaf.
fn build_steps<F: Element>(
    graph: &Graph<F>,
    fetches: &[NodeId],
    needed: &[bool],
    input_of: &HashMap<usize, usize>,
) -> Result<Vec<PendingStep<F>>> {
    let leaf = |i: usize| match input_of.get(&i) {
        Some(&k) => Operand::Feed(k),
        None => Operand::Stored(i),
    };
    let mut pending: Vec<PendingStep<F>> = Vec::new();
    let mut has_step = vec![false; needed.len()];
    for i in (0..needed.len()).filter(|&i| needed[i]) {
        let id = graph.handle(NodeIndex::new(i));
        let node = graph.node(id)?;
        if matches!(node.op(), Op::Input | Op::Parameter | Op::Constant) {
            continue;
        }
        let operands = graph.operands(id)?;
        // Matmul broadcasts its batch axes, so it is checked like elementwise ops.
        let declared = if node.op().broadcasts_operands() || matches!(node.op(), Op::MatMul { .. })
        {
            operands
                .iter()
                .map(|&o| graph.shape(o).cloned())
                .collect::<Result<_>>()?
        } else {
            SmallVec::new()
        };
        let read = |o: &NodeId| {
            if has_step[o.index()] {
                Operand::Node(o.index())
            } else {
                leaf(o.index())
            }
        };
        let operands = operands.iter().map(read).collect();
        has_step[i] = true;
        pending.push(PendingStep {
            node: i,
            step: Step::new(i, node.name(), node.op().clone(), declared),
            operands,
        });
    }
    for &f in fetches {
        let i = f.index();
        if !has_step[i] {
            has_step[i] = true;
            pending.push(PendingStep {
                node: i,
                step: Step::new(i, graph.name(f)?, Op::StopGradient, SmallVec::new()),
                operands: SmallVec::from_slice(&[leaf(i)]),
            });
        }
    }
    Ok(pending)
}

/// Gives every step an output slot, reusing a slot once the last reader of its value has run,
/// and rewrites node operands into slot operands. Returns the steps, the fetched slots and the
/// number of slots.
fn assign_slots<F: Element>(
    pending: Vec<PendingStep<F>>,
    fetch_nodes: &[usize],
    node_count: usize,
) -> (Vec<Step<F>>, Vec<usize>, usize) {
    // Liveness: the last step reading each node's value; fetched values live forever (None).
    let mut last_use: Vec<Option<usize>> = vec![Some(0); node_count];
    for (s, p) in pending.iter().enumerate() {
        for operand in &p.operands {
            if let Operand::Node(node) = *operand {
                last_use[node] = Some(s);
            }
        }
    }
    for &i in fetch_nodes {
        last_use[i] = None;
    }
    let mut slot_of: Vec<Option<usize>> = vec![None; node_count];
    let mut free: Vec<usize> = Vec::new();
    let mut slots = 0;
    let mut steps = Vec::with_capacity(pending.len());
    for (s, p) in pending.into_iter().enumerate() {
        // The output takes a free slot before this step's dead operands are freed, so a kernel
        // never reads and writes the same buffer.
        let out = free.pop().unwrap_or_else(|| {
            slots += 1;
            slots - 1
        });
        slot_of[p.node] = Some(out);
        let mut step = p.step;
        step.out = out;
        for operand in &p.operands {
            step.operands.push(match *operand {
                Operand::Feed(k) => Source::Feed(k),
                Operand::Stored(i) => Source::Stored(i),
                Operand::Node(node) => {
                    let slot = slot_of[node].unwrap_or(out);
                    if last_use[node] == Some(s) {
                        last_use[node] = None; // freed once even if read twice
                        free.push(slot);
                    }
                    Source::Buffer(slot)
                }
            });
        }
        steps.push(step);
    }
    let fetches = fetch_nodes
        .iter()
        .map(|&i| slot_of[i].unwrap_or_default())
        .collect();
    (steps, fetches, slots)
}

impl<F: Element> Step<F> {
    fn new(node: usize, name: &str, op: Op<F>, declared: SmallVec<[crate::Shape; 3]>) -> Self {
        Step {
            node,
            name: name.to_owned(),
            op,
            operands: SmallVec::new(),
            declared,
            out: 0,
            fused: None,
            cached: None::<(SmallVec<[ConcreteShape; 4]>, ConcreteShape)>,
            scratch: Vec::new(),
        }
    }
}
