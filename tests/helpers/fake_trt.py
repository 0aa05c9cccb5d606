"""CPU stand-ins for `tensorrt` and `cuda.bindings.runtime`, exposing only the names detrt uses.

Each name here was checked against TensorRT's Python bindings (python/src/infer/pyCore.cpp and
pyPlugin.cpp, 10.0 and 11.1) and cuda-python's runtime module, so a misspelt call in detrt fails
with AttributeError. "Device" memory is host memory; stream work (copies, inference) is queued and
runs only at a synchronization point, as on a GPU, so reading results before a sync, or overwriting
a buffer still in use, gives wrong numbers. The "engine" file is an ONNX model run by ONNX Runtime
(detrt's CPU kernels standing in for the plugins' CUDA kernels).

The contracts modelled, as TensorRT documents them:
- The plugin registry: a creator exists only once registered, by IPluginRegistry.load_library (of a
  library listed in `trt.plugin_libraries`, path -> the creators its getCreators returns) or, for
  NVIDIA's plugins, init_libnvinfer_plugins. dlopen alone registers nothing. A second load_library of
  a library whose creators are registered returns None. The ONNX parser stops at a node whose
  (op type, plugin_version, plugin_namespace) has no creator; deserializing an engine whose plugin
  layers have none returns None.
- The builder config: TF32 is on by default; a timing cache from another device is refused by
  set_timing_cache(cache, ignore_mismatch=False); an unreadable one is not created (None).
- CUDA graphs: a graph holds the context state of its capture. Replaying it after that context's
  input shape changed is refused (AssertionError: on a GPU it runs with the other shape's state), and
  a capture right after a shape change, before one ordinary enqueue flushed it, fails.
"""

import ctypes
import enum
import json
import operator
import shutil
import types
from pathlib import Path

import numpy as np

from detrt.ops.names import (DETRT_DOMAIN, DETRT_OPS, NVIDIA_MSDA_OP, NVIDIA_MSDA_VERSION, NVIDIA_NAMESPACE,
                             PLUGIN_VERSION)

DETRT_CREATORS = [(op, PLUGIN_VERSION, DETRT_DOMAIN) for op in DETRT_OPS]  # libdetrt_plugins.so's getCreators
NVIDIA_CREATORS = [(NVIDIA_MSDA_OP, NVIDIA_MSDA_VERSION, NVIDIA_NAMESPACE)]  # among libnvinfer_plugin's
STANDARD_DOMAINS = ("", "ai.onnx")


class _Err(enum.IntEnum):  # cuda-python's error enums are IntEnums
    cudaSuccess = 0
    cudaErrorInvalidValue = 1


class _Stream:
    def __init__(self):
        self.ops, self.capture = [], None

    def __int__(self):
        return id(self)

    __index__ = __int__  # how pybind11 reads a cudaStream_t passed as a stream handle

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
    rt.cudaStreamCaptureMode = types.SimpleNamespace(cudaStreamCaptureModeGlobal=0, cudaStreamCaptureModeThreadLocal=1,
                                                     cudaStreamCaptureModeRelaxed=2)

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
    rt.cudaStreamNonBlocking = 1
    rt.cudaStreamCreateWithFlags = lambda flags: rt.cudaStreamCreate()
    rt.cudaMallocHost = lambda n: (ok, alloc(n))
    rt.cudaMalloc = lambda n: (ok, alloc(n))
    rt.cudaFree = lambda p: (ok if mem.pop(p, None) is not None else _Err.cudaErrorInvalidValue,)
    rt.cudaFreeHost = rt.cudaFree

    def memcpy_async(dst, src, n, kind, stream):
        assert kind in (1, 2) and isinstance(stream, _Stream)
        enqueue(stream, lambda: (ctypes.memmove(int(dst), int(src), int(n)), log.append(("copy", kind, int(n)))))
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
    rt.cudaStreamDestroy = lambda s: (ok if isinstance(s, _Stream) else _Err.cudaErrorInvalidValue,)

    def begin_capture(stream, mode):
        assert stream.capture is None and mode in (0, 1, 2)
        stream.capture = []
        log.append(("capture", mode))
        return (ok,)

    def end_capture(stream):
        graph, stream.capture = stream.capture, None
        return ok, graph

    rt.cudaStreamBeginCapture = begin_capture
    rt.cudaStreamEndCapture = end_capture
    rt.cudaGraphInstantiate = lambda graph, flags: (ok, list(graph))

    def graph_launch(graph_exec, stream):
        for op in graph_exec:
            context = getattr(op, "context", None)
            assert context is None or context.shape_changes == op.shape_changes, (
                f"a CUDA graph captured at input shape {op.shape} replayed after its context's input shape "
                f"changed {context.shape_changes - op.shape_changes} time(s) (now {context.shape})")
        log.append(("graph", len(graph_exec)))
        for op in graph_exec:
            enqueue(stream, op)
        return (ok,)

    rt.cudaGraphLaunch = graph_launch
    rt.cudaGraphExecDestroy = lambda g: (ok,)
    rt.cudaGraphDestroy = lambda g: (ok,)
    rt.live_allocations = mem
    return rt


def _plugin_key(node):
    """(op type, plugin_version, plugin_namespace) as TensorRT's ONNX parser reads a plugin node."""
    attrs = {a.name: a.s.decode() for a in node.attribute if a.name in ("plugin_version", "plugin_namespace")}
    return node.op_type, attrs.get("plugin_version", "1"), attrs.get("plugin_namespace", "")


def _plugin_nodes(model):
    return [n for n in model.graph.node if n.domain not in STANDARD_DOMAINS]


def make_tensorrt(version="10.3.0", device="8.7"):
    import onnx
    import onnxruntime as ort

    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.TensorIOMode = enum.Enum("TensorIOMode", "NONE INPUT OUTPUT")
    trt.DataType = enum.Enum("DataType", "FLOAT INT32 INT64")
    trt.nptype = lambda t: {trt.DataType.FLOAT: np.float32, trt.DataType.INT32: np.int32,
                            trt.DataType.INT64: np.int64}[t]
    onnx_dtypes = {onnx.TensorProto.FLOAT: trt.DataType.FLOAT, onnx.TensorProto.INT32: trt.DataType.INT32,
                   onnx.TensorProto.INT64: trt.DataType.INT64}
    trt.BuilderFlag = enum.Enum("BuilderFlag", "FP16 INT8 DEBUG GPU_FALLBACK REFIT DISABLE_TIMING_CACHE TF32")
    trt.MemoryPoolType = enum.Enum("MemoryPoolType", "WORKSPACE")
    trt.DeviceType = enum.Enum("DeviceType", "GPU DLA")
    trt.NetworkDefinitionCreationFlag = types.SimpleNamespace(STRONGLY_TYPED=1)
    trt.device = device  # the compute capability timing caches are made on
    trt.plugin_libraries = {}  # resolved path -> [(name, version, namespace)] its getCreators returns
    trt.engines, trt.builds, trt.log = [], [], []
    trt.streams = {}  # stream handle -> fake stream, filled by install()

    class Logger:
        WARNING = 2

        def __init__(self, severity):
            self.severity = severity

    def log_error(text):
        trt.log.append(text)

    class Creator:
        def __init__(self, name, plugin_version, plugin_namespace):
            self.name, self.plugin_version, self.plugin_namespace = name, plugin_version, plugin_namespace

    class PluginRegistry:
        def __init__(self):
            self.creators = {}  # (name, version, namespace) -> Creator
            self.libraries = {}  # handle -> its keys

        @property
        def all_creators(self):
            return list(self.creators.values())

        def get_creator(self, type, version, plugin_namespace=""):
            return self.creators.get((type, version, plugin_namespace))

        def register(self, keys):
            for key in keys:
                self.creators.setdefault(key, Creator(*key))

        def load_library(self, plugin_path):
            keys = trt.plugin_libraries.get(Path(plugin_path).resolve())
            if keys is None:
                log_error(f"could not load plugin library {plugin_path}, or it has no getCreators")
                return None
            if any(key in self.creators for key in keys):
                log_error(f"{plugin_path}: a plugin creator is registered already")
                return None
            self.register(keys)
            handle = object()
            self.libraries[handle] = keys
            return handle

        def deregister_library(self, handle):
            for key in self.libraries.pop(handle):
                self.creators.pop(key, None)

    registry = PluginRegistry()
    trt.get_plugin_registry = lambda: registry

    def init_libnvinfer_plugins(logger, namespace):
        assert isinstance(logger, Logger)
        registry.register([(name, v, namespace) for name, v, _ in NVIDIA_CREATORS])
        return True

    trt.init_libnvinfer_plugins = init_libnvinfer_plugins

    class ParserError:
        def __init__(self, node, desc):
            self._node, self._desc = node, desc

        def node_name(self):
            return self._node.name

        def node_operator(self):
            return self._node.op_type

        def desc(self):
            return self._desc

    class OnnxParser:
        def __init__(self, network, logger):
            self.network, self.errors = network, []

        @property
        def num_errors(self):
            return len(self.errors)

        def get_error(self, index):
            return self.errors[index]

        def parse(self, model):
            model = onnx.load_from_string(bytes(model))
            for node in _plugin_nodes(model):
                if registry.get_creator(*_plugin_key(node)) is None:
                    self.errors.append(ParserError(node, "Plugin not found, are the plugin name, version, and "
                                                         "namespace correct?"))
                    return False
            self.network.model = model
            return True

        def parse_from_file(self, model):
            return self.parse(Path(model).read_bytes())

    class Network:
        def __init__(self, flags):
            self.flags, self.model = flags, None

    class Profile:
        def __init__(self):
            self.inputs = {}  # input name -> [min, opt, max]

        def set_shape(self, input, min, opt, max):
            assert input in ("images", "image_sizes")
            self.inputs[input] = [tuple(min), tuple(opt), tuple(max)]

        @property
        def shapes(self):
            return self.inputs["images"]

    class TimingCache:
        def __init__(self, device):
            self.device = device

        def serialize(self):
            return f"fake timing cache\n{trt.__version__}\n{self.device}".encode()

    class BuilderConfig:
        def __init__(self):
            self.flags = {trt.BuilderFlag.TF32}  # TensorRT's default
            self.profiles, self.cache, self.pools = [], None, {}
            self.progress_monitor, self.default_device_type, self.DLA_core = None, trt.DeviceType.GPU, -1

        def set_flag(self, flag):
            self.flags.add(flag)

        def clear_flag(self, flag):
            self.flags.discard(flag)

        def get_flag(self, flag):
            return flag in self.flags

        def set_memory_pool_limit(self, pool, pool_size):
            self.pools[pool] = pool_size

        def add_optimization_profile(self, profile):
            self.profiles.append(profile)
            return len(self.profiles) - 1

        def create_timing_cache(self, serialized_timing_cache):
            blob = bytes(serialized_timing_cache)
            if not blob:
                return TimingCache(trt.device)
            lines = blob.decode(errors="replace").split("\n")
            if len(lines) != 3 or lines[0] != "fake timing cache" or lines[1] != trt.__version__:
                log_error("the timing cache is corrupt or from another TensorRT version")
                return None
            return TimingCache(lines[2])

        def set_timing_cache(self, cache, ignore_mismatch):
            if cache.device != trt.device and not ignore_mismatch:
                log_error(f"the timing cache was made on device {cache.device}, this is {trt.device}")
                return False
            self.cache = cache
            return True

        def get_timing_cache(self):
            return self.cache

    class IProgressMonitor:
        def __init__(self):
            pass

    class Builder:
        num_DLA_cores = 0

        def __init__(self, logger):
            self.logger = logger

        def create_network(self, flags):
            return Network(flags)

        def create_builder_config(self):
            return BuilderConfig()

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            """The "engine": the parsed ONNX model with its optimization profile."""
            assert network.model is not None and len(config.profiles) == 1
            monitor = config.progress_monitor
            if monitor is not None:
                monitor.phase_start("Building engine", None, 1)
                monitor.step_complete("Building engine", 0)
                monitor.phase_finish("Building engine")
            model = onnx.ModelProto()
            model.CopyFrom(network.model)
            entry = model.metadata_props.add()
            inputs = [i.name for i in model.graph.input]
            assert sorted(config.profiles[0].inputs) == sorted(inputs), "a profile for every input"
            entry.key, entry.value = "fake_trt.profile", json.dumps(config.profiles[0].shapes)
            trt.builds.append(types.SimpleNamespace(network=network, config=config))
            return model.SerializeToString()

    class Context:
        def __init__(self, engine):
            self.engine, self.shape, self.addr, self.sizes_shape = engine, None, {}, None
            self.shape_changes, self.flushed = 0, True

        def set_input_shape(self, name, shape):
            assert name in self.engine.inputs
            if name == "image_sizes":
                self.sizes_shape = tuple(shape)
                return tuple(shape[1:]) == (2,)
            lo, _, hi = self.engine.profile
            if not all(a <= s <= b for a, s, b in zip(lo, shape, hi)):
                return False
            if tuple(shape) != self.shape:
                self.shape, self.shape_changes, self.flushed = tuple(shape), self.shape_changes + 1, False
            return True

        def get_tensor_shape(self, name):
            if name == "images":
                return self.shape
            if name == "image_sizes":
                return self.sizes_shape
            return (self.shape[0], *self.engine.out_shapes[name][1:])

        def set_tensor_address(self, name, memory):
            assert isinstance(memory, int)
            self.addr[name] = memory
            return True

        def execute_async_v3(self, stream_handle):
            stream = self.engine.streams[operator.index(stream_handle)]  # pybind11's size_t conversion
            if stream.capture is not None and not self.flushed:
                log_error("enqueueV3: the first enqueue after a shape change cannot be captured")
                return False
            self.flushed = True
            shape, sizes_shape, addr = self.shape, self.sizes_shape, dict(self.addr)  # as a CUDA graph captures
            eng = self.engine

            def run():
                feed = {"images": np.ctypeslib.as_array(ctypes.cast(addr["images"], ctypes.POINTER(ctypes.c_float)),
                                                        shape).copy()}
                if "image_sizes" in eng.inputs:
                    assert sizes_shape == (shape[0], 2), "image_sizes set to the batch of images"
                    feed["image_sizes"] = np.ctypeslib.as_array(
                        ctypes.cast(addr["image_sizes"], ctypes.POINTER(ctypes.c_float)), sizes_shape).copy()
                outs = eng.session().run(eng.outputs, feed)
                for name, y in zip(eng.outputs, outs):
                    ctypes.memmove(addr[name], np.ascontiguousarray(y).ctypes.data, y.nbytes)
                eng.runs.append(shape[0])

            run.context, run.shape, run.shape_changes = self, shape, self.shape_changes
            (stream.capture if stream.capture is not None else stream.ops).append(run)
            return True

    class Engine:
        def __init__(self, model):
            self.model = model
            self.outputs = [o.name for o in model.graph.output]
            self.inputs = [i.name for i in model.graph.input]
            self.names = [*self.inputs, *self.outputs]
            self.num_io_tensors = len(self.names)
            meta = {p.key: p.value for p in model.metadata_props}
            self.profile = [tuple(s) for s in json.loads(meta.get("fake_trt.profile", "null"))
                            or [(1, 3, 64, 96), (2, 3, 64, 96), (4, 3, 64, 96)]]
            types_ = {o.name: o.type.tensor_type for o in model.graph.output}
            self.out_shapes = {n: tuple(d.dim_value or None for d in t.shape.dim) for n, t in types_.items()}
            self.dtypes = {n: onnx_dtypes[t.elem_type] for n, t in types_.items()}
            self.dtypes.update({n: trt.DataType.FLOAT for n in self.inputs})
            self.runs, self.streams, self._session = [], trt.streams, None

        def session(self):
            """ONNX Runtime on the model; detrt's CPU kernels run its detrt plugin nodes."""
            if self._session is None:
                if _plugin_nodes(self.model):
                    from detrt.ops.ort import InferenceSession

                    model = onnx.ModelProto()
                    model.CopyFrom(self.model)
                    for node in _plugin_nodes(model):
                        keep = [a for a in node.attribute if a.name not in ("plugin_version", "plugin_namespace")]
                        del node.attribute[:]
                        node.attribute.extend(keep)
                    self._session = InferenceSession(model.SerializeToString())
                else:
                    self._session = ort.InferenceSession(self.model.SerializeToString(),
                                                         providers=["CPUExecutionProvider"])
            return self._session

        def get_tensor_name(self, index):
            return self.names[index]

        def get_tensor_mode(self, name):
            return trt.TensorIOMode.INPUT if name in self.inputs else trt.TensorIOMode.OUTPUT

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
                model = onnx.load_from_string(bytes(serialized_engine))
            except Exception:  # noqa: BLE001 - not an engine
                log_error("the engine is corrupt")
                return None
            for node in _plugin_nodes(model):
                if registry.get_creator(*_plugin_key(node)) is None:
                    log_error("IPluginRegistry::getCreator: Cannot find plugin: %s, version: %s, namespace: %s"
                              % _plugin_key(node))
                    return None
            engine = Engine(model)
            trt.engines.append(engine)
            return engine

    trt.Logger, trt.Runtime, trt.Builder, trt.OnnxParser = Logger, Runtime, Builder, OnnxParser
    trt.IProgressMonitor = IProgressMonitor
    return trt


def plugin_library(trt, directory, creators=DETRT_CREATORS):
    """A loadable shared object standing in for libdetrt_plugins.so (a copy of CPython's _ctypes module, so
    ctypes.CDLL opens it and registers nothing), known to the stand-in's registry as providing `creators`
    (None: a shared object that is no TensorRT plugin library)."""
    import _ctypes

    path = Path(directory) / "libdetrt_plugins.so"
    shutil.copyfile(_ctypes.__file__, path)
    if creators is not None:
        trt.plugin_libraries[path.resolve()] = list(creators)
    return path


def install(monkeypatch, **gpu):
    """Put the stand-ins in sys.modules, as in a fresh process (nothing registered with TensorRT yet);
    returns (tensorrt, cudart)."""
    import sys

    from detrt.ops import tensorrt as ops_tensorrt

    rt = make_cudart(**gpu)
    trt = make_tensorrt(device=f"{gpu.get('major', 8)}.{gpu.get('minor', 7)}")
    create = rt.cudaStreamCreate

    def stream_create():
        ok, s = create()
        trt.streams[int(s)] = s
        return ok, s

    rt.cudaStreamCreate = stream_create  # cudaStreamCreateWithFlags calls it too
    cuda = types.ModuleType("cuda")
    bindings = types.ModuleType("cuda.bindings")
    bindings.runtime, cuda.bindings = rt, bindings
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setitem(sys.modules, "cuda", cuda)
    monkeypatch.setitem(sys.modules, "cuda.bindings", bindings)
    monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", rt)
    monkeypatch.setattr(ops_tensorrt, "_registered", {})
    monkeypatch.delenv("DETRT_PLUGINS", raising=False)
    return trt, rt
