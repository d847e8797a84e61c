//! The phases of [`Sequential::build`]: the forward graphs (inference, and training when a
//! layer builds differently for it) with the initial weights, and the prediction plan.

use super::{Entry, Forward, Network, Sequential, INPUT_NAME, STEP_NAME};
use crate::error::{NnError, Result};
use crate::float::Float;
use crate::layer::{Init, LayerNodes, Mode};
use dendrite_graph::{compile, Graph, NodeId, Shape};

/// Layers `from..` built in one mode: each one's input (node and sample shape), parameters
/// and penalties, the output, and the first layer that asked for the mode.
struct Stack {
    inputs: Vec<(NodeId, Vec<usize>)>,
    params: Vec<Vec<NodeId>>,
    penalties: Vec<Vec<NodeId>>,
    states: Vec<NodeId>,
    state_updates: Vec<Vec<(NodeId, NodeId)>>,
    output: LayerNodes,
    shape: Vec<usize>,
    first_asking: Option<usize>,
}

impl<F: Float> Entry<F> {
    /// The layer's parameter count for `input`; an overflow is an error naming the layer.
    pub(super) fn param_count(&self, input: &[usize]) -> Result<usize> {
        self.layer
            .param_count(input)
            .ok_or_else(|| NnError::ParamCountOverflow {
                layer: self.name.clone(),
                kind: self.layer.kind(),
                input: input.to_vec(),
            })
    }

    /// The layer's non-trainable count for `input`; an overflow is an error naming the layer.
    pub(super) fn non_trainable_count(&self, input: &[usize]) -> Result<usize> {
        self.layer
            .non_trainable_count(input)
            .ok_or_else(|| NnError::ParamCountOverflow {
                layer: self.name.clone(),
                kind: self.layer.kind(),
                input: input.to_vec(),
            })
    }

    /// Puts the model's name for the layer (`dense_2`) into a shape error the layer raised
    /// under the only name it knows.
    pub(super) fn rename(&self, err: NnError) -> NnError {
        err.for_layer(&self.name)
    }
}

impl<F: Float> Sequential<F> {
    /// The forward graphs: input and step, the layers for inference (shapes and parameter
    /// counts checked before any weight is drawn), for training from the first layer that
    /// asked for the mode, then the prediction plan.
    pub(super) fn build_network(&mut self) -> Result<Network<F>> {
        let input_shape = self.model_input_shape()?;
        let features = checked_product(&input_shape).ok_or_else(|| NnError::LayerInput {
            layer: self
                .layers
                .first()
                .map(|e| e.name.clone())
                .unwrap_or_default(),
            shape: input_shape.clone(),
            reason: "the sample shape has more elements than fit in usize",
        })?;
        self.check_unique_names()?;
        let mut g = Graph::<F>::new();
        let dims: Vec<Option<usize>> = std::iter::once(None)
            .chain(input_shape.iter().map(|&d| Some(d)))
            .collect();
        let x = g.input(INPUT_NAME, dims.as_slice())?;
        let step = g.input(STEP_NAME, Shape::scalar())?;
        let inference = self.build_layers(&mut g, step, 0, (x, &input_shape), Mode::Inference)?;
        let (training, state_updates) = self.training_forward(&mut g, step, &inference)?;
        let width = self.output_width(inference.shape.clone())?;
        let params: Vec<NodeId> = inference.params.concat();
        let mut weights = params.clone();
        weights.extend_from_slice(&inference.states);
        check_states(&g, &inference.states, &state_updates)?;
        for &p in &weights {
            if !g.value(p)?.is_standard_layout() {
                return Err(NnError::NonContiguous {
                    name: g.name(p)?.to_owned(),
                });
            }
        }
        let mut predict = compile(&g, &[inference.output.output])?;
        predict.set_threads(super::config::default_threads());
        Ok(Network {
            graph: g,
            features,
            input_shape,
            width,
            output: inference.output,
            params,
            weights,
            state_updates,
            penalties: inference.penalties.concat(),
            training,
            predict,
        })
    }

    /// The training graph when a layer asked for the mode: layers before it are shared with
    /// the inference graph, it and the layers after it are built again for training,
    /// reading the same parameters (each layer must create the same ones in both modes).
    /// Returns it (`None` when the inference graph serves) and the state updates of the
    /// graph `fit` steps.
    #[allow(clippy::type_complexity)]
    fn training_forward(
        &mut self,
        g: &mut Graph<F>,
        step: NodeId,
        inference: &Stack,
    ) -> Result<(Option<Forward>, Vec<(NodeId, NodeId)>)> {
        let Some(from) = inference.first_asking else {
            return Ok((None, inference.state_updates.concat()));
        };
        let (x, shape) = &inference.inputs[from];
        let training = g.with_shared_parameters(|g| {
            self.build_layers(g, step, from, (*x, shape), Mode::Training)
        })?;
        for (k, params) in training.params.iter().enumerate() {
            if *params != inference.params[from + k] {
                return Err(NnError::ModeParameters {
                    layer: self.layers[from + k].name.clone(),
                });
            }
        }
        let mut penalties = inference.penalties[..from].concat();
        penalties.extend(training.penalties.concat());
        let mut updates = inference.state_updates[..from].concat();
        updates.extend(training.state_updates.concat());
        let forward = Forward {
            output: training.output,
            penalties,
        };
        Ok((Some(forward), updates))
    }

    /// The first layer's declared sample shape (without the batch axis): `[784]` for an MLP,
    /// `[28, 28, 1]` for a convnet on MNIST; every axis non-zero, at most
    /// [`MAX_SAMPLE_AXES`](super::run::MAX_SAMPLE_AXES) axes.
    fn model_input_shape(&self) -> Result<Vec<usize>> {
        let first = self.layers.first().ok_or(NnError::NoLayers)?;
        let input_shape = first
            .layer
            .input_shape()
            .ok_or_else(|| NnError::UnknownInputShape {
                layer: first.name.clone(),
            })?;
        let fits = !input_shape.is_empty()
            && input_shape.len() <= super::run::MAX_SAMPLE_AXES
            && input_shape.iter().all(|&d| d > 0);
        match fits {
            true => Ok(input_shape),
            false => Err(NnError::LayerInput {
                layer: first.name.clone(),
                shape: input_shape,
                reason: "a Sequential model takes samples of 1 to 7 axes, none of size 0",
            }),
        }
    }

    fn check_unique_names(&self) -> Result<()> {
        for (i, e) in self.layers.iter().enumerate() {
            if self.layers[..i].iter().any(|other| other.name == e.name) {
                return Err(NnError::DuplicateLayerName {
                    name: e.name.clone(),
                });
            }
        }
        Ok(())
    }

    /// Layers `from..` in their name scopes, each with its own seeded generator, built for
    /// `mode` on `input` (a node and its sample shape).
    fn build_layers(
        &mut self,
        g: &mut Graph<F>,
        step: NodeId,
        from: usize,
        input: (NodeId, &[usize]),
        mode: Mode,
    ) -> Result<Stack> {
        let mut stack = Stack {
            inputs: Vec::new(),
            params: Vec::new(),
            penalties: Vec::new(),
            states: Vec::new(),
            state_updates: Vec::new(),
            output: LayerNodes::new(input.0),
            shape: input.1.to_vec(),
            first_asking: None,
        };
        let seed = self.seed;
        for (i, e) in self.layers.iter_mut().enumerate().skip(from) {
            let shape = std::mem::take(&mut stack.shape);
            let next = e.layer.output_shape(&shape).map_err(|err| e.rename(err))?;
            e.param_count(&shape)?;
            let mut init = Init::for_layer(seed, i)
                .named(&e.name)
                .with_mode(mode)
                .with_step(step);
            let input = stack.output.output;
            let built = g.with_scope(&e.name, |g| e.layer.build(g, input, &shape, &mut init));
            let nodes = built.map_err(|err| e.rename(err))?;
            if init.asked_mode() && stack.first_asking.is_none() {
                stack.first_asking = Some(i);
            }
            stack.inputs.push((input, shape));
            stack.params.push(nodes.parameters.clone());
            stack.penalties.push(nodes.penalties.clone());
            stack.states.extend_from_slice(&nodes.states);
            stack.state_updates.push(nodes.state_updates.clone());
            stack.output = nodes;
            stack.shape = next;
        }
        Ok(stack)
    }

    fn output_width(&self, shape: Vec<usize>) -> Result<usize> {
        match shape.as_slice() {
            [w] => Ok(*w),
            _ => Err(NnError::LayerInput {
                layer: self
                    .layers
                    .last()
                    .map(|e| e.name.clone())
                    .unwrap_or_default(),
                shape,
                reason: "the last layer of a Sequential model must output a vector per sample",
            }),
        }
    }
}

/// The product of `dims`, or `None` when it overflows `usize`.
pub(crate) fn checked_product(dims: &[usize]) -> Option<usize> {
    dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
}

/// Every updated state is one of the layers' declared states, has the shape of its new
/// value, and is updated once.
fn check_states<F: Float>(
    g: &Graph<F>,
    states: &[NodeId],
    updates: &[(NodeId, NodeId)],
) -> Result<()> {
    for (k, &(state, value)) in updates.iter().enumerate() {
        let name = g.name(state)?.to_owned();
        let listed = states.contains(&state);
        let fits = g.shape(value)? == &dendrite_graph::Shape::fixed(g.value(state)?.shape());
        let once = !updates[..k].iter().any(|&(s, _)| s == state);
        if !(listed && fits && once) {
            return Err(NnError::StateUpdate {
                name,
                reason: match (listed, fits) {
                    (false, _) => "the state is not among the layer's LayerNodes::states",
                    (true, false) => "its new value does not have the state's shape",
                    (true, true) => "the state is updated twice",
                },
            });
        }
    }
    Ok(())
}
