"""Export (detrt/compile/export.py): forms, parity with PyTorch on ONNX Runtime's CPU, checkpoints, bad input."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from detrt.compile import export
from detrt.errors import InputError
from detrt.manifest import load_manifest, sha256_file
from detrt.ops.dcg import dcg_neighbors
from detrt.ops.names import NVIDIA_MSDA_OP, PORTABLE_DOMAIN
from tests.helpers.checkpoints import write_checkpoint

LOGITS_TOL, BOXES_TOL = 1e-4, 1e-5


def session(model, form):
    if form == "portable":
        return ort.InferenceSession(model.SerializeToString())
    try:
        from detrt.ops.ort import InferenceSession
    except ImportError as e:
        pytest.skip(f"plugin form needs detrt.ops.ort: {e}")
    return InferenceSession(model.SerializeToString())


@pytest.fixture(scope="module")
def torch_outputs(tiny, frames, sizes):
    from detrt.models.dhdetr import PostProcess

    with torch.no_grad():
        out = tiny(torch.from_numpy(frames), torch.from_numpy(sizes))
        det = PostProcess(100)(out, torch.from_numpy(sizes))
    return {k: v.numpy() for k, v in {**det, "pred_logits": out["pred_logits"], "pred_boxes": out["pred_boxes"]}.items()}


def test_portable_form_has_standard_ops_only(exported):
    model = exported["portable", True]
    domains = {n.domain for n in model.graph.node}
    assert domains <= {"", PORTABLE_DOMAIN}
    assert {f.name for f in model.functions} == {"MSDeformAttn", "DCGNeighbors"}
    assert all(n.domain == "" for f in model.functions for n in f.node)  # bodies: standard ops
    assert any(n.op_type == "GridSample" for f in model.functions for n in f.node)


def test_plugin_form_has_single_plugin_nodes_with_int32_shapes(exported, tiny):
    model = exported["plugin", True]
    counts = export.count_ops(model)
    cfg = tiny.config
    assert counts[("detrt", "MSDeformAttn")] == cfg.enc_layers + cfg.dec_layers
    assert counts[("detrt", "DCGNeighbors")] == cfg.dcg_layers
    assert not model.functions
    inits = {i.name: i for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "MSDeformAttn":
            assert inits[node.input[1]].data_type == onnx.TensorProto.INT32
            assert inits[node.input[2]].data_type == onnx.TensorProto.INT32


@pytest.mark.parametrize("form", ["portable", "plugin"])
def test_graph_contract(exported, form, tiny):
    model = exported[form, True]
    export.check_onnx(model, form)  # full_check; custom domains skipped
    assert next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    assert any(n.op_type == "LayerNormalization" for n in model.graph.node)
    images, sizes = model.graph.input
    assert (images.name, sizes.name) == ("images", "image_sizes")
    dims = images.type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [3, *tiny.config.input_size]
    dims = sizes.type.tensor_type.shape.dim
    assert sizes.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert dims[0].dim_param == images.type.tensor_type.shape.dim[0].dim_param and dims[1].dim_value == 2
    assert [o.name for o in model.graph.output] == ["scores", "labels", "boxes"]
    assert model.ir_version <= 10


@pytest.mark.parametrize("form", ["portable", "plugin"])
def test_raw_outputs_match_pytorch(exported, feed, torch_outputs, form):
    logits, boxes = session(exported[form, False], form).run(None, feed)
    d_logits = export.finite_max_abs_diff(logits, torch_outputs["pred_logits"])
    d_boxes = export.finite_max_abs_diff(boxes, torch_outputs["pred_boxes"])
    print(f"{form}: logits max abs diff {d_logits:.2e}, boxes {d_boxes:.2e}")
    assert d_logits <= LOGITS_TOL and d_boxes <= BOXES_TOL


@pytest.mark.parametrize("form", ["portable", "plugin"])
def test_top100_detections_identical(exported, frames, feed, torch_outputs, form, tiny):
    scores, labels, boxes = session(exported[form, True], form).run(None, feed)
    assert scores.shape == (len(frames), 100) and labels.dtype == np.int64
    h, w = tiny.config.input_size
    scale = np.array([w, h, w, h], np.float32)
    for i in range(len(frames)):
        a = detection_groups(scores[i], labels[i], boxes[i] / scale)
        b = detection_groups(torch_outputs["scores"][i], torch_outputs["labels"][i], torch_outputs["boxes"][i] / scale)
        assert len(a) == len(b)
        for (sa, ga), (sb, gb) in zip(a, b):
            assert abs(sa - sb) <= LOGITS_TOL and len(ga) == len(gb)
            assert np.abs(ga - gb).max() <= BOXES_TOL  # same labels (column 0) and boxes


def test_opset_21_matches_pytorch(tiny, feed, torch_outputs):
    # GroupNorm with padding masks takes its statistics over the image only: no GroupNormalization node
    model = export.onnx_from_model(tiny, tiny.config.input_size, postprocess=False, opset=21)
    export.check_onnx(model, "opset 21")
    assert next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) == 21
    logits, boxes = session(model, "portable").run(None, feed)
    assert export.finite_max_abs_diff(logits, torch_outputs["pred_logits"]) <= LOGITS_TOL
    assert export.finite_max_abs_diff(boxes, torch_outputs["pred_boxes"]) <= BOXES_TOL


def test_score_floor_in_pytorch_graph_manifest_and_runtime(tiny, frames, sizes, feed, torch_outputs, tmp_path):
    from detrt.data.preprocess import resize_transform
    from detrt.models.dhdetr import PostProcess
    from detrt.runtime.postprocess import Postprocessor

    ranked = torch_outputs["scores"][0]
    floor = float(ranked[30] + ranked[31]) / 2  # between two scores: 31 of image 0's 100 are above it
    assert ranked[30] - ranked[31] > 2 * LOGITS_TOL
    cfg = tiny.config.replace(score_floor=floor)
    manifest = export.export_model_to(tiny, cfg, tmp_path / "m.onnx", log=None)
    assert (manifest.num_select, manifest.score_floor) == (100, floor)
    assert load_manifest(tmp_path / "m.onnx").score_floor == floor
    scores, labels, boxes = session(onnx.load(tmp_path / "m.onnx"), "portable").run(None, feed)
    h, w = cfg.input_size
    with torch.no_grad():
        want = PostProcess(100, floor)(tiny(torch.from_numpy(frames), torch.from_numpy(sizes)), torch.from_numpy(sizes))
    assert scores.shape == (len(frames), 100)
    assert np.abs(scores - want["scores"].numpy()).max() <= LOGITS_TOL  # parity, zeros at the same places
    assert (want["scores"][0] > 0).sum() == 31 and (scores[0] > 0).sum() == 31
    assert ((scores == 0) | (scores >= floor)).all()
    t = resize_transform((h, w), (h, w), "letterbox")
    dets = Postprocessor.from_manifest(manifest, threshold=0.0)(
        {"scores": scores, "labels": labels, "boxes": boxes}, [t, t])
    assert len(dets[0]) == 31 and all(len(d) == (s >= floor).sum() for d, s in zip(dets, scores))


def detection_groups(scores, labels, boxes, tie=1e-5):
    """Detections in rank order, grouped where scores tie (the order inside a tie is arbitrary): a list of
    (score, rows sorted by (label, box)) per group."""
    rows = np.concatenate([labels[:, None].astype(np.float64), boxes], 1)
    groups, start = [], 0
    for k in range(1, len(scores) + 1):
        if k == len(scores) or abs(scores[k] - scores[start]) > tie:
            g = rows[start:k]
            groups.append((float(scores[start]), g[np.lexsort(g.T[::-1])]))
            start = k
    return groups


def test_batch_is_dynamic(exported, frames, sizes, torch_outputs):
    sess = session(exported["portable", False], "portable")
    one, = sess.run(["pred_boxes"], {"images": frames[:1], "image_sizes": sizes[:1]})
    three, = sess.run(["pred_boxes"], {"images": np.concatenate([frames, frames[:1]]),
                                       "image_sizes": np.concatenate([sizes, sizes[:1]])})
    assert one.shape[0] == 1 and three.shape[0] == 3
    assert np.abs(three[2] - one[0]).max() <= BOXES_TOL


def test_nvidia_msda_plugin_form(tiny):
    model = export.onnx_from_model(tiny, tiny.config.input_size, form="plugin", msda_plugin="nvidia")
    counts = export.count_ops(model)
    assert counts[("trt", NVIDIA_MSDA_OP)] == tiny.config.enc_layers + tiny.config.dec_layers
    assert ("detrt", "MSDeformAttn") not in counts and counts[("detrt", "DCGNeighbors")] == tiny.config.dcg_layers
    export.check_onnx(model, "nvidia")


def test_dcg_node_carries_the_layers_thresholds():
    """The exported detrt::DCGNeighbors node holds the k and thresholds the model was called with."""
    import io

    class Neighbours(torch.nn.Module):
        def forward(self, boxes, scores):
            return dcg_neighbors(boxes, scores, 3, 0.55, 0.3)

    buf = io.BytesIO()
    with export.detrt_symbolics(17), pytest.warns(DeprecationWarning):  # the legacy-exporter notice
        torch.onnx.export(Neighbours(), (torch.rand(1, 8, 4), torch.rand(1, 8)), buf, opset_version=17,
                          dynamo=False, custom_opsets={"detrt": 1})
    (node,) = [n for n in onnx.load_from_string(buf.getvalue()).graph.node if n.op_type == "DCGNeighbors"]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert (attrs["k"], attrs["iou_threshold"], attrs["low_score"]) == (3, pytest.approx(0.55), pytest.approx(0.3))


def test_export_checkpoint_writes_model_and_manifest(tiny, tmp_path, feed, torch_outputs):
    ckpt = write_checkpoint(tiny, tmp_path / "ckpt")
    out = tmp_path / "model.onnx"
    manifest = export.export_checkpoint(ckpt, out, form="portable", postprocess=False, log=None)
    assert load_manifest(out) == manifest
    assert manifest.onnx_sha256 == sha256_file(out) and manifest.form == "portable"
    assert manifest.output_format == "raw" and manifest.input_size == tuple(tiny.config.input_size)
    assert manifest.config == "dhdetr_r18_tiny" and manifest.family == "dh-detr" and manifest.opset == 17
    assert manifest.parent == "ckpt" and str(tmp_path) not in (tmp_path / "model.onnx.json").read_text()
    assert manifest.inputs == ("images", "image_sizes")
    logits, = ort.InferenceSession(str(out)).run(["pred_logits"], feed)
    assert export.finite_max_abs_diff(logits, torch_outputs["pred_logits"]) <= LOGITS_TOL


def test_checkpoint_without_json_is_refused(tiny, tmp_path):
    ckpt = write_checkpoint(tiny, tmp_path / "ckpt")
    (ckpt / "checkpoint.json").unlink()
    with pytest.raises(InputError, match="checkpoint.json: missing"):
        export.export_checkpoint(ckpt, tmp_path / "m.onnx", log=None)
    assert list(tmp_path.glob("m.onnx*")) == []


def test_checkpoint_of_another_config_names_the_keys(tiny, tmp_path):
    ckpt = write_checkpoint(tiny, tmp_path / "ckpt", config="deformable_detr_r18_tiny")
    with pytest.raises(InputError, match="do not fit config 'deformable_detr_r18_tiny'; missing keys: .*"):
        export.export_checkpoint(ckpt, tmp_path / "m.onnx", log=None)


def test_bad_sizes_and_opset_are_refused(tiny):
    with pytest.raises(InputError, match="multiples of 32"):
        export.onnx_from_model(tiny, (250, 384))
    for opset in (16, 99):
        with pytest.raises(InputError, match=f"--opset {opset}: supported are 17 to 21"):
            export.onnx_from_model(tiny, (256, 384), opset=opset)


def test_max_opset_is_what_torch_exports():
    from torch.onnx import _constants

    assert export.TORCH_MAX_OPSET == _constants.ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET
