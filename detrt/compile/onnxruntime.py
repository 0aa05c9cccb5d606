"""The ONNX Runtime CPU artifact: the graph optimized offline by ONNX Runtime, for machines without TensorRT.

    detrt build model.onnx --backend onnxruntime --precision int8 --calib clip.mp4 -o model.int8.onnx
"""

import tempfile
from pathlib import Path

import onnx
import onnxruntime as ort

from detrt.manifest import save_artifact


def ort_artifact(model, manifest, output, log=print):
    """Write `model` optimized by ONNX Runtime (SessionOptions.optimized_model_filepath) with `manifest`.

    ORT_ENABLE_EXTENDED, not ALL: ALL adds layout transforms tied to this machine's CPU.
    """
    if manifest.form == "plugin":
        from detrt.ops.ort import InferenceSession
    else:
        InferenceSession = ort.InferenceSession

    with tempfile.TemporaryDirectory(prefix="detrt-ort-") as tmp:
        src = Path(tmp) / "model.onnx"
        onnx.save(model, str(src))

        def optimize(dst):
            so = ort.SessionOptions()
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
            so.optimized_model_filepath = str(dst)
            InferenceSession(str(src), so, providers=["CPUExecutionProvider"])

        save_artifact(output, optimize, manifest)
    if log:
        log(f"ONNX Runtime CPU artifact ({manifest.precision}, {manifest.form}) -> {output}")
    return manifest
