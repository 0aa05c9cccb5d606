"""The plugin-form ops on OpenVINO: an `openvino.Core` with detrt's extension library loaded. Torch-free.

    from detrt.ops.openvino import openvino_core
    core = openvino_core()                  # InputError when openvino or the extension is missing
    model = core.read_model("model.plugin.onnx")   # detrt::MSDeformAttn / detrt::DCGNeighbors run natively

The extension (plugins/openvino, libdetrt_openvino.so) is compiled at install against the openvino wheel of
that Python and runs the CPU kernels. An extension must be loaded by the OpenVINO it was compiled against: its
`detrt_openvino_version()` is compared with openvino's before `add_extension`.
"""

import ctypes
import importlib.util
import os
from pathlib import Path

from detrt.errors import InputError
from detrt.optional import require

LIBRARY = "libdetrt_openvino.so"
REBUILD = "rebuild detrt against this OpenVINO: make install (or pip install --no-build-isolation -e .)"
_cores = {}


def openvino_release(version):
    """'2026.4.1-22982-e213a147257-releases/2026/4' -> '2026.4.1'."""
    return str(version).split("-")[0]


def extension_library():
    """$DETRT_OPENVINO_EXTENSION, else the library installed beside detrt.ops._cpu or in this folder, else None."""
    env = os.environ.get("DETRT_OPENVINO_EXTENSION")
    if env:
        return Path(env)
    spec = importlib.util.find_spec("detrt.ops._cpu")
    folders = [Path(spec.origin).parent] if spec and spec.origin else []
    for folder in [*folders, Path(__file__).resolve().parent]:
        if (folder / LIBRARY).is_file():
            return folder / LIBRARY
    return None


def openvino_core():
    """The process's openvino.Core with the extension added (one per process: add_extension is per Core)."""
    ov = require("openvino", "the OpenVINO backend")
    if "core" in _cores:
        return _cores["core"]
    lib = extension_library()
    if lib is None or not lib.is_file():
        raise InputError(f"{lib or LIBRARY}: the detrt OpenVINO extension is not built (openvino was not installed "
                         f"when detrt was); {REBUILD}")
    have = openvino_release(ov.get_version())
    try:
        version = ctypes.CDLL(str(lib)).detrt_openvino_version
    except (OSError, AttributeError) as e:  # e.g. libopenvino.so.<another release> is not found
        raise InputError(f"{lib}: does not load with OpenVINO {have} ({e}); {REBUILD}") from None
    version.restype = ctypes.c_char_p
    built = version().decode()
    if built != have:
        raise InputError(f"{lib}: compiled against OpenVINO {built}, this is OpenVINO {have}; {REBUILD}")
    core = ov.Core()
    core.add_extension(str(lib))
    _cores["core"] = core
    return core


def cpu_has_bf16(core):
    """Whether OpenVINO computes bf16 natively on this CPU (AVX512_BF16 or AMX); elsewhere it runs f32."""
    return "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def last_line(error):
    """OpenVINO's error in one line: its messages run from the throwing source line to the reason, last."""
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    return lines[-1] if lines else type(error).__name__
