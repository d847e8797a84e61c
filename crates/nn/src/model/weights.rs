//! Keras' `get_weights` / `set_weights`: every parameter as an array, in layer order.

use super::Sequential;
use crate::error::{NnError, Result};
use crate::float::Float;
use ndarray::ArrayD;

impl<F: Float> Sequential<F> {
    /// Copies of the model's parameters, in layer order (`dense_1/kernel`, `dense_1/bias`,
    /// ...), as Keras' `get_weights` (see [`Sequential::weights`] for the names too).
    ///
    /// # Errors
    /// [`NnError::NotBuilt`] before the model is built.
    ///
    /// ```
    /// use dendrite_nn::{Dense, Sequential};
    /// let mut model = Sequential::new();
    /// model.add(Dense::new(2).input_dim(3));
    /// model.build()?;
    /// let mut weights = model.get_weights()?;
    /// weights[1].fill(0.5); // the bias
    /// model.set_weights(&weights)?;
    /// assert_eq!(model.get_weights()?, weights);
    /// weights.pop();
    /// assert!(model.set_weights(&weights).is_err()); // one array short
    /// # Ok::<(), dendrite_nn::NnError>(())
    /// ```
    pub fn get_weights(&self) -> Result<Vec<ArrayD<F>>> {
        let (g, params) = self.parameter_nodes("get_weights")?;
        params.iter().map(|&p| Ok(g.value(p)?.to_owned())).collect()
    }

    /// Replaces every parameter, in layer order, as Keras' `set_weights`. All arrays are
    /// checked before any is written, so a refused call changes nothing. Optimizer state (Adam's
    /// moments) is kept.
    ///
    /// # Errors
    /// [`NnError::NotBuilt`] before the model is built; [`NnError::WeightCount`] for a different
    /// number of arrays; [`NnError::WeightShape`] for an array whose shape is not its
    /// parameter's; [`NnError::NonFiniteWeight`] for a NaN or infinite value.
    pub fn set_weights(&mut self, weights: &[ArrayD<F>]) -> Result<()> {
        let (g, params) = self.parameter_nodes("set_weights")?;
        if weights.len() != params.len() {
            return Err(NnError::WeightCount {
                expected: params.len(),
                actual: weights.len(),
            });
        }
        for (&p, w) in params.iter().zip(weights) {
            let name = || g.name(p).map(str::to_owned).unwrap_or_default();
            let expected = g.value(p)?.shape().to_vec();
            if w.shape() != expected.as_slice() {
                return Err(NnError::WeightShape {
                    name: name(),
                    expected,
                    actual: w.shape().to_vec(),
                });
            }
            if let Some((index, v)) = w.iter().enumerate().find(|(_, v)| !v.as_f64().is_finite()) {
                return Err(NnError::NonFiniteWeight {
                    name: name(),
                    index,
                    value: v.as_f64(),
                });
            }
        }
        let (g, params) = self.parameter_nodes_mut("set_weights")?;
        for (&p, w) in params.iter().zip(weights) {
            g.parameter_mut(p)?.assign(w);
        }
        Ok(())
    }

    /// A SHA-256 digest, in hexadecimal, of every parameter in layer order: its name, its
    /// shape and its values' little-endian bytes. Two models have the same digest exactly when
    /// their weights are the same bits (up to a SHA-256 collision), so two runs can be
    /// compared from outside by one printed line.
    ///
    /// # Errors
    /// [`NnError::NotBuilt`] before the model is built.
    ///
    /// ```
    /// use dendrite_nn::{Dense, Sequential};
    /// let mut a = Sequential::new().with_seed(1);
    /// a.add(Dense::new(2).input_dim(3));
    /// a.build()?;
    /// let digest = a.weights_digest()?;
    /// assert_eq!(digest.len(), 64);
    /// let mut b = Sequential::new().with_seed(2);
    /// b.add(Dense::new(2).input_dim(3));
    /// b.build()?;
    /// assert_ne!(b.weights_digest()?, digest);
    /// b.set_weights(&a.get_weights()?)?;
    /// assert_eq!(b.weights_digest()?, digest);
    /// # Ok::<(), dendrite_nn::NnError>(())
    /// ```
    pub fn weights_digest(&self) -> Result<String> {
        use sha2::{Digest, Sha256};
        let (g, params) = self.parameter_nodes("weights_digest")?;
        let mut hasher = Sha256::new();
        let mut bytes = Vec::new();
        for &p in params {
            let value = g.value(p)?;
            hasher.update(g.name(p)?.as_bytes());
            for &d in value.shape() {
                hasher.update((d as u64).to_le_bytes());
            }
            bytes.clear();
            value.iter().for_each(|&v| v.write_le(&mut bytes));
            hasher.update(&bytes);
        }
        Ok(hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect())
    }
}
