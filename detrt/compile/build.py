"""Build: ONNX (+ manifest) -> TensorRT engine, or a CPU artifact (ONNX Runtime, OpenVINO) where TensorRT is absent.

    detrt build model.onnx --precision fp16 -o model.engine [--plugins libdetrt_plugins.so]
    detrt build model.onnx --precision int8 --calib clip.mp4 --backend onnxruntime -o model.int8.onnx
    detrt build model.onnx --precision bf16 --backend openvino -o model.bf16.xml

One pass list: the model is imported into onnx-graphsurgeon once, runs the precision passes
(precision.passes_for) then the surgery passes to the backend's form (surgery.passes_for), and is
exported once (build_graph). INT8 adds ONNX Runtime's quantization before the list, a file step.
The artifacts are written by tensorrt.py (the engine), onnxruntime.py and openvino.py (the CPU artifacts).
"""

from pathlib import Path

from detrt.compile import precision as prec
from detrt.compile import surgery, tensorrt
from detrt.compile.onnx_io import load_onnx
from detrt.compile.onnxruntime import ort_artifact
from detrt.errors import InputError
from detrt.manifest import ENGINE_SUFFIXES, OPENVINO_SUFFIX, load_manifest
from detrt.ops.names import DETRT_DOMAIN, DETRT_OPS, NVIDIA_DOMAIN, PORTABLE_DOMAIN

BACKENDS = ("tensorrt", "onnxruntime", "openvino")
PRECISIONS = {"tensorrt": ("fp32", "fp16", "int8"), "onnxruntime": ("fp32", "int8"),
              "openvino": ("fp32", "bf16", "mixed", "int8")}
TRT_ISSUE = "NVIDIA/TensorRT#4813"


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
            if node.domain not in ("", "ai.onnx", DETRT_DOMAIN, NVIDIA_DOMAIN):
                raise InputError(f"{where}: node {name}: op {op} has no TensorRT importer or plugin in detrt")
        else:
            if node.domain in ("", "ai.onnx", "com.microsoft") or (node.domain, node.op_type) in local:
                continue
            if node.domain == DETRT_DOMAIN and node.op_type in DETRT_OPS:
                continue  # run by the CPU kernels (detrt.ops.ort, detrt.ops.openvino)
            runtime = "OpenVINO" if backend == "openvino" else "ONNX Runtime"
            raise InputError(f"{where}: node {name}: op {op} runs on no {runtime} backend here"
                             + (" (NVIDIA's plugin runs only in TensorRT; use --msda-plugin detrt)"
                                if node.domain == NVIDIA_DOMAIN else ""))


def build_graph(model, precision, form=None, batches=None, fp16_all=False, msda_plugin="detrt"):
    """The exported FP32 model -> the model to build: `precision` applied, in `form` (None: the form it has).

    One import, one pass list, one export. INT8 first quantizes the portable form with ONNX Runtime
    (`batches`: calibration feeds), a file step; its fix-ups open the pass list.
    """
    has = surgery.form_of(model)
    passes = prec.passes_for(precision, fp16_all)
    if precision == "int8":
        portable = surgery.rewrite(model, surgery.passes_for("portable")) if has == "plugin" else model
        model = prec.quantize(portable, batches)
    if form is not None or surgery.form_of(model) != has:  # TensorRT's form, or back from calibration's
        passes += surgery.passes_for(form or has, msda_plugin)
    return surgery.rewrite(model, passes)


def check_output_name(output, backend):
    """Refuse an output named for the other backend's artifact: `detrt run` picks the backend by the suffix."""
    suffix = Path(output).suffix.lower()
    if backend == "onnxruntime" and suffix != ".onnx":
        raise InputError(f"{output}: --backend onnxruntime writes an ONNX model; name the output .onnx")
    if backend == "tensorrt" and suffix not in ENGINE_SUFFIXES:
        raise InputError(f"{output}: --backend tensorrt writes an engine; name the output "
                         f"{' or '.join(ENGINE_SUFFIXES)}")
    if backend == "openvino" and suffix != OPENVINO_SUFFIX:
        raise InputError(f"{output}: --backend openvino writes OpenVINO IR (its weights in a .bin beside it); "
                         f"name the output {OPENVINO_SUFFIX}")


def build(onnx_path, output, precision="fp32", backend="tensorrt", plugins=None, min_shape=None, opt_shape=None,
          max_shape=None, workspace=None, timing_cache=None, dla=None, calib=None, calib_frames=200, fp16_all=False,
          msda_plugin="detrt", log=print):
    """The `detrt build` verb. Returns the manifest written beside `output`."""
    if backend not in BACKENDS:
        raise InputError(f"--backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    check_output_name(output, backend)
    manifest = load_manifest(onnx_path)
    model = load_onnx(onnx_path)
    if precision not in PRECISIONS[backend]:
        raise InputError(f"--precision {precision!r}: --backend {backend} builds {', '.join(PRECISIONS[backend])}"
                         + (" (the CPU computes FP16 in float anyway)" if precision == "fp16" else ""))
    if manifest.precision != "fp32":
        raise InputError(f"the model is already {manifest.precision}; build from the FP32 export")
    if precision == "int8" and not calib:
        raise InputError("--precision int8 needs --calib (a video, an image directory or a glob)")
    if backend == "onnxruntime":
        model = build_graph(model, precision, batches=_calibration(precision, calib, manifest, calib_frames))
        check_ops(model, "onnxruntime", onnx_path)
        derived = manifest.derive(precision=precision, form=surgery.form_of(model), parent=str(onnx_path))
        return ort_artifact(model, derived, output, log)
    if backend == "openvino":
        from detrt.compile.openvino import ov_artifact  # needs the [openvino] extra

        graph_precision = "int8" if precision == "int8" else "fp32"  # bf16, mixed: OpenVINO's hints at load
        model = build_graph(model, graph_precision, "plugin", _calibration(precision, calib, manifest, calib_frames))
        check_ops(model, "openvino", onnx_path)
        derived = manifest.derive(precision=precision, form="plugin", parent=str(onnx_path))
        return ov_artifact(model, derived, output, log)
    target = tensorrt.Target(manifest, plugins, min_shape, opt_shape, max_shape)  # fail before any work
    model = build_graph(model, precision, "plugin", _calibration(precision, calib, manifest, calib_frames),
                        fp16_all, msda_plugin)
    check_ops(model, "tensorrt", onnx_path)
    derived = manifest.derive(precision=precision, form="plugin", parent=str(onnx_path))
    return tensorrt.engine_artifact(model, derived, output, target, workspace, timing_cache, dla, log)


def _calibration(precision, calib, manifest, frames):
    return prec.calibration_batches(calib, manifest, frames) if precision == "int8" else None
