"""Build: ONNX (+ manifest) -> TensorRT engine, or the ONNX Runtime CPU artifact where TensorRT is absent.

    detrt build model.onnx --precision fp16 -o model.engine [--plugins libdetrt_plugins.so]
    detrt build model.onnx --precision int8 --calib clip.mp4 --backend onnxruntime -o model.int8.onnx

Precision lives in the graph (precision.py) and the network is built strongly typed, on TensorRT 10.x
and 11.x alike: 11.x removed weak typing, the FP16/INT8 builder flags and IInt8Calibrator.

The TensorRT part cannot run on the development machines (no GPU, no TensorRT). It is kept thin and
every TensorRT name in it was checked against NVIDIA's Python bindings at release/10.3 (JetPack 6)
and main = 11.1 (python/src/infer/pyCore.cpp, python/src/parsers/pyOnnx.cpp, python/src/infer/pyPlugin.cpp):
Logger, Builder, Builder.create_network, NetworkDefinitionCreationFlag.STRONGLY_TYPED (11.x: deprecated,
always on), OnnxParser, parse_from_file, num_errors, get_error, ParserError.desc/node_name/node_operator,
create_builder_config, set_memory_pool_limit, MemoryPoolType.WORKSPACE, create_optimization_profile,
IOptimizationProfile.set_shape, add_optimization_profile, create_timing_cache, set_timing_cache,
get_timing_cache, ITimingCache.serialize, IBuilderConfig.progress_monitor, IProgressMonitor
(phase_start / step_complete / phase_finish), default_device_type, DeviceType.DLA, DLA_core,
BuilderFlag.GPU_FALLBACK, Builder.num_DLA_cores, build_serialized_network, get_plugin_registry,
IPluginRegistry.all_creators, init_libnvinfer_plugins. No name differs between the two, so there is
no version branch.
"""

import hashlib
import os
import re
import tempfile
import time
from pathlib import Path

import onnx

from detrt.atomic import atomic_path
from detrt.compile import surgery
from detrt.compile.portable_ops import PORTABLE_DOMAIN
from detrt.errors import InputError
from detrt.manifest import ENGINE_SUFFIXES, Manifest, load_manifest, save_manifest, sha256_file

PRECISIONS = ("fp32", "fp16", "int8")
TRT_ISSUE = "NVIDIA/TensorRT#4813"


def load_onnx(path):
    """Read an ONNX file; InputError if it is missing or not ONNX."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such ONNX file")
    try:
        model = onnx.load(str(path))
    except Exception as e:  # protobuf's DecodeError and friends
        raise InputError(f"{path}: not an ONNX model ({type(e).__name__})") from None
    if not model.graph.node:
        raise InputError(f"{path}: not an ONNX model (no graph nodes)")
    return model


def check_ops(model, backend, where="model"):
    """Refuse a node the backend cannot run, naming the op and the node."""
    local = {(f.domain, f.name) for f in model.functions}
    for node in model.graph.node:
        op = f"{node.domain}::{node.op_type}" if node.domain else node.op_type
        name = node.name or "(unnamed)"
        if backend == "tensorrt":
            if node.op_type == "GridSample" or node.domain == PORTABLE_DOMAIN:
                raise InputError(f"{where}: node {name} ({op}) is the GridSample form of deformable attention, which "
                                 f"TensorRT mis-builds ({TRT_ISSUE}); build from the plugin form "
                                 f"(detrt surgery IN -o OUT --form plugin, or detrt export --form plugin)")
            if node.domain not in ("", "ai.onnx", surgery.DETRT_DOMAIN, surgery.NVIDIA_DOMAIN):
                raise InputError(f"{where}: node {name}: op {op} has no TensorRT importer or plugin in detrt")
        else:
            if node.domain in ("", "ai.onnx", "com.microsoft") or (node.domain, node.op_type) in local:
                continue
            if node.domain == surgery.DETRT_DOMAIN and node.op_type in surgery.DETRT_OPS:
                continue  # run by detrt.runtime.ort_ops (CPU kernels)
            raise InputError(f"{where}: node {name}: op {op} runs on no ONNX Runtime backend here"
                             + (" (NVIDIA's plugin runs only in TensorRT; use --msda-plugin detrt)"
                                if node.domain == surgery.NVIDIA_DOMAIN else ""))


def parse_shape(text, flag):
    """'images:1x3x256x384' -> (1, 3, 256, 384)."""
    m = re.fullmatch(r"images:(\d+)x(\d+)x(\d+)x(\d+)", text or "")
    if not m:
        raise InputError(f"{flag} {text!r}: expected images:BxCxHxW, e.g. images:1x3x256x384")
    return tuple(int(v) for v in m.groups())


def profile_shapes(manifest, min_shape=None, opt_shape=None, max_shape=None):
    """(min, opt, max) input shapes, checked against the model's fixed C x H x W."""
    h, w = manifest.input_size
    default = lambda b: (b, 3, h, w)  # noqa: E731
    shapes = [parse_shape(s, f) if s else default(b) for s, f, b in
              ((min_shape, "--minShapes", 1), (opt_shape, "--optShapes", 1),
               (max_shape, "--maxShapes", manifest.max_batch))]
    for shape, flag in zip(shapes, ("--minShapes", "--optShapes", "--maxShapes")):
        if shape[1:] != (3, h, w):
            raise InputError(f"{flag}: the model takes [B, 3, {h}, {w}], got {list(shape)}")
    if not shapes[0][0] <= shapes[1][0] <= shapes[2][0] or shapes[0][0] < 1:
        raise InputError(f"batch sizes must satisfy 1 <= min <= opt <= max, got {[s[0] for s in shapes]}")
    return shapes


def engine_cache_key(onnx_sha256, precision, tensorrt_version, compute_capability, plugin_sha256, extra=()):
    """sha256 over what makes an engine reusable (extra: profile shapes, DLA core, workspace)."""
    parts = [onnx_sha256, precision, tensorrt_version, compute_capability, plugin_sha256 or "-", *map(str, extra)]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def check_output_name(output, backend):
    """Refuse an output named for the other backend's artifact: `detrt run` picks the backend by the suffix."""
    suffix = Path(output).suffix.lower()
    if backend == "onnxruntime" and suffix != ".onnx":
        raise InputError(f"{output}: --backend onnxruntime writes an ONNX model; name the output .onnx")
    if backend == "tensorrt" and suffix not in ENGINE_SUFFIXES:
        raise InputError(f"{output}: --backend tensorrt writes an engine; name the output "
                         f"{' or '.join(ENGINE_SUFFIXES)}")


def cache_dir():
    return Path(os.environ.get("DETRT_CACHE", Path.home() / ".cache" / "detrt")) / "engines"


def apply_precision(model, manifest, precision, calib=None, calib_frames=200, fp16_all=False):
    """The FP32 graph -> the graph carrying `precision` (Casts for fp16, Q/DQ for int8)."""
    from detrt.compile import precision as prec

    if precision not in PRECISIONS:
        raise InputError(f"--precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    if manifest.precision != "fp32":
        raise InputError(f"the model is already {manifest.precision}; build from the FP32 export")
    if precision == "fp16":
        return prec.to_fp16(model, fp16_all)
    if precision == "int8":
        if not calib:
            raise InputError("--precision int8 needs --calib (a video, an image directory or a glob)")
        return prec.to_int8(model, prec.calibration_batches(calib, manifest, calib_frames))
    return model


def ort_artifact(model, manifest, precision, output, parent, log=print):
    """The CPU artifact: the graph optimized offline by ONNX Runtime (SessionOptions.optimized_model_filepath).

    ORT_ENABLE_EXTENDED, not ALL: ALL adds layout transforms tied to this machine's CPU.
    """
    import onnxruntime as ort

    plugin = any(n.domain == surgery.DETRT_DOMAIN for n in model.graph.node)
    check_ops(model, "onnxruntime", parent)
    with tempfile.TemporaryDirectory(prefix="detrt-ort-") as tmp, atomic_path(output) as dst:
        src = Path(tmp) / "model.onnx"
        onnx.save(model, str(src))
        if plugin:
            from detrt.runtime.ort_ops import session_options

            so = session_options()
        else:
            so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        so.optimized_model_filepath = str(dst)
        ort.InferenceSession(str(src), so, providers=["CPUExecutionProvider"])
        digest = sha256_file(dst)
    out = _derived_manifest(manifest, onnx_sha256=digest, precision=precision, form="plugin" if plugin else "portable",
                            parent=str(parent))
    save_manifest(out, output)
    if log:
        log(f"ONNX Runtime CPU artifact ({precision}, {out.form}) -> {output}")
    return out


def _derived_manifest(manifest, **changes):
    fields = {**manifest.to_dict(), **changes}
    return Manifest.from_dict(fields)


def import_tensorrt():
    try:
        import tensorrt as trt
    except ImportError as e:
        raise InputError(f"TensorRT is not installed here ({e}); on a GPU machine install detrt[trt] (Jetson: "
                         f"JetPack's python3-libnvinfer), or build the CPU artifact with --backend onnxruntime") from None
    return trt


def gpu_properties(device=0):
    """(name, compute capability 'M.m') of a CUDA device through cuda-python."""
    try:
        from cuda.bindings import runtime as cudart
    except ImportError as e:
        raise InputError(f"cuda-python is not installed ({e}); install detrt[trt]") from None
    err, props = cudart.cudaGetDeviceProperties(device)
    if int(err) != 0:
        raise InputError(f"no usable CUDA device {device} (cudaGetDeviceProperties: {err})")
    name = props.name.split(b"\0")[0].decode() if isinstance(props.name, bytes) else str(props.name)
    return name, f"{props.major}.{props.minor}"


def engine_from_onnx(onnx_path, shapes, workspace_mib=None, timing_cache=None, dla_core=None, log=print):
    """Parse with the plugins loaded (by the caller) and build a strongly typed engine -> serialized bytes."""
    trt = import_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    trt.init_libnvinfer_plugins(logger, "")  # NVIDIA's built-in plugins (MultiscaleDeformableAttnPlugin_TRT)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [parser.get_error(i) for i in range(parser.num_errors)]
        first = errors[0] if errors else None
        where = f" at node {first.node_name()} ({first.node_operator()})" if first is not None else ""
        raise InputError(f"{onnx_path}: TensorRT cannot parse it{where}: {first.desc() if first else 'unknown error'}")
    config = builder.create_builder_config()
    if workspace_mib:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mib) << 20)
    profile = builder.create_optimization_profile()
    profile.set_shape("images", *shapes)
    config.add_optimization_profile(profile)
    cache = None
    if timing_cache:
        blob = Path(timing_cache).read_bytes() if Path(timing_cache).is_file() else b""
        cache = config.create_timing_cache(blob)
        config.set_timing_cache(cache, False)
    if dla_core is not None:
        if builder.num_DLA_cores <= dla_core:
            raise InputError(f"--dla {dla_core}: this device has {builder.num_DLA_cores} DLA core(s)")
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = int(dla_core)
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)  # layers DLA cannot run (the plugins) go to the GPU
    config.progress_monitor = _progress_monitor(trt)
    start = time.perf_counter()
    engine = builder.build_serialized_network(network, config)
    if engine is None:
        raise InputError(f"{onnx_path}: TensorRT failed to build an engine (see the log above)")
    if cache is not None:
        with atomic_path(timing_cache) as tmp:
            Path(tmp).write_bytes(bytes(config.get_timing_cache().serialize()))
    if log:
        log(f"built in {time.perf_counter() - start:.0f} s")
    return bytes(engine)


def _progress_monitor(trt):
    """An IProgressMonitor showing one tqdm bar per build phase."""
    from tqdm import tqdm

    class Monitor(trt.IProgressMonitor):
        def __init__(self):
            trt.IProgressMonitor.__init__(self)
            self.bars = {}

        def phase_start(self, phase_name, parent_phase, num_steps):
            self.bars[phase_name] = tqdm(total=num_steps, desc=phase_name, leave=parent_phase is None)

        def step_complete(self, phase_name, step):
            bar = self.bars.get(phase_name)
            if bar is not None:
                bar.update(step + 1 - bar.n)
            return True  # False would cancel the build

        def phase_finish(self, phase_name):
            bar = self.bars.pop(phase_name, None)
            if bar is not None:
                bar.close()

    return Monitor()


def build(onnx_path, output, precision="fp32", backend="tensorrt", plugins=None, min_shape=None, opt_shape=None,
          max_shape=None, workspace=None, timing_cache=None, dla=None, calib=None, calib_frames=200, fp16_all=False,
          msda_plugin="detrt", log=print):
    """The `detrt build` verb. Returns the manifest written beside `output`."""
    check_output_name(output, backend)
    manifest = load_manifest(onnx_path)
    model = load_onnx(onnx_path)
    if backend == "onnxruntime":
        if precision == "fp16":
            raise InputError("--backend onnxruntime builds fp32 or int8 (the CPU computes FP16 in float anyway)")
        model = apply_precision(model, manifest, precision, calib, calib_frames, fp16_all)
        return ort_artifact(model, manifest, precision, output, onnx_path, log)
    if backend != "tensorrt":
        raise InputError(f"--backend {backend!r}: choose tensorrt or onnxruntime")
    trt = import_tensorrt()  # fail in one line before any work
    shapes = profile_shapes(manifest, min_shape, opt_shape, max_shape)
    from detrt.runtime.trt_backend import find_plugin_library, load_plugin_library

    lib = Path(plugins) if plugins else find_plugin_library()
    if lib is None or not lib.is_file():
        raise InputError(f"{lib or 'libdetrt_plugins.so'}: plugin library not found (--plugins PATH or $DETRT_PLUGINS)")
    _handle = load_plugin_library(lib)  # noqa: F841  (kept loaded while building)
    gpu_name, capability = gpu_properties()
    model = apply_precision(model, manifest, precision, calib, calib_frames, fp16_all)
    graph, _ = surgery.run_passes(surgery.gs.import_onnx(model), surgery.passes_for("plugin", msda_plugin))
    model = surgery.export_model(graph)
    check_ops(model, "tensorrt", onnx_path)
    built_onnx = Path(output).with_suffix(".plugin.onnx")
    with atomic_path(built_onnx) as tmp:
        onnx.save(model, str(tmp))
        graph_sha = sha256_file(tmp)
    plugin_sha = sha256_file(lib)
    key = engine_cache_key(graph_sha, precision, trt.__version__, capability, plugin_sha,
                           extra=(shapes, dla, workspace))
    cached = cache_dir() / f"{key}.engine"
    if cached.is_file():
        if log:
            log(f"engine cache hit {cached}")
        engine = cached.read_bytes()
    else:
        engine = engine_from_onnx(built_onnx, shapes, workspace, timing_cache, dla, log)
        cached.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(cached) as tmp:
            Path(tmp).write_bytes(engine)
    with atomic_path(output) as tmp:
        Path(tmp).write_bytes(engine)
        engine_sha = hashlib.sha256(engine).hexdigest()
    out = _derived_manifest(manifest, onnx_sha256=graph_sha, precision=precision, form="plugin",
                            max_batch=shapes[2][0], parent=str(built_onnx), engine_sha256=engine_sha,
                            tensorrt_version=trt.__version__, gpu_name=gpu_name, compute_capability=capability,
                            plugin_sha256=plugin_sha)
    save_manifest(out, output)
    if log:
        log(f"TensorRT {trt.__version__} engine ({precision}, {gpu_name}, sm {capability}) -> {output}")
    return out


def cache_info():
    """Engines in the cache (doctor)."""
    d = cache_dir()
    return sorted(p.name for p in d.glob("*.engine")) if d.is_dir() else []

