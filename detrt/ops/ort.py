"""The plugin-form ONNX ops on ONNX Runtime's CPU: `detrt::MSDeformAttn` and `detrt::DCGNeighbors`.

    from detrt.ops.ort import InferenceSession
    session = InferenceSession(path)            # onnxruntime.InferenceSession with the detrt ops registered
    outputs = session.run(None, feeds)          # an error inside a detrt op is raised here, as a Python exception

The nodes (domain `detrt`, opset version 1; the TensorRT plugins carry the same names) run through
onnxruntime-extensions' Python custom ops, which call the compiled CPU kernels (detrt.ops.cpu):
  MSDeformAttn(value f32 [N,S,M,D], spatial_shapes i32 [L,2], level_start_index i32 [L],
               sampling_locations f32 [N,Lq,M,L,P,2], attention_weights f32 [N,Lq,M,L,P]) -> f32 [N,Lq,M*D]
  DCGNeighbors(boxes f32 [B,N,4] cxcywh, scores f32 [B,N]; k:int, iou_threshold:float, low_score:float)
               -> (indices i32 [B,N,k], valid i32 0/1 [B,N,k])
One type signature per op (onnxruntime-extensions cannot register a second one for a name): float32
tensors and int32 shapes, the plugin form's CPU dtypes. Torch-free. Importing this module raises
ImportError when onnxruntime-extensions or the compiled kernels are missing.

No exception may leave a Python custom op: onnxruntime-extensions rethrows it as a C++ exception through
ONNX Runtime, which calls std::terminate (every error on onnxruntime 1.32; on 1.31 too, when the kernel
rejects an input or Ctrl-C lands inside the op). So every invocation is guarded: an exception, including
KeyboardInterrupt, is kept and the op returns empty outputs; `InferenceSession.run` raises the kept
exception once ONNX Runtime returns, and defers SIGINT/SIGTERM handlers while it runs so that no
KeyboardInterrupt is raised in the dispatcher outside that guard. A plain onnxruntime.InferenceSession
still does not abort, but sees the failure only as ONNX Runtime's error about the empty tensor downstream.
"""

import signal
import sys
import threading

import numpy as np

from detrt.ops import cpu
from detrt.ops.names import DCG_OP, DETRT_DOMAIN, MSDA_OP

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

import onnxruntime as ort  # noqa: E402 - after the extensions, which import it themselves

__all__ = ["InferenceSession", "library_path"]

# The first exception raised inside a custom op during the current run of this thread. ONNX Runtime runs
# custom ops in the thread that called run() when execution is sequential, which InferenceSession enforces.
_failure = threading.local()


def _guard_invocations():
    """Wrap onnxruntime-extensions' dispatcher (the one Python function its C++ side calls for every Python
    custom op) so that nothing raised in it, or in an op, reaches C++."""
    dispatch = _ortx._ocos._on_pyop_invocation
    opdefs = _ortx._ocos.Opdef._odlist

    def guarded(k_id, feed, attributes):
        try:
            return dispatch(k_id, feed, attributes)
        except BaseException as e:  # noqa: BLE001 - KeyboardInterrupt too: it must not cross into C++
            if getattr(_failure, "error", None) is None:  # the first error explains the rest
                _failure.error = e
        outputs = len(opdefs[k_id]._nativedef.output_types)
        return (k_id,) + ((0,), []) * outputs  # empty tensors; run() raises the kept error

    PyCustomOpDef.install_hooker(guarded)


_guard_invocations()


def _op_error(op, e):
    return ValueError(f"{DETRT_DOMAIN}::{op}: {e}") if isinstance(e, ValueError) else e


@onnx_op(
    op_type=f"{DETRT_DOMAIN}::{MSDA_OP}",
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
    try:
        return cpu.ms_deform_attn(*(np.ascontiguousarray(a) for a in arrays))
    except ValueError as e:  # the binding validates every shape and value before its kernel runs
        raise _op_error(MSDA_OP, e) from None


@onnx_op(
    op_type=f"{DETRT_DOMAIN}::{DCG_OP}",
    inputs=[PyCustomOpDef.dt_float, PyCustomOpDef.dt_float],
    outputs=[PyCustomOpDef.dt_int32, PyCustomOpDef.dt_int32],
    attrs={"k": PyCustomOpDef.dt_int64, "iou_threshold": PyCustomOpDef.dt_float, "low_score": PyCustomOpDef.dt_float},
)
def _dcg_neighbors(boxes, scores, k=10, iou_threshold=0.4, low_score=0.1):
    try:
        indices, valid = cpu.dcg_neighbors(
            np.ascontiguousarray(boxes), np.ascontiguousarray(scores), int(k), iou_threshold, low_score,
            index_dtype=np.int32,
        )
    except ValueError as e:
        raise _op_error(DCG_OP, e) from None
    return indices, valid.astype(np.int32)  # the op's mask is int32 0/1, as the TensorRT plugin's


def library_path():
    """The onnxruntime-extensions library that hosts the Python custom ops."""
    return get_library_path()


def _with_detrt_ops(options=None):
    """`options` (or new SessionOptions) with the detrt custom ops registered, and sequential execution,
    which keeps custom ops in the thread that called run()."""
    so = options if options is not None else ort.SessionOptions()
    so.register_custom_ops_library(get_library_path())
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return so


class _DeferredSignals:
    """While ONNX Runtime runs in the main thread, SIGINT/SIGTERM handlers written in Python are only
    recorded; they run (KeyboardInterrupt included) once run() is back in Python, outside every op."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __enter__(self):
        self.saved, self.pending = {}, []
        if threading.current_thread() is not threading.main_thread():
            return self  # Python runs signal handlers in the main thread only
        for sig in self.SIGNALS:
            handler = signal.getsignal(sig)
            if callable(handler):  # SIG_DFL / SIG_IGN never raise into Python
                self.saved[sig] = handler
                signal.signal(sig, lambda s, frame: self.pending.append((s, frame)))
        return self

    def __exit__(self, *exc):
        for sig, handler in self.saved.items():
            signal.signal(sig, handler)
        for sig, frame in self.pending:
            self.saved[sig](sig, frame)


class InferenceSession(ort.InferenceSession):
    """onnxruntime.InferenceSession for plugin-form graphs: the detrt ops registered (into `sess_options` when
    given), and run() raising what a detrt op raised (ValueError for a rejected input, KeyboardInterrupt)."""

    def __init__(self, path_or_bytes, sess_options=None, providers=("CPUExecutionProvider",), **kwargs):
        super().__init__(path_or_bytes, _with_detrt_ops(sess_options), providers=list(providers), **kwargs)

    def run(self, output_names, input_feed, run_options=None):
        _failure.error = None
        try:
            with _DeferredSignals():
                try:
                    outputs = super().run(output_names, input_feed, run_options)
                except Exception as e:  # ONNX Runtime's own error, or one caused by an op's empty outputs
                    if _failure.error is None:
                        raise
                    raise _failure.error from e
            if _failure.error is not None:
                raise _failure.error
            return outputs
        finally:
            _failure.error = None
