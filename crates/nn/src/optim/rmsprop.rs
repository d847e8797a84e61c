//! RMSprop.

use super::kernels::{self, Update};
use super::{require, state, visit_slots, zeroed, Clipping, Optimizer, Schedule};
use crate::error::{NnError, Result};
use crate::float::Float;

/// RMSprop, with Keras' defaults: learning rate `1e-3`, `ρ = 0.9`, no momentum, `ε = 1e-7`.
///
/// `v = ρ v + (1-ρ) g²` and `Δ = lr · g / √(v + ε)`; then `w -= Δ`, or with momentum `μ`,
/// `m = μ m + Δ` and `w -= m`.
///
/// ```
/// use dendrite_nn::{Optimizer, RmsProp};
/// let mut opt = RmsProp::<f64>::new(0.01);
/// opt.prepare(&[1])?;
/// opt.begin_step(0);
/// let mut w = [1.0];
/// opt.update(0, &mut w, &[2.0])?; // v = 0.1 · 4 = 0.4
/// assert!((w[0] - (1.0 - 0.01 * 2.0 / (0.4_f64 + 1e-7).sqrt())).abs() < 1e-15);
/// # Ok::<(), dendrite_nn::NnError>(())
/// ```
#[derive(Debug, Clone)]
pub struct RmsProp<F = f32> {
    schedule: Schedule,
    rho: f64,
    momentum: f64,
    epsilon: f64,
    v: Vec<Vec<F>>,
    m: Vec<Vec<F>>,
    lr: f64,
    pub(super) clipping: Clipping,
}

impl<F: Float> Default for RmsProp<F> {
    fn default() -> Self {
        RmsProp::new(1e-3)
    }
}

impl<F: Float> RmsProp<F> {
    /// RMSprop with a learning rate (a number or a [`Schedule`]) and Keras' other defaults.
    ///
    /// ```
    /// let opt = dendrite_nn::RmsProp::<f32>::new(1e-3);
    /// # let _ = opt;
    /// ```
    pub fn new(learning_rate: impl Into<Schedule>) -> Self {
        RmsProp {
            schedule: learning_rate.into(),
            rho: 0.9,
            momentum: 0.0,
            epsilon: 1e-7,
            v: Vec::new(),
            m: Vec::new(),
            lr: 0.0,
            clipping: Clipping::default(),
        }
    }

    super::clipping_setters!(clipping);

    /// Sets the decay `ρ` in `[0, 1)`.
    ///
    /// ```
    /// let opt = dendrite_nn::RmsProp::<f32>::default().rho(0.95);
    /// # let _ = opt;
    /// ```
    pub fn rho(mut self, rho: f64) -> Self {
        self.rho = rho;
        self
    }

    /// Sets the momentum `μ` in `[0, 1)`.
    ///
    /// ```
    /// let opt = dendrite_nn::RmsProp::<f32>::default().momentum(0.9);
    /// # let _ = opt;
    /// ```
    pub fn momentum(mut self, momentum: f64) -> Self {
        self.momentum = momentum;
        self
    }

    /// Sets `ε` (> 0).
    ///
    /// ```
    /// let opt = dendrite_nn::RmsProp::<f32>::default().epsilon(1e-6);
    /// # let _ = opt;
    /// ```
    pub fn epsilon(mut self, epsilon: f64) -> Self {
        self.epsilon = epsilon;
        self
    }
}

impl<F: Float> Optimizer<F> for RmsProp<F> {
    fn name(&self) -> &'static str {
        "rmsprop"
    }

    fn validate(&self) -> Result<()> {
        self.schedule.validate()?;
        self.clipping.validate("rmsprop")?;
        require(
            (0.0..1.0).contains(&self.rho),
            "rmsprop",
            "rho",
            self.rho,
            "must lie in [0, 1)",
        )?;
        require(
            (0.0..1.0).contains(&self.momentum),
            "rmsprop",
            "momentum",
            self.momentum,
            "must lie in [0, 1)",
        )?;
        require(
            self.epsilon > 0.0 && self.epsilon.is_finite(),
            "rmsprop",
            "epsilon",
            self.epsilon,
            "must be finite and > 0",
        )
    }

    fn prepare(&mut self, sizes: &[usize]) -> Result<()> {
        self.v = zeroed("rmsprop mean square", sizes)?;
        self.m = if self.momentum > 0.0 {
            zeroed("rmsprop momentum", sizes)?
        } else {
            Vec::new()
        };
        Ok(())
    }

    fn begin_step(&mut self, step: u64) {
        self.lr = self.schedule.at(step);
    }

    fn update(&mut self, index: usize, param: &mut [F], grad: &[F]) -> Result<()> {
        let (rho, one_minus_rho) = (F::of(self.rho), F::of(1.0 - self.rho));
        let (lr, eps) = (F::of(self.lr), F::of(self.epsilon));
        let mean_square = state(&mut self.v, index, param.len(), grad.len())?;
        if self.momentum == 0.0 {
            let update = Update::RmsProp {
                rho,
                one_minus_rho,
                lr,
                eps,
                mean_square,
            };
            kernels::apply(update, param, grad);
            return Ok(());
        }
        let expected = mean_square.len();
        let momentum = self
            .m
            .get_mut(index)
            .filter(|m| m.len() == expected)
            .ok_or(NnError::OptimizerState {
                index,
                expected,
                actual: param.len(),
            })?;
        let update = Update::RmsPropMomentum {
            rho,
            one_minus_rho,
            lr,
            eps,
            mu: F::of(self.momentum),
            mean_square,
            momentum,
        };
        kernels::apply(update, param, grad);
        Ok(())
    }

    fn clipping(&self) -> Clipping {
        self.clipping
    }

    fn learning_rate(&self) -> f64 {
        self.lr
    }

    fn visit_state(&mut self, index: usize, visit: &mut dyn FnMut(&mut [F])) {
        visit_slots(&mut [&mut self.v, &mut self.m], index, visit);
    }

    fn config(&self) -> std::result::Result<serde_json::Value, crate::ConfigError> {
        Ok(serde_json::json!({
            "name": "rmsprop",
            "learning_rate": super::config::schedule_json(self.schedule),
            "rho": self.rho,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "clipping": self.clipping.to_json(),
        }))
    }

    fn schedule(&self) -> Option<Schedule> {
        Some(self.schedule)
    }

    fn set_schedule(&mut self, schedule: Schedule) -> bool {
        self.schedule = schedule;
        true
    }
}
