//! [`Sequential::to_onnx`] and [`Sequential::export_onnx`]: the inference graph as an ONNX
//! model, for serving with onnxruntime and other engines.

use super::{Sequential, INPUT_NAME};
use crate::checkpoint::write_atomic;
use crate::error::{NnError, Result};
use crate::float::Float;
use std::io::Write;
use std::path::Path;

impl<F: Float> Sequential<F> {
    /// The model's inference graph as an encoded ONNX model (opset
    /// [`OPSET_VERSION`](dendrite_graph::onnx::OPSET_VERSION)): the input `inputs` of shape
    /// `[batch, sample_shape...]` with a symbolic batch size, the weights as initializers named as in
    /// [`Sequential::weights`], and one output, the last layer's, named after its node (read it
    /// from the model, as `session.get_outputs()[0].name` does in onnxruntime). The loss,
    /// metrics and gradients that `compile` added are not part of it. See
    /// [`dendrite_graph::onnx`] for how each primitive maps.
    ///
    /// # Errors
    /// [`NnError::NotBuilt`] before the model is built; [`NnError::Onnx`] if a layer uses a
    /// primitive ONNX cannot express.
    ///
    /// ```
    /// use dendrite_nn::{Activation, Dense, Sequential};
    /// let mut model = Sequential::new();
    /// model.add(Dense::new(4).input_dim(3).activation(Activation::Relu));
    /// model.add(Dense::new(2).activation(Activation::Softmax));
    /// model.build()?;
    /// let bytes = model.to_onnx()?;
    /// assert!(bytes.len() > 4 * (3 * 4 + 4 + 4 * 2 + 2)); // the weights are in it
    /// # Ok::<(), dendrite_nn::NnError>(())
    /// ```
    pub fn to_onnx(&self) -> Result<Vec<u8>> {
        let net = self
            .net
            .as_ref()
            .ok_or(NnError::NotBuilt { method: "to_onnx" })?;
        let input = net
            .graph
            .node_by_name(INPUT_NAME)
            .ok_or(NnError::NotBuilt { method: "to_onnx" })?;
        Ok(dendrite_graph::onnx::export(
            &net.graph,
            &[input],
            &[net.output.output],
        )?)
    }

    /// Writes [`Sequential::to_onnx`]'s model to `path`, atomically: into a temporary file
    /// beside it, synced and renamed over it, so `path` holds either its old content or the
    /// whole new model (see [`write_atomic`](crate::write_atomic)).
    ///
    /// # Errors
    /// Those of [`Sequential::to_onnx`]; [`NnError::Io`] naming `path`.
    ///
    /// ```
    /// use dendrite_nn::{Dense, Sequential};
    /// let mut model = Sequential::new();
    /// model.add(Dense::new(2).input_dim(3));
    /// model.build()?;
    /// let dir = std::env::temp_dir().join(format!("dendrite-onnx-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).map_err(|e| dendrite_nn::NnError::Io { path: dir.clone(), source: e })?;
    /// let path = dir.join("model.onnx");
    /// model.export_onnx(&path)?;
    /// assert_eq!(std::fs::read(&path).ok(), Some(model.to_onnx()?));
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), dendrite_nn::NnError>(())
    /// ```
    pub fn export_onnx(&self, path: impl AsRef<Path>) -> Result<()> {
        let bytes = self.to_onnx()?;
        write_atomic(path.as_ref(), |f| f.write_all(&bytes))
    }
}
