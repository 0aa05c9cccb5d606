"""CPU stand-ins for `tensorrt` and `cuda.bindings.runtime`, exposing only the names trt_backend uses.

Each name here was checked against TensorRT's Python bindings (python/src/infer/pyCore.cpp, 10.0
and 11.1) and cuda-python's runtime module, so a misspelt call in detrt/runtime/trt_backend.py fails
with AttributeError. "Device" memory is host memory; stream work (copies, inference) is queued and
runs only at a synchronization point, as on a GPU, so reading results before a sync, or overwriting
a buffer still in use, gives wrong numbers. The "engine" file is an ONNX model run by ONNX Runtime.
"""

import ctypes
import enum
import types

import numpy as np


class _Err(enum.Enum):
    cudaSuccess = 0
    cudaErrorInvalidValue = 1


class _Stream:
    def __init__(self):
        self.ops, self.capture = [], None

    def __int__(self):
        return id(self)

    def run_until(self, marker=None):
        while self.ops:
            op = self.ops.pop(0)
            if op is marker:
                return
            if callable(op):
                op()


class _Event:
    pass


def make_cudart(major=8, minor=7, name=b"Fake GPU\x00\x00"):
    rt = types.ModuleType("cuda.bindings.runtime")
    mem, log = {}, []
    ok = _Err.cudaSuccess
    rt.cudaError_t = _Err
    rt.log = log
    rt.cudaMemcpyKind = types.SimpleNamespace(cudaMemcpyHostToDevice=1, cudaMemcpyDeviceToHost=2)
    rt.cudaStreamCaptureMode = types.SimpleNamespace(cudaStreamCaptureModeGlobal=0)

    def enqueue(stream, op):
        (stream.capture if stream.capture is not None else stream.ops).append(op)

    def alloc(n):
        buf = np.zeros(n, np.uint8)
        ptr = buf.ctypes.data
        mem[ptr] = buf
        return ptr

    rt.cudaGetErrorName = lambda err: (ok, err.name.encode())
    rt.cudaSetDevice = lambda dev: (ok,)
    rt.cudaGetDeviceProperties = lambda dev: (ok, types.SimpleNamespace(major=major, minor=minor, name=name))
    rt.cudaStreamCreate = lambda: (ok, _Stream())
    rt.cudaMallocHost = lambda n: (ok, alloc(n))
    rt.cudaMalloc = lambda n: (ok, alloc(n))
    rt.cudaFree = lambda p: (ok if mem.pop(p, None) is not None else _Err.cudaErrorInvalidValue,)
    rt.cudaFreeHost = rt.cudaFree

    def memcpy_async(dst, src, n, kind, stream):
        assert kind in (1, 2) and isinstance(stream, _Stream)
        enqueue(stream, lambda: (ctypes.memmove(int(dst), int(src), int(n)), log.append(("copy", kind))))
        return (ok,)

    rt.cudaMemcpyAsync = memcpy_async
    rt.cudaEventCreate = lambda: (ok, _Event())
    rt.cudaEventDestroy = lambda e: (ok,)

    def event_record(event, stream):
        event.stream = stream
        enqueue(stream, event)
        return (ok,)

    def event_sync(event):
        event.stream.run_until(event)
        return (ok,)

    rt.cudaEventRecord = event_record
    rt.cudaEventSynchronize = event_sync

    def stream_sync(stream):
        stream.run_until(None)
        return (ok,)

    rt.cudaStreamSynchronize = stream_sync
    rt.cudaStreamDestroy = lambda s: (ok,)

    def begin_capture(stream, mode):
        assert stream.capture is None and mode == 0
        stream.capture = []
        return (ok,)

    def end_capture(stream):
        graph, stream.capture = stream.capture, None
        return ok, graph

    rt.cudaStreamBeginCapture = begin_capture
    rt.cudaStreamEndCapture = end_capture
    rt.cudaGraphInstantiate = lambda graph, flags: (ok, list(graph))

    def graph_launch(graph_exec, stream):
        log.append(("graph", len(graph_exec)))
        for op in graph_exec:
            enqueue(stream, op)
        return (ok,)

    rt.cudaGraphLaunch = graph_launch
    rt.cudaGraphExecDestroy = lambda g: (ok,)
    rt.cudaGraphDestroy = lambda g: (ok,)
    rt.live_allocations = mem
    return rt


def make_tensorrt(version="10.3.0"):
    import onnxruntime as ort

    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.TensorIOMode = enum.Enum("TensorIOMode", "NONE INPUT OUTPUT")
    trt.DataType = enum.Enum("DataType", "FLOAT INT64")
    trt.nptype = lambda t: {trt.DataType.FLOAT: np.float32, trt.DataType.INT64: np.int64}[t]

    class Logger:
        WARNING = 2

        def __init__(self, severity):
            self.severity = severity

    class Context:
        def __init__(self, engine):
            self.engine, self.shape, self.addr = engine, None, {}

        def set_input_shape(self, name, shape):
            assert name == "images"
            lo, _, hi = self.engine.profile
            if not all(a <= s <= b for a, s, b in zip(lo, shape, hi)):
                return False
            self.shape = tuple(shape)
            return True

        def get_tensor_shape(self, name):
            if name == "images":
                return self.shape
            return (self.shape[0], *self.engine.out_shapes[name][1:])

        def set_tensor_address(self, name, memory):
            assert isinstance(memory, int)
            self.addr[name] = memory
            return True

        def execute_async_v3(self, stream_handle):
            stream = self.engine.streams[stream_handle]
            shape, addr = self.shape, dict(self.addr)  # captured now, as a CUDA graph would
            eng = self.engine

            def run():
                x = np.ctypeslib.as_array(ctypes.cast(addr["images"], ctypes.POINTER(ctypes.c_float)), shape).copy()
                outs = eng.session.run(eng.outputs, {"images": x})
                for name, y in zip(eng.outputs, outs):
                    ctypes.memmove(addr[name], np.ascontiguousarray(y).ctypes.data, y.nbytes)
                eng.runs.append(shape[0])

            (stream.capture if stream.capture is not None else stream.ops).append(run)
            return True

    class Engine:
        def __init__(self, data):
            self.session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
            self.outputs = [o.name for o in self.session.get_outputs()]
            self.names = ["images", *self.outputs]
            self.num_io_tensors = len(self.names)
            self.profile = [(1, 3, 64, 96), (2, 3, 64, 96), (4, 3, 64, 96)]
            x = np.zeros((1, 3, 64, 96), np.float32)
            self.out_shapes = {n: y.shape for n, y in zip(self.outputs, self.session.run(self.outputs, {"images": x}))}
            self.dtypes = {n: (trt.DataType.INT64 if y.dtype == np.int64 else trt.DataType.FLOAT)
                           for n, y in zip(self.outputs, self.session.run(self.outputs, {"images": x}))}
            self.dtypes["images"] = trt.DataType.FLOAT
            self.runs, self.streams = [], trt.streams

        def get_tensor_name(self, index):
            return self.names[index]

        def get_tensor_mode(self, name):
            return trt.TensorIOMode.INPUT if name == "images" else trt.TensorIOMode.OUTPUT

        def get_tensor_dtype(self, name):
            return self.dtypes[name]

        def get_tensor_profile_shape(self, name, profile_index):
            assert name == "images" and profile_index == 0
            return self.profile

        def create_execution_context(self):
            return Context(self)

    class Runtime:
        def __init__(self, logger):
            self.logger = logger

        def deserialize_cuda_engine(self, serialized_engine):
            try:
                engine = Engine(serialized_engine)
            except Exception:
                return None
            trt.engines.append(engine)
            return engine

    trt.Logger, trt.Runtime = Logger, Runtime
    trt.engines = []
    trt.streams = {}  # stream handle -> fake stream, filled by install()
    return trt


def install(monkeypatch, **gpu):
    """Put the stand-ins in sys.modules; returns (tensorrt, cudart)."""
    import sys

    rt = make_cudart(**gpu)
    trt = make_tensorrt()
    create = rt.cudaStreamCreate

    def stream_create():
        ok, s = create()
        trt.streams[int(s)] = s
        return ok, s

    rt.cudaStreamCreate = stream_create
    cuda = types.ModuleType("cuda")
    bindings = types.ModuleType("cuda.bindings")
    bindings.runtime, cuda.bindings = rt, bindings
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setitem(sys.modules, "cuda", cuda)
    monkeypatch.setitem(sys.modules, "cuda.bindings", bindings)
    monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", rt)
    monkeypatch.delenv("DETRT_PLUGINS", raising=False)
    return trt, rt
