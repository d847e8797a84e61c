#!/usr/bin/env python3
"""Checks an ONNX model with onnx.checker and runs it with onnxruntime.

Usage: onnx_check.py MODEL MANIFEST OUT_DIR

MANIFEST is a JSON file {"runs": [{"inputs": [{"name", "shape", "file"}]}]}: each run feeds
the named inputs, read as little-endian float32 from the raw files. Every run's outputs (all
the model's outputs, in order) are written to OUT_DIR as raw little-endian float32 files, and
described in OUT_DIR/outputs.json as {"runs": [{"outputs": [{"name", "shape", "file"}]}]}.
The Rust tests of the ONNX export (tests/onnx/) drive it and compare with Dendrite.
"""
import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort


def main(model_path, manifest_path, out_dir):
    model = onnx.load(model_path)
    # full_check also runs ONNX's shape inference over the whole graph.
    onnx.checker.check_model(model, full_check=True)
    session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    with open(manifest_path) as f:
        manifest = json.load(f)
    runs = []
    for r, run in enumerate(manifest["runs"]):
        feeds = {
            i["name"]: np.fromfile(i["file"], dtype="<f4").reshape(i["shape"])
            for i in run["inputs"]
        }
        values = session.run(names, feeds)
        outputs = []
        for k, (name, value) in enumerate(zip(names, values)):
            path = os.path.join(out_dir, f"run{r}_out{k}.bin")
            np.ascontiguousarray(value, dtype="<f4").tofile(path)
            outputs.append({"name": name, "shape": list(value.shape), "file": path})
        runs.append({"outputs": outputs})
    with open(os.path.join(out_dir, "outputs.json"), "w") as f:
        json.dump({"runs": runs}, f)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
