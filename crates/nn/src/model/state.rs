//! What a model file reads from and writes into a model: its layers with their names, its
//! training configuration, optimizer state and position.

use super::{Entry, Position, Sequential};
use crate::error::{NnError, Result};
use crate::float::Float;
use crate::layer::Layer;
use crate::loss::Loss;
use crate::metrics::Metric;
use crate::optim::Optimizer;

/// A compiled model's training configuration and position, as a model file records them.
pub(crate) struct TrainingState<'m, F: Float> {
    pub optimizer: &'m dyn Optimizer<F>,
    pub loss: &'m Loss,
    pub metrics: &'m [Metric],
    pub step: u64,
    pub epoch: usize,
    pub shuffle_seed: u64,
}

impl<F: Float> Sequential<F> {
    /// Every layer with its name and whether the model chose that name.
    pub(crate) fn named_layers(&self) -> impl Iterator<Item = (&str, bool, &dyn Layer<F>)> {
        self.layers
            .iter()
            .map(|e| (e.name.as_str(), e.auto, e.layer.as_ref()))
    }

    /// Appends a layer under the name a model file gives it.
    pub(crate) fn push_named(&mut self, name: String, auto: bool, layer: Box<dyn Layer<F>>) {
        self.layers.push(Entry { name, auto, layer });
        self.net = None;
        self.training = None;
    }

    /// The training configuration and position, once compiled.
    pub(crate) fn training_state(&self) -> Option<TrainingState<'_, F>> {
        self.training.as_ref().map(|t| TrainingState {
            optimizer: t.optimizer.as_ref(),
            loss: &t.loss,
            metrics: &t.given,
            step: t.step,
            epoch: t.position.epoch,
            shuffle_seed: t.position.shuffle_seed,
        })
    }

    /// Shows `visit` every buffer of optimizer state, as `(parameter, buffer number, values)`.
    pub(crate) fn visit_optimizer_state(
        &mut self,
        mut visit: impl FnMut(usize, usize, &mut [F]),
    ) -> Result<()> {
        let training = self
            .training
            .as_mut()
            .ok_or(NnError::NotCompiled { method: "save" })?;
        for k in 0..training.backup.len() {
            let mut j = 0;
            training.optimizer.visit_state(k, &mut |state| {
                visit(k, j, state);
                j += 1;
            });
        }
        Ok(())
    }

    /// Sets the step count and training position a model file recorded.
    pub(crate) fn restore_position(&mut self, step: u64, epoch: usize, shuffle_seed: u64) {
        if let Some(t) = self.training.as_mut() {
            t.step = step;
            t.position = Position {
                epoch,
                shuffle_seed,
            };
        }
    }

    /// Replaces the optimizer's learning-rate schedule; whether it took it (see
    /// [`Optimizer::set_schedule`]).
    ///
    /// # Errors
    /// [`NnError::NotCompiled`] before `compile`.
    ///
    /// ```
    /// use dendrite_nn::{Adam, Dense, Loss, Schedule, Sequential};
    /// let mut model = Sequential::new();
    /// model.add(Dense::new(1).input_dim(1));
    /// model.compile(Adam::new(0.1), Loss::MeanSquaredError, &[])?;
    /// assert!(model.set_learning_rate(Schedule::Constant(0.01))?);
    /// assert_eq!(model.learning_rate(), Some(0.01));
    /// # Ok::<(), dendrite_nn::NnError>(())
    /// ```
    pub fn set_learning_rate(&mut self, schedule: crate::Schedule) -> Result<bool> {
        let training = self.training.as_mut().ok_or(NnError::NotCompiled {
            method: "set_learning_rate",
        })?;
        Ok(training.optimizer.set_schedule(schedule))
    }

    /// The learning rate the next training step will use, when the optimizer has a schedule.
    ///
    /// ```
    /// assert_eq!(dendrite_nn::Sequential::new().learning_rate(), None);
    /// ```
    pub fn learning_rate(&self) -> Option<f64> {
        let training = self.training.as_ref()?;
        Some(training.optimizer.schedule()?.at(training.step))
    }
}
