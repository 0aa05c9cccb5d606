"""The TensorRT face of the two ops: find the plugin library (plugins/tensorrt) and register its creators with
TensorRT, check that TensorRT sees them, and the one place that asks whether TensorRT and a CUDA GPU are usable here.

    lib = find_plugin_library()                # $DETRT_PLUGINS, else libdetrt_plugins.so beside the package
    register_plugins(trt, lib)                 # NVIDIA's and detrt's creators in TensorRT's registry, once per process
    ok, why = tensorrt_here()                  # TensorRT, cuda-python and a CUDA GPU: (True, what) or (False, why)

The library does not register itself when opened (plugins/README.md), so a dlopen alone leaves the ONNX parser and
the engine deserializer without its creators: registration goes through IPluginRegistry.load_library, which
dlopens it and registers what its getCreators returns.

Torch-free. tensorrt and cuda-python (detrt[trt]) are optional, so they are imported inside the functions: tensorrt
through import_tensorrt (which says where TensorRT comes from), cuda-python through detrt.optional.require; the
availability probes import them directly, to report any failure of a broken install.
"""

import ctypes
import glob
import os
from pathlib import Path

from detrt.errors import InputError
from detrt.ops.names import DETRT_DOMAIN, DETRT_OPS, NVIDIA_MSDA_OP, NVIDIA_NAMESPACE
from detrt.optional import require

PLUGIN_GLOBS = ("libdetrt*plugin*.so", "detrt*plugin*.dll")


def find_plugin_library():
    """$DETRT_PLUGINS, else a libdetrt*plugin*.so shipped in the package or the build tree, else None."""
    env = os.environ.get("DETRT_PLUGINS")
    if env:
        return Path(env)
    pkg = Path(__file__).resolve().parents[1]
    for root in (pkg, pkg / "lib", pkg.parent / "build"):
        for pattern in PLUGIN_GLOBS:
            hits = sorted(glob.glob(str(root / "**" / pattern), recursive=True))
            if hits:
                return Path(hits[0])
    return None


# What this process registered with TensorRT: "libnvinfer_plugin" -> the logger it was initialized with (TensorRT
# keeps a pointer to it), each plugin library's resolved path -> its registry handle. TensorRT's registry refuses a
# second load_library of a library (it returns None: "creators are registered already"), and the handle must live as
# long as engines may use the creators: so each library is loaded once and kept for the process's life.
_registered = {}


def check_plugin_library(path):
    """dlopen the library (without TensorRT: to check that it and its dependencies load); InputError with dlerror."""
    try:
        ctypes.CDLL(str(path))
    except OSError as e:
        raise InputError(f"{path}: the TensorRT plugin library does not load: {e}") from None


def register_plugins(trt, library=None):
    """Put the plugin creators an engine may use in TensorRT's registry: NVIDIA's (libnvinfer_plugin, for
    --msda-plugin nvidia) and, given `library`, detrt's. Idempotent per process; returns the library's handle."""
    if "libnvinfer_plugin" not in _registered:
        logger = trt.Logger(trt.Logger.WARNING)
        if not trt.init_libnvinfer_plugins(logger, ""):
            raise InputError("TensorRT's libnvinfer_plugin did not initialize (see the TensorRT log above)")
        _registered["libnvinfer_plugin"] = logger
    if library is None:
        return None
    path = Path(library).resolve()
    if path not in _registered:
        if not path.is_file():
            raise InputError(f"{library}: no such plugin library (--plugins PATH or $DETRT_PLUGINS)")
        check_plugin_library(path)  # names the missing dependency where TensorRT would only log "could not load"
        handle = trt.get_plugin_registry().load_library(str(path))
        if handle is None:
            raise InputError(f"{library}: TensorRT's plugin registry refused it (see the TensorRT log above): not a "
                             f"TensorRT plugin library, or another copy of it registered its creators already")
        _registered[path] = handle
    return _registered[path]


def plugin_creators(trt):
    """(our op creators missing from TensorRT's registry as 'namespace::name', NVIDIA's MSDA creator present)."""
    register_plugins(trt)
    found = {(c.name, c.plugin_namespace) for c in trt.get_plugin_registry().all_creators}
    missing = [f"{DETRT_DOMAIN}::{op}" for op in DETRT_OPS if (op, DETRT_DOMAIN) not in found]
    return missing, (NVIDIA_MSDA_OP, NVIDIA_NAMESPACE) in found


def tensorrt_available():
    """(True, version) when tensorrt and cuda-python import, else (False, why)."""
    try:
        import tensorrt

        from cuda.bindings import runtime  # noqa: F401
    except Exception as e:  # ImportError, or a broken install raising OSError on dlopen
        return False, f"{type(e).__name__}: {e}"
    return True, tensorrt.__version__


def import_tensorrt():
    """The tensorrt module; InputError saying what to install where it is absent."""
    try:  # not require: on Jetson TensorRT comes from apt, not pip, and the CPU artifact needs none
        import tensorrt as trt
    except ImportError as e:
        raise InputError(f"TensorRT is not installed here ({e}); on a GPU machine install detrt[trt] (Jetson: "
                         f"JetPack's python3-libnvinfer), or build the CPU artifact with --backend onnxruntime"
                         ) from None
    return trt


def gpu_properties(device=0):
    """(name, compute capability 'M.m') of a CUDA device through cuda-python."""
    cudart = require("cuda.bindings.runtime", "reading the CUDA device")
    err, props = cudart.cudaGetDeviceProperties(device)
    if int(err) != 0:
        raise InputError(f"no usable CUDA device {device} (cudaGetDeviceProperties: {err})")
    name = props.name.split(b"\0")[0].decode() if isinstance(props.name, bytes) else str(props.name)
    return name, f"{props.major}.{props.minor}"


def gpu_here():
    """(True, 'NAME (sm M.m)') when cuda-python sees CUDA device 0, else (False, why)."""
    try:
        name, cc = gpu_properties()
    except Exception as e:  # noqa: BLE001 - cuda-python absent, no device, driver mismatch, ...
        return False, f"no usable GPU ({str(e).splitlines()[0] if str(e) else type(e).__name__})"
    return True, f"{name} (sm {cc})"


def tensorrt_here():
    """(True, 'TensorRT V on NAME (sm M.m)') when TensorRT and a CUDA GPU are usable here, else (False, why)."""
    ok, why = tensorrt_available()
    if not ok:
        return False, f"TensorRT/cuda-python do not import ({why})"
    gpu, what = gpu_here()
    return (True, f"TensorRT {why} on {what}") if gpu else (False, what)
