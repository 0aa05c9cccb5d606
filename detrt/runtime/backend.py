"""`open_backend`, which picks TensorRT, ONNX Runtime or OpenVINO for an artifact (the interface:
detrt.runtime.base), and with --backend auto may run a faster sibling artifact that passed its accuracy gate.
"""

import importlib.util
from pathlib import Path

from detrt.errors import InputError
from detrt.manifest import ENGINE_SUFFIXES, OPENVINO_SUFFIX, check_artifact, load_manifest, manifest_path
from detrt.ops.tensorrt import tensorrt_available
from detrt.runtime.ort_backend import OrtBackend
from detrt.runtime.ov_backend import OvBackend
from detrt.runtime.trt_backend import TrtBackend

BACKENDS = ("auto", "tensorrt", "onnxruntime", "openvino")
ONNX_SUFFIXES = (".onnx", ".ort")


def choose_backend(artifact, requested="auto"):
    """(backend name, one-line reason) for an artifact; raises InputError when the pair cannot work.

    The artifact decides: a serialized engine (.engine/.plan/.trt) runs on TensorRT only, an ONNX
    model runs on ONNX Runtime's CPU (TensorRT needs an engine built for this GPU first).
    `detrt doctor` prints the reason.
    """
    artifact = Path(artifact)
    if requested not in BACKENDS:
        raise InputError(f"--backend must be one of {', '.join(BACKENDS)}, got {requested!r}")
    suffix = artifact.suffix.lower()
    if suffix in ENGINE_SUFFIXES:
        if requested == "onnxruntime":
            raise InputError(f"{artifact}: a TensorRT engine; ONNX Runtime runs the .onnx artifact it was built "
                             f"from (pass that, or --backend tensorrt)")
        if requested == "openvino":
            raise InputError(f"{artifact}: a TensorRT engine; OpenVINO runs the .xml built by detrt build "
                             f"--backend openvino from the .onnx it was built from (or use --backend tensorrt)")
        ok, why = tensorrt_available()
        if not ok:
            raise InputError(f"{artifact}: a TensorRT engine, but TensorRT/cuda-python do not import here ({why}); "
                             f"run the ONNX artifact with --backend onnxruntime, or pip install 'detrt[trt]'")
        return "tensorrt", f"{artifact.name} is a TensorRT engine and TensorRT {why} is installed"
    if suffix in ONNX_SUFFIXES:
        if requested == "tensorrt":
            raise InputError(f"{artifact}: an ONNX model; TensorRT runs engines: build one for this GPU with: "
                             f"detrt build {artifact} --precision fp16 -o {artifact.with_suffix('.engine')}")
        if requested == "openvino":
            raise InputError(f"{artifact}: an ONNX model; OpenVINO runs the IR built from it: detrt build {artifact} "
                             f"--backend openvino -o {artifact.with_suffix('.xml')}")
        ok, why = tensorrt_available()
        note = (f"; a TensorRT engine would be faster here: detrt build {artifact} -o "
                f"{artifact.with_suffix('.engine')}") if ok else ""
        return "onnxruntime", f"{artifact.name} is an ONNX model: ONNX Runtime on the CPU{note}"
    if suffix == OPENVINO_SUFFIX:
        if requested not in ("auto", "openvino"):
            raise InputError(f"{artifact}: an OpenVINO model; {requested} runs the .onnx it was built from "
                             f"(pass that, or --backend openvino)")
        if importlib.util.find_spec("openvino") is None:
            raise InputError(f"{artifact}: an OpenVINO model, but openvino is not installed here: "
                             f"pip install 'detrt[openvino]'")
        return "openvino", f"{artifact.name} is OpenVINO IR: OpenVINO on the CPU"
    raise InputError(f"{artifact}: unknown model type {suffix or '(no suffix)'!r}; expected .onnx, .engine or .xml")


def gated_sibling(artifact):
    """(path, reason) of the artifact `--backend auto` runs for an FP32 `artifact`: among the artifacts beside it
    built from it (their manifest's parent) whose accuracy gate passed (detrt build --gate) and whose backend is
    installed, the one its gate timed fastest, when that beats `artifact` timed in the same gate run; else
    (artifact, None)."""
    artifact = Path(artifact)
    best = None
    for json_path in sorted(artifact.parent.glob("*.json")):
        other = json_path.with_name(json_path.name.removesuffix(".json"))
        if other == artifact or not other.is_file() or manifest_path(other) != json_path:
            continue
        try:
            m = load_manifest(other)
            choose_backend(other)
        except InputError:
            continue
        gate = m.gate or {}
        if m.parent != artifact.name or not gate.get("passed"):
            continue
        if gate["ms_per_image"] < gate["reference_ms_per_image"] and (best is None or gate["ms_per_image"] <
                                                                      best[1].gate["ms_per_image"]):
            best = (other, m)
    if best is None:
        return artifact, None
    other, m = best
    g = m.gate
    return other, (f"--backend auto: {other.name} ({m.precision}), built from {artifact.name}, passed its accuracy "
                   f"gate (AP {100 * g['ap_delta']:+.2f}, MR-2 {100 * g['mr2_delta']:+.2f} points on {g['images']} "
                   f"images) at {g['ms_per_image']:.1f} ms/image vs {g['reference_ms_per_image']:.1f}: running it")


def open_backend(artifact, backend="auto", *, threads=None, plugins=None, cuda_graph=False, verify=True,
                 notice=None, gated=True):
    """Load `artifact` (model.onnx, model.engine or model.xml with its manifest beside it) on a backend.

    backend: "auto" | "tensorrt" | "onnxruntime" | "openvino" (see choose_backend; "auto" with gated=True
    may run a gated sibling of an FP32 model instead, see gated_sibling; gated=False runs exactly
    `artifact`, as a benchmark must). threads: CPU inference threads (default:
    default_threads()). plugins: path of the TensorRT plugin library (default: found beside the package,
    or $DETRT_PLUGINS). cuda_graph: capture a CUDA graph per batch size after warm-up (TensorRT). verify:
    check the artifact's sha256 against its manifest. notice(line): told when auto picks a gated sibling
    and of a fallback (bf16 on a CPU without it); the plain choice `detrt doctor --model` explains.
    Raises InputError for a missing file, a missing/mismatched manifest or an unusable pair.
    """
    artifact = Path(artifact)
    if not artifact.exists():
        raise InputError(f"{artifact}: no such model file")
    if artifact.is_dir():
        raise InputError(f"{artifact}: a directory; pass the model file (model.onnx, model.engine or model.xml)")
    name, _ = choose_backend(artifact, backend)
    if gated and backend == "auto" and name != "tensorrt":
        artifact, picked = gated_sibling(artifact)
        if picked:
            name, _ = choose_backend(artifact)
            if notice:
                notice(picked)
    manifest = check_artifact(artifact) if verify else load_manifest(artifact)
    if name == "tensorrt":
        return TrtBackend(artifact, manifest, plugins=plugins, cuda_graph=cuda_graph)
    if name == "openvino":
        return OvBackend(artifact, manifest, threads=threads, notice=notice)
    return OrtBackend(artifact, manifest, threads=threads)
