"""TensorRT engines: the builder, its optimization profile, timing cache and engine cache.

    detrt build model.onnx --precision fp16 -o model.engine [--plugins libdetrt_plugins.so]

Precision lives in the graph (precision.py) and the network is built strongly typed, on TensorRT 10.x
and 11.x alike: 11.x removed weak typing, the FP16/INT8 builder flags and IInt8Calibrator.

The TensorRT part is kept thin, with one code path for 10.x and 11.x: every TensorRT name it uses is
the same in both (STRONGLY_TYPED is deprecated in 11.x, where it is always on).
"""

import hashlib
import os
import re
import time
from pathlib import Path

from detrt.atomic import atomic_path
from detrt.compile.onnx_io import save_onnx
from detrt.errors import InputError
from detrt.manifest import IMAGE_SIZES, IMAGES, save_artifact, sha256_file
from detrt.ops.tensorrt import find_plugin_library, gpu_properties, import_tensorrt, register_plugins
from detrt.progress import progress_bar


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


def cache_dir():
    return Path(os.environ.get("DETRT_CACHE", Path.home() / ".cache" / "detrt")) / "engines"


def engine_from_onnx(onnx_path, shapes, precision, workspace_mib=None, timing_cache=None, dla_core=None, log=print,
                     inputs=(IMAGES,)):
    """Parse with the plugins registered (by the caller, register_plugins) and build a strongly typed engine
    -> serialized bytes. shapes: the (min, opt, max) of `images`; `image_sizes` (in `inputs`) follows its batch."""
    trt = import_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [parser.get_error(i) for i in range(parser.num_errors)]
        first = errors[0] if errors else None
        where = f" at node {first.node_name()} ({first.node_operator()})" if first is not None else ""
        raise InputError(f"{onnx_path}: TensorRT cannot parse it{where}: {first.desc() if first else 'unknown error'}")
    config = builder.create_builder_config()
    if precision == "fp32":
        config.clear_flag(trt.BuilderFlag.TF32)  # on by default: FP32 matmuls and convolutions would round to TF32
    if workspace_mib:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mib) << 20)
    profile = builder.create_optimization_profile()
    profile.set_shape(IMAGES, *shapes)
    if IMAGE_SIZES in inputs:
        profile.set_shape(IMAGE_SIZES, *[(s[0], 2) for s in shapes])
    config.add_optimization_profile(profile)
    cache = _timing_cache(config, timing_cache) if timing_cache else None
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


def _timing_cache(config, path):
    """The timing cache in `path` (a new one where the file is absent) attached to the builder config."""
    blob = Path(path).read_bytes() if Path(path).is_file() else b""
    cache = config.create_timing_cache(blob)
    if cache is None:
        raise InputError(f"--timingCache {path}: TensorRT cannot read it as a timing cache (see the log above); "
                         f"delete it to start a new one")
    if not config.set_timing_cache(cache, False):  # False: refuse a cache timed on another GPU or TensorRT
        raise InputError(f"--timingCache {path}: TensorRT refused it (made on another GPU or TensorRT version?); "
                         f"delete it to start a new one")
    return cache


def _progress_monitor(trt):
    """An IProgressMonitor showing one tqdm bar per build phase."""
    class Monitor(trt.IProgressMonitor):
        def __init__(self):
            trt.IProgressMonitor.__init__(self)
            self.bars = {}

        def phase_start(self, phase_name, parent_phase, num_steps):
            self.bars[phase_name] = progress_bar(total=num_steps, desc=phase_name, leave=parent_phase is None)

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


class Target:
    """What an engine is built for, checked before any graph work: TensorRT, the plugin library (loaded
    while this object lives), the GPU, the optimization profile's (min, opt, max) shapes."""

    def __init__(self, manifest, plugins=None, min_shape=None, opt_shape=None, max_shape=None):
        self.trt = import_tensorrt()  # fail in one line before any work
        self.shapes = profile_shapes(manifest, min_shape, opt_shape, max_shape)
        lib = Path(plugins) if plugins else find_plugin_library()
        if lib is None or not lib.is_file():
            raise InputError(f"{lib or 'libdetrt_plugins.so'}: plugin library not found (--plugins PATH or "
                             f"$DETRT_PLUGINS)")
        self.plugins = lib
        register_plugins(self.trt, lib)  # before any parse: the parser looks each plugin node up in the registry
        self.gpu_name, self.capability = gpu_properties()


def engine_artifact(model, manifest, output, target, workspace=None, timing_cache=None, dla=None, log=print):
    """The plugin-form graph -> the engine at `output`, built or taken from the engine cache.

    The graph it was built from stays beside it (model.plugin.onnx), each with its manifest; `manifest` is
    the graph's (precision, form, parent). Returns the engine's manifest.
    """
    trt = target.trt
    built_onnx = Path(output).with_suffix(".plugin.onnx")
    graph = save_onnx(model, built_onnx, manifest)
    plugin_sha = sha256_file(target.plugins)
    key = engine_cache_key(graph.onnx_sha256, graph.precision, trt.__version__, target.capability, plugin_sha,
                           extra=(target.shapes, dla, workspace))
    cached = cache_dir() / f"{key}.engine"
    if cached.is_file():
        if log:
            log(f"engine cache hit {cached}")
        engine = cached.read_bytes()
    else:
        engine = engine_from_onnx(built_onnx, target.shapes, graph.precision, workspace, timing_cache, dla, log,
                                  graph.inputs)
        cached.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(cached) as tmp:
            Path(tmp).write_bytes(engine)
    out = graph.derive(max_batch=target.shapes[2][0], parent=str(built_onnx), tensorrt_version=trt.__version__,
                       gpu_name=target.gpu_name, compute_capability=target.capability, plugin_sha256=plugin_sha)
    save_artifact(output, lambda tmp: Path(tmp).write_bytes(engine), out, digest="engine_sha256")
    if log:
        log(f"TensorRT {trt.__version__} engine ({out.precision}, {target.gpu_name}, sm {target.capability}) "
            f"-> {output}")
    return out
