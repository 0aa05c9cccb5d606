"""Precision in the graph (detrt/compile/precision.py, build_graph in build.py): FP16 Casts with FP32 islands,
INT8 QDQ, calibration data.

The tiny model is randomly initialized, so its two-stage query selection and DCG masks are discrete
choices among near ties: half or int8 rounding flips some of them and the final outputs move by whole
boxes. The continuous part of the graph is compared instead: the encoder output (memory).
"""

import numpy as np
import onnx
import onnx_graphsurgeon as gs
import onnxruntime as ort
import pytest
from onnx import helper

from detrt.compile import precision, surgery
from detrt.compile.build import build_graph
from detrt.errors import InputError

# LayerNorm output (unit scale) after 3 encoder layers in half: measured 5.6e-3 with the FP32 islands and
# 1.17e-2 without them (--fp16-all); the bound sits between, so a conversion that skips the islands fails.
FP16_MEMORY_TOL = 8e-3
INT8_MEMORY_TOL = 0.5  # random weights, 2 random calibration frames; measured below, printed


def run_with_outputs(model, feeds, names):
    """Run `model` on ONNX Runtime returning the tensors `names` (intermediate tensors included)."""
    probe = onnx.ModelProto.FromString(model.SerializeToString())
    del probe.graph.output[:]
    probe.graph.output.extend(helper.make_empty_tensor_value_info(n) for n in names)
    return ort.InferenceSession(probe.SerializeToString()).run(None, feeds)


def memory_tensor(model):
    """Name of the encoder's output (its last LayerNormalization before the decoder): a continuous probe."""
    names = [n.output[0] for n in model.graph.node if n.op_type == "LayerNormalization" and "/encoder" in n.name]
    return names[-1]


@pytest.fixture(scope="module")
def fp32(exported):
    return exported["portable", False]


@pytest.fixture(scope="module")
def fp16(fp32):
    return surgery.rewrite(fp32, precision.passes_for("fp16"))


@pytest.fixture(scope="module")
def calib(frames, sizes):
    return [{"images": frames[i:i + 1], "image_sizes": sizes[i:i + 1]} for i in range(len(frames))]


@pytest.fixture(scope="module")
def int8(fp32, calib):
    return build_graph(fp32, "int8", batches=calib)


def test_fp32_islands_cover_norms_softmax_sampling_math_and_heads(fp32):
    graph = gs.import_onnx(fp32)
    keep = precision.fp32_islands(graph)
    nodes = {n.name: n for n in fp32.graph.node}
    for n in fp32.graph.node:
        if n.op_type in ("LayerNormalization", "Softmax"):
            assert n.name in keep
    # the final box head (MatMul) and the sampling-location arithmetic stay float; the value projection does not
    box_out = next(t for t in graph.outputs if t.name == "pred_boxes")
    assert box_out.inputs[0].name in keep
    msda = [n for n in graph.nodes if n.op == "MSDeformAttn"]
    assert all(m.inputs[3].inputs[0].name in keep for m in msda)
    assert all(m.inputs[0].inputs[0].name not in keep for m in msda)
    assert sum(nodes[k].op_type in ("Conv",) for k in keep) == 0
    assert len(precision.fp32_islands(graph, fp16_all=True)) < len(keep)


def test_fp16_graph_is_typed_and_runs(fp16, fp32, feed):
    onnx.checker.check_model(fp16, full_check=True)
    weights = [i for i in fp16.graph.initializer if i.data_type == onnx.TensorProto.FLOAT16]
    assert len(weights) > 20
    convs = [n for n in gs.import_onnx(fp16).nodes if n.op == "Conv"]
    assert all(n.inputs[0].dtype == np.float16 for n in convs)
    msda = [n for n in gs.import_onnx(fp16).nodes if n.op == "MSDeformAttn"]  # half value, float32 locations
    assert msda and all(n.inputs[0].dtype == np.float16 and n.inputs[3].dtype == np.float32 for n in msda)
    assert fp16.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert all(o.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for o in fp16.graph.output)
    name = memory_tensor(fp32)
    (m32,) = run_with_outputs(fp32, feed, [name])
    (m16,) = run_with_outputs(fp16, feed, [name])
    diff = float(np.abs(m32 - m16).max())
    print(f"fp16: encoder memory max abs diff {diff:.2e} (|memory| max {np.abs(m32).max():.2f})")
    assert diff <= FP16_MEMORY_TOL
    logits, boxes = ort.InferenceSession(fp16.SerializeToString()).run(None, feed)
    assert boxes.dtype == np.float32 and np.isfinite(boxes).all() and ((boxes >= 0) & (boxes <= 1)).all()


def test_fp16_tolerance_fails_a_graph_without_fp32_islands(fp32, feed):
    """The bound above has teeth: the same memory probe on the --fp16-all graph is outside it."""
    name = memory_tensor(fp32)
    (m32,) = run_with_outputs(fp32, feed, [name])
    (m16,) = run_with_outputs(surgery.rewrite(fp32, precision.passes_for("fp16", fp16_all=True)),
                              feed, [name])
    assert float(np.abs(m32 - m16).max()) > FP16_MEMORY_TOL


@pytest.mark.parametrize("ap_int8, mr2_int8, passed", [
    (0.75, 0.25, True),  # equal
    (0.7421875, 0.2578125, True),  # AP -0.78, MR-2 +0.78 points: inside both bounds
    (0.734375, 0.25, False),  # AP drop 1.5625 > 1.0
    (0.75, 0.2734375, False),  # MR-2 rise 2.34 > 1.5
    (0.875, 0.125, True),  # INT8 better on both: negative drop and rise
])
def test_int8_gates_direction_and_passed(monkeypatch, ap_int8, mr2_int8, passed):
    """Against FP32 AP 0.75 / MR-2 0.25 (values exact in binary, so the bounds are not blurred by rounding)."""
    metrics = {"fp32": {"AP": 0.75, "MR2": 0.25}, "int8": {"AP": ap_int8, "MR2": mr2_int8}}
    monkeypatch.setattr(precision, "evaluate", lambda gt, dets: metrics[dets])
    gates = precision.int8_accuracy_gates([], "fp32", "int8")
    assert gates["AP_drop"] == 100 * (0.75 - ap_int8) and gates["MR2_rise"] == 100 * (mr2_int8 - 0.25)
    assert (gates["AP_fp32"], gates["AP_int8"], gates["MR2_fp32"], gates["MR2_int8"]) == (0.75, ap_int8, 0.25, mr2_int8)
    assert gates["passed"] is passed


@pytest.mark.parametrize("bound, ap_int8, mr2_int8", [
    ("AP_DROP_MAX", 0.734375, 0.25),  # AP drop exactly the bound (1.5625 points)
    ("MR2_RISE_MAX", 0.75, 0.265625),  # MR-2 rise exactly the bound (1.5625 points)
])
def test_int8_gates_pass_at_their_bound(monkeypatch, bound, ap_int8, mr2_int8):
    """The gates allow a drop or rise up to and including their bound (binary-exact values, bound moved to one)."""
    metrics = {"fp32": {"AP": 0.75, "MR2": 0.25}, "int8": {"AP": ap_int8, "MR2": mr2_int8}}
    monkeypatch.setattr(precision, "evaluate", lambda gt, dets: metrics[dets])
    monkeypatch.setattr(precision, bound, 1.5625)
    assert precision.int8_accuracy_gates([], "fp32", "int8")["passed"] is True


def test_calibration_batch_without_images_is_named():
    images = helper.make_tensor_value_info("images", onnx.TensorProto.FLOAT, [1, 3, 32, 32])
    out = helper.make_tensor_value_info("out", onnx.TensorProto.FLOAT, [1, 3, 32, 32])
    model = helper.make_model(helper.make_graph([helper.make_node("Identity", ["images"], ["out"])], "g",
                                                [images], [out]))
    precision.check_calibration([{"images": np.zeros((2, 3, 32, 32), np.float32)}], model)
    with pytest.raises(InputError, match=r"calib: batch 1 is None, the model takes float32 \[B, 3, 32, 32\]"):
        precision.check_calibration([{"images": np.zeros((1, 3, 32, 32), np.float32)}, {"image_sizes": None}],
                                    model, where="calib")
    with pytest.raises(InputError, match=r"batch 0 is float64 \[1, 3, 32, 32\]"):
        precision.check_calibration([{"images": np.zeros((1, 3, 32, 32))}], model)


def test_int8_gates_by_hand():
    """One image, persons A and B. FP32 finds both (AP 0.5: the curve starts at recall 1/2; MR-2 0); INT8 puts a
    false positive between them: (.5, 1) (.5, .5) (1, 2/3) gives AP 0.5 * (0.5 + 2/3) / 2, and MR-2 0.5."""
    from detrt.data.crowdhuman import GroundTruth, OdgtDetections

    a, b, fp = [10, 10, 40, 100], [60, 10, 90, 100], [150, 150, 190, 190]
    gt = [GroundTruth("a", np.array([a, b], float), np.zeros((0, 4)), 200, 200)]
    fp32 = [OdgtDetections("a", np.array([a, b], float), np.array([0.9, 0.8]))]
    int8 = [OdgtDetections("a", np.array([a, fp, b], float), np.array([0.9, 0.85, 0.8]))]
    gates = precision.int8_accuracy_gates(gt, fp32, int8)
    assert gates["AP_drop"] == pytest.approx(100 * (0.5 - 0.5 * (0.5 + 2 / 3) / 2))
    assert gates["MR2_rise"] == pytest.approx(50.0) and gates["passed"] is False
    assert precision.int8_accuracy_gates(gt, int8, fp32)["passed"] is True  # the other way round: better


def test_int8_qdq_only_on_conv_matmul_gemm_symmetric_per_channel(int8):
    graph = gs.import_onnx(int8)
    dq = [n for n in graph.nodes if n.op == "DequantizeLinear"]
    assert dq
    consumers = {c.op for n in dq for c in n.outputs[0].outputs}
    assert consumers <= {"Conv", "MatMul", "Gemm"}, consumers
    for n in [*dq, *[n for n in graph.nodes if n.op == "QuantizeLinear"]]:
        zero = n.inputs[2] if len(n.inputs) > 2 else None
        assert zero is None or not np.any(zero.values), f"{n.name}: asymmetric"
        assert zero is None or zero.values.dtype == np.int8
    per_channel = [n for n in dq if isinstance(n.inputs[0], gs.Constant) and n.inputs[1].values.size > 1]
    assert per_channel
    assert not any(n.op in ("Softmax",) and any(i.inputs and i.inputs[0].op == "DequantizeLinear" for i in n.inputs)
                   for n in graph.nodes)


def test_int8_runs_and_stays_close(int8, fp32, feed):
    name = memory_tensor(fp32)
    (m32,) = run_with_outputs(fp32, feed, [name])
    (m8,) = run_with_outputs(int8, feed, [name])
    diff = float(np.abs(m32 - m8).max())
    corr = float(np.corrcoef(m32.ravel(), m8.ravel())[0, 1])
    print(f"int8: encoder memory max abs diff {diff:.2e}, correlation {corr:.4f}")
    assert diff <= INT8_MEMORY_TOL and corr > 0.99


def test_int8_of_plugin_form_stays_plugin_form(exported, calib):
    q = build_graph(exported["plugin", False], "int8", batches=calib[:1])
    domains = {n.domain for n in q.graph.node}
    assert "detrt" in domains and "detrt.portable" not in domains
    assert any(n.op_type == "QuantizeLinear" for n in q.graph.node)


def test_bad_calibration_data_is_one_clear_error(fp32, frames):
    with pytest.raises(InputError, match="no calibration frames"):
        precision.quantize(fp32, [])
    with pytest.raises(InputError, match=r"batch 0 is float32 \[1, 3, 64, 64\]"):
        precision.quantize(fp32, [{"images": np.zeros((1, 3, 64, 64), np.float32)}])


def test_calibration_batches_from_video_and_images(tmp_path, exported):
    import cv2

    from detrt.manifest import Manifest

    manifest = Manifest(family="dh-detr", config="dhdetr_r18_tiny", class_names=["person"], input_size=(256, 384),
                        onnx_sha256="0" * 64, inputs=("images", "image_sizes"))
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (200, 120))
    for i in range(12):
        writer.write(np.full((120, 200, 3), i * 20, np.uint8))
    writer.release()
    batches = precision.calibration_batches(video, manifest, frames=5, batch=2)
    assert [b["images"].shape for b in batches] == [(2, 3, 256, 384), (2, 3, 256, 384), (1, 3, 256, 384)]
    assert batches[0]["image_sizes"].tolist() == [[230, 384]] * 2  # 200x120 letterboxed (x 1.92)
    precision.check_calibration(batches, exported["portable", False])
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.zeros((50, 60, 3), np.uint8))
    assert len(precision.calibration_batches(tmp_path, manifest, frames=10)) == 3
    with pytest.raises(InputError, match="no readable frames"):
        precision.calibration_batches(tmp_path / "*.jpg", manifest)
    with pytest.raises(InputError, match="not found"):
        precision.calibration_batches(tmp_path / "missing.mp4", manifest)


def test_calibration_images_are_spread_over_the_folder(tmp_path):
    """6 images, 2 frames asked for: every third image (0 and 3), not the first two."""
    import cv2

    for i in range(6):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.full((4, 6, 3), 40 * i, np.uint8))
    assert [int(f[0, 0, 0]) for f in precision._read_frames(tmp_path, 2, cv2)] == [0, 120]


def test_name_nodes_names_the_unnamed_and_the_repeated():
    nodes = [onnx.helper.make_node("Relu", ["x"], ["a"], name="act"), onnx.helper.make_node("Relu", ["a"], ["b"]),
             onnx.helper.make_node("Relu", ["b"], ["c"], name="act")]
    io = [onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, [1]) for n in ("x", "c")]
    graph = gs.import_onnx(onnx.helper.make_model(onnx.helper.make_graph(nodes, "g", io[:1], io[1:])))
    assert [n.name for n in precision.name_nodes(graph).nodes] == ["act", "Relu_1", "Relu_2"]


def test_build_graph_imports_once_and_exports_once(fp32, monkeypatch):
    """FP16 and the TensorRT form in one pass list: no ModelProto round trip between them (shape inference,
    which needs a ModelProto, aside)."""
    counts = {"import": 0, "export": 0}
    real_import, real_export, real_infer = gs.import_onnx, gs.export_onnx, surgery.infer_shapes
    inside_inference = []

    def infer_shapes(graph):
        inside_inference.append(True)
        try:
            return real_infer(graph)
        finally:
            inside_inference.pop()

    def counted(kind, real):
        def call(*args, **kwargs):
            counts[kind] += not inside_inference
            return real(*args, **kwargs)
        return call

    monkeypatch.setattr(gs, "import_onnx", counted("import", real_import))
    monkeypatch.setattr(gs, "export_onnx", counted("export", real_export))
    monkeypatch.setattr(surgery, "infer_shapes", infer_shapes)
    model = build_graph(fp32, "fp16", "plugin")
    assert counts == {"import": 1, "export": 1}
    assert "detrt" in {n.domain for n in model.graph.node} and any(n.op_type == "Cast" for n in model.graph.node)
