"""The tiny DH-DETR as an OpenVINO artifact: every GroupNorm rewritten layout-free, MSDA and DCG on the extension,
outputs as ONNX Runtime's plugin form gives them."""

import numpy as np
import pytest

pytest.importorskip("openvino")

from detrt.compile.onnx_io import save_onnx  # noqa: E402
from detrt.compile.openvino import rewrite_group_norms  # noqa: E402
from detrt.compile.build import build  # noqa: E402
from detrt.manifest import Manifest  # noqa: E402
from detrt.ops.openvino import cpu_has_bf16, openvino_core  # noqa: E402
from detrt.runtime.backend import open_backend  # noqa: E402


def test_plugin_form_model_matches_onnxruntime(tmp_path, tiny, exported, frames):
    model = exported["plugin", False]
    src = tmp_path / "raw.onnx"
    save_onnx(model, src, Manifest.for_config(tiny.config, output_format="raw", form="plugin", max_batch=2,
                                              inputs=tuple(i.name for i in model.graph.input)))
    # exports mask the padding: GroupNorm's statistics leave it out, so it is not the InstanceNormalization pattern
    group_norms = sum(n.op_type == "InstanceNormalization" for n in model.graph.node)
    assert rewrite_group_norms(openvino_core().read_model(str(src))) == group_norms
    build(src, tmp_path / "raw.xml", backend="openvino", log=None)
    build(src, tmp_path / "raw.mixed.xml", precision="mixed", backend="openvino", log=None)
    with open_backend(src) as ort_be, open_backend(tmp_path / "raw.xml") as ov_be:
        want, got = ort_be.infer(frames), ov_be.infer(frames)
    np.testing.assert_allclose(got["pred_boxes"], want["pred_boxes"], atol=1e-5)
    np.testing.assert_allclose(got["pred_logits"], want["pred_logits"], atol=1e-4)
    scored = want["pred_logits"][np.isfinite(want["pred_logits"])]  # DCG masks some logits to -inf
    assert scored.size and scored.std() > 0.1
    if not cpu_has_bf16(openvino_core()):
        pytest.skip("mixed precision: this CPU has no bf16 (the artifact runs in f32)")
    with open_backend(tmp_path / "raw.mixed.xml") as mixed:
        assert mixed.inference_precision == "bf16 backbone, f32 rest"
        assert [i.get_any_name() for i in mixed.compiled.inputs][:3] == [f"backbone_out_{i}" for i in range(3)]
        boxes = mixed.infer(frames)["pred_boxes"]
    diff = np.abs(boxes - want["pred_boxes"])
    assert diff.max() > 0 and np.median(diff) < 0.01  # the backbone ran in bf16 (a random model: some boxes flip)


def norms_onnx(path, norms):
    """torch's export (opset 17, no padding mask) of Conv(3 -> 8 channels) -> `norms` with random affines, run on a
    non-square [2, 3, 5, 6] input: (path, input, torch's output)."""
    import warnings

    import torch

    for norm in norms:
        if norm.affine:
            torch.nn.init.normal_(norm.weight)
            torch.nn.init.normal_(norm.bias)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 1), *norms).eval()
    x = torch.randn(2, 3, 5, 6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy-exporter notice
        torch.onnx.export(net, (x,), str(path), dynamo=False, opset_version=17, input_names=["x"],
                          output_names=["y"])
    with torch.no_grad():
        return path, x.numpy(), net(x).numpy()


def test_group_norm_pattern_is_rewritten_to_the_same_values(tmp_path):
    """Of GroupNorm(2 groups), InstanceNorm (no Reshape in front), GroupNorm without an affine (its scale is not
    per channel), GroupNorm(4 groups): the two affine GroupNorms become channel_group_norm's four named stages
    (the loop goes on past the others), with torch's values."""
    import torch

    torch.manual_seed(0)
    nn = torch.nn
    norms = [nn.GroupNorm(2, 8), nn.InstanceNorm2d(8), nn.GroupNorm(2, 8, affine=False), nn.GroupNorm(4, 8)]
    path, x, want = norms_onnx(tmp_path / "gn.onnx", norms)
    core = openvino_core()
    model = core.read_model(str(path))
    assert rewrite_group_norms(model) == 2
    names = [op.get_friendly_name() for op in model.get_ordered_ops()]
    assert sum("/channel_group_norm/" in n for n in names) == 8
    assert sum(op.get_type_name() == "MVN" for op in model.get_ordered_ops()) == 2  # the two left alone
    got = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})({0: x})[0]  # not bf16 where it can
    np.testing.assert_allclose(got, want, atol=1e-5)
