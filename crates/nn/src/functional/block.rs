//! The recorded graph as one layer: [`Block`] builds every step the output needs, in order.

use super::{Functional, Merge, Node, Step, Tensor};
use crate::error::{NnError, Result};
use crate::float::Float;
use crate::layer::{Init, Layer, LayerNodes};
use dendrite_graph::{Graph, NodeId};

/// A Functional model's layers and steps, with its inputs and outputs, as a [`Layer`].
///
/// With one input the block takes that input's samples as they are; with several it takes
/// them concatenated, each flattened, in the order of `inputs` (what
/// [`Inputs`](super::Inputs) writes), and slices them apart. Likewise with several outputs
/// its output is their concatenation, each flattened, and [`LayerNodes::heads`] holds each
/// one for its own loss.
#[derive(Debug)]
pub(crate) struct Block<F: Float> {
    pub(super) layers: Vec<(String, Box<dyn Layer<F>>)>,
    pub(super) nodes: Vec<Node>,
    pub(super) inputs: Vec<usize>,
    pub(super) outputs: Vec<usize>,
    /// The steps the outputs depend on.
    pub(super) needed: Vec<bool>,
}

impl<F: Float> Block<F> {
    /// Checks that the inputs are distinct inputs, each used by an output, and that the
    /// outputs are distinct and depend on no other input.
    pub(super) fn new(f: Functional<F>, inputs: &[Tensor], outputs: &[Tensor]) -> Result<Self> {
        let index = |ts: &[Tensor]| ts.iter().map(|&t| f.index(t)).collect::<Result<Vec<_>>>();
        let (inputs, outputs) = (index(inputs)?, index(outputs)?);
        let name = |i: usize| node_name(&f.layers, &f.nodes, i);
        let disconnected = |i: usize, reason| NnError::Disconnected {
            name: name(i),
            reason,
        };
        if inputs.is_empty() || outputs.is_empty() {
            return Err(NnError::Disconnected {
                name: String::new(),
                reason: "a model needs at least one input and one output",
            });
        }
        if let Some(&i) = inputs.iter().find(|&&i| f.nodes[i].step != Step::Input) {
            return Err(disconnected(
                i,
                "a model's inputs must be tensors made by Functional::input",
            ));
        }
        if let Some(i) = repeated(&inputs) {
            return Err(disconnected(
                i,
                "the input is listed twice among the model's inputs",
            ));
        }
        if let Some(i) = repeated(&outputs) {
            return Err(disconnected(
                i,
                "the output is listed twice among the model's outputs",
            ));
        }
        let needed = needed(&f.nodes, &outputs);
        if let Some(&i) = inputs.iter().find(|&&i| !needed[i]) {
            return Err(disconnected(
                i,
                "no output depends on this input (the input is not used)",
            ));
        }
        let other = (0..f.nodes.len())
            .find(|&i| needed[i] && f.nodes[i].step == Step::Input && !inputs.contains(&i));
        if let Some(other) = other {
            return Err(disconnected(
                other,
                "an output depends on this input, which is not among the model's inputs",
            ));
        }
        Ok(Block {
            layers: f.layers,
            nodes: f.nodes,
            inputs,
            outputs,
            needed,
        })
    }

    /// The name a summary shows for step `i`.
    pub(super) fn name_of(&self, i: usize) -> String {
        node_name(&self.layers, &self.nodes, i)
    }

    /// Values per sample of step `i` (its shape's product; checked when it was recorded).
    pub(super) fn values(&self, i: usize) -> usize {
        self.nodes[i].shape.iter().product()
    }

    /// The sample shape the block takes: its input's, or with several the sum of their sizes.
    fn packed_shape(&self, steps: &[usize]) -> Vec<usize> {
        match steps {
            [one] => self.nodes[*one].shape.clone(),
            _ => vec![steps.iter().map(|&i| self.values(i)).sum()],
        }
    }
}

/// The first index listed twice in `list`.
fn repeated(list: &[usize]) -> Option<usize> {
    (0..list.len())
        .find(|&k| list[..k].contains(&list[k]))
        .map(|k| list[k])
}

/// `input_k` for an input, the layer's name for a call, `add_k` for a merge (`k` counts the
/// steps of that kind up to `i`).
pub(super) fn node_name<F: Float>(
    layers: &[(String, Box<dyn Layer<F>>)],
    nodes: &[Node],
    i: usize,
) -> String {
    let count = |same: &dyn Fn(&Step) -> bool| nodes[..=i].iter().filter(|n| same(&n.step)).count();
    match &nodes[i].step {
        Step::Input => format!("input_{}", count(&|s| *s == Step::Input)),
        Step::Call { layer, .. } => layers[*layer].0.clone(),
        Step::Merge { merge, .. } => {
            let k =
                count(&|s| matches!(s, Step::Merge { merge: m, .. } if m.name() == merge.name()));
            format!("{}_{k}", merge.name())
        }
    }
}

/// The steps `outputs` depend on (steps only read earlier ones, so one backward pass).
fn needed(nodes: &[Node], outputs: &[usize]) -> Vec<bool> {
    let mut needed = vec![false; nodes.len()];
    outputs.iter().for_each(|&o| needed[o] = true);
    for i in (0..nodes.len()).rev() {
        if !needed[i] {
            continue;
        }
        match &nodes[i].step {
            Step::Input => {}
            Step::Call { input, .. } => needed[*input] = true,
            Step::Merge { inputs, .. } => inputs.iter().for_each(|&j| needed[j] = true),
        }
    }
    needed
}

/// What the calls built, gathered for the block's [`LayerNodes`].
#[derive(Default)]
struct Gathered {
    parameters: Vec<NodeId>,
    penalties: Vec<NodeId>,
    states: Vec<NodeId>,
    state_updates: Vec<(NodeId, NodeId)>,
}

impl<F: Float> Layer<F> for Block<F> {
    fn kind(&self) -> &'static str {
        "Functional"
    }

    fn name(&self) -> Option<&str> {
        Some("functional")
    }

    fn input_shape(&self) -> Option<Vec<usize>> {
        Some(self.packed_shape(&self.inputs))
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        match input == self.packed_shape(&self.inputs).as_slice() {
            true => Ok(self.packed_shape(&self.outputs)),
            false => Err(NnError::LayerInput {
                layer: "functional".into(),
                shape: input.to_vec(),
                reason: "a Functional model takes the input shape it was declared with",
            }),
        }
    }

    fn param_count(&self, _input: &[usize]) -> Option<usize> {
        self.counts(|l, shape| l.param_count(shape))
    }

    fn non_trainable_count(&self, _input: &[usize]) -> Option<usize> {
        self.counts(|l, shape| l.non_trainable_count(shape))
    }

    fn build(
        &mut self,
        g: &mut Graph<F>,
        input: NodeId,
        _input_shape: &[usize],
        init: &mut Init,
    ) -> Result<LayerNodes> {
        let mut values: Vec<Option<LayerNodes>> = vec![None; self.nodes.len()];
        for (&i, x) in self.inputs.clone().iter().zip(self.split_inputs(g, input)?) {
            values[i] = Some(LayerNodes::new(x));
        }
        let mut built = vec![false; self.layers.len()];
        let mut gathered = Gathered::default();
        for i in 0..self.nodes.len() {
            if !self.needed[i] || values[i].is_some() {
                continue;
            }
            let value = |j: usize| {
                values[j]
                    .as_ref()
                    .map(|n| n.output)
                    .ok_or_else(|| internal("a step reads one not built"))
            };
            let node = match &self.nodes[i].step {
                Step::Input => return Err(internal("an input that is not the model's")),
                &Step::Call { layer, input } => {
                    let x = value(input)?;
                    let shape = self.nodes[input].shape.clone();
                    let first = !std::mem::replace(&mut built[layer], true);
                    self.call(g, init, (layer, first), x, &shape, &mut gathered)?
                }
                Step::Merge { merge, inputs } => {
                    let xs: Vec<NodeId> =
                        inputs.iter().map(|&j| value(j)).collect::<Result<_>>()?;
                    LayerNodes::new(merged(g, *merge, &xs)?)
                }
            };
            values[i] = Some(node);
        }
        let mut heads = Vec::with_capacity(self.outputs.len());
        for &o in &self.outputs {
            heads.push(
                values[o]
                    .take()
                    .ok_or_else(|| internal("an output not built"))?,
            );
        }
        let mut nodes = self.joined_outputs(g, heads)?;
        nodes.parameters = gathered.parameters;
        nodes.penalties = gathered.penalties;
        nodes.states = gathered.states;
        nodes.state_updates = gathered.state_updates;
        Ok(nodes)
    }

    fn config(&self) -> std::result::Result<serde_json::Value, crate::ConfigError> {
        super::config::to_json(self)
    }
}

impl<F: Float> Block<F> {
    /// Each input's node: the block's input itself, or with several inputs its columns of
    /// each, reshaped to that input's sample shape.
    fn split_inputs(&self, g: &mut Graph<F>, input: NodeId) -> Result<Vec<NodeId>> {
        if let [_] = self.inputs.as_slice() {
            return Ok(vec![input]);
        }
        let mut at = 0;
        let mut split = Vec::with_capacity(self.inputs.len());
        for &i in &self.inputs {
            let end = at + self.values(i);
            let columns = g.slice(input, 1, at, end)?;
            split.push(g.reshape(columns, batched(&self.nodes[i].shape).as_slice())?);
            at = end;
        }
        Ok(split)
    }

    /// The block's output: its one output as built, or with several their concatenation,
    /// each flattened to `[batch, values]`, with each one kept as a head (its pre-activation
    /// kept when it was already flat, so its loss can read the logits).
    fn joined_outputs(&self, g: &mut Graph<F>, mut heads: Vec<LayerNodes>) -> Result<LayerNodes> {
        if heads.len() == 1 {
            return heads.pop().ok_or_else(|| internal("no output"));
        }
        for (&o, head) in self.outputs.iter().zip(&mut heads) {
            if self.nodes[o].shape.len() != 1 {
                let flat = g.reshape(head.output, [None, Some(self.values(o))])?;
                *head = LayerNodes::new(flat);
            }
        }
        let flat: Vec<NodeId> = heads.iter().map(|h| h.output).collect();
        let mut nodes = LayerNodes::new(g.concat(&flat, 1)?);
        nodes.heads = heads;
        Ok(nodes)
    }

    /// Builds layer `layer` on `x` in its name scope, with a generator of its own; a call
    /// after the first reads the first call's weights, and adds no parameters or penalties.
    fn call(
        &mut self,
        g: &mut Graph<F>,
        init: &mut Init,
        (layer, first): (usize, bool),
        x: NodeId,
        shape: &[usize],
        gathered: &mut Gathered,
    ) -> Result<LayerNodes> {
        let (name, l) = &mut self.layers[layer];
        let mut child = init.child(layer).named(name);
        let nodes = g.with_scope(name, |g| match first {
            true => l.build(g, x, shape, &mut child),
            false => g.with_shared_parameters(|g| l.build(g, x, shape, &mut child)),
        });
        init.absorb(&child);
        let nodes = nodes.map_err(|e| e.for_layer(name))?;
        if first {
            gathered.parameters.extend_from_slice(&nodes.parameters);
            gathered.penalties.extend_from_slice(&nodes.penalties);
            gathered.states.extend_from_slice(&nodes.states);
        }
        gathered
            .state_updates
            .extend_from_slice(&nodes.state_updates);
        Ok(nodes)
    }

    /// The sum over the layers the output needs (each counted once) of `count`.
    fn counts(&self, count: impl Fn(&dyn Layer<F>, &[usize]) -> Option<usize>) -> Option<usize> {
        let mut seen = vec![false; self.layers.len()];
        let mut total = 0usize;
        for (i, node) in self
            .nodes
            .iter()
            .enumerate()
            .filter(|&(i, _)| self.needed[i])
        {
            let _ = i;
            if let Step::Call { layer, input } = node.step
                && !std::mem::replace(&mut seen[layer], true)
            {
                let n = count(self.layers[layer].1.as_ref(), &self.nodes[input].shape)?;
                total = total.checked_add(n)?;
            }
        }
        Some(total)
    }
}

/// The merge of `xs` (batched tensors) in the graph.
fn merged<F: Float>(g: &mut Graph<F>, merge: Merge, xs: &[NodeId]) -> Result<NodeId> {
    let (&first, rest) = xs
        .split_first()
        .ok_or_else(|| internal("a merge of nothing"))?;
    let mut acc = first;
    match merge {
        Merge::Add | Merge::Average => {
            for &x in rest {
                acc = g.add(acc, x)?;
            }
            if merge == Merge::Average {
                acc = g.scale(acc, 1.0 / xs.len() as f64)?;
            }
        }
        Merge::Multiply => {
            for &x in rest {
                acc = g.mul(acc, x)?;
            }
        }
        Merge::Concatenate { axis } => {
            let rank = g.shape(first)?.rank().saturating_sub(1);
            let axis = super::sample_axis(axis, rank).ok_or_else(|| internal("a checked axis"))?;
            acc = g.concat(xs, axis + 1)?;
        }
    }
    Ok(acc)
}

/// `shape` with a dynamic batch axis in front.
fn batched(shape: &[usize]) -> Vec<Option<usize>> {
    std::iter::once(None)
        .chain(shape.iter().map(|&d| Some(d)))
        .collect()
}

fn internal(what: &'static str) -> NnError {
    NnError::Graph(dendrite_graph::GraphError::Internal {
        op: "functional",
        node: String::new(),
        what,
    })
}
