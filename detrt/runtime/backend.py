"""`open_backend`, which picks TensorRT or ONNX Runtime for an artifact (the interface: detrt.runtime.base).
"""

from pathlib import Path

from detrt.errors import InputError
from detrt.manifest import ENGINE_SUFFIXES, check_artifact, load_manifest
from detrt.ops.tensorrt import tensorrt_available
from detrt.runtime.ort_backend import OrtBackend
from detrt.runtime.trt_backend import TrtBackend

BACKENDS = ("auto", "tensorrt", "onnxruntime")
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
        ok, why = tensorrt_available()
        if not ok:
            raise InputError(f"{artifact}: a TensorRT engine, but TensorRT/cuda-python do not import here ({why}); "
                             f"run the ONNX artifact with --backend onnxruntime, or pip install 'detrt[trt]'")
        return "tensorrt", f"{artifact.name} is a TensorRT engine and TensorRT {why} is installed"
    if suffix in ONNX_SUFFIXES:
        if requested == "tensorrt":
            raise InputError(f"{artifact}: an ONNX model; TensorRT runs engines: build one for this GPU with: "
                             f"detrt build {artifact} --precision fp16 -o {artifact.with_suffix('.engine')}")
        ok, why = tensorrt_available()
        note = (f"; a TensorRT engine would be faster here: detrt build {artifact} -o "
                f"{artifact.with_suffix('.engine')}") if ok else ""
        return "onnxruntime", f"{artifact.name} is an ONNX model: ONNX Runtime on the CPU{note}"
    raise InputError(f"{artifact}: unknown model type {suffix or '(no suffix)'!r}; expected .onnx or .engine")


def open_backend(artifact, backend="auto", *, threads=None, plugins=None, cuda_graph=False, verify=True):
    """Load `artifact` (model.onnx or model.engine with its manifest beside it) on a backend.

    backend: "auto" | "tensorrt" | "onnxruntime" (see choose_backend). threads: ONNX Runtime
    intra-op threads (default: default_threads()). plugins: path of the TensorRT plugin library
    (default: found beside the package, or $DETRT_PLUGINS). cuda_graph: capture a CUDA graph per
    batch size after warm-up (TensorRT). verify: check the artifact's sha256 against its manifest.
    Raises InputError for a missing file, a missing/mismatched manifest or an unusable pair.
    """
    artifact = Path(artifact)
    if not artifact.exists():
        raise InputError(f"{artifact}: no such model file")
    if artifact.is_dir():
        raise InputError(f"{artifact}: a directory; pass the model file (model.onnx or model.engine)")
    name, _ = choose_backend(artifact, backend)
    manifest = check_artifact(artifact) if verify else load_manifest(artifact)
    if name == "tensorrt":
        return TrtBackend(artifact, manifest, plugins=plugins, cuda_graph=cuda_graph)
    return OrtBackend(artifact, manifest, threads=threads)
