"""The OpenVINO CPU artifact: the plugin-form graph as OpenVINO IR, model.xml with its weights model.bin beside.

    detrt build model.onnx --backend openvino --precision bf16 -o model.bf16.xml

The detrt:: nodes become detrt's OpenVINO operations (detrt.ops.openvino), which run the CPU kernels. fp32 and
bf16 are the same IR: the precision is OpenVINO's inference precision hint, applied when the runtime compiles it
(detrt.runtime.ov_backend); int8 is the QDQ graph of the ONNX Runtime quantization (build_graph), which
OpenVINO's CPU plugin runs as int8. The IR keeps float32 weights (no FP16 compression).

GroupNorm is rewritten so that no reshape touches the activations (channel_group_norm): the exported form
(Reshape to groups -> InstanceNormalization -> Reshape back) and OpenVINO's own GroupNormalization, which its CPU
plugin decomposes into the same, make the plugin move each f32 convolution output from its blocked layout to
plain NCHW with a reference reorder, 36-60% of the f32 model's time here.
"""

import shutil
import tempfile
from pathlib import Path

import numpy as np
import onnx

from detrt.atomic import atomic_path
from detrt.compile.onnx_io import inline_functions
from detrt.errors import InputError
from detrt.manifest import save_artifact, sha256_file
from detrt.ops.openvino import last_line, openvino_core, openvino_release
from detrt.optional import require


def _const_value(output):
    """The array behind `output` where it is a Constant (through Reshapes), else None."""
    node = output.get_node()
    while node.get_type_name() == "Reshape":
        node = node.input(0).get_source_output().get_node()
    return node.get_data() if node.get_type_name() == "Constant" else None


def _only_user(node, type_name):
    """The one consumer of node's output (ShapeOf aside) where it is a `type_name`, else None."""
    users = [t.get_node() for t in node.output(0).get_target_inputs() if t.get_node().get_type_name() != "ShapeOf"]
    return users[0] if len(users) == 1 and users[0].get_type_name() == type_name else None


def channel_group_norm(x, gamma, beta, groups, eps, name):
    """GroupNorm of x [B, C, H, W] (two-pass variance) with reshapes of the [B, C, 1, 1] statistics only."""
    ops = require("openvino.opset12", "--backend openvino")
    C, G = gamma.size, groups
    const = ops.constant

    def group_mean(t):  # [B, C, H, W] -> mean over H, W and the channels of each group, as [B, C, 1, 1]
        m = ops.reshape(ops.reduce_mean(t, const(np.array([2, 3])), True), const(np.array([0, G, C // G])), True)
        m = ops.reduce_mean(m, const(np.array([2])), True)
        m = ops.add(m, const(np.zeros((1, 1, C // G), np.float32)))  # [B, G, 1] -> [B, G, C/G]
        return ops.reshape(m, const(np.array([0, C, 1, 1])), True)

    centered = ops.subtract(x, group_mean(x))
    inv_std = ops.power(ops.add(group_mean(ops.multiply(centered, centered)), const(np.float32(eps))),
                        const(np.float32(-0.5)))
    scale = ops.multiply(inv_std, const(gamma.reshape(1, C, 1, 1).astype(np.float32)))
    out = ops.add(ops.multiply(centered, scale), const(beta.reshape(1, C, 1, 1).astype(np.float32)))
    for i, node in enumerate((centered, inv_std, scale, out)):
        node.set_friendly_name(f"{name}/channel_group_norm/{i}")  # keeps the stage in profiles (backbone/...)
    return out


def rewrite_group_norms(ov_model):
    """Replace each exported GroupNorm, Reshape -> MVN -> (x 1 + 0) -> Reshape -> x gamma + beta, by
    channel_group_norm; return how many."""
    count = 0
    for mvn in [op for op in ov_model.get_ordered_ops() if op.get_type_name() == "MVN"]:
        grouped = mvn.input(0).get_source_output().get_node()
        scale = _only_user(mvn, "Multiply")
        shift = scale and _only_user(scale, "Add")
        back = shift and _only_user(shift, "Reshape")
        gamma = back and _only_user(back, "Multiply")
        beta = gamma and _only_user(gamma, "Add")
        if beta is None or grouped.get_type_name() != "Reshape":
            continue
        values = [_const_value(n.input(1).get_source_output()) for n in (scale, shift, gamma, beta)]
        attrs = mvn.get_attributes()
        x = grouped.input(0).get_source_output()
        channels = x.get_partial_shape()[1]
        if (any(v is None for v in values) or not np.all(values[0] == 1) or np.any(values[1])
                or not attrs["normalize_variance"] or attrs["eps_mode"].lower() != "inside_sqrt"
                or x.get_partial_shape().rank.get_length() != 4 or channels.is_dynamic
                or not values[2].size == values[3].size == channels.get_length()):
            continue
        groups = grouped.output(0).get_partial_shape()[1].get_length()
        out = channel_group_norm(x, values[2].ravel(), values[3].ravel(), groups, attrs["eps"],
                                 beta.get_friendly_name())
        beta.output(0).replace(out.output(0))
        count += 1
    return count


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
        onnx.save(inline_functions(model), str(src))  # OpenVINO's ONNX reader takes no local functions
        try:
            ov_model = core.read_model(str(src))
            rewrite_group_norms(ov_model)
            ov_model.validate_nodes_and_infer_types()
            core.compile_model(ov_model, "CPU")  # fail here, not at the first run, on a graph OpenVINO cannot run
        except RuntimeError as e:
            raise InputError(f"OpenVINO cannot compile the graph for {output}: {last_line(e)}") from None
        ov.save_model(ov_model, str(ir), compress_to_fp16=False)
        with atomic_path(output.with_suffix(".bin")) as weights:
            shutil.copyfile(ir.with_suffix(".bin"), weights)
            manifest.weights_sha256 = sha256_file(weights)
        manifest.openvino_version = openvino_release(ov.get_version())
        save_artifact(output, lambda t: shutil.copyfile(ir, t), manifest)
    if log:
        log(f"OpenVINO {manifest.openvino_version} IR ({manifest.precision}, plugin form) -> {output}")
    return manifest
