"""TensorRT engines through cuda-python (`cuda.bindings.runtime`), for NVIDIA GPUs and Jetson.

One code path for TensorRT 10.x and 11.x (the Python names it uses are the same in both);
tests/runtime/test_trt_backend.py drives it through CPU stand-ins of `tensorrt` and cuda-python.

- The plugin creators are registered with TensorRT's registry (detrt.ops.tensorrt.register_plugins:
  libnvinfer_plugin's for NVIDIA's MSDA plugin, and the plugin library's) before deserializing; the
  library's sha256 must equal the manifest's (else: rebuild).
- One CUDA stream. Two slots, each with its own execution context and pinned host + device buffers
  sized for the profile's max batch (the context's tensor addresses are its slot's, set once):
  `submit` copies a batch into slot s, enqueues H2D, execute_async_v3 and D2H on the stream and
  records slot s's event; the pipeline preprocesses batch t+1 into the other slot while the GPU
  runs batch t (double buffering), then `collect` waits on the event only.
- `cuda_graph=True`: one CUDA graph per context at its current shape, as trtexec does. Once a slot's
  context has run ordinarily at its shape (which flushes TensorRT's deferred shape updates), its
  H2D + enqueue + D2H sequence is captured (thread-local mode, so other threads' CUDA calls are not
  caught in the capture) and replayed for later batches of that shape. A batch of another shape
  drops the slot's graph: a graph replayed after its context's shape changed would run with that
  context's state for the other shape. If capture fails the backend warns and runs without graphs.
- `timing = True` (benchmarks, detrt/bench): CUDA events around the H2D copy,
  execute_async_v3 and the D2H copies of each batch; `last_gpu_times` holds h2d_ms, compute_ms,
  d2h_ms and total_ms of the last batch taken. A replayed CUDA graph is timed as a whole (total_ms):
  no events are recorded inside a capture.
- Future step: GPU preprocessing (resize + normalize + HWC->CHW in a CUDA kernel built with the
  plugins), so only the uint8 frame crosses PCIe; today preprocessing is on the CPU
  (detrt/data/preprocess.py) and the float32 batch is copied.
"""

import ctypes
import warnings
from pathlib import Path

import numpy as np

from detrt.errors import InputError
from detrt.manifest import check_engine_environment, sha256_file
from detrt.ops.tensorrt import find_plugin_library, import_tensorrt, register_plugins
from detrt.optional import require
from detrt.runtime.base import Backend


class _Cuda:
    """cuda.bindings.runtime calls with error checking: each returns its results, raising on error."""

    def __init__(self):
        self.rt = require("cuda.bindings.runtime", "a TensorRT engine")

    def __call__(self, fn, *args):
        res = getattr(self.rt, fn)(*args)
        err, rest = res[0], res[1:]
        if int(err.value if hasattr(err, "value") else err):
            name = self.rt.cudaGetErrorName(err)[1]
            raise RuntimeError(f"{fn} failed: {name.decode() if isinstance(name, bytes) else name}")
        return rest[0] if len(rest) == 1 else (rest or None)


class _Slot:
    """An execution context with pinned host + device buffers for every I/O tensor at its max shape (its tensor
    addresses), a completion event, and the CUDA graph of the context at its current batch size."""

    def __init__(self, cuda, context, batch, shapes, dtypes):
        self.cuda, self.context = cuda, context
        self.host, self.device, self._host_ptrs = {}, {}, []
        for name, shape in shapes.items():
            dtype = np.dtype(dtypes[name])
            nbytes = int(np.prod(shape)) * dtype.itemsize
            hptr = cuda("cudaMallocHost", nbytes)
            self._host_ptrs.append(hptr)
            raw = (ctypes.c_ubyte * nbytes).from_address(int(hptr))
            self.host[name] = np.frombuffer(raw, dtype=np.uint8).view(dtype).reshape(shape)
            self.device[name] = cuda("cudaMalloc", nbytes)
            context.set_tensor_address(name, int(self.device[name]))
        self.event = cuda("cudaEventCreate")
        self.batch = batch  # the batch size the context's input shape is set to
        self.ran = False  # an ordinary enqueue ran at this batch size (a capture needs one first)
        self.graph = None  # (graph, graph exec) captured at this batch size
        self.pending = None  # the _Result whose outputs this slot's host buffers will hold
        self.marks = None  # timing: 4 events (before H2D, after H2D, after compute, after D2H), made on demand

    def drop_graph(self):
        if self.graph is not None:
            graph, graph_exec = self.graph
            self.cuda("cudaGraphExecDestroy", graph_exec)
            self.cuda("cudaGraphDestroy", graph)
            self.graph = None

    def free(self):
        self.drop_graph()
        for ptr in self.device.values():
            self.cuda("cudaFree", ptr)
        for ptr in self._host_ptrs:
            self.cuda("cudaFreeHost", ptr)
        self.cuda("cudaEventDestroy", self.event)
        for event in self.marks or ():
            self.cuda("cudaEventDestroy", event)
        self.host, self.device, self._host_ptrs, self.marks, self.context = {}, {}, [], None, None


class _Result:
    """A submitted batch: calling it waits for the slot's event and returns copies of the outputs.

    If the slot is reused before the result was taken, `take` runs first (the outputs are copied
    out), so results never see a later batch's data.
    """

    def __init__(self, backend, slot, batch):
        self.backend, self.slot, self.batch = backend, slot, batch
        self.outputs = None
        self.timed = None  # "split" | "graph" when timing events were recorded for this batch

    def take(self):
        if self.outputs is None:
            self.backend.cuda("cudaEventSynchronize", self.slot.event)
            if self.timed:
                self.backend.last_gpu_times = self.backend._gpu_times(self.slot, self.timed)
            self.outputs = {n: self.slot.host[n][:self.batch].copy() for n in self.backend.manifest.outputs}
            if self.slot.pending is self:
                self.slot.pending = None
        return self.outputs

    __call__ = take


class TrtBackend(Backend):
    """A deserialized engine with one stream and two slots, each with its execution context and buffers."""

    name = "tensorrt"

    def __init__(self, artifact, manifest, plugins=None, cuda_graph=False, device=0):
        super().__init__(artifact, manifest)
        self.trt = trt = import_tensorrt()
        self.cuda = cuda = _Cuda()
        cuda("cudaSetDevice", device)
        props = cuda("cudaGetDeviceProperties", device)
        self.compute_capability = f"{props.major}.{props.minor}"
        name = props.name
        self.gpu_name = (name.split(b"\0")[0].decode() if isinstance(name, bytes) else str(name))

        lib = Path(plugins) if plugins else find_plugin_library()
        if lib is not None and not lib.is_file():
            raise InputError(f"{lib}: no such plugin library (--plugins / $DETRT_PLUGINS)")
        check_engine_environment(manifest, artifact, tensorrt_version=trt.__version__,
                                 compute_capability=self.compute_capability,
                                 plugin_sha256=sha256_file(lib) if lib is not None else None)
        register_plugins(trt, lib)  # before deserializing: the engine's plugin layers need their creators

        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(Path(artifact).read_bytes())
        if self.engine is None:
            raise InputError(f"{artifact}: TensorRT could not deserialize the engine (see its log above); "
                             f"{manifest.rebuild_hint(artifact)}")
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        modes = {n: self.engine.get_tensor_mode(n) for n in names}
        inputs = [n for n in names if modes[n] == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if modes[n] == trt.TensorIOMode.OUTPUT]
        if inputs != list(self.input_names):
            raise InputError(f"{artifact}: engine inputs are {inputs}, its manifest says {list(self.input_names)}; "
                             f"{manifest.rebuild_hint(artifact)}")
        missing = [n for n in manifest.outputs if n not in self.outputs]
        if missing:
            raise InputError(f"{artifact}: engine outputs {self.outputs} lack {missing}; "
                             f"{manifest.rebuild_hint(artifact)}")

        max_shape = tuple(self.engine.get_tensor_profile_shape(self.input_name, 0)[2])
        self._max_batch = min(int(max_shape[0]), manifest.max_batch)
        contexts = [self.engine.create_execution_context() for _ in range(2)]
        for context in contexts:
            self._set_shape(context, self._max_batch)
        shapes = {n: tuple(contexts[0].get_tensor_shape(n)) for n in [*self.input_names, *self.outputs]}
        dtypes = {n: trt.nptype(self.engine.get_tensor_dtype(n)) for n in names}

        self.stream = cuda("cudaStreamCreate")
        self._slots = [_Slot(cuda, context, self._max_batch, shapes, dtypes) for context in contexts]
        self._next = 0
        self.cuda_graph = cuda_graph
        self.timing = False  # benchmarks: CUDA events per batch (see the module docstring)
        self.last_gpu_times = None

    def _set_shape(self, context, batch):
        for name in self.input_names:
            shape = (batch, 3, *self.manifest.input_size) if name == self.input_name else (batch, 2)
            if not context.set_input_shape(name, shape):
                raise InputError(f"{self.artifact}: the engine rejects input shape {list(shape)} of {name} "
                                 f"(outside its optimization profile)")

    def _set_batch(self, slot, batch):
        """Set the slot's context to `batch`; its graph, captured at the old shape, is dropped."""
        self._set_shape(slot.context, batch)
        slot.drop_graph()
        slot.batch, slot.ran = batch, False

    def _enqueue(self, slot, batch, marks=None):
        """H2D, inference and D2H for `batch` rows of `slot`, on the stream (captured or not).

        marks: 4 events recorded before H2D, after H2D, after inference and after D2H (timing; never
        passed during a capture)."""
        rt = self.cuda.rt
        h2d, d2h = rt.cudaMemcpyKind.cudaMemcpyHostToDevice, rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._mark(marks, 0)
        for n in self.input_names:
            x = slot.host[n][:batch]
            self.cuda("cudaMemcpyAsync", slot.device[n], x.ctypes.data, x.nbytes, h2d, self.stream)
        self._mark(marks, 1)
        if not slot.context.execute_async_v3(self.stream):  # the cudaStream_t handle, as NVIDIA's samples pass it
            raise RuntimeError(f"{self.artifact}: execute_async_v3 failed (see the TensorRT log)")
        self._mark(marks, 2)
        for n in self.outputs:
            y = slot.host[n][:batch]
            self.cuda("cudaMemcpyAsync", y.ctypes.data, slot.device[n], y.nbytes, d2h, self.stream)
        self._mark(marks, 3)

    def _mark(self, marks, i):
        if marks:
            self.cuda("cudaEventRecord", marks[i], self.stream)

    def _launch(self, slot, marks):
        """Replay the slot's CUDA graph, timed as a whole when marks are given."""
        self._mark(marks, 0)
        self.cuda("cudaGraphLaunch", slot.graph[1], self.stream)
        self._mark(marks, 3)

    def _gpu_times(self, slot, kind):
        def ms(a, b):
            return float(self.cuda("cudaEventElapsedTime", slot.marks[a], slot.marks[b]))

        if kind == "graph":
            return {"total_ms": ms(0, 3)}
        return {"h2d_ms": ms(0, 1), "compute_ms": ms(1, 2), "d2h_ms": ms(2, 3), "total_ms": ms(0, 3)}

    def submit(self, feed):
        feed = self.check_input(feed)
        batch = feed[self.input_name].shape[0]
        slot = self._slots[self._next]
        self._next ^= 1
        if slot.pending is not None:  # its previous batch was not collected: copy it out before overwriting
            slot.pending.take()
        for n, x in feed.items():
            np.copyto(slot.host[n][:batch], x, casting="same_kind")
        if batch != slot.batch:
            self._set_batch(slot, batch)
        if self.timing and slot.marks is None:
            slot.marks = [self.cuda("cudaEventCreate") for _ in range(4)]
        marks = slot.marks if self.timing else None
        if slot.graph is None and self.cuda_graph and slot.ran:
            self._capture(slot, batch)  # after an ordinary run of this context at this shape
        if slot.graph is not None:
            self._launch(slot, marks)
        else:
            self._enqueue(slot, batch, marks)
            slot.ran = True
        self.cuda("cudaEventRecord", slot.event, self.stream)
        result = _Result(self, slot, batch)
        result.timed = ("graph" if slot.graph is not None else "split") if marks else None
        slot.pending = result
        return result

    def _capture(self, slot, batch):
        """Capture the slot's H2D + enqueue + D2H at `batch`; on failure fall back to plain enqueues."""
        rt = self.cuda.rt
        graph = None
        try:
            # Thread-local: a global-mode capture would also fail CUDA calls that other threads make meanwhile.
            self.cuda("cudaStreamBeginCapture", self.stream,
                      rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal)
            try:
                self._enqueue(slot, batch)
            finally:
                graph = self.cuda("cudaStreamEndCapture", self.stream)
            slot.graph = (graph, self.cuda("cudaGraphInstantiate", graph, 0))
        except RuntimeError as e:  # e.g. an engine that is not stream-capturable
            if graph is not None:
                self.cuda("cudaGraphDestroy", graph)
            self.cuda_graph = False
            warnings.warn(f"{self.artifact}: CUDA graph capture failed ({e}); running without graphs")

    def close(self):
        if getattr(self, "_slots", None) is None:
            return
        self.cuda("cudaStreamSynchronize", self.stream)
        for slot in self._slots:
            slot.free()
        self._slots = None
        self.cuda("cudaStreamDestroy", self.stream)
        self.engine = None
