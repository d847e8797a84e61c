//! The recorded graph as one layer: [`Block`] builds every step the output needs, in order.

use super::{Functional, Merge, Node, Step, Tensor};
use crate::error::{NnError, Result};
use crate::float::Float;
use crate::layer::{Init, Layer, LayerNodes};
use dendrite_graph::{Graph, NodeId};

/// A Functional model's layers and steps, with its input and output, as a [`Layer`].
#[derive(Debug)]
pub(crate) struct Block<F: Float> {
    pub(super) layers: Vec<(String, Box<dyn Layer<F>>)>,
    pub(super) nodes: Vec<Node>,
    pub(super) input: usize,
    pub(super) output: usize,
    /// The steps the output depends on.
    pub(super) needed: Vec<bool>,
}

impl<F: Float> Block<F> {
    /// Checks that `output` depends on `input` and on no other input.
    pub(super) fn new(f: Functional<F>, input: Tensor, output: Tensor) -> Result<Self> {
        let (input, output) = (f.index(input)?, f.index(output)?);
        if f.nodes[input].step != Step::Input {
            return Err(NnError::Disconnected {
                name: node_name(&f.layers, &f.nodes, input),
                reason: "the model's input must be a tensor made by Functional::input",
            });
        }
        let needed = needed(&f.nodes, output);
        if !needed[input] {
            return Err(NnError::Disconnected {
                name: node_name(&f.layers, &f.nodes, output),
                reason: "the output does not depend on the model's input (the input is not used)",
            });
        }
        let other =
            (0..f.nodes.len()).find(|&i| needed[i] && i != input && f.nodes[i].step == Step::Input);
        if let Some(other) = other {
            return Err(NnError::Disconnected {
                name: node_name(&f.layers, &f.nodes, other),
                reason: "the output depends on an input that is not the model's (a model takes one input)",
            });
        }
        Ok(Block {
            layers: f.layers,
            nodes: f.nodes,
            input,
            output,
            needed,
        })
    }

    /// The name a summary shows for step `i`.
    pub(super) fn name_of(&self, i: usize) -> String {
        node_name(&self.layers, &self.nodes, i)
    }
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

/// The steps `output` depends on (steps only read earlier ones, so one backward pass).
fn needed(nodes: &[Node], output: usize) -> Vec<bool> {
    let mut needed = vec![false; nodes.len()];
    needed[output] = true;
    for i in (0..=output).rev() {
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
        Some(self.nodes[self.input].shape.clone())
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        match input == self.nodes[self.input].shape.as_slice() {
            true => Ok(self.nodes[self.output].shape.clone()),
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
        let mut values: Vec<Option<NodeId>> = vec![None; self.nodes.len()];
        let mut built = vec![false; self.layers.len()];
        let mut gathered = Gathered::default();
        let mut last = LayerNodes::new(input);
        for i in 0..self.nodes.len() {
            if !self.needed[i] {
                continue;
            }
            let value = |j: usize| values[j].ok_or_else(|| internal("a step reads one not built"));
            let node = match &self.nodes[i].step {
                Step::Input => LayerNodes::new(input),
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
            values[i] = Some(node.output);
            last = node;
        }
        let mut nodes = LayerNodes::new(last.output).with_parameters(gathered.parameters);
        nodes.pre_activation = last.pre_activation;
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
        let nodes = nodes.map_err(|e| match e {
            NnError::LayerInput { shape, reason, .. } => NnError::LayerInput {
                layer: name.clone(),
                shape,
                reason,
            },
            other => other,
        })?;
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
            if let Step::Call { layer, input } = node.step {
                if !std::mem::replace(&mut seen[layer], true) {
                    let n = count(self.layers[layer].1.as_ref(), &self.nodes[input].shape)?;
                    total = total.checked_add(n)?;
                }
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

fn internal(what: &'static str) -> NnError {
    NnError::Graph(dendrite_graph::GraphError::Internal {
        op: "functional",
        node: String::new(),
        what,
    })
}
