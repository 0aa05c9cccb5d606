"""OpenVINO on the CPU: the IR artifact of `detrt build --backend openvino` (model.xml + model.bin).

The detrt:: nodes run through detrt's OpenVINO extension (detrt.ops.openvino, the CPU kernels). The manifest's
precision picks OpenVINO's inference precision: fp32 and int8 (QDQ) compute in f32 where not quantized, bf16 in
bf16 where OpenVINO's CPU plugin allows it, and mixed runs the backbone in bf16 and the rest (the transformer,
where bf16 costs the accuracy) in f32, as two compiled models cut at the backbone's outputs: OpenVINO's CPU
plugin takes one inference precision per compiled model (it ignores per-node precision marks). A bf16 or mixed
artifact on a CPU without bf16 runs in f32 (as accurate as the FP32 artifact and about as fast) and says so
through `notice`. One stream, `threads` inference threads, latency hint: one request at a time, like the ONNX
Runtime backend.
"""

import numpy as np

from detrt.errors import InputError
from detrt.ops.openvino import cpu_has_bf16, last_line, openvino_core, openvino_release
from detrt.optional import require
from detrt.runtime.base import Backend, check_threads, default_threads

BACKBONE = "/backbone/"  # the scope of the backbone's nodes in every detrt export


def _backbone_outputs(model):
    """The tensors the backbone hands on: inputs of the exported nodes outside it (OpenVINO's helpers, unnamed,
    aside)."""
    cut = []
    for node in model.get_ordered_ops():
        if BACKBONE in node.get_friendly_name() or not node.get_friendly_name().startswith("/"):
            continue
        for inp in node.inputs():
            src = inp.get_source_output()
            if BACKBONE in src.get_node().get_friendly_name() and src not in cut:
                cut.append(src)
    return cut


def split_at_backbone(read):
    """(backbone, rest) from two fresh ov.Models of one IR (`read()` gives one): the backbone from `images` to
    the tensors it hands on, and the rest with a parameter per such tensor (backbone_out_<i>) besides `images`;
    None when the model has no backbone scope."""
    ov = require("openvino", "--precision mixed")
    ops = require("openvino.opset12", "--precision mixed")
    first, second = read(), read()
    cut = _backbone_outputs(first)
    if not cut:
        return None
    backbone = ov.Model([ops.result(out) for out in cut], first.get_parameters(), "backbone")
    params = []
    for i, out in enumerate(_backbone_outputs(second)):
        param = ops.parameter(out.get_partial_shape(), out.get_element_type(), name=f"backbone_out_{i}")
        for target in list(out.get_target_inputs()):
            target.replace_source_output(param.output(0))
        params.append(param)
    return backbone, ov.Model(second.get_results(), params + list(second.get_parameters()), "rest")


class OvBackend(Backend):
    """An OpenVINO CPU compiled model over an .xml artifact (two for a mixed-precision one)."""

    name = "openvino"

    def __init__(self, artifact, manifest, threads=None, notice=None):
        super().__init__(artifact, manifest)
        ov = require("openvino", f"{artifact} (an OpenVINO model)")
        self.threads = check_threads(threads) or default_threads()
        core = openvino_core()
        low = "bf16" if manifest.precision in ("bf16", "mixed") else "f32"
        if low == "bf16" and not cpu_has_bf16(core):
            low = "f32"
            if notice:
                notice(f"{artifact.name}: this CPU has no bf16 (AVX512_BF16 or AMX): running in f32, as accurate as "
                       f"the FP32 artifact and about as fast; an fp32 or int8 build suits this CPU")
        have = openvino_release(ov.get_version())
        config = {"INFERENCE_NUM_THREADS": self.threads, "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1}
        try:
            def read():
                return core.read_model(str(self.artifact))

            parts = split_at_backbone(read) if manifest.precision == "mixed" and low == "bf16" else None
            if manifest.precision == "mixed" and low == "bf16" and parts is None:
                raise InputError(f"{artifact}: --precision mixed, but the model has no {BACKBONE.strip('/')} scope "
                                 f"to run in bf16; {manifest.rebuild_hint(artifact)}")
            self.backbone = parts and core.compile_model(parts[0], "CPU", {**config,
                                                                         "INFERENCE_PRECISION_HINT": "bf16"})
            self.compiled = core.compile_model(parts[1] if parts else read(), "CPU", {
                **config, "INFERENCE_PRECISION_HINT": "f32" if manifest.precision == "mixed" else low})
        except RuntimeError as e:
            msg = last_line(e)
            built = f"written by OpenVINO {manifest.openvino_version}, " if manifest.openvino_version != have else ""
            raise InputError(f"{artifact}: {built}OpenVINO {have} cannot load it ({msg}); "
                             f"{manifest.rebuild_hint(artifact)}") from None
        if notice and manifest.openvino_version != have:  # IR reads across releases; say so: not the tested pair
            notice(f"{artifact.name}: written by OpenVINO {manifest.openvino_version}, running on OpenVINO {have}; "
                   f"where results differ, {manifest.rebuild_hint(artifact)}")
        self.request = self.compiled.create_infer_request()
        self.backbone_request = self.backbone and self.backbone.create_infer_request()
        # each part's inputs by the name the feed uses (a tensor has several names: image_sizes may also be
        # known as the Cast that reads it)
        wanted = [*manifest.inputs, *(f"backbone_out_{i}" for i in range(len(self.backbone.outputs) if self.backbone
                                                                          else 0))]
        self._inputs = {part: {next((n for n in wanted if n in i.get_names()), i.get_any_name()): i
                               for i in part.inputs} for part in (self.backbone, self.compiled) if part}
        inputs = {n for ports in self._inputs.values() for n in ports if not n.startswith("backbone_out_")}
        if inputs != set(manifest.inputs):
            raise InputError(f"{artifact}: inputs are {sorted(inputs)}, expected {list(manifest.inputs)} (its "
                             f"manifest); {manifest.rebuild_hint(artifact)}")
        self._outputs = {o.get_any_name(): o for o in self.compiled.outputs}
        missing = [n for n in manifest.outputs if n not in self._outputs]
        if missing:
            raise InputError(f"{artifact}: outputs {list(self._outputs)} lack {missing} that its manifest promises "
                             f"({manifest.output_format}); {manifest.rebuild_hint(artifact)}")
        self.inference_precision = "bf16 backbone, f32 rest" if self.backbone else low

    def _run(self, feed):
        feeds = dict(feed)
        if self.backbone_request is not None:
            features = self.backbone_request.infer({port: feeds[n] for n, port in self._inputs[self.backbone].items()})
            feeds.update({f"backbone_out_{i}": features[out] for i, out in enumerate(self.backbone.outputs)})
        result = self.request.infer({port: feeds[n] for n, port in self._inputs[self.compiled].items()})
        return {n: np.array(result[self._outputs[n]]) for n in self.manifest.outputs}  # the request reuses its buffers
