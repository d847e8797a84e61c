"""Serves a model exported by Dendrite with onnxruntime: prints the predicted class of each
image. Usage: python onnx_serve.py MODEL.onnx IMAGES.f32 (raw little-endian float32, 784 per
image, scaled to [0, 1] as for training)."""
import sys

import numpy as np
import onnxruntime as ort

session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
inputs = session.get_inputs()[0]  # "inputs", shape ["batch", 784]
outputs = session.get_outputs()[0]  # the softmax of the last Dense layer
images = np.fromfile(sys.argv[2], dtype="<f4").reshape(-1, inputs.shape[1])
(probabilities,) = session.run([outputs.name], {inputs.name: images})
print(" ".join(str(c) for c in probabilities.argmax(axis=1)))
