"""GPU validation: the CUDA kernels (plugins/cuda) and the TensorRT plugins (libdetrt_plugins.so) against the
CPU kernels (detrt.ops.cpu) on random inputs. benchmarks/gpu_validate.py runs it; so does
tests/plugins/test_gpu_validate.py (marked gpu).

    python benchmarks/gpu_validate.py                      # builds build/gpu with CMake if the libraries are missing
    python benchmarks/gpu_validate.py --cuda-lib PATH/libdetrt_cuda.so --plugin-lib PATH/libdetrt_plugins.so

Checks (normwise relative error max|gpu - cpu| / max|cpu|):
  MSDA, float32 I/O <= 1e-5 and float16 I/O <= 1e-3 (same float16 inputs on both sides; odd and even D, so
  both the half2 and the scalar path), shapes with 1x1 levels and locations outside [0, 1];
  dcg_neighbors, float32 and float16 inputs: indices and valid must EQUAL the CPU kernel's slot for slot
  (same IoU rounding and tie order by construction), on crowded boxes with duplicated boxes and scores.
With TensorRT importable, one-node engines per plugin are built (strongly typed) through the plugin library
and compared the same way; a plugin library that is missing there is a failure. Without a GPU, cuda-python or
the CPU extension it prints why and exits 0; a failed comparison exits 1. All work runs on one created stream,
never the legacy default stream. Results: --json (default benchmarks/results/gpu_validate.json).
"""

import argparse
import ctypes
import json
import platform
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np

from detrt.atomic import atomic_open
from detrt.ops import cpu
from detrt.ops.names import DCG_OP, DETRT_DOMAIN, MSDA_OP, PLUGIN_VERSION
from detrt.ops.tensorrt import gpu_here, gpu_properties, register_plugins, tensorrt_available

TOLERANCE = {"float32": 1e-5, "float16": 1e-3}
DTYPE_CODE = {"float32": 0, "float16": 1}  # detrtCudaApi.cpp

# (name, N, level shapes (H, W), M, D, Lq, P): encoder-like, decoder-like, odd D (scalar half path), tiny.
MSDA_CASES = [
    ("encoder_640x384", 1, [(48, 80), (24, 40), (12, 20), (6, 10)], 8, 32, 5100, 4),
    ("decoder_b2", 2, [(20, 30), (10, 15), (5, 8), (1, 1)], 8, 32, 500, 4),
    ("odd_d", 2, [(7, 9), (3, 5), (1, 1)], 3, 33, 257, 3),
    ("d1_p8", 1, [(1, 1), (2, 3)], 1, 1, 64, 8),
]
# (name, B, N, k, iou_threshold, low_score)
DCG_CASES = [
    ("dh_detr_b2", 2, 1000, 10, 0.4, 0.1),
    ("crowded_k1", 1, 3000, 1, 0.4, 0.1),
    ("k64_low_thr", 2, 500, 64, 0.1, 0.0),
    ("tiny", 3, 7, 10, 0.4, 0.1),
]


def unavailable_reason():
    """Why GPU validation cannot run here (None when it can)."""
    if not cpu.available():
        return cpu.unavailable_reason()
    ok, why = gpu_here()
    return None if ok else why


class DeviceBuffers:
    """Device allocations through cuda.bindings.runtime, freed together, and the stream all work runs on."""

    def __init__(self):
        from cuda.bindings import runtime as cudart

        self.rt = cudart
        self.ptrs, self.uploaded = [], []
        self.stream = self._check(cudart.cudaStreamCreate(), "cudaStreamCreate")
        self.handle = int(self.stream)  # the cudaStream_t's value, for the kernels' C ABI (ctypes)

    def _check(self, result, what):
        err, *rest = result
        if err != self.rt.cudaError_t.cudaSuccess:
            raise RuntimeError(f"{what}: {getattr(err, 'name', err)}")
        return rest[0] if len(rest) == 1 else None

    def upload(self, array):
        array = np.ascontiguousarray(array)
        self.uploaded.append(array)  # the source of an asynchronous copy lives until the stream is synchronized
        ptr = self.empty(array.nbytes)
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._check(self.rt.cudaMemcpyAsync(ptr, array.ctypes.data, array.nbytes, kind, self.stream),
                    "cudaMemcpyAsync H2D")
        return ptr

    def empty(self, nbytes):
        ptr = self._check(self.rt.cudaMalloc(max(int(nbytes), 1)), "cudaMalloc")
        self.ptrs.append(ptr)
        return ptr

    def download(self, ptr, shape, dtype):
        out = np.empty(shape, dtype=dtype)
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._check(self.rt.cudaMemcpyAsync(out.ctypes.data, ptr, out.nbytes, kind, self.stream),
                    "cudaMemcpyAsync D2H")
        self.synchronize()
        return out

    def synchronize(self):
        self._check(self.rt.cudaStreamSynchronize(self.stream), "cudaStreamSynchronize (a kernel failed)")
        self.uploaded.clear()

    def free(self):
        self.synchronize()
        for ptr in self.ptrs:
            self.rt.cudaFree(ptr)
        self.ptrs.clear()

    def close(self):
        self.free()
        self.rt.cudaStreamDestroy(self.stream)


def load_cuda_lib(path):
    lib = ctypes.CDLL(str(path))
    p, i, f = ctypes.c_void_p, ctypes.c_int, ctypes.c_float
    lib.detrt_cuda_ms_deform_attn.argtypes = [i] * 8 + [p] * 7
    lib.detrt_cuda_ms_deform_attn.restype = i
    lib.detrt_cuda_dcg_neighbors.argtypes = [i, i, i, i, f, f] + [p] * 5
    lib.detrt_cuda_dcg_neighbors.restype = i
    lib.detrt_cuda_error_string.argtypes = [i]
    lib.detrt_cuda_error_string.restype = ctypes.c_char_p
    return lib


def find_or_build(cuda_lib, plugin_lib, tensorrt_root, root):
    """Paths of libdetrt_cuda.so and libdetrt_plugins.so (None where absent), building root/build/gpu from the
    source tree `root` if needed."""
    build_dir = root / "build" / "gpu"
    cuda_lib = Path(cuda_lib) if cuda_lib else build_dir / "plugins" / "cuda" / "libdetrt_cuda.so"
    plugin_lib = Path(plugin_lib) if plugin_lib else build_dir / "plugins" / "tensorrt" / "libdetrt_plugins.so"
    if not cuda_lib.exists() and shutil.which("cmake") and shutil.which("nvcc"):
        print(f"building the CUDA libraries in {build_dir} ...", flush=True)
        configure = ["cmake", "-S", str(root), "-B", str(build_dir), "-DDETRT_BUILD_CUDA=ON"]
        configure.append("-DDETRT_BUILD_PYTHON=OFF")
        if tensorrt_root:
            configure.append(f"-DTensorRT_ROOT={tensorrt_root}")
        subprocess.run(configure, check=True)
        subprocess.run(["cmake", "--build", str(build_dir), "-j", "--target", "detrt_cuda"], check=True)
        subprocess.run(["cmake", "--build", str(build_dir), "-j"], check=False)  # the plugin lib where TensorRT is
    return (cuda_lib if cuda_lib.exists() else None), (plugin_lib if plugin_lib.exists() else None)


def rel_error(got, want):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    scale = max(float(np.abs(want).max(initial=0.0)), 1e-30)
    return float(np.abs(got - want).max(initial=0.0)) / scale


def msda_inputs(rng, n, shapes, m, d, lq, p, dtype):
    shapes = np.asarray(shapes, np.int32).reshape(-1, 2)
    sizes = shapes[:, 0] * shapes[:, 1]
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int32)
    num_levels, s = len(shapes), int(sizes.sum())
    value = rng.standard_normal((n, s, m, d)).astype(dtype)
    loc = rng.uniform(-0.1, 1.1, (n, lq, m, num_levels, p, 2)).astype(dtype)
    loc.reshape(-1)[:7] = np.array([0.0, 1.0, 0.5, -0.5, 1.5, 1 / 3, 0.999], dtype)  # edges, outside, centre
    attn = rng.uniform(0, 1, (n, lq, m, num_levels, p)).astype(dtype)
    return value, shapes, starts, loc, attn


def dcg_inputs(rng, b, n, dtype):
    centres = rng.uniform(0.2, 0.8, (b, n, 2)) + rng.normal(0, 0.08, (b, n, 2))  # crowded
    sizes = rng.uniform(0.02, 0.12, (b, n, 2))
    boxes = np.concatenate([centres, sizes], axis=-1).astype(dtype)
    scores = rng.uniform(0, 1, (b, n)).astype(dtype)
    dup = max(1, n // 10)  # exact duplicate boxes (IoU ties) and, for half of them, equal scores too
    boxes[:, -dup:] = boxes[:, :dup]
    half = max(1, dup // 2)
    scores[:, -half:] = scores[:, :half]
    return boxes, scores


def gpu_msda(lib, dev, inputs, dtype):
    value, shapes, starts, loc, attn = inputs
    n, s, m, d = value.shape
    _, lq, _, num_levels, p, _ = loc.shape
    out = dev.empty(n * lq * m * d * np.dtype(dtype).itemsize)
    ptrs = [dev.upload(a) for a in (value, shapes, starts, loc, attn)]
    status = lib.detrt_cuda_ms_deform_attn(DTYPE_CODE[dtype], n, s, m, d, num_levels, p, lq, *ptrs, out, dev.handle)
    if status != 0:
        raise RuntimeError(f"detrt_cuda_ms_deform_attn: {lib.detrt_cuda_error_string(status).decode()}")
    return dev.download(out, (n, lq, m * d), dtype)


def gpu_dcg(lib, dev, boxes, scores, k, thr, low, dtype):
    b, n, _ = boxes.shape
    indices, valid = dev.empty(b * n * k * 4), dev.empty(b * n * k * 4)
    status = lib.detrt_cuda_dcg_neighbors(
        DTYPE_CODE[dtype], b, n, k, thr, low, dev.upload(boxes), dev.upload(scores), indices, valid, dev.handle
    )
    if status != 0:
        raise RuntimeError(f"detrt_cuda_dcg_neighbors: {lib.detrt_cuda_error_string(status).decode()}")
    return dev.download(indices, (b, n, k), np.int32), dev.download(valid, (b, n, k), np.int32)


def compare_dcg(got_indices, got_valid, boxes, scores, k, thr, low):
    """Mismatching (b, i) rows between a GPU result and the CPU kernel on the same (float32-exact) inputs."""
    want_indices, want_valid = cpu.dcg_neighbors(boxes.astype(np.float32), scores.astype(np.float32), k, thr, low)
    rows = (got_indices != want_indices).any(-1) | ((got_valid != 0) != want_valid).any(-1)
    return int(rows.sum()), int(want_valid.sum())


def run_cuda(lib, seed):
    dev, rng, results = DeviceBuffers(), np.random.default_rng(seed), []
    try:
        for name, n, shapes, m, d, lq, p in MSDA_CASES:
            for dtype in ("float32", "float16"):
                inputs = msda_inputs(rng, n, shapes, m, d, lq, p, dtype)
                want = cpu.ms_deform_attn(*inputs)
                t0 = time.perf_counter()
                got = gpu_msda(lib, dev, inputs, dtype)
                err = rel_error(got, want)
                results.append(dict(op="ms_deform_attn", backend="cuda", case=name, dtype=dtype, rel_error=err,
                                    ok=err <= TOLERANCE[dtype], seconds=time.perf_counter() - t0))
                dev.free()
        for name, b, n, k, thr, low in DCG_CASES:
            for dtype in ("float32", "float16"):
                boxes, scores = dcg_inputs(rng, b, n, dtype)
                got = gpu_dcg(lib, dev, boxes, scores, k, thr, low, dtype)
                bad, nvalid = compare_dcg(*got, boxes, scores, k, thr, low)
                results.append(dict(op="dcg_neighbors", backend="cuda", case=name, dtype=dtype, mismatched_rows=bad,
                                    valid_slots=nvalid, ok=bad == 0))
                dev.free()
    finally:
        dev.close()
    return results


def run_tensorrt(plugin_lib, seed):
    """One-node engines through libdetrt_plugins.so, compared with the CPU kernels."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    register_plugins(trt, plugin_lib)
    registry = trt.get_plugin_registry()
    trt_dtype = {"float32": trt.float32, "float16": trt.float16, "int32": trt.int32}
    dev, rng, results = DeviceBuffers(), np.random.default_rng(seed + 1), []

    def run_engine(plugin_name, fields, inputs, outputs):
        """inputs: {name: array}; outputs: {name: (shape, numpy dtype)} -> {name: array}."""
        builder = trt.Builder(logger)
        network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
        creator = registry.get_creator(plugin_name, PLUGIN_VERSION, DETRT_DOMAIN)
        if creator is None:
            raise RuntimeError(f"{plugin_name} (namespace {DETRT_DOMAIN}, version {PLUGIN_VERSION}) is not registered "
                               f"by {plugin_lib}")
        plugin = creator.create_plugin(plugin_name, trt.PluginFieldCollection(fields), trt.TensorRTPhase.BUILD)
        tensors = [network.add_input(k, trt_dtype[v.dtype.name], v.shape) for k, v in inputs.items()]
        layer = network.add_plugin_v3(tensors, [], plugin)
        for i, name in enumerate(outputs):
            layer.get_output(i).name = name
            network.mark_output(layer.get_output(i))
        serialized = builder.build_serialized_network(network, builder.create_builder_config())
        if serialized is None:
            raise RuntimeError(f"building the {plugin_name} engine failed")
        engine = trt.Runtime(logger).deserialize_cuda_engine(serialized)
        context = engine.create_execution_context()
        out_ptrs = {}
        for name, array in inputs.items():
            context.set_tensor_address(name, dev.upload(array))
        for name, (shape, dtype) in outputs.items():
            out_ptrs[name] = dev.empty(int(np.prod(shape)) * np.dtype(dtype).itemsize)
            context.set_tensor_address(name, out_ptrs[name])
        if not context.execute_async_v3(dev.stream):
            raise RuntimeError(f"{plugin_name}: execute_async_v3 failed")
        return {name: dev.download(out_ptrs[name], shape, dtype) for name, (shape, dtype) in outputs.items()}

    try:
        for name, n, shapes, m, d, lq, p in MSDA_CASES:
            for dtype in ("float32", "float16"):
                value, sh, st, loc, attn = msda_inputs(rng, n, shapes, m, d, lq, p, dtype)
                feeds = dict(value=value, spatial_shapes=sh, level_start_index=st, sampling_locations=loc,
                             attention_weights=attn)
                got = run_engine(MSDA_OP, [], feeds, {"output": ((n, lq, m * d), dtype)})["output"]
                err = rel_error(got, cpu.ms_deform_attn(value, sh, st, loc, attn))
                results.append(dict(op="ms_deform_attn", backend="tensorrt", case=name, dtype=dtype, rel_error=err,
                                    ok=err <= TOLERANCE[dtype]))
                dev.free()
        for name, b, n, k, thr, low in DCG_CASES:
            for dtype in ("float32", "float16"):
                boxes, scores = dcg_inputs(rng, b, n, dtype)
                fields = [
                    trt.PluginField("k", np.array([k], np.int32), trt.PluginFieldType.INT32),
                    trt.PluginField("iou_threshold", np.array([thr], np.float32), trt.PluginFieldType.FLOAT32),
                    trt.PluginField("low_score", np.array([low], np.float32), trt.PluginFieldType.FLOAT32),
                ]
                outs = {"indices": ((b, n, k), np.int32), "valid": ((b, n, k), np.int32)}
                got = run_engine(DCG_OP, fields, dict(boxes=boxes, scores=scores), outs)
                bad, nvalid = compare_dcg(got["indices"], got["valid"], boxes, scores, k, thr, low)
                results.append(dict(op="dcg_neighbors", backend="tensorrt", case=name, dtype=dtype,
                                    mismatched_rows=bad, valid_slots=nvalid, ok=bad == 0))
                dev.free()
    finally:
        dev.close()
    return results, trt.__version__


def main(argv, root):
    """`benchmarks/gpu_validate.py ARGV` run on the source tree `root`; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cuda-lib", help="libdetrt_cuda.so (default: build/gpu, built with CMake if missing)")
    parser.add_argument("--plugin-lib", help="libdetrt_plugins.so (default: build/gpu)")
    parser.add_argument("--tensorrt-root", help="TensorRT_ROOT for the CMake build of the plugin library")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=str(root / "benchmarks" / "results" / "gpu_validate.json"))
    args = parser.parse_args(argv)

    reason = unavailable_reason()
    if reason:
        print(f"gpu_validate: skipped: {reason}")
        return 0
    cuda_lib, plugin_lib = find_or_build(args.cuda_lib, args.plugin_lib, args.tensorrt_root, root)
    if cuda_lib is None:
        print("gpu_validate: skipped: libdetrt_cuda.so not found and not buildable (needs cmake and nvcc)")
        return 0
    results = run_cuda(load_cuda_lib(cuda_lib), args.seed)
    trt_version, problems = None, []
    trt_ok, trt_why = tensorrt_available()
    if not trt_ok:
        print(f"gpu_validate: TensorRT part skipped: tensorrt does not import ({trt_why})")
    elif plugin_lib is None:  # where TensorRT is, the plugins are part of what must be validated
        problems.append("TensorRT imports but libdetrt_plugins.so was not found or built (--plugin-lib PATH, or "
                        "--tensorrt-root DIR to build it)")
    else:
        trt_results, trt_version = run_tensorrt(plugin_lib, args.seed)
        results += trt_results

    report = dict(
        date=time.strftime("%Y-%m-%d %H:%M:%S"),
        machine=platform.node(),
        gpu=gpu_properties()[0],
        tensorrt=trt_version,
        tolerance=TOLERANCE,
        results=results,
        problems=problems,
    )
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(out, "w") as f:
        json.dump(report, f, indent=1)
    for r in results:
        detail = f"rel_error {r['rel_error']:.2e}" if "rel_error" in r else f"{r['mismatched_rows']} rows differ"
        status = "ok  " if r["ok"] else "FAIL"
        print(f"{status} {r['backend']:9s} {r['op']:15s} {r['case']:16s} {r['dtype']:8s} {detail}")
    failed = [r for r in results if not r["ok"]]
    print(f"gpu_validate: {len(results) - len(failed)}/{len(results)} passed; results in {out}")
    for problem in problems:
        print(f"gpu_validate: FAIL: {problem}")
    return 1 if failed or problems else 0
