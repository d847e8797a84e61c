//! The configuration of a model's parts as JSON: reading fields with errors that say where,
//! and the codecs of the built-in activations, initializers, regularizers, schedules, losses
//! and metrics. Numbers are written with `serde_json`'s shortest round-trip form and read back
//! exactly (its `float_roundtrip` parser), so a hyperparameter comes back the same bits.

use super::error::ConfigError;
use crate::activation::Activation;
use crate::initializer::Initializer;
use crate::loss::Loss;
use crate::metrics::Metric;
use crate::optim::Schedule;
use crate::outputs::{Head, OutputLosses, OutputMetric};
use crate::regularizer::Regularizer;
use serde_json::{json, Value};

/// `value[key]`, which must be present.
pub(crate) fn field<'a>(value: &'a Value, key: &str) -> Result<&'a Value, ConfigError> {
    value
        .get(key)
        .ok_or_else(|| ConfigError::new(key, "missing"))
}

/// `value[key]` as a finite number.
pub(crate) fn f64_field(value: &Value, key: &str) -> Result<f64, ConfigError> {
    field(value, key)?
        .as_f64()
        .filter(|v| v.is_finite())
        .ok_or_else(|| ConfigError::new(key, "must be a finite number"))
}

/// `value[key]` as an unsigned integer.
pub(crate) fn u64_field(value: &Value, key: &str) -> Result<u64, ConfigError> {
    field(value, key)?
        .as_u64()
        .ok_or_else(|| ConfigError::new(key, "must be an unsigned integer"))
}

/// `value[key]` as an unsigned integer that fits `usize`.
pub(crate) fn usize_field(value: &Value, key: &str) -> Result<usize, ConfigError> {
    usize::try_from(u64_field(value, key)?)
        .map_err(|_| ConfigError::new(key, "does not fit this machine's usize"))
}

/// `value[key]` as a boolean.
pub(crate) fn bool_field(value: &Value, key: &str) -> Result<bool, ConfigError> {
    field(value, key)?
        .as_bool()
        .ok_or_else(|| ConfigError::new(key, "must be true or false"))
}

/// `value[key]` as a string.
pub(crate) fn str_field<'a>(value: &'a Value, key: &str) -> Result<&'a str, ConfigError> {
    field(value, key)?
        .as_str()
        .ok_or_else(|| ConfigError::new(key, "must be a string"))
}

/// `value[key]`, `None` when absent or null.
pub(crate) fn optional<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    value.get(key).filter(|v| !v.is_null())
}

/// An error for a `name` that is not one of the known ones.
fn unknown(kind: &str, name: &str) -> ConfigError {
    ConfigError::new("name", format!("unknown {kind} `{name}`"))
}

pub(crate) fn activation_to_json(activation: Activation) -> Value {
    match activation {
        Activation::LeakyRelu(alpha) => json!({"name": "leaky_relu", "alpha": alpha}),
        other => json!({"name": other.name()}),
    }
}

pub(crate) fn activation_from_json(value: &Value) -> Result<Activation, ConfigError> {
    let name = str_field(value, "name")?;
    Ok(match name {
        "linear" => Activation::Linear,
        "relu" => Activation::Relu,
        "leaky_relu" => Activation::LeakyRelu(f64_field(value, "alpha")?),
        "sigmoid" => Activation::Sigmoid,
        "tanh" => Activation::Tanh,
        "softmax" => Activation::Softmax,
        "gelu" => Activation::Gelu,
        "gelu_tanh" => Activation::GeluTanh,
        other => return Err(unknown("activation", other)),
    })
}

pub(crate) fn initializer_to_json(initializer: &Initializer) -> Result<Value, ConfigError> {
    let name = match initializer {
        Initializer::GlorotUniform => "glorot_uniform",
        Initializer::GlorotNormal => "glorot_normal",
        Initializer::HeUniform => "he_uniform",
        Initializer::HeNormal => "he_normal",
        Initializer::LecunUniform => "lecun_uniform",
        Initializer::LecunNormal => "lecun_normal",
        Initializer::Zeros => "zeros",
        Initializer::Ones => "ones",
        Initializer::Orthogonal { gain } => return Ok(json!({"name": "orthogonal", "gain": gain})),
        Initializer::Constant(value) => return Ok(json!({"name": "constant", "value": value})),
        Initializer::RandomUniform { minval, maxval } => {
            return Ok(json!({"name": "random_uniform", "minval": minval, "maxval": maxval}))
        }
        Initializer::Custom(_) => {
            return Err(ConfigError::new(
                "initializer",
                "a custom initializer is code and cannot be written to a file",
            ))
        }
    };
    Ok(json!({ "name": name }))
}

pub(crate) fn initializer_from_json(value: &Value) -> Result<Initializer, ConfigError> {
    Ok(match str_field(value, "name")? {
        "glorot_uniform" => Initializer::GlorotUniform,
        "glorot_normal" => Initializer::GlorotNormal,
        "he_uniform" => Initializer::HeUniform,
        "he_normal" => Initializer::HeNormal,
        "lecun_uniform" => Initializer::LecunUniform,
        "lecun_normal" => Initializer::LecunNormal,
        "zeros" => Initializer::Zeros,
        "ones" => Initializer::Ones,
        "orthogonal" => Initializer::Orthogonal {
            gain: f64_field(value, "gain")?,
        },
        "constant" => Initializer::Constant(f64_field(value, "value")?),
        "random_uniform" => Initializer::RandomUniform {
            minval: f64_field(value, "minval")?,
            maxval: f64_field(value, "maxval")?,
        },
        other => return Err(unknown("initializer", other)),
    })
}

pub(crate) fn regularizer_to_json(regularizer: Option<Regularizer>) -> Value {
    match regularizer {
        None => Value::Null,
        Some(Regularizer::L1 { l1 }) => json!({"name": "l1", "l1": l1}),
        Some(Regularizer::L2 { l2 }) => json!({"name": "l2", "l2": l2}),
        Some(Regularizer::L1L2 { l1, l2 }) => json!({"name": "l1_l2", "l1": l1, "l2": l2}),
    }
}

pub(crate) fn regularizer_from_json(
    value: Option<&Value>,
) -> Result<Option<Regularizer>, ConfigError> {
    let Some(value) = value else {
        return Ok(None);
    };
    Ok(Some(match str_field(value, "name")? {
        "l1" => Regularizer::l1(f64_field(value, "l1")?),
        "l2" => Regularizer::l2(f64_field(value, "l2")?),
        "l1_l2" => Regularizer::l1_l2(f64_field(value, "l1")?, f64_field(value, "l2")?),
        other => return Err(unknown("regularizer", other)),
    }))
}

pub(crate) fn schedule_to_json(schedule: Schedule) -> Value {
    match schedule {
        Schedule::Constant(rate) => json!({"name": "constant", "rate": rate}),
        Schedule::Step {
            initial,
            factor,
            every,
        } => json!({"name": "step", "initial": initial, "factor": factor, "every": every}),
        Schedule::Exponential {
            initial,
            rate,
            steps,
            staircase,
        } => {
            json!({"name": "exponential", "initial": initial, "rate": rate, "steps": steps, "staircase": staircase})
        }
        Schedule::Cosine {
            initial,
            steps,
            alpha,
        } => json!({"name": "cosine", "initial": initial, "steps": steps, "alpha": alpha}),
    }
}

pub(crate) fn schedule_from_json(value: &Value) -> Result<Schedule, ConfigError> {
    Ok(match str_field(value, "name")? {
        "constant" => Schedule::Constant(f64_field(value, "rate")?),
        "step" => Schedule::Step {
            initial: f64_field(value, "initial")?,
            factor: f64_field(value, "factor")?,
            every: u64_field(value, "every")?,
        },
        "exponential" => Schedule::Exponential {
            initial: f64_field(value, "initial")?,
            rate: f64_field(value, "rate")?,
            steps: u64_field(value, "steps")?,
            staircase: bool_field(value, "staircase")?,
        },
        "cosine" => Schedule::Cosine {
            initial: f64_field(value, "initial")?,
            steps: u64_field(value, "steps")?,
            alpha: f64_field(value, "alpha")?,
        },
        other => return Err(unknown("schedule", other)),
    })
}

pub(crate) fn loss_to_json(loss: &Loss) -> Result<Value, ConfigError> {
    match loss {
        Loss::Custom(_) => Err(ConfigError::new(
            "loss",
            "a custom loss is code and cannot be written to a file",
        )),
        Loss::Outputs(o) => {
            let heads = o.heads().iter().map(|h| {
                Ok(json!({"name": h.name, "width": h.width, "loss": loss_to_json(&h.loss)?, "weight": h.weight}))
            });
            Ok(json!({"outputs": heads.collect::<Result<Vec<_>, ConfigError>>()?}))
        }
        builtin => Ok(json!(builtin.name())),
    }
}

pub(crate) fn loss_from_json(value: &Value) -> Result<Loss, ConfigError> {
    if let Some(heads) = optional(value, "outputs") {
        let heads = heads
            .as_array()
            .ok_or_else(|| ConfigError::new("outputs", "must be a list"))?;
        let heads = heads.iter().enumerate().map(|(k, h)| {
            let head = || -> Result<Head, ConfigError> {
                Ok(Head {
                    name: str_field(h, "name")?.to_owned(),
                    width: usize_field(h, "width")?,
                    loss: loss_from_json(field(h, "loss")?).map_err(|e| e.within("loss"))?,
                    weight: f64_field(h, "weight")?,
                })
            };
            head().map_err(|e| e.within(&format!("outputs[{k}]")))
        });
        let heads = heads.collect::<Result<Vec<_>, _>>()?;
        let losses =
            OutputLosses::new(heads).map_err(|e| ConfigError::new("outputs", e.to_string()))?;
        return Ok(Loss::Outputs(losses));
    }
    let name = value
        .as_str()
        .ok_or_else(|| ConfigError::new("", "must be a loss name"))?;
    Ok(match name {
        "mean_squared_error" => Loss::MeanSquaredError,
        "mean_absolute_error" => Loss::MeanAbsoluteError,
        "binary_crossentropy" => Loss::BinaryCrossentropy,
        "categorical_crossentropy" => Loss::CategoricalCrossentropy,
        "sparse_categorical_crossentropy" => Loss::SparseCategoricalCrossentropy,
        other => return Err(unknown("loss", other)),
    })
}

pub(crate) fn metric_to_json(metric: &Metric) -> Result<Value, ConfigError> {
    Ok(match metric {
        Metric::TopKCategoricalAccuracy { k } | Metric::SparseTopKCategoricalAccuracy { k } => {
            json!({"name": metric.name(), "k": k})
        }
        Metric::Custom(_) => {
            return Err(ConfigError::new(
                "metric",
                "a custom metric is code and cannot be written to a file",
            ))
        }
        Metric::Output(o) => {
            let metric = o.metric.as_deref().map(metric_to_json).transpose()?;
            json!({"name": "output", "output": o.output, "label": o.name, "metric": metric,
                "loss": loss_to_json(&o.loss)?, "width": o.width, "offset": o.offset})
        }
        builtin => json!({"name": builtin.name()}),
    })
}

pub(crate) fn metric_from_json(value: &Value) -> Result<Metric, ConfigError> {
    Ok(match str_field(value, "name")? {
        "accuracy" => Metric::Accuracy,
        "sparse_categorical_accuracy" => Metric::SparseCategoricalAccuracy,
        "categorical_accuracy" => Metric::CategoricalAccuracy,
        "binary_accuracy" => Metric::BinaryAccuracy,
        "mean_absolute_error" => Metric::MeanAbsoluteError,
        "mean_squared_error" => Metric::MeanSquaredError,
        "root_mean_squared_error" => Metric::RootMeanSquaredError,
        "top_k_categorical_accuracy" => Metric::TopKCategoricalAccuracy {
            k: usize_field(value, "k")?,
        },
        "sparse_top_k_categorical_accuracy" => Metric::SparseTopKCategoricalAccuracy {
            k: usize_field(value, "k")?,
        },
        "output" => {
            let metric = match field(value, "metric")? {
                Value::Null => None,
                m => Some(Box::new(
                    metric_from_json(m).map_err(|e| e.within("metric"))?,
                )),
            };
            Metric::Output(OutputMetric::new(
                usize_field(value, "output")?,
                str_field(value, "label")?,
                metric,
                loss_from_json(field(value, "loss")?).map_err(|e| e.within("loss"))?,
                (usize_field(value, "width")?, usize_field(value, "offset")?),
            ))
        }
        other => return Err(unknown("metric", other)),
    })
}
