//! Adam and AdamW.

use super::kernels::{self, Update};
use super::{require, state, visit_slots, zeroed, Clipping, Optimizer, Schedule};
use crate::error::{NnError, Result};
use crate::float::Float;

/// Adam, with Keras' defaults: learning rate `1e-3`, `β₁ = 0.9`, `β₂ = 0.999`, `ε = 1e-7`.
///
/// At step `t` (1-based) with gradient `g`:
/// `m += (1-β₁)(g - m)`, `v += (1-β₂)(g² - v)` and
/// `w -= α_t · m / (√v + ε)` with the bias-corrected step `α_t = lr · √(1-β₂ᵗ) / (1-β₁ᵗ)`.
///
/// ```
/// use dendrite_nn::{Adam, Optimizer};
/// let mut adam = Adam::<f64>::default();
/// adam.prepare(&[1])?;
/// adam.begin_step(0);
/// let mut w = [1.0];
/// adam.update(0, &mut w, &[0.5])?;
/// // m = 0.05, v = 0.00025, α = 1e-3 · √0.001 / 0.1: the first step moves by about lr.
/// let alpha = 1e-3 * (1.0_f64 - 0.999).sqrt() / (1.0 - 0.9);
/// let expected = 1.0 - alpha * 0.05 / (0.00025_f64.sqrt() + 1e-7);
/// assert!((w[0] - expected).abs() < 1e-15);
/// # Ok::<(), dendrite_nn::NnError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Adam<F = f32> {
    schedule: Schedule,
    beta1: f64,
    beta2: f64,
    epsilon: f64,
    m: Vec<Vec<F>>,
    v: Vec<Vec<F>>,
    lr: f64,
    alpha: f64,
    pub(super) clipping: Clipping,
}

impl<F: Float> Default for Adam<F> {
    fn default() -> Self {
        Adam::new(1e-3)
    }
}

impl<F: Float> Adam<F> {
    /// Adam with a learning rate (a number or a [`Schedule`]) and Keras' other defaults.
    ///
    /// ```
    /// let adam = dendrite_nn::Adam::<f32>::new(3e-4);
    /// # let _ = adam;
    /// ```
    pub fn new(learning_rate: impl Into<Schedule>) -> Self {
        Adam {
            schedule: learning_rate.into(),
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-7,
            m: Vec::new(),
            v: Vec::new(),
            lr: 0.0,
            alpha: 0.0,
            clipping: Clipping::default(),
        }
    }

    super::clipping_setters!(clipping);

    /// Sets `β₁` and `β₂`, each in `[0, 1)`.
    ///
    /// ```
    /// let adam = dendrite_nn::Adam::<f32>::default().betas(0.8, 0.99);
    /// # let _ = adam;
    /// ```
    pub fn betas(mut self, beta1: f64, beta2: f64) -> Self {
        self.beta1 = beta1;
        self.beta2 = beta2;
        self
    }

    /// Sets `ε` (> 0).
    ///
    /// ```
    /// let adam = dendrite_nn::Adam::<f32>::default().epsilon(1e-8);
    /// # let _ = adam;
    /// ```
    pub fn epsilon(mut self, epsilon: f64) -> Self {
        self.epsilon = epsilon;
        self
    }

    fn check(&self, owner: &'static str) -> Result<()> {
        self.schedule.validate()?;
        self.clipping.validate(owner)?;
        require(
            (0.0..1.0).contains(&self.beta1),
            owner,
            "beta1",
            self.beta1,
            "must lie in [0, 1)",
        )?;
        require(
            (0.0..1.0).contains(&self.beta2),
            owner,
            "beta2",
            self.beta2,
            "must lie in [0, 1)",
        )?;
        require(
            self.epsilon > 0.0 && self.epsilon.is_finite(),
            owner,
            "epsilon",
            self.epsilon,
            "must be finite and > 0",
        )
    }

    fn step_scalars(&mut self, step: u64) {
        self.lr = self.schedule.at(step);
        let t = (step + 1) as f64;
        let c1 = 1.0 - self.beta1.powf(t);
        let c2 = 1.0 - self.beta2.powf(t);
        self.alpha = self.lr * c2.sqrt() / c1;
    }

    /// Adam's hyperparameters as JSON, under `name`.
    fn json(&self, name: &str) -> serde_json::Value {
        serde_json::json!({
            "name": name,
            "learning_rate": super::config::schedule_json(self.schedule),
            "beta1": self.beta1,
            "beta2": self.beta2,
            "epsilon": self.epsilon,
            "clipping": self.clipping.to_json(),
        })
    }

    /// The fused update of parameter `index`, after `w -= decay w` when `decay` is given.
    fn adam_update(
        &mut self,
        index: usize,
        param: &mut [F],
        grad: &[F],
        decay: Option<F>,
    ) -> Result<()> {
        let m = state(&mut self.m, index, param.len(), grad.len())?;
        let v = self.v.get_mut(index).ok_or(NnError::OptimizerState {
            index,
            expected: 0,
            actual: param.len(),
        })?;
        if v.len() != m.len() {
            return Err(NnError::OptimizerState {
                index,
                expected: v.len(),
                actual: m.len(),
            });
        }
        let update = Update::Adam {
            b1: F::of(1.0 - self.beta1),
            b2: F::of(1.0 - self.beta2),
            alpha: F::of(self.alpha),
            eps: F::of(self.epsilon),
            decay,
            m,
            v,
        };
        kernels::apply(update, param, grad);
        Ok(())
    }
}

impl<F: Float> Optimizer<F> for Adam<F> {
    fn name(&self) -> &'static str {
        "adam"
    }

    fn validate(&self) -> Result<()> {
        self.check("adam")
    }

    fn prepare(&mut self, sizes: &[usize]) -> Result<()> {
        self.m = zeroed("adam first moment", sizes)?;
        self.v = zeroed("adam second moment", sizes)?;
        Ok(())
    }

    fn begin_step(&mut self, step: u64) {
        self.step_scalars(step);
    }

    fn update(&mut self, index: usize, param: &mut [F], grad: &[F]) -> Result<()> {
        self.adam_update(index, param, grad, None)
    }

    fn clipping(&self) -> Clipping {
        self.clipping
    }

    fn learning_rate(&self) -> f64 {
        self.lr
    }

    fn visit_state(&mut self, index: usize, visit: &mut dyn FnMut(&mut [F])) {
        visit_slots(&mut [&mut self.m, &mut self.v], index, visit);
    }

    fn config(&self) -> std::result::Result<serde_json::Value, crate::ConfigError> {
        Ok(self.json("adam"))
    }

    fn schedule(&self) -> Option<Schedule> {
        Some(self.schedule)
    }

    fn set_schedule(&mut self, schedule: Schedule) -> bool {
        self.schedule = schedule;
        true
    }
}

/// Adam with decoupled weight decay (Keras' `AdamW`: weight decay `0.004` by default).
///
/// Each step first shrinks the weights, `w -= lr · λ · w`, then applies the [`Adam`] update.
/// The decay applies to every parameter, biases included, as in Keras.
///
/// ```
/// use dendrite_nn::{AdamW, Optimizer};
/// let mut opt = AdamW::<f64>::new(0.1).weight_decay(0.5);
/// opt.prepare(&[1])?;
/// opt.begin_step(0);
/// let mut w = [2.0];
/// opt.update(0, &mut w, &[0.0])?; // zero gradient: only the decay acts
/// assert!((w[0] - (2.0 - 0.1 * 0.5 * 2.0)).abs() < 1e-12);
/// # Ok::<(), dendrite_nn::NnError>(())
/// ```
#[derive(Debug, Clone)]
pub struct AdamW<F = f32> {
    pub(super) adam: Adam<F>,
    weight_decay: f64,
}

impl<F: Float> Default for AdamW<F> {
    fn default() -> Self {
        AdamW::new(1e-3)
    }
}

impl<F: Float> AdamW<F> {
    /// AdamW with a learning rate and Keras' defaults (weight decay 0.004).
    ///
    /// ```
    /// let opt = dendrite_nn::AdamW::<f32>::new(1e-3);
    /// # let _ = opt;
    /// ```
    pub fn new(learning_rate: impl Into<Schedule>) -> Self {
        AdamW {
            adam: Adam::new(learning_rate),
            weight_decay: 0.004,
        }
    }

    /// Sets the decoupled weight decay `λ` (>= 0).
    ///
    /// ```
    /// let opt = dendrite_nn::AdamW::<f32>::default().weight_decay(0.01);
    /// # let _ = opt;
    /// ```
    pub fn weight_decay(mut self, weight_decay: f64) -> Self {
        self.weight_decay = weight_decay;
        self
    }

    /// Sets `β₁` and `β₂`.
    ///
    /// ```
    /// let opt = dendrite_nn::AdamW::<f32>::default().betas(0.9, 0.99);
    /// # let _ = opt;
    /// ```
    pub fn betas(mut self, beta1: f64, beta2: f64) -> Self {
        self.adam = self.adam.betas(beta1, beta2);
        self
    }

    /// Sets `ε`.
    ///
    /// ```
    /// let opt = dendrite_nn::AdamW::<f32>::default().epsilon(1e-8);
    /// # let _ = opt;
    /// ```
    pub fn epsilon(mut self, epsilon: f64) -> Self {
        self.adam = self.adam.epsilon(epsilon);
        self
    }

    super::clipping_setters!(adam.clipping);
}

impl<F: Float> Optimizer<F> for AdamW<F> {
    fn name(&self) -> &'static str {
        "adamw"
    }

    fn validate(&self) -> Result<()> {
        self.adam.check("adamw")?;
        let wd = self.weight_decay;
        require(
            wd >= 0.0 && wd.is_finite(),
            "adamw",
            "weight_decay",
            wd,
            "must be finite and >= 0",
        )
    }

    fn prepare(&mut self, sizes: &[usize]) -> Result<()> {
        self.adam.prepare(sizes)
    }

    fn begin_step(&mut self, step: u64) {
        self.adam.step_scalars(step);
    }

    fn update(&mut self, index: usize, param: &mut [F], grad: &[F]) -> Result<()> {
        // Decay and Adam step in one pass; without decay the pass is exactly Adam's.
        let decay = (self.weight_decay > 0.0).then(|| F::of(self.adam.lr * self.weight_decay));
        self.adam.adam_update(index, param, grad, decay)
    }

    fn clipping(&self) -> Clipping {
        self.adam.clipping
    }

    fn learning_rate(&self) -> f64 {
        self.adam.lr
    }

    fn visit_state(&mut self, index: usize, visit: &mut dyn FnMut(&mut [F])) {
        self.adam.visit_state(index, visit);
    }

    fn config(&self) -> std::result::Result<serde_json::Value, crate::ConfigError> {
        let mut config = self.adam.json("adamw");
        config["weight_decay"] = serde_json::json!(self.weight_decay);
        Ok(config)
    }

    fn schedule(&self) -> Option<Schedule> {
        Some(self.adam.schedule)
    }

    fn set_schedule(&mut self, schedule: Schedule) -> bool {
        self.adam.schedule = schedule;
        true
    }
}
