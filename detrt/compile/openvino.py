"""The OpenVINO CPU artifact: the plugin-form graph as OpenVINO IR, model.xml with its weights model.bin beside.

    detrt build model.onnx --backend openvino --precision bf16 -o model.bf16.xml

The detrt:: nodes become detrt's OpenVINO operations (detrt.ops.openvino), which run the CPU kernels. fp32 and
bf16 are the same IR: the precision is OpenVINO's inference precision hint, applied when the runtime compiles it
(detrt.runtime.ov_backend); int8 is the QDQ graph of the ONNX Runtime quantization (build_graph), which
OpenVINO's CPU plugin runs as int8. The IR keeps float32 weights (no FP16 compression).
"""

import shutil
import tempfile
from pathlib import Path

import onnx
import onnx.inliner

from detrt.atomic import atomic_path
from detrt.errors import InputError
from detrt.manifest import save_artifact, sha256_file
from detrt.ops.openvino import openvino_core, openvino_release
from detrt.optional import require


def inline_functions(model):
    """`model` with its ONNX local functions inlined: OpenVINO's ONNX reader does not take them."""
    return onnx.inliner.inline_local_functions(model) if model.functions else model


def ov_artifact(model, manifest, output, log=print):
    """Write `model` as OpenVINO IR at `output` (.xml; the .bin beside it) with `manifest`; return the manifest.

    The .bin is renamed into place first, then the manifest (which holds both digests), then the .xml: a crash
    in between leaves a pair the runtime refuses with the rebuild command, never a half-written file.
    """
    ov = require("openvino", "--backend openvino")
    core = openvino_core()
    output = Path(output)
    with tempfile.TemporaryDirectory(prefix="detrt-ov-") as tmp:
        src, ir = Path(tmp) / "model.onnx", Path(tmp) / "model.xml"
        onnx.save(inline_functions(model), str(src))
        try:
            ov_model = core.read_model(str(src))
            core.compile_model(ov_model, "CPU")  # fail here, not at the first run, on a graph OpenVINO cannot run
        except RuntimeError as e:
            raise InputError(f"OpenVINO cannot compile the graph for {output}: {str(e).strip().splitlines()[0]}") \
                from None
        ov.save_model(ov_model, str(ir), compress_to_fp16=False)
        with atomic_path(output.with_suffix(".bin")) as weights:
            shutil.copyfile(ir.with_suffix(".bin"), weights)
            manifest.weights_sha256 = sha256_file(weights)
        manifest.openvino_version = openvino_release(ov.get_version())
        save_artifact(output, lambda t: shutil.copyfile(ir, t), manifest)
    if log:
        log(f"OpenVINO {manifest.openvino_version} IR ({manifest.precision}, plugin form) -> {output}")
    return manifest
