//! Weight regularizers: penalties on a layer's weights added to the training loss, as Keras'
//! `kernel_regularizer` and `bias_regularizer`.

use crate::error::{NnError, Result};
use crate::float::Float;
use dendrite_graph::{Graph, NodeId};

/// A penalty on a weight tensor `w`, added to the loss the model minimizes (Keras'
/// `keras.regularizers`):
///
/// | regularizer | penalty | its gradient |
/// | --- | --- | --- |
/// | `L1 { l1 }` | `l1 Σ \|w\|` | `l1 sign(w)` |
/// | `L2 { l2 }` | `l2 Σ w²` | `2 l2 w` |
/// | `L1L2 { l1, l2 }` | `l1 Σ \|w\| + l2 Σ w²` | the sum of both |
///
/// Keras' `L2` penalty has no `½`: `l2 = 0.01` adds `0.01 Σ w²`. The penalties of every layer
/// are summed into the training loss, so `fit` reports a loss that includes them (as Keras
/// does) and, separately, the penalty itself ([`History::regularization`](crate::History)).
///
/// ```
/// use dendrite_graph::compile;
/// use dendrite_nn::Regularizer;
/// let mut g = dendrite_graph::Graph::<f64>::new();
/// let w = g.parameter("w", ndarray::array![1.0, -2.0].into_dyn())?;
/// let penalty = Regularizer::l1_l2(0.5, 0.25).penalty(&mut g, w)?;
/// let mut plan = compile(&g, &[penalty])?;
/// assert_eq!(plan.run(&g, &[])?.scalar(0)?, 0.5 * 3.0 + 0.25 * 5.0);
/// # Ok::<(), dendrite_nn::NnError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Regularizer {
    /// `l1 Σ |w|`.
    L1 {
        /// The factor (Keras' default 0.01).
        l1: f64,
    },
    /// `l2 Σ w²`.
    L2 {
        /// The factor (Keras' default 0.01).
        l2: f64,
    },
    /// `l1 Σ |w| + l2 Σ w²`.
    L1L2 {
        /// The L1 factor.
        l1: f64,
        /// The L2 factor.
        l2: f64,
    },
}

impl Regularizer {
    /// `l1 Σ |w|`.
    pub fn l1(l1: f64) -> Self {
        Regularizer::L1 { l1 }
    }

    /// `l2 Σ w²`.
    pub fn l2(l2: f64) -> Self {
        Regularizer::L2 { l2 }
    }

    /// `l1 Σ |w| + l2 Σ w²`.
    pub fn l1_l2(l1: f64, l2: f64) -> Self {
        Regularizer::L1L2 { l1, l2 }
    }

    /// The L1 and L2 factors.
    fn factors(self) -> (f64, f64) {
        match self {
            Regularizer::L1 { l1 } => (l1, 0.0),
            Regularizer::L2 { l2 } => (0.0, l2),
            Regularizer::L1L2 { l1, l2 } => (l1, l2),
        }
    }

    /// Checks that both factors are finite and `>= 0`.
    ///
    /// # Errors
    /// [`NnError::Hyperparameter`] naming the factor.
    pub fn validate(self) -> Result<()> {
        let (l1, l2) = self.factors();
        for (name, value) in [("l1", l1), ("l2", l2)] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(NnError::Hyperparameter {
                    owner: "regularizer",
                    name,
                    value,
                    reason: "must be finite and >= 0",
                });
            }
        }
        Ok(())
    }

    /// Appends the penalty of the weights `w` to the graph, as a scalar node (only the terms
    /// whose factor is not zero).
    ///
    /// # Errors
    /// [`NnError::Hyperparameter`] for a factor that is negative or not finite; graph errors.
    pub fn penalty<F: Float>(self, g: &mut Graph<F>, w: NodeId) -> Result<NodeId> {
        self.validate()?;
        let (l1, l2) = self.factors();
        let mut terms = Vec::with_capacity(2);
        if l1 != 0.0 {
            let a = g.abs(w)?;
            let s = g.sum_all(a)?;
            let f = g.scalar(l1);
            terms.push(g.mul(f, s)?);
        }
        if l2 != 0.0 {
            let sq = g.square(w)?;
            let s = g.sum_all(sq)?;
            let f = g.scalar(l2);
            terms.push(g.mul(f, s)?);
        }
        Ok(match terms.as_slice() {
            [] => g.scalar(0.0),
            [t] => *t,
            [a, b, ..] => g.add(*a, *b)?,
        })
    }
}
