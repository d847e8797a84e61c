//! Stochastic gradient descent, with optional (Nesterov) momentum.

use super::kernels::{self, Update};
use super::{require, same_len, state, visit_slots, zeroed, Clipping, Optimizer, Schedule};
use crate::error::Result;
use crate::float::Float;

/// Stochastic gradient descent (Keras' `SGD`: learning rate 0.01, no momentum by default).
///
/// Without momentum `w -= lr g`. With momentum `μ` a velocity `v` (starting at 0) follows
/// `v = μ v - lr g` and `w += v`; with Nesterov momentum `w += μ v - lr g` instead.
///
/// ```
/// use dendrite_nn::{Optimizer, Sgd};
/// let mut sgd = Sgd::<f64>::new(0.1).momentum(0.9);
/// sgd.prepare(&[1])?;
/// let mut w = [1.0];
/// sgd.begin_step(0);
/// sgd.update(0, &mut w, &[1.0])?; // v = -0.1, w = 0.9
/// sgd.begin_step(1);
/// sgd.update(0, &mut w, &[1.0])?; // v = -0.09 - 0.1 = -0.19, w = 0.71
/// assert!((w[0] - 0.71).abs() < 1e-12);
/// # Ok::<(), dendrite_nn::NnError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Sgd<F = f32> {
    schedule: Schedule,
    momentum: f64,
    nesterov: bool,
    velocity: Vec<Vec<F>>,
    lr: f64,
    pub(super) clipping: Clipping,
}

impl<F: Float> Default for Sgd<F> {
    fn default() -> Self {
        Sgd::new(0.01)
    }
}

impl<F: Float> Sgd<F> {
    /// Plain SGD with a learning rate (a number or a [`Schedule`]).
    ///
    /// ```
    /// let sgd = dendrite_nn::Sgd::<f32>::new(0.1);
    /// # let _ = sgd;
    /// ```
    pub fn new(learning_rate: impl Into<Schedule>) -> Self {
        Sgd {
            schedule: learning_rate.into(),
            momentum: 0.0,
            nesterov: false,
            velocity: Vec::new(),
            lr: 0.0,
            clipping: Clipping::default(),
        }
    }

    super::clipping_setters!(clipping);

    /// Sets the momentum `μ` in `[0, 1)`.
    ///
    /// ```
    /// let sgd = dendrite_nn::Sgd::<f32>::new(0.1).momentum(0.9);
    /// # let _ = sgd;
    /// ```
    pub fn momentum(mut self, momentum: f64) -> Self {
        self.momentum = momentum;
        self
    }

    /// Uses Nesterov momentum.
    ///
    /// ```
    /// let sgd = dendrite_nn::Sgd::<f32>::new(0.1).momentum(0.9).nesterov(true);
    /// # let _ = sgd;
    /// ```
    pub fn nesterov(mut self, nesterov: bool) -> Self {
        self.nesterov = nesterov;
        self
    }
}

impl<F: Float> Optimizer<F> for Sgd<F> {
    fn name(&self) -> &'static str {
        "sgd"
    }

    fn validate(&self) -> Result<()> {
        self.schedule.validate()?;
        self.clipping.validate("sgd")?;
        require(
            (0.0..1.0).contains(&self.momentum),
            "sgd",
            "momentum",
            self.momentum,
            "must lie in [0, 1)",
        )
    }

    fn prepare(&mut self, sizes: &[usize]) -> Result<()> {
        self.velocity = if self.momentum > 0.0 {
            zeroed("sgd velocity", sizes)?
        } else {
            Vec::new()
        };
        Ok(())
    }

    fn begin_step(&mut self, step: u64) {
        self.lr = self.schedule.at(step);
    }

    fn update(&mut self, index: usize, param: &mut [F], grad: &[F]) -> Result<()> {
        let lr = F::of(self.lr);
        if self.momentum == 0.0 {
            same_len(index, param.len(), grad.len())?;
            kernels::apply(Update::Sgd { lr }, param, grad);
            return Ok(());
        }
        let mu = F::of(self.momentum);
        let velocity = state(&mut self.velocity, index, param.len(), grad.len())?;
        let update = if self.nesterov {
            Update::Nesterov { lr, mu, velocity }
        } else {
            Update::Momentum { lr, mu, velocity }
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
        visit_slots(&mut [&mut self.velocity], index, visit);
    }

    fn config(&self) -> std::result::Result<serde_json::Value, crate::ConfigError> {
        Ok(serde_json::json!({
            "name": "sgd",
            "learning_rate": super::config::schedule_json(self.schedule),
            "momentum": self.momentum,
            "nesterov": self.nesterov,
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
