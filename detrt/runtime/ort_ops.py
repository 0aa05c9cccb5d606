"""The plugin-form ONNX ops on ONNX Runtime's CPU: `detrt::MSDeformAttn` and `detrt::DCGNeighbors`.

    from detrt.runtime.ort_ops import session_options
    session = onnxruntime.InferenceSession(path, session_options(), providers=["CPUExecutionProvider"])

The nodes (domain `detrt`, opset version 1; the TensorRT plugins carry the same names) run through
onnxruntime-extensions' Python custom ops, which call the compiled CPU kernels (detrt.ops.cpu):
  MSDeformAttn(value f32 [N,S,M,D], spatial_shapes i32 [L,2], level_start_index i32 [L],
               sampling_locations f32 [N,Lq,M,L,P,2], attention_weights f32 [N,Lq,M,L,P]) -> f32 [N,Lq,M*D]
  DCGNeighbors(boxes f32 [B,N,4] cxcywh, scores f32 [B,N]; k:int, iou_threshold:float, low_score:float)
               -> (indices i32 [B,N,k], valid i32 0/1 [B,N,k])
One type signature per op (onnxruntime-extensions cannot register a second one for a name): float32
tensors and int32 shapes, the plugin form's CPU dtypes. Torch-free. Importing this module raises
ImportError when onnxruntime-extensions or the compiled kernels are missing.
Models must use ir_version <= 13 for onnxruntime 1.31's checker (the tests use 10).
"""

import sys

import numpy as np

from detrt.ops import cpu

if not cpu.available():
    raise ImportError(cpu.unavailable_reason())


def _import_extensions():
    """onnxruntime_extensions without torch: its package __init__ tries `import torch` (for a Whisper
    converter) and copes with ImportError, so torch is hidden while it imports unless already loaded."""
    hide = "torch" not in sys.modules
    if hide:
        sys.modules["torch"] = None  # makes `import torch` raise ImportError
    try:
        import onnxruntime_extensions
    finally:
        if hide and sys.modules.get("torch", False) is None:
            del sys.modules["torch"]
    return onnxruntime_extensions


_ortx = _import_extensions()
PyCustomOpDef, get_library_path, onnx_op = _ortx.PyCustomOpDef, _ortx.get_library_path, _ortx.onnx_op

DOMAIN = "detrt"
MSDA_OP = "MSDeformAttn"
DCG_OP = "DCGNeighbors"

__all__ = ["DOMAIN", "MSDA_OP", "DCG_OP", "session_options", "library_path"]


@onnx_op(
    op_type=f"{DOMAIN}::{MSDA_OP}",
    inputs=[
        PyCustomOpDef.dt_float,
        PyCustomOpDef.dt_int32,
        PyCustomOpDef.dt_int32,
        PyCustomOpDef.dt_float,
        PyCustomOpDef.dt_float,
    ],
    outputs=[PyCustomOpDef.dt_float],
)
def _ms_deform_attn(value, spatial_shapes, level_start_index, sampling_locations, attention_weights):
    arrays = (value, spatial_shapes, level_start_index, sampling_locations, attention_weights)
    return cpu.ms_deform_attn(*(np.ascontiguousarray(a) for a in arrays))


@onnx_op(
    op_type=f"{DOMAIN}::{DCG_OP}",
    inputs=[PyCustomOpDef.dt_float, PyCustomOpDef.dt_float],
    outputs=[PyCustomOpDef.dt_int32, PyCustomOpDef.dt_int32],
    attrs={"k": PyCustomOpDef.dt_int64, "iou_threshold": PyCustomOpDef.dt_float, "low_score": PyCustomOpDef.dt_float},
)
def _dcg_neighbors(boxes, scores, k=10, iou_threshold=0.4, low_score=0.1):
    indices, valid = cpu.dcg_neighbors(
        np.ascontiguousarray(boxes), np.ascontiguousarray(scores), int(k), iou_threshold, low_score,
        index_dtype=np.int32,
    )
    return indices, valid.astype(np.int32)  # the op's mask is int32 0/1, as the TensorRT plugin's


def library_path():
    """The onnxruntime-extensions library that hosts the Python custom ops."""
    return get_library_path()


def session_options():
    """onnxruntime.SessionOptions with the detrt custom ops registered."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.register_custom_ops_library(get_library_path())
    return so
