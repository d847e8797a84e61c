//! Rebuilding a built-in optimizer from the JSON its [`Optimizer::config`] wrote.

use super::{Adam, AdamW, Clipping, Optimizer, RmsProp, Schedule, Sgd};
use crate::float::Float;
use crate::persist::json::{
    bool_field, f64_field, field, schedule_from_json, schedule_to_json, str_field,
};
use crate::ConfigError;
use serde_json::Value;

/// A schedule's JSON (shared by the optimizers' `config`).
pub(super) fn schedule_json(schedule: Schedule) -> Value {
    schedule_to_json(schedule)
}

/// The optimizer `value` describes, or `Ok(None)` when its name is not a built-in one.
pub(crate) fn optimizer_from_json<F: Float>(
    value: &Value,
) -> Result<Option<Box<dyn Optimizer<F>>>, ConfigError> {
    let schedule = schedule_from_json(field(value, "learning_rate")?)
        .map_err(|e| e.within("learning_rate"))?;
    let clipping =
        Clipping::from_json(field(value, "clipping")?).map_err(|e| e.within("clipping"))?;
    let optimizer: Box<dyn Optimizer<F>> = match str_field(value, "name")? {
        "sgd" => {
            let mut sgd = Sgd::new(schedule)
                .momentum(f64_field(value, "momentum")?)
                .nesterov(bool_field(value, "nesterov")?);
            sgd.clipping = clipping;
            Box::new(sgd)
        }
        "adam" => Box::new(adam(value, schedule, clipping)?),
        "adamw" => {
            let decay = f64_field(value, "weight_decay")?;
            let mut adamw = AdamW::new(schedule).weight_decay(decay);
            adamw.adam = adam(value, schedule, clipping)?;
            Box::new(adamw)
        }
        "rmsprop" => {
            let mut rmsprop = RmsProp::new(schedule)
                .rho(f64_field(value, "rho")?)
                .momentum(f64_field(value, "momentum")?)
                .epsilon(f64_field(value, "epsilon")?);
            rmsprop.clipping = clipping;
            Box::new(rmsprop)
        }
        _ => return Ok(None),
    };
    Ok(Some(optimizer))
}

/// Adam's hyperparameters from `value`.
fn adam<F: Float>(
    value: &Value,
    schedule: Schedule,
    clipping: Clipping,
) -> Result<Adam<F>, ConfigError> {
    let mut adam = Adam::new(schedule)
        .betas(f64_field(value, "beta1")?, f64_field(value, "beta2")?)
        .epsilon(f64_field(value, "epsilon")?);
    adam.clipping = clipping;
    Ok(adam)
}
