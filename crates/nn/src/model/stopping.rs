//! Early stopping's state across the epochs of a fit.

use super::config::EpochLogs;
use super::Network;
use crate::error::{NnError, Result};
use crate::float::Float;

/// Early-stopping state: the best value so far, epochs since, and the best weights.
pub(super) struct Stopper<F> {
    config: super::EarlyStopping,
    best: Option<f64>,
    wait: usize,
    best_weights: Vec<Vec<F>>,
}

impl<F: Float> Stopper<F> {
    pub(super) fn new(config: super::EarlyStopping) -> Self {
        Stopper {
            config,
            best: None,
            wait: 0,
            best_weights: Vec::new(),
        }
    }

    /// Records an epoch; returns whether to stop.
    pub(super) fn observe(
        &mut self,
        logs: &EpochLogs,
        epoch: usize,
        net: &Network<F>,
    ) -> Result<bool> {
        let Some(current) = self.config.monitor.value(logs) else {
            return Ok(false);
        };
        let delta = self.config.min_delta;
        let improved = match self.best {
            None => current.is_finite(),
            Some(best) if self.config.monitor.maximize() => current - delta > best,
            Some(best) => current + delta < best,
        };
        self.wait += 1;
        if improved {
            self.best = Some(current);
            self.wait = 0;
            if self.config.restore_best_weights {
                self.best_weights.resize_with(net.weights.len(), Vec::new);
                for (saved, &p) in self.best_weights.iter_mut().zip(&net.weights) {
                    let value = net.graph.value(p)?;
                    saved.clear();
                    saved.try_reserve_exact(value.len()).map_err(|_| {
                        NnError::Graph(dendrite_graph::GraphError::AllocationFailed {
                            op: "early stopping",
                            node: "best weights".into(),
                            bytes: value.len().saturating_mul(std::mem::size_of::<F>()),
                        })
                    })?;
                    saved.extend(value.iter().copied());
                }
            }
            return Ok(false);
        }
        Ok(self.wait >= self.config.patience && epoch > 1)
    }

    /// Puts the best epoch's weights back, when asked to.
    pub(super) fn restore(&self, net: &mut Network<F>) -> Result<()> {
        if !self.config.restore_best_weights || self.best_weights.len() != net.weights.len() {
            return Ok(());
        }
        for (saved, &p) in self.best_weights.iter().zip(&net.weights) {
            let mut param = net.graph.parameter_mut(p)?;
            for (w, &s) in param.iter_mut().zip(saved) {
                *w = s;
            }
        }
        Ok(())
    }
}
