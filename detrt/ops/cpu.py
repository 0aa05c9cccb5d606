"""Numpy access to the compiled CPU kernels (plugins/cpu, module `detrt.ops._cpu`); torch-free.

    from detrt.ops import cpu
    if cpu.available():
        out = cpu.ms_deform_attn(value, spatial_shapes, level_start_index, sampling_locations, attention_weights)
        indices, valid = cpu.dcg_neighbors(boxes, scores, k=10, iou_threshold=0.4, low_score=0.1)

Arrays are passed without copies: the large ones must be C-contiguous and native-endian; float tensors
float32 (or all float16 for MSDA, accumulated in float32); shape tensors int32 or int64. Any bad rank,
dtype, shape or layout raises ValueError naming the argument (semantics: docs/ops.md).
"""

import numpy as np

try:
    from detrt.ops import _cpu
except ImportError as exc:  # not built on this machine: callers fall back to the reference ops
    _cpu = None
    _import_error = exc
else:
    _import_error = None

__all__ = ["available", "unavailable_reason", "info", "ms_deform_attn", "dcg_neighbors"]


def available():
    """True when the compiled extension is importable."""
    return _cpu is not None


def unavailable_reason():
    """Why the extension is missing (None when it is available)."""
    return None if _cpu is not None else f"detrt.ops._cpu is not built ({_import_error})"


def info():
    """Build facts of the extension: OpenMP, default thread count, MSDA kernel variant."""
    return dict(_require().info())


def _require():
    if _cpu is None:
        raise RuntimeError(unavailable_reason() + "; reinstall with `pip install -e .` and a C++ compiler")
    return _cpu


def ms_deform_attn(value, spatial_shapes, level_start_index, sampling_locations, attention_weights, *, num_threads=0):
    """MSDA: value [N, S, M, D], spatial_shapes [L, 2] (H, W), level_start_index [L],
    sampling_locations [N, Lq, M, L, P, 2] (x, y) normalized, attention_weights [N, Lq, M, L, P]
    -> [N, Lq, M*D] in value's dtype. num_threads 0 = OpenMP default."""
    return _require().ms_deform_attn(
        value, spatial_shapes, level_start_index, sampling_locations, attention_weights, num_threads=int(num_threads)
    )


def dcg_neighbors(boxes, scores, k=10, iou_threshold=0.4, low_score=0.1, *, num_threads=0, index_dtype=np.int64):
    """DCG neighbours: boxes [B, N, 4] cxcywh float32, scores [B, N] float32
    -> (indices [B, N, k] int64 (or index_dtype=np.int32), valid [B, N, k] bool); padding slots hold i."""
    return _require().dcg_neighbors(
        boxes,
        scores,
        _as_int(k, "k"),
        float(iou_threshold),
        float(low_score),
        num_threads=int(num_threads),
        index_dtype=np.dtype(index_dtype).name,
    )


def _as_int(v, name):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise ValueError(f"{name} must be an int, got {type(v).__name__}")
    return int(v)
