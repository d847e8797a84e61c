//! Optimizers: in-place updates of the parameter buffers, from the gradients a training step
//! fetched.

mod adam;
mod clip;
mod config;
mod kernels;
mod rmsprop;
mod schedule;
mod sgd;

pub use adam::{Adam, AdamW};
pub use clip::Clipping;
pub use rmsprop::RmsProp;
pub use schedule::Schedule;
pub use sgd::Sgd;

pub(crate) use config::optimizer_from_json;
pub(crate) use kernels::all_finite;

use crate::error::{NnError, Result};
use crate::float::Float;
use dendrite_graph::{limits, GraphError};
use std::fmt::Debug;

/// An optimizer updating parameters in place.
///
/// The model calls `prepare` once at compile time with the size of every parameter, then, for
/// each training step `t = 0, 1, ...`, `begin_step(t)` followed by `update(k, w_k, g_k)` for
/// every parameter `k` in the same order.
///
/// ```
/// use dendrite_nn::{Optimizer, Sgd};
/// let mut sgd = Sgd::<f32>::new(0.5);
/// sgd.prepare(&[2])?;
/// sgd.begin_step(0);
/// let mut w = [1.0_f32, 2.0];
/// sgd.update(0, &mut w, &[1.0, -2.0])?;
/// assert_eq!(w, [0.5, 3.0]);
/// # Ok::<(), dendrite_nn::NnError>(())
/// ```
///
/// An optimizer allocates its state (momenta, second moments) once, in
/// [`Optimizer::prepare`], when the model is compiled. Each training step then calls
/// [`Optimizer::begin_step`] once (the learning rate and bias corrections of that step are
/// computed there, in `f64`) and [`Optimizer::update`] once per parameter: one fused loop over
/// the parameter, its gradient and its state that allocates nothing, vectorized for the CPU
/// it runs on (AVX2 where there is one) with the same results everywhere.
///
/// The update rules are Keras' (3.x), so hyperparameters carry over:
///
/// | optimizer | update of `w` with gradient `g` |
/// | --- | --- |
/// | [`Sgd`] | `w -= lr g`; with momentum `v = μ v - lr g`, `w += v` (Nesterov: `w += μ v - lr g`) |
/// | [`Adam`] | `m += (1-β₁)(g - m)`, `v += (1-β₂)(g² - v)`, `w -= lr √(1-β₂ᵗ)/(1-β₁ᵗ) · m / (√v + ε)` |
/// | [`AdamW`] | `w -= lr λ w`, then Adam |
/// | [`RmsProp`] | `v = ρ v + (1-ρ) g²`, `Δ = lr g / √(v + ε)`; `w -= Δ` (with momentum `m = μ m + Δ`, `w -= m`) |
///
/// Adam's bias correction is folded into the step size, with `ε` added to `√v` ("epsilon hat"
/// in the paper), exactly as Keras and TensorFlow do.
pub trait Optimizer<F: Float>: Send + Debug {
    /// The optimizer's name (`"adam"`).
    fn name(&self) -> &'static str;

    /// Checks the hyperparameters; called by `compile`.
    ///
    /// # Errors
    /// [`NnError::Hyperparameter`] naming the bad one.
    fn validate(&self) -> Result<()> {
        Ok(())
    }

    /// Allocates the state for parameters of the given sizes (element counts), resetting any
    /// previous state. Allocate through the per-tensor limit and fallibly
    /// (`dendrite_graph::limits`), so that state too large for memory is an error.
    ///
    /// # Errors
    /// [`NnError::Graph`] with `TensorTooLarge` or `AllocationFailed`.
    fn prepare(&mut self, sizes: &[usize]) -> Result<()>;

    /// Computes the per-step scalars of step `step` (0-based).
    fn begin_step(&mut self, step: u64);

    /// Updates parameter number `index` in place from its gradient.
    ///
    /// # Errors
    /// [`NnError::OptimizerState`] when `index` was not prepared or the lengths differ.
    fn update(&mut self, index: usize, param: &mut [F], grad: &[F]) -> Result<()>;

    /// The learning rate of the current step.
    fn learning_rate(&self) -> f64;

    /// How `fit` clips the gradients before handing them to [`Optimizer::update`] (default:
    /// not at all). `update` itself does not clip; see [`Clipping`].
    fn clipping(&self) -> Clipping {
        Clipping::default()
    }

    /// Shows `visit` each buffer of state this optimizer keeps for parameter `index` (Adam's
    /// first and second moments, SGD's velocity, ...), in a fixed order. Training backs this
    /// state up before each update and puts it back when the step fails, so that a step
    /// refused for a non-finite value leaves no trace; it also scans the state for values
    /// that are not finite. An optimizer with state must list all of it here (the default
    /// lists none, which is right only for a state-free rule).
    ///
    /// ```
    /// use dendrite_nn::{Adam, Optimizer};
    /// let mut adam = Adam::<f32>::new(0.1);
    /// adam.prepare(&[3])?;
    /// let mut lengths = Vec::new();
    /// adam.visit_state(0, &mut |state| lengths.push(state.len()));
    /// assert_eq!(lengths, [3, 3]); // m and v
    /// # Ok::<(), dendrite_nn::NnError>(())
    /// ```
    fn visit_state(&mut self, index: usize, visit: &mut dyn FnMut(&mut [F])) {
        let _ = (index, visit);
    }

    /// The optimizer's name and hyperparameters as JSON, which a model file records and
    /// [`Sequential::load`](crate::Sequential::load) rebuilds the optimizer from. The
    /// built-in optimizers describe themselves; the default refuses, so a model trained with
    /// an optimizer of your own can be saved with `save_weights` but not `save`.
    ///
    /// # Errors
    /// [`ConfigError`](crate::ConfigError) saying why the optimizer cannot be described.
    ///
    /// ```
    /// use dendrite_nn::{Optimizer, Sgd};
    /// let config = Sgd::<f32>::new(0.1).momentum(0.9).config()?;
    /// assert_eq!(config["name"], "sgd");
    /// assert_eq!(config["momentum"], 0.9);
    /// # Ok::<(), dendrite_nn::ConfigError>(())
    /// ```
    fn config(&self) -> std::result::Result<serde_json::Value, crate::ConfigError> {
        Err(crate::ConfigError::new(
            "optimizer",
            format!(
                "`{}` does not implement Optimizer::config and cannot be rebuilt from a file",
                self.name()
            ),
        ))
    }

    /// The learning-rate schedule, when the optimizer has one (all the built-in ones do).
    ///
    /// ```
    /// use dendrite_nn::{Adam, Optimizer, Schedule};
    /// assert_eq!(Adam::<f32>::new(0.01).schedule(), Some(Schedule::Constant(0.01)));
    /// ```
    fn schedule(&self) -> Option<Schedule> {
        None
    }

    /// Replaces the learning-rate schedule (what
    /// [`LearningRateScheduler`](crate::LearningRateScheduler) does each epoch); returns
    /// whether the optimizer took it (the default does not). Not validated: `fit` refuses a
    /// learning rate that is not finite and `>= 0` at the step it would be used.
    fn set_schedule(&mut self, schedule: Schedule) -> bool {
        let _ = schedule;
        false
    }
}

/// Shows `visit` the state of parameter `index` in each of the given per-parameter slots
/// (skipping slots that are empty, as for SGD without momentum).
pub(crate) fn visit_slots<F>(
    slots: &mut [&mut Vec<Vec<F>>],
    index: usize,
    visit: &mut dyn FnMut(&mut [F]),
) {
    for slot in slots.iter_mut() {
        if let Some(state) = slot.get_mut(index) {
            visit(state);
        }
    }
}

/// An optimizer chosen at run time is an optimizer.
///
/// ```
/// use dendrite_nn::{Adam, Optimizer, Sgd};
/// let name = "sgd";
/// let optimizer: Box<dyn Optimizer<f32>> = match name {
///     "sgd" => Box::new(Sgd::new(0.1)),
///     _ => Box::new(Adam::default()),
/// };
/// let mut model = dendrite_nn::Sequential::new();
/// model.add(dendrite_nn::Dense::new(1).input_dim(2));
/// model.compile(optimizer, dendrite_nn::Loss::MeanSquaredError, &[])?;
/// # Ok::<(), dendrite_nn::NnError>(())
/// ```
impl<F: Float> Optimizer<F> for Box<dyn Optimizer<F>> {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn validate(&self) -> Result<()> {
        (**self).validate()
    }
    fn prepare(&mut self, sizes: &[usize]) -> Result<()> {
        (**self).prepare(sizes)
    }
    fn begin_step(&mut self, step: u64) {
        (**self).begin_step(step)
    }
    fn update(&mut self, index: usize, param: &mut [F], grad: &[F]) -> Result<()> {
        (**self).update(index, param, grad)
    }
    fn learning_rate(&self) -> f64 {
        (**self).learning_rate()
    }
    fn clipping(&self) -> Clipping {
        (**self).clipping()
    }
    fn visit_state(&mut self, index: usize, visit: &mut dyn FnMut(&mut [F])) {
        (**self).visit_state(index, visit)
    }
    fn config(&self) -> std::result::Result<serde_json::Value, crate::ConfigError> {
        (**self).config()
    }
    fn schedule(&self) -> Option<Schedule> {
        (**self).schedule()
    }
    fn set_schedule(&mut self, schedule: Schedule) -> bool {
        (**self).set_schedule(schedule)
    }
}

/// The builder methods `clipnorm`, `global_clipnorm` and `clipvalue` of an optimizer whose
/// [`Clipping`] sits at `$field`.
macro_rules! clipping_setters {
    ($($field:ident).+) => {
        /// Clips each gradient tensor to an L2 norm of at most `c` before the update (Keras'
        /// `clipnorm`; see [`Clipping`](crate::Clipping)).
        pub fn clipnorm(mut self, c: f64) -> Self {
            self.$($field).+ = self.$($field).+.with_norm(c);
            self
        }

        /// Clips all gradients together to a joint L2 norm of at most `c` before the update
        /// (Keras' `global_clipnorm`; see [`Clipping`](crate::Clipping)).
        pub fn global_clipnorm(mut self, c: f64) -> Self {
            self.$($field).+ = self.$($field).+.with_global_norm(c);
            self
        }

        /// Clamps every gradient element into `[-c, c]` before the update (Keras'
        /// `clipvalue`; see [`Clipping`](crate::Clipping)).
        pub fn clipvalue(mut self, c: f64) -> Self {
            self.$($field).+ = self.$($field).+.with_value(c);
            self
        }
    };
}
pub(crate) use clipping_setters;

/// The state slice of parameter `index`, checked against the parameter's and gradient's length.
pub(crate) fn state<F>(
    slots: &mut [Vec<F>],
    index: usize,
    param: usize,
    grad: usize,
) -> Result<&mut [F]> {
    let slot = slots.get_mut(index).ok_or(NnError::OptimizerState {
        index,
        expected: 0,
        actual: param,
    })?;
    if slot.len() != param || grad != param {
        return Err(NnError::OptimizerState {
            index,
            expected: slot.len(),
            actual: if grad != param { grad } else { param },
        });
    }
    Ok(slot)
}

/// Checks that the gradient and the parameter have the same length (for state-free updates).
pub(crate) fn same_len(index: usize, param: usize, grad: usize) -> Result<()> {
    if param == grad {
        Ok(())
    } else {
        Err(NnError::OptimizerState {
            index,
            expected: param,
            actual: grad,
        })
    }
}

/// `Err(Hyperparameter)` unless `ok`.
pub(crate) fn require(
    ok: bool,
    owner: &'static str,
    name: &'static str,
    value: f64,
    reason: &'static str,
) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(NnError::Hyperparameter {
            owner,
            name,
            value,
            reason,
        })
    }
}

/// Zeroed buffers of the given sizes (optimizer state, the training step's backup of the
/// weights), each checked against the per-tensor limit and reserved fallibly, so that state
/// too large for memory is an error rather than an abort.
///
/// # Errors
/// [`GraphError::TensorTooLarge`] or [`GraphError::AllocationFailed`] (in [`NnError::Graph`]),
/// naming `what`.
pub(crate) fn zeroed<F: Float>(what: &'static str, sizes: &[usize]) -> Result<Vec<Vec<F>>> {
    let mut state = Vec::new();
    state
        .try_reserve_exact(sizes.len())
        .map_err(|_| alloc_error(what, "state", sizes.len()))?;
    for &n in sizes {
        state.push(zeroed_vec(what, "state", &[n])?);
    }
    Ok(state)
}

/// A zeroed buffer for a tensor of shape `dims`, checked against the per-tensor limit and
/// reserved fallibly; `what` and `node` name it in the error.
///
/// # Errors
/// [`GraphError::TensorTooLarge`] or [`GraphError::AllocationFailed`] (in [`NnError::Graph`]).
pub(crate) fn zeroed_vec<F: Float>(
    what: &'static str,
    node: &str,
    dims: &[usize],
) -> Result<Vec<F>> {
    let n = limits::check_size::<F>(what, node, dims)?;
    let mut v = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|_| alloc_error(what, node, n.saturating_mul(std::mem::size_of::<F>())))?;
    v.resize(n, F::zero());
    Ok(v)
}

/// An empty vector of indices with room for `n`, reserved fallibly (a batch's sample
/// indices: `n` comes from the batch size).
///
/// # Errors
/// [`GraphError::AllocationFailed`] (in [`NnError::Graph`]).
pub(crate) fn index_vec(what: &'static str, n: usize) -> Result<Vec<usize>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| {
        alloc_error(
            what,
            "indices",
            n.saturating_mul(std::mem::size_of::<usize>()),
        )
    })?;
    Ok(v)
}

fn alloc_error(what: &'static str, node: &str, bytes: usize) -> NnError {
    NnError::Graph(GraphError::AllocationFailed {
        op: what,
        node: node.to_owned(),
        bytes,
    })
}
