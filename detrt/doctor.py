"""`detrt doctor`: what this machine can do, as (topic, finding) lines.

It formats what is already known elsewhere: the machine facts benchmarks record (detrt.bench.device), the
TensorRT and GPU probes and the plugin library (detrt.ops.tensorrt), the CPU kernels (detrt.ops.cpu) and the
backend choice (detrt.runtime.backend). The CLI passes its verbs, so this report never imports the CLI.
"""

import importlib
import platform
from pathlib import Path

import onnxruntime as ort

from detrt.bench.device import device_facts
from detrt.errors import InputError
from detrt.manifest import check_artifact
from detrt.ops import cpu
from detrt.ops.names import DCG_OP, DETRT_DOMAIN, MSDA_OP, NVIDIA_MSDA_OP
from detrt.ops.openvino import cpu_has_bf16, openvino_core, openvino_release
from detrt.ops.tensorrt import (check_plugin_library, find_plugin_library, gpu_here, import_tensorrt, plugin_creators,
                                register_plugins, tensorrt_available)
from detrt.optional import EXTRAS
from detrt.runtime.backend import choose_backend

OPS = f"{DETRT_DOMAIN}::{MSDA_OP} and {DETRT_DOMAIN}::{DCG_OP}"


def report(model=None, plugins=None, verbs=()):
    """[(topic, finding)] for this machine. model: an artifact for the backend choice; plugins: the plugin
    library to check; verbs: (name, extra) of each CLI verb, extra None or e.g. "train,compile"."""
    if model is not None:
        check_artifact(model)  # missing, or not the bytes its manifest describes: bad input, not a finding
    facts = device_facts()
    trt_ok, trt_why = tensorrt_available()
    lines = [("python", f"{platform.python_version()} on {platform.machine()} {platform.system()}"),
             ("cpu", f"{facts['cpu']['model']}, {facts['cpu']['usable_cores']} usable cores")]
    lines.append(("tensorrt", trt_why if trt_ok else f"not usable ({trt_why})"))
    lines += _gpu_lines(facts)
    lines += _plugin_lines(plugins, trt_ok)
    lines += _onnxruntime_lines()
    lines.append(("openvino", _openvino_line()))
    lines.append(("cpu extension", "detrt.ops._cpu built" if cpu.available()
                  else f"not built ({cpu.unavailable_reason()})"))
    lines += _verb_lines(verbs, trt_ok)
    lines += _backend_lines(model)
    return lines


def _gpu_lines(facts):
    lines = [("gpu", f"{g['name']}, driver {g['driver']}, compute capability {g['compute_capability'] or '?'}")
             for g in facts["gpus"]] or [("gpu", "none found by nvidia-smi")]
    versions = facts["cuda"]
    if versions["runtime_cuda"] or versions["driver_cuda"]:
        lines.append(("cuda", f"runtime {versions['runtime_cuda'] or 'unknown'}, driver supports "
                              f"{versions['driver_cuda'] or 'unknown'}"))
    ok, what = gpu_here()
    lines.append(("gpu 0", f"{what}, seen by cuda-python") if ok else ("cuda", what))
    j = facts["jetson"]
    if j:
        lines.append(("jetson", f"{j['model']}, L4T {j['l4t']} (JetPack {j['jetpack'] or '?'}), "
                                f"power mode {j['power_mode']}"))
    return lines


def _plugin_lines(plugins, trt_ok):
    lib = Path(plugins) if plugins else find_plugin_library()
    if lib is None:
        return [("plugins", "libdetrt_plugins.so not found (built only where TensorRT is; "
                            "--plugins or $DETRT_PLUGINS)")]
    try:
        if not trt_ok:
            check_plugin_library(lib)
            return [("plugins", f"{lib} loads (TensorRT absent: creators not checked)")]
        trt = import_tensorrt()
        register_plugins(trt, lib)
    except InputError as e:
        return [("plugins", str(e))]
    missing, nvidia = plugin_creators(trt)
    return [("plugins", f"{lib} registered; " + (f"missing creators: {', '.join(missing)}" if missing
                                                    else f"{OPS} found")
             + f"; NVIDIA {NVIDIA_MSDA_OP} {'present' if nvidia else 'absent'}")]


def _onnxruntime_lines():
    lines = [("onnxruntime", f"{ort.__version__}, providers: {', '.join(ort.get_available_providers())}")]
    try:  # needs the optional onnxruntime-extensions (detrt[cpu-plugins])
        import detrt.ops.ort  # noqa: F401

        lines.append(("onnxruntime custom ops", f"{OPS} (plugin form runs on CPU)"))
    except ImportError as e:
        lines.append(("onnxruntime custom ops", f"unavailable ({e}): run the portable form"))
    return lines


def _openvino_line():
    try:
        core = openvino_core()
    except InputError as e:
        return f"not usable ({e})"
    ov = importlib.import_module("openvino")
    return (f"{openvino_release(ov.get_version())} with detrt's extension ({OPS} native); bf16 "
            f"{'native' if cpu_has_bf16(core) else 'absent on this CPU (bf16 and mixed artifacts run f32)'}")


def _installed(module):
    """False only when the module is absent; an installed module that fails to import counts as present."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    except Exception:  # noqa: BLE001 - broken (e.g. a dlopen failure): installed, and its verb will say why
        pass
    return True


def _verb_lines(verbs, trt_ok):
    ok, missing = [], []
    for name, extra in verbs:
        extras = extra.split(",") if extra else []
        absent = [m for e in extras for m in EXTRAS[e] if not _installed(m)]
        (missing if absent else ok).append(name + (f" (needs detrt[{extra}]: {', '.join(absent)})" if absent else ""))
    lines = [("runnable verbs", ", ".join(ok) or "none")]
    if missing:
        lines.append(("not runnable", "; ".join(missing)))
    lines.append(("build", "tensorrt engines" if trt_ok
                  else "CPU artifacts only (detrt build --backend onnxruntime or openvino); TensorRT absent"))
    return lines


def _backend_lines(model):
    if model is None:
        return [("detrt run", "for an ONNX model: ONNX Runtime on the CPU (or its fastest gated sibling); for an "
                              ".engine: TensorRT; for an .xml: OpenVINO (pass --model to see the choice for one "
                              "artifact)")]
    try:
        name, why = choose_backend(model)
        return [("detrt run", f"--backend {name}: {why}")]
    except InputError as e:
        return [("detrt run", f"cannot run {model}: {e}")]
