//! Learning-rate schedules: the learning rate as a function of the step number.

use crate::error::{NnError, Result};

/// A learning rate that may change with the training step (counted from 0, one per batch), as
/// Keras' `LearningRateSchedule`s do.
///
/// | schedule | rate at step `t` |
/// | --- | --- |
/// | `Constant(r)` | `r` |
/// | `Step { initial, factor, every }` | `initial · factor^⌊t / every⌋` |
/// | `Exponential { initial, rate, steps, staircase }` | `initial · rate^(t / steps)` (exponent floored when `staircase`) |
/// | `Cosine { initial, steps, alpha }` | `initial · ((1 - alpha) · ½(1 + cos(π min(t, steps) / steps)) + alpha)` |
///
/// A plain `f64` converts into `Constant`.
///
/// ```
/// use dendrite_nn::Schedule;
/// let s = Schedule::Step { initial: 0.1, factor: 0.5, every: 10 };
/// assert_eq!(s.at(0), 0.1);
/// assert_eq!(s.at(10), 0.05);
/// let c = Schedule::Cosine { initial: 1.0, steps: 100, alpha: 0.0 };
/// assert!((c.at(50) - 0.5).abs() < 1e-12);
/// assert_eq!(c.at(1000), 0.0);
/// assert_eq!(Schedule::from(0.01).at(7), 0.01);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Schedule {
    /// A fixed rate.
    Constant(f64),
    /// Multiply by `factor` every `every` steps.
    Step {
        /// Rate at step 0.
        initial: f64,
        /// Multiplier applied at each drop.
        factor: f64,
        /// Steps between drops.
        every: u64,
    },
    /// Exponential decay (Keras' `ExponentialDecay`).
    Exponential {
        /// Rate at step 0.
        initial: f64,
        /// The factor reached after `steps` steps.
        rate: f64,
        /// Steps over which the rate is multiplied by `rate`.
        steps: u64,
        /// Decay in whole intervals rather than continuously.
        staircase: bool,
    },
    /// Cosine decay to `alpha · initial` over `steps` steps (Keras' `CosineDecay`).
    Cosine {
        /// Rate at step 0.
        initial: f64,
        /// Steps of the decay; the rate stays at its floor afterwards.
        steps: u64,
        /// The floor, as a fraction of `initial`.
        alpha: f64,
    },
}

impl From<f64> for Schedule {
    fn from(rate: f64) -> Self {
        Schedule::Constant(rate)
    }
}

impl Schedule {
    /// The learning rate at step `step` (0 for the first update).
    ///
    /// ```
    /// use dendrite_nn::Schedule;
    /// let e = Schedule::Exponential { initial: 1.0, rate: 0.5, steps: 2, staircase: true };
    /// assert_eq!((e.at(1), e.at(2), e.at(3)), (1.0, 0.5, 0.5));
    /// ```
    pub fn at(&self, step: u64) -> f64 {
        match *self {
            Schedule::Constant(r) => r,
            Schedule::Step {
                initial,
                factor,
                every,
            } => {
                let drops = step / every.max(1);
                initial * factor.powf(drops as f64)
            }
            Schedule::Exponential {
                initial,
                rate,
                steps,
                staircase,
            } => {
                let mut p = step as f64 / steps.max(1) as f64;
                if staircase {
                    p = p.floor();
                }
                initial * rate.powf(p)
            }
            Schedule::Cosine {
                initial,
                steps,
                alpha,
            } => {
                let steps = steps.max(1);
                let t = step.min(steps) as f64 / steps as f64;
                let cosine = 0.5 * (1.0 + (std::f64::consts::PI * t).cos());
                initial * ((1.0 - alpha) * cosine + alpha)
            }
        }
    }

    /// Checks that the schedule gives finite, non-negative rates.
    ///
    /// # Errors
    /// [`NnError::Hyperparameter`] naming the bad field.
    ///
    /// ```
    /// assert!(dendrite_nn::Schedule::Constant(-1.0).validate().is_err());
    /// assert!(dendrite_nn::Schedule::Constant(1e-3).validate().is_ok());
    /// ```
    pub fn validate(&self) -> Result<()> {
        let bad = |name, value: f64, reason| {
            Err(NnError::Hyperparameter {
                owner: "learning-rate schedule",
                name,
                value,
                reason,
            })
        };
        let initial = match *self {
            Schedule::Constant(r) => r,
            Schedule::Step {
                initial,
                factor,
                every,
            } => {
                if !(factor.is_finite() && factor >= 0.0) {
                    return bad("factor", factor, "must be finite and >= 0");
                }
                if every == 0 {
                    return bad("every", 0.0, "must be at least 1");
                }
                initial
            }
            Schedule::Exponential {
                initial,
                rate,
                steps,
                ..
            } => {
                if !(rate.is_finite() && rate > 0.0) {
                    return bad("rate", rate, "must be finite and > 0");
                }
                if steps == 0 {
                    return bad("steps", 0.0, "must be at least 1");
                }
                initial
            }
            Schedule::Cosine {
                initial,
                steps,
                alpha,
            } => {
                if !(0.0..=1.0).contains(&alpha) {
                    return bad("alpha", alpha, "must lie in [0, 1]");
                }
                if steps == 0 {
                    return bad("steps", 0.0, "must be at least 1");
                }
                initial
            }
        };
        if initial.is_finite() && initial >= 0.0 {
            Ok(())
        } else {
            bad("learning_rate", initial, "must be finite and >= 0")
        }
    }
}
