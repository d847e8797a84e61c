//! A Functional block as JSON, for model files: its layers (each by kind and config) and its
//! steps. Loading replays the steps through a [`Functional`] builder, so every shape and
//! every connection is checked again as when the model was written.

use super::block::Block;
use super::{Functional, LayerRef, Merge, Step, Tensor};
use crate::float::Float;
use crate::persist::json::{field, optional, str_field};
use crate::persist::LayerRegistry;
use crate::shape::shape_from_json;
use crate::ConfigError;
use serde_json::{json, Value};

pub(super) fn to_json<F: Float>(block: &Block<F>) -> Result<Value, ConfigError> {
    let mut layers = Vec::with_capacity(block.layers.len());
    for (k, (name, layer)) in block.layers.iter().enumerate() {
        let config = layer
            .config()
            .map_err(|e| e.within(&format!("layers[{k}]")))?;
        layers.push(json!({ "name": name, "kind": layer.kind(), "config": config }));
    }
    let steps: Vec<Value> = block
        .nodes
        .iter()
        .map(|n| match &n.step {
            Step::Input => json!({ "input": n.shape }),
            Step::Call { layer, input } => json!({ "call": layer, "on": input }),
            Step::Merge { merge, inputs } => {
                let axis = match merge {
                    Merge::Concatenate { axis } => Some(*axis),
                    _ => None,
                };
                json!({ "merge": merge.name(), "axis": axis, "of": inputs })
            }
        })
        .collect();
    Ok(json!({
        "layers": layers,
        "steps": steps,
        "inputs": block.inputs,
        "outputs": block.outputs,
    }))
}

/// A Functional block from its JSON, its layers rebuilt through `registry` (so a model
/// file's Functional block may hold layers of the user's own types).
pub(crate) fn from_json<F: Float>(
    config: &Value,
    registry: &LayerRegistry<F>,
) -> Result<Block<F>, ConfigError> {
    let mut f = Functional::<F>::new();
    let layers = list(config, "layers")?;
    let mut refs: Vec<LayerRef> = Vec::with_capacity(layers.len());
    for (k, entry) in layers.iter().enumerate() {
        let at = format!("layers[{k}]");
        let kind = str_field(entry, "kind").map_err(|e| e.within(&at))?;
        let settings = field(entry, "config").map_err(|e| e.within(&at))?;
        let layer = registry.rebuild(kind, settings).ok_or_else(|| {
            let known = registry.kinds().join(", ");
            ConfigError::new(
                &at,
                format!("unknown layer type `{kind}` (the registry knows {known})"),
            )
        })?;
        let layer = layer.map_err(|e| e.within(&at))?;
        refs.push(f.layer_boxed(str_field(entry, "name").map_err(|e| e.within(&at))?, layer));
    }
    let mut tensors: Vec<Tensor> = Vec::new();
    for (k, step) in list(config, "steps")?.iter().enumerate() {
        let at = format!("steps[{k}]");
        let tensor = replay(&mut f, &refs, &tensors, step).map_err(|e| e.within(&at))?;
        tensors.push(tensor);
    }
    let (inputs, outputs) = (
        ends(config, "inputs", &tensors)?,
        ends(config, "outputs", &tensors)?,
    );
    Block::new(f, &inputs, &outputs).map_err(|e| ConfigError::new("outputs", e.to_string()))
}

/// The steps listed under `key` (`inputs` or `outputs`).
fn ends(config: &Value, key: &'static str, tensors: &[Tensor]) -> Result<Vec<Tensor>, ConfigError> {
    list(config, key)?
        .iter()
        .map(|v| {
            v.as_u64()
                .and_then(|i| tensors.get(usize::try_from(i).ok()?).copied())
                .ok_or_else(|| ConfigError::new(key, "must list steps"))
        })
        .collect()
}

fn list<'a>(config: &'a Value, key: &'static str) -> Result<&'a Vec<Value>, ConfigError> {
    field(config, key)?
        .as_array()
        .ok_or_else(|| ConfigError::new(key, "must be a list"))
}

/// One recorded step, through the builder (which checks it); steps read earlier steps only.
fn replay<F: Float>(
    f: &mut Functional<F>,
    refs: &[LayerRef],
    tensors: &[Tensor],
    step: &Value,
) -> Result<Tensor, ConfigError> {
    let earlier = |v: &Value, key: &'static str| -> Result<Tensor, ConfigError> {
        let i = v
            .as_u64()
            .ok_or_else(|| ConfigError::new(key, "must be a step index"))?;
        usize::try_from(i)
            .ok()
            .and_then(|i| tensors.get(i).copied())
            .ok_or_else(|| ConfigError::new(key, "must name an earlier step"))
    };
    let built = |r: crate::Result<Tensor>| r.map_err(|e| ConfigError::new("", e.to_string()));
    if optional(step, "input").is_some() {
        let shape = shape_from_json(step, "input")?
            .ok_or_else(|| ConfigError::new("input", "must be a shape"))?;
        return built(f.input(shape));
    }
    if let Some(layer) = optional(step, "call") {
        let r = layer
            .as_u64()
            .and_then(|i| refs.get(usize::try_from(i).ok()?).copied())
            .ok_or_else(|| ConfigError::new("call", "must name a layer"))?;
        let x = earlier(field(step, "on")?, "on")?;
        return built(f.call(r, x));
    }
    let merge = match str_field(step, "merge")? {
        "add" => Merge::Add,
        "multiply" => Merge::Multiply,
        "average" => Merge::Average,
        "concatenate" => {
            let axis = field(step, "axis")?
                .as_i64()
                .and_then(|a| isize::try_from(a).ok())
                .ok_or_else(|| ConfigError::new("axis", "must be an integer"))?;
            Merge::Concatenate { axis }
        }
        other => {
            return Err(ConfigError::new(
                "merge",
                format!("unknown merge `{other}`"),
            ))
        }
    };
    let of = field(step, "of")?
        .as_array()
        .ok_or_else(|| ConfigError::new("of", "must be a list of steps"))?;
    let xs: Vec<Tensor> = of
        .iter()
        .map(|v| earlier(v, "of"))
        .collect::<Result<_, _>>()?;
    built(f.merge(merge, &xs))
}
