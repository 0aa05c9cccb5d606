"""GPU validation: the CUDA kernels (plugins/cuda) and the TensorRT plugins (libdetrt_plugins.so) against the
CPU kernels (detrt.ops.cpu) on random inputs, and the CUDA kernels timed against the PyTorch references on the
same GPU. benchmarks/gpu_validate.py runs it (`make gpu-check`); so does tests/plugins/test_gpu_validate.py
(marked gpu).

    python benchmarks/gpu_validate.py                      # builds build/gpu with CMake (incremental) first
    python benchmarks/gpu_validate.py --cuda-lib PATH/libdetrt_cuda.so --plugin-lib PATH/libdetrt_plugins.so

Checks (normwise relative error max|gpu - cpu| / max|cpu|):
  MSDA, float32 I/O <= 1e-5 and float16 I/O <= 1e-3 (float16 value and weights, float32 locations as in a
  float16 engine, the same inputs on both sides; odd and even D, so both the half2 and the scalar path),
  shapes with 1x1 levels and locations outside [0, 1], and the encoder shape of the ops benchmark;
  dcg_neighbors, float32 and float16 inputs: indices and valid must EQUAL the CPU kernel's slot for slot
  (same IoU rounding and tie order by construction), on crowded boxes with duplicated boxes and scores, up to
  the ops benchmark's N = 10000.
Timing (where PyTorch sees the GPU): each kernel against the PyTorch reference (MSDA through F.grid_sample,
dcg_neighbors dense) on the same inputs, CUDA events around each call, median of repeats.
With TensorRT importable, one-node engines per plugin are built (strongly typed) and compared the same way;
the plugin library missing then is a failure. Work goes to a non-blocking stream of its own, never the legacy
default stream. Without a GPU the CUDA libraries are still built (nvcc compiles without one) and loaded and the
CPU half (inputs, CPU kernel outputs) runs; it prints "no GPU" and why, and exits 0. Without the CPU extension
it prints why and exits 0; a failed comparison exits 1. Results: --json (default
benchmarks/results/gpu_validate.json) and, after a GPU run, the script's section of benchmarks/RESULTS.md.
"""

import argparse
import ctypes
import shlex
import shutil
import subprocess
from pathlib import Path

import numpy as np

from detrt.bench.device import describe, device_facts
from detrt.bench.measure import wall_time
from detrt.bench.report import update_results_md, write_json
from detrt.ops import cpu
from detrt.ops.names import DCG_OP, DETRT_DOMAIN, MSDA_OP, PLUGIN_VERSION
from detrt.ops.tensorrt import gpu_here, import_tensorrt, register_plugins, tensorrt_available
from detrt.optional import require

TOLERANCE = {"float32": 1e-5, "float16": 1e-3}
DTYPE_CODE = {"float32": 0, "float16": 1}  # detrtCudaApi.cpp

# (name, N, level shapes (H, W), M, D, Lq, P): encoder-like, decoder-like, odd D (scalar half path), tiny.
MSDA_CASES = [
    ("encoder_640x384", 1, [(48, 80), (24, 40), (12, 20), (6, 10)], 8, 32, 5100, 4),
    ("decoder_b2", 2, [(20, 30), (10, 15), (5, 8), (1, 1)], 8, 32, 500, 4),
    ("odd_d", 2, [(7, 9), (3, 5), (1, 1)], 3, 33, 257, 3),
    ("d1_p8", 1, [(1, 1), (2, 3)], 1, 1, 64, 8),
    ("ops_encoder", 1, [(80, 48), (40, 24), (20, 12), (10, 6)], 8, 32, 5040, 4),  # benchmarks/ops_cpu.py's
]
# (name, B, N, k, iou_threshold, low_score)
DCG_CASES = [
    ("dh_detr_b2", 2, 1000, 10, 0.4, 0.1),
    ("crowded_k1", 1, 3000, 1, 0.4, 0.1),
    ("k64_low_thr", 2, 500, 64, 0.1, 0.0),
    ("tiny", 3, 7, 10, 0.4, 0.1),
    ("ops_n2000", 1, 2000, 10, 0.4, 0.1),  # benchmarks/ops_cpu.py's sizes
    ("ops_n10000", 1, 10000, 10, 0.4, 0.1),
]
TIMED_REPEATS = 20


class DeviceBuffers:
    """Device allocations and one non-blocking stream through cuda.bindings.runtime; copies and kernels all go
    to that stream (never the legacy default stream)."""

    def __init__(self):
        self.rt = cudart = require("cuda.bindings.runtime", "gpu_validate")
        self.ptrs = []
        self.stream = self._check(cudart.cudaStreamCreateWithFlags(cudart.cudaStreamNonBlocking), "cudaStreamCreate")

    def _check(self, result, what):
        err, *rest = result
        if err != self.rt.cudaError_t.cudaSuccess:
            raise RuntimeError(f"{what}: {getattr(err, 'name', err)}")
        return rest[0] if len(rest) == 1 else None

    @property
    def handle(self):
        """The stream as the integer handle the kernels' C ABI takes through ctypes (TensorRT takes the object)."""
        return int(self.stream)

    def upload(self, array):
        array = np.ascontiguousarray(array)
        ptr = self.empty(array.nbytes)
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._check(self.rt.cudaMemcpyAsync(ptr, array.ctypes.data, array.nbytes, kind, self.stream), "copy H2D")
        self.synchronize()  # the host array may go away when this returns
        return ptr

    def empty(self, nbytes):
        ptr = self._check(self.rt.cudaMalloc(max(int(nbytes), 1)), "cudaMalloc")
        self.ptrs.append(ptr)
        return ptr

    def download(self, ptr, shape, dtype):
        out = np.empty(shape, dtype=dtype)
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._check(self.rt.cudaMemcpyAsync(out.ctypes.data, ptr, out.nbytes, kind, self.stream), "copy D2H")
        self.synchronize()
        return out

    def synchronize(self):
        self._check(self.rt.cudaStreamSynchronize(self.stream), "cudaStreamSynchronize (a kernel failed)")

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
    """Paths of libdetrt_cuda.so and libdetrt_plugins.so (None where absent). Unless both are given, root/build/gpu
    is (re)built from the source tree `root` with CMake where cmake and nvcc exist (incremental: a changed kernel
    is never run stale); nvcc needs no GPU for this."""
    build_dir = root / "build" / "gpu"
    if not (cuda_lib and plugin_lib) and shutil.which("cmake") and shutil.which("nvcc"):
        print(f"building the CUDA libraries in {build_dir} ...", flush=True)
        configure = ["cmake", "-S", str(root), "-B", str(build_dir), "-DDETRT_BUILD_CUDA=ON"]
        configure.append("-DDETRT_BUILD_PYTHON=OFF")
        if tensorrt_root:
            configure.append(f"-DTensorRT_ROOT={tensorrt_root}")
        subprocess.run(configure, check=True)
        subprocess.run(["cmake", "--build", str(build_dir), "-j"], check=True)
    cuda_lib = Path(cuda_lib) if cuda_lib else build_dir / "plugins" / "cuda" / "libdetrt_cuda.so"
    plugin_lib = Path(plugin_lib) if plugin_lib else build_dir / "plugins" / "tensorrt" / "libdetrt_plugins.so"
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
    # float32 whatever value's dtype: the plugin's and the CUDA launcher's contract
    loc = rng.uniform(-0.1, 1.1, (n, lq, m, num_levels, p, 2)).astype(np.float32)
    loc.reshape(-1)[:7] = [0.0, 1.0, 0.5, -0.5, 1.5, 1 / 3, 0.999]  # edges, outside, centre
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


def compare_dcg(got_indices, got_valid, want):
    """Mismatching (b, i) rows between a GPU result and the CPU kernel's (indices, valid)."""
    want_indices, want_valid = want
    rows = (got_indices != want_indices).any(-1) | ((got_valid != 0) != want_valid).any(-1)
    return int(rows.sum()), int(want_valid.sum())


def cpu_cases(seed):
    """The CPU half: every case's inputs and the CPU kernel's output on them, as dicts
    (op, case, dtype, inputs, want, params); runs anywhere the CPU extension does."""
    rng, cases = np.random.default_rng(seed), []
    for name, n, shapes, m, d, lq, p in MSDA_CASES:
        for dtype in ("float32", "float16"):
            inputs = msda_inputs(rng, n, shapes, m, d, lq, p, dtype)
            cases.append(dict(op="ms_deform_attn", case=name, dtype=dtype, inputs=inputs,
                              want=cpu.ms_deform_attn(*inputs), params={}))
    for name, b, n, k, thr, low in DCG_CASES:
        for dtype in ("float32", "float16"):
            boxes, scores = dcg_inputs(rng, b, n, dtype)  # the CPU kernel reads their float32-exact values
            want = cpu.dcg_neighbors(boxes.astype(np.float32), scores.astype(np.float32), k, thr, low)
            cases.append(dict(op="dcg_neighbors", case=name, dtype=dtype, inputs=(boxes, scores), want=want,
                              params=dict(k=k, iou_threshold=thr, low_score=low)))
    return cases


def check(case, backend, got):
    """One result row: the GPU output `got` against the case's CPU output."""
    row = dict(op=case["op"], backend=backend, case=case["case"], dtype=case["dtype"])
    if case["op"] == "ms_deform_attn":
        err = rel_error(got, case["want"])
        return dict(row, rel_error=err, ok=err <= TOLERANCE[case["dtype"]])
    bad, nvalid = compare_dcg(*got, case["want"])
    return dict(row, mismatched_rows=bad, valid_slots=nvalid, ok=bad == 0)


def run_cuda(lib, cases):
    dev, results = DeviceBuffers(), []
    try:
        for case in cases:
            if case["op"] == "ms_deform_attn":
                got = gpu_msda(lib, dev, case["inputs"], case["dtype"])
            else:
                prm = case["params"]
                got = gpu_dcg(lib, dev, *case["inputs"], prm["k"], prm["iou_threshold"], prm["low_score"],
                              case["dtype"])
            results.append(check(case, "cuda", got))
            dev.free()
    finally:
        dev.close()
    return results


def cuda_event_ms(torch, fn, repeats=TIMED_REPEATS):
    """Median milliseconds of fn() on torch's current stream, CUDA events around each call, after warm-ups."""
    for _ in range(3):
        fn()
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(repeats)]
    for start, end in events:
        start.record()
        fn()
        end.record()
    torch.cuda.synchronize()
    return float(np.median([start.elapsed_time(end) for start, end in events]))


def time_against_torch(lib, cases):
    """Each CUDA kernel and its PyTorch reference on the same GPU inputs, on one non-default torch stream;
    skipped (None) where PyTorch cannot use the GPU."""
    try:  # not require: without PyTorch the timing is skipped, not the validation
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    from detrt.ops.dcg import dcg_neighbors_reference
    from detrt.ops.msda import ms_deform_attn_reference

    rows = []
    with torch.cuda.stream(torch.cuda.Stream()):
        stream = torch.cuda.current_stream().cuda_stream
        for case in cases:
            dtype = getattr(torch, case["dtype"])
            if case["op"] == "ms_deform_attn":
                value, shapes, starts, loc, attn = (torch.from_numpy(a).cuda() for a in case["inputs"])
                n, s, m, d = value.shape
                _, lq, _, num_levels, p, _ = loc.shape
                out = torch.empty((n, lq, m * d), dtype=dtype, device="cuda")
                ptrs = [t.data_ptr() for t in (value, shapes, starts, loc, attn, out)]

                def kernel():
                    lib.detrt_cuda_ms_deform_attn(DTYPE_CODE[case["dtype"]], n, s, m, d, num_levels, p, lq, *ptrs,
                                                  stream)

                ref_loc, cpu_shapes, cpu_starts = loc.to(dtype), shapes.long().cpu(), starts.long().cpu()

                def reference():
                    ms_deform_attn_reference(value, cpu_shapes, cpu_starts, ref_loc, attn)
            else:
                prm = case["params"]
                boxes, scores = (torch.from_numpy(a).cuda() for a in case["inputs"])
                b, nb, _ = boxes.shape
                indices = torch.empty((b, nb, prm["k"]), dtype=torch.int32, device="cuda")
                valid = torch.empty_like(indices)
                ptrs = [t.data_ptr() for t in (boxes, scores, indices, valid)]

                def kernel():
                    lib.detrt_cuda_dcg_neighbors(DTYPE_CODE[case["dtype"]], b, nb, prm["k"], prm["iou_threshold"],
                                                 prm["low_score"], *ptrs, stream)

                def reference():
                    dcg_neighbors_reference(boxes, scores, prm["k"], prm["iou_threshold"], prm["low_score"])
            kernel_ms, reference_ms = cuda_event_ms(torch, kernel), cuda_event_ms(torch, reference)
            rows.append(dict(op=case["op"], case=case["case"], dtype=case["dtype"], kernel_ms=kernel_ms,
                             torch_ms=reference_ms, speedup=reference_ms / kernel_ms))
    return dict(torch=torch.__version__, repeats=TIMED_REPEATS, rows=rows)


def run_tensorrt(plugin_lib, cases):
    """One-node engines through libdetrt_plugins.so, compared with the CPU kernels."""
    trt = import_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    register_plugins(trt, plugin_lib)
    registry = trt.get_plugin_registry()
    trt_dtype = {"float32": trt.float32, "float16": trt.float16, "int32": trt.int32}
    dev, results = DeviceBuffers(), []

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
        for case in cases:
            if case["op"] == "ms_deform_attn":
                value, sh, st, loc, attn = case["inputs"]
                feeds = dict(value=value, spatial_shapes=sh, level_start_index=st, sampling_locations=loc,
                             attention_weights=attn)
                out = {"output": (case["want"].shape, case["dtype"])}
                got = run_engine(MSDA_OP, [], feeds, out)["output"]
            else:
                prm = case["params"]
                boxes, scores = case["inputs"]
                fields = [
                    trt.PluginField("k", np.array([prm["k"]], np.int32), trt.PluginFieldType.INT32),
                    trt.PluginField("iou_threshold", np.array([prm["iou_threshold"]], np.float32),
                                    trt.PluginFieldType.FLOAT32),
                    trt.PluginField("low_score", np.array([prm["low_score"]], np.float32),
                                    trt.PluginFieldType.FLOAT32),
                ]
                shape = (*boxes.shape[:2], prm["k"])
                outs = {"indices": (shape, np.int32), "valid": (shape, np.int32)}
                got = run_engine(DCG_OP, fields, dict(boxes=boxes, scores=scores), outs)
                got = (got["indices"], got["valid"])
            results.append(check(case, "tensorrt", got))
            dev.free()
    finally:
        dev.close()
    return results, trt.__version__


def markdown(report, argv):
    """benchmarks/RESULTS.md's section: what passed, and the timings against PyTorch."""
    cmd = shlex.join(["python", "benchmarks/gpu_validate.py", *argv])
    results, timing = report["results"], report["timing"]
    failed = [r for r in results if not r["ok"]]
    trt = report["tensorrt"] or "not installed (plugin engines not run)"
    verdict = "" if not failed else ": FAILED " + ", ".join(f"{r['backend']} {r['case']} {r['dtype']}" for r in failed)
    lines = [f"## benchmarks/gpu_validate.py: CUDA kernels and TensorRT plugins against the CPU kernels on "
             f"{report['gpu']}", "", f"Command: `{cmd}` (`make gpu-check`)  ", f"Date: {report['date']}  ",
             f"Machine: {report['machine']}  ", f"TensorRT: {trt}  ", "",
             f"Comparisons: {len(results) - len(failed)}/{len(results)} passed (MSDA relative error <= "
             f"{TOLERANCE['float32']:g} float32, {TOLERANCE['float16']:g} float16; DCG lists equal slot for slot)"
             + verdict, ""]
    if timing:
        lines += [f"Kernel against the PyTorch reference on the same inputs (torch {timing['torch']}; CUDA events, "
                  f"median of {timing['repeats']}; MSDA reference F.grid_sample, DCG reference dense):", "",
                  "| op | case | dtype | kernel ms | PyTorch ms | speedup |", "|---|---|---|---|---|---|"]
        lines += [f"| {r['op']} | {r['case']} | {r['dtype']} | {r['kernel_ms']:.4f} | {r['torch_ms']:.4f} | "
                  f"{r['speedup']:.1f}x |" for r in timing["rows"]]
    return "\n".join(lines) + "\n"


def main(argv, root):
    """`benchmarks/gpu_validate.py ARGV` run on the source tree `root`; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cuda-lib", help="libdetrt_cuda.so (default: build/gpu, built with CMake)")
    parser.add_argument("--plugin-lib", help="libdetrt_plugins.so (default: build/gpu)")
    parser.add_argument("--tensorrt-root", help="TensorRT_ROOT for the CMake build of the plugin library")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=str(root / "benchmarks" / "results" / "gpu_validate.json"))
    parser.add_argument("--no-markdown", action="store_true", help="do not update benchmarks/RESULTS.md")
    args = parser.parse_args(argv)

    if not cpu.available():
        print(f"gpu_validate: skipped: {cpu.unavailable_reason()}")
        return 0
    cuda_lib, plugin_lib = find_or_build(args.cuda_lib, args.plugin_lib, args.tensorrt_root, root)
    lib = load_cuda_lib(cuda_lib) if cuda_lib else None  # static cudart: it loads without a GPU too
    cases = cpu_cases(args.seed)
    gpu_ok, gpu_why = gpu_here()
    if not gpu_ok:
        built = f"{cuda_lib} built and loaded" if lib else "libdetrt_cuda.so not built (needs cmake and nvcc)"
        print(f"gpu_validate: no GPU ({gpu_why}); CPU half ran ({len(cases)} cases); {built}")
        return 0
    if lib is None:
        print("gpu_validate: FAIL: a GPU but no libdetrt_cuda.so (needs cmake and nvcc, or --cuda-lib)")
        return 1
    results = run_cuda(lib, cases)
    timing = time_against_torch(lib, cases)
    if timing is None:
        print("gpu_validate: timing skipped: PyTorch cannot use the GPU here")
    trt_version = None
    trt_ok, trt_why = tensorrt_available()
    if not trt_ok:
        print(f"gpu_validate: TensorRT part skipped: tensorrt does not import ({trt_why})")
    elif plugin_lib is None:
        print("gpu_validate: FAIL: TensorRT imports but libdetrt_plugins.so is missing (build with -DTensorRT_ROOT=)")
        results.append(dict(op="plugins", backend="tensorrt", case="load", dtype="-", ok=False,
                            error="libdetrt_plugins.so not found"))
    else:
        trt_results, trt_version = run_tensorrt(plugin_lib, cases)
        results += trt_results

    report = dict(date=wall_time(), machine=describe(device_facts()), gpu=gpu_why, tensorrt=trt_version,
                  tolerance=TOLERANCE, results=results, timing=timing)
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, report)
    for r in results:
        if "rel_error" in r:
            detail = f"rel_error {r['rel_error']:.2e}"
        else:
            detail = r.get("error") or f"{r['mismatched_rows']} rows differ"
        status = "ok  " if r["ok"] else "FAIL"
        print(f"{status} {r['backend']:9s} {r['op']:15s} {r['case']:16s} {r['dtype']:8s} {detail}")
    for r in (timing or {}).get("rows", []):
        print(f"time {r['op']:15s} {r['case']:16s} {r['dtype']:8s} kernel {r['kernel_ms']:.4f} ms, "
              f"PyTorch {r['torch_ms']:.4f} ms ({r['speedup']:.1f}x)")
    if not args.no_markdown:
        update_results_md(root / "benchmarks" / "RESULTS.md", markdown(report, argv))
    failed = [r for r in results if not r["ok"]]
    print(f"gpu_validate: {len(results) - len(failed)}/{len(results)} passed; results in {out}")
    return 1 if failed else 0
