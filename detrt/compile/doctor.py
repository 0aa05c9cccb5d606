"""`detrt doctor`: what this machine can do, as (topic, finding) lines. Imports nothing heavy at module level."""

import importlib
import platform
import shutil
import subprocess


def _version(module):
    try:
        return getattr(importlib.import_module(module), "__version__", "installed")
    except Exception as e:  # ImportError, or a broken install failing on dlopen
        return None if isinstance(e, ImportError) else f"broken ({type(e).__name__}: {e})"


def report(model=None, plugins=None):
    """[(topic, finding)] for this machine; `model`: an artifact for the backend choice."""
    if model is not None:
        from detrt.manifest import check_artifact

        check_artifact(model)  # missing, or not the bytes its manifest describes: bad input, not a finding
    lines = [("python", f"{platform.python_version()} on {platform.machine()} {platform.system()}")]
    lines += _tensorrt_lines()
    lines += _gpu_lines()
    lines += _plugin_lines(plugins)
    lines += _onnxruntime_lines()
    lines += _cpu_extension_lines()
    lines += _verb_lines()
    lines += _backend_lines(model)
    return lines


def _tensorrt_lines():
    from detrt.runtime.backend import tensorrt_available

    ok, why = tensorrt_available()
    return [("tensorrt", f"{why}" if ok else f"not usable ({why})")]


def _gpu_lines():
    lines = []
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "--query-gpu=name,driver_version,compute_cap", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=10).stdout.strip()
            lines.append(("gpu", out or "nvidia-smi found no GPU"))
        except (OSError, subprocess.SubprocessError) as e:
            lines.append(("gpu", f"nvidia-smi failed ({e})"))
    try:
        from cuda.bindings import runtime as cudart

        err, version = cudart.cudaRuntimeGetVersion()
        err2, driver = cudart.cudaDriverGetVersion()
        lines.append(("cuda", f"runtime {version // 1000}.{version % 1000 // 10}, driver API {driver // 1000}."
                              f"{driver % 1000 // 10}" if int(err) == 0 and int(err2) == 0 else f"error {err}/{err2}"))
        from detrt.compile.trt_build import gpu_properties

        name, capability = gpu_properties()
        lines.append(("gpu 0", f"{name}, compute capability {capability}"))
    except ImportError:
        lines.append(("cuda", "cuda-python not installed (pip install 'detrt[trt]')"))
    except Exception as e:  # no device, driver mismatch
        lines.append(("cuda", f"no usable CUDA device ({str(e).splitlines()[0]})"))
    if not smi and len(lines) == 1 and "not installed" in lines[0][1]:
        lines.append(("gpu", "none found (no nvidia-smi)"))
    return lines


def _plugin_lines(plugins):
    from pathlib import Path

    from detrt.runtime.trt_backend import find_plugin_library

    lib = Path(plugins) if plugins else find_plugin_library()
    if lib is None:
        return [("plugins", "libdetrt_plugins.so not found (built only where TensorRT is; --plugins or $DETRT_PLUGINS)")]
    import ctypes

    try:
        ctypes.CDLL(str(lib), mode=ctypes.RTLD_GLOBAL)
    except OSError as e:
        return [("plugins", f"{lib} does not load: {e}")]
    try:
        import tensorrt as trt
    except Exception:
        return [("plugins", f"{lib} loads (TensorRT absent: creators not checked)")]
    trt.init_libnvinfer_plugins(trt.Logger(trt.Logger.WARNING), "")
    found = {(c.name, c.plugin_namespace) for c in trt.get_plugin_registry().all_creators}
    want = [("MSDeformAttn", "detrt"), ("DCGNeighbors", "detrt")]
    missing = [f"{ns}::{n}" for n, ns in want if (n, ns) not in found]
    nvidia = ("MultiscaleDeformableAttnPlugin_TRT", "") in found
    return [("plugins", f"{lib} loads; " + (f"missing creators: {', '.join(missing)}" if missing
                                               else "detrt::MSDeformAttn and detrt::DCGNeighbors registered")
             + f"; NVIDIA MultiscaleDeformableAttnPlugin_TRT {'present' if nvidia else 'absent'}")]


def _onnxruntime_lines():
    try:
        import onnxruntime as ort
    except ImportError as e:
        return [("onnxruntime", f"not installed ({e})")]
    lines = [("onnxruntime", f"{ort.__version__}, providers: {', '.join(ort.get_available_providers())}")]
    try:
        import detrt.runtime.ort_ops  # noqa: F401

        lines.append(("onnxruntime custom ops", "detrt::MSDeformAttn, detrt::DCGNeighbors (plugin form runs on CPU)"))
    except ImportError as e:
        lines.append(("onnxruntime custom ops", f"unavailable ({e}): run the portable form"))
    return lines


def _cpu_extension_lines():
    from detrt.ops import cpu

    return [("cpu extension", "detrt.ops._cpu built" if cpu.available() else f"not built ({cpu.unavailable_reason()})")]


EXTRA_MODULES = {None: (), "train": ("torch", "scipy", "safetensors"),
                 "compile": ("torch", "onnx", "onnx_graphsurgeon", "onnxscript"), "bench": ("matplotlib",)}


def _verb_lines():
    from detrt.cli import VERBS

    ok, missing = [], []
    for fn, _, extra in VERBS:
        absent = [m for m in EXTRA_MODULES.get(extra, ()) if _version(m) is None]
        (missing if absent else ok).append(fn.__name__ + (f" (needs detrt[{extra}]: {', '.join(absent)})" if absent else ""))
    lines = [("runnable verbs", ", ".join(ok) or "none")]
    if missing:
        lines.append(("not runnable", "; ".join(missing)))
    ok_trt = _version("tensorrt")
    lines.append(("build", "tensorrt engines" if ok_trt and not str(ok_trt).startswith("broken")
                  else "CPU artifacts only (detrt build --backend onnxruntime); TensorRT absent"))
    return lines


def _backend_lines(model):
    from detrt.errors import InputError
    from detrt.runtime.backend import choose_backend

    if model is None:
        return [("detrt run", "for an ONNX model: ONNX Runtime on the CPU; for an .engine: TensorRT "
                              "(pass --model to see the choice for one artifact)")]
    try:
        name, why = choose_backend(model)
        return [("detrt run", f"--backend {name}: {why}")]
    except InputError as e:
        return [("detrt run", f"cannot run {model}: {e}")]
