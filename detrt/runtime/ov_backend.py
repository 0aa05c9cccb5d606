"""OpenVINO on the CPU: the IR artifact of `detrt build --backend openvino` (model.xml + model.bin).

The detrt:: nodes run through detrt's OpenVINO extension (detrt.ops.openvino, the CPU kernels). The manifest's
precision picks OpenVINO's inference precision: fp32 and int8 (QDQ) compute in f32 where not quantized, bf16 in
bf16 where OpenVINO's CPU plugin allows it. A bf16 artifact on a CPU without bf16 runs in f32 (accuracy as the FP32
artifact; at about the FP32 speed) and says so through `notice`. One stream, `threads` inference threads,
latency hint: one request at a time, like the ONNX Runtime backend.
"""

import numpy as np

from detrt.errors import InputError
from detrt.ops.openvino import cpu_has_bf16, openvino_core, openvino_release
from detrt.optional import require
from detrt.runtime.base import Backend, check_threads, default_threads


class OvBackend(Backend):
    """An OpenVINO CPU compiled model over an .xml artifact."""

    name = "openvino"

    def __init__(self, artifact, manifest, threads=None, notice=None):
        super().__init__(artifact, manifest)
        ov = require("openvino", f"{artifact} (an OpenVINO model)")
        self.threads = check_threads(threads) or default_threads()
        core = openvino_core()
        hint = "bf16" if manifest.precision == "bf16" else "f32"
        if hint == "bf16" and not cpu_has_bf16(core):
            hint = "f32"
            if notice:
                notice(f"{artifact.name}: this CPU has no bf16 (AVX512_BF16 or AMX): running in f32, as accurate as "
                       f"the FP32 artifact and about as fast; an fp32 or int8 build suits this CPU")
        have = openvino_release(ov.get_version())
        try:
            model = core.read_model(str(self.artifact))
            self.compiled = core.compile_model(model, "CPU", {
                "INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": self.threads,
                "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1})
        except RuntimeError as e:
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            built = f"written by OpenVINO {manifest.openvino_version}, " if manifest.openvino_version != have else ""
            raise InputError(f"{artifact}: {built}OpenVINO {have} cannot load it ({msg}); "
                             f"{manifest.rebuild_hint(artifact)}") from None
        self.request = self.compiled.create_infer_request()
        inputs = [i.get_any_name() for i in self.compiled.inputs]
        if inputs != [self.input_name]:
            raise InputError(f"{artifact}: inputs are {inputs}, expected ['{self.input_name}'] (the export contract)")
        self._outputs = {o.get_any_name(): o for o in self.compiled.outputs}
        missing = [n for n in manifest.outputs if n not in self._outputs]
        if missing:
            raise InputError(f"{artifact}: outputs {list(self._outputs)} lack {missing} that its manifest promises "
                             f"({manifest.output_format}); {manifest.rebuild_hint(artifact)}")
        self.inference_precision = hint

    def _run(self, images):
        result = self.request.infer({self.input_name: images})
        return {n: np.array(result[self._outputs[n]]) for n in self.manifest.outputs}  # the request reuses its buffers
