"""The plugin-form ops on OpenVINO (detrt.ops.openvino, plugins/openvino): one-node models against the CPU kernels,
int32 and int64 index inputs, a rejected input as a Python exception (the process lives on)."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from detrt.ops import cpu

pytestmark = pytest.mark.skipif(not cpu.available(), reason=f"{cpu.unavailable_reason()}")
pytest.importorskip("openvino")
onnx = pytest.importorskip("onnx")

from onnx import TensorProto, helper  # noqa: E402

from detrt.ops.openvino import openvino_core  # noqa: E402

MSDA_IN = ["value", "spatial_shapes", "level_start_index", "sampling_locations", "attention_weights"]
MSDA_RANKS = [4, 2, 1, 6, 5]  # OpenVINO's CPU plugin takes inputs of known rank only


def inputs_of(names, types, ranks):
    return [helper.make_tensor_value_info(n, t, [f"{n}{k}" for k in range(r)]) for n, t, r in zip(names, types, ranks)]


def compiled(node, inputs, outputs, hint="f32"):
    graph = helper.make_graph([node], "one_node", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("detrt", 1)],
                              ir_version=10)
    core = openvino_core()
    return core.compile_model(core.read_model(model.SerializeToString(), b""), "CPU",
                              {"INFERENCE_PRECISION_HINT": hint})


def msda_feeds(index_dtype, n=2, lq=30, m=4, d=8, p=4, seed=0):
    rng = np.random.default_rng(seed)
    shapes = np.array([[6, 8], [3, 4], [1, 1]], index_dtype)
    sizes = shapes[:, 0] * shapes[:, 1]
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(index_dtype)
    return dict(value=rng.standard_normal((n, int(sizes.sum()), m, d)).astype(np.float32), spatial_shapes=shapes,
                level_start_index=starts,
                sampling_locations=rng.uniform(-0.2, 1.2, (n, lq, m, 3, p, 2)).astype(np.float32),
                attention_weights=rng.uniform(0, 1, (n, lq, m, 3, p)).astype(np.float32))


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("n, lq", [(1, 30), (2, 7)])
def test_msdeformattn_matches_the_cpu_kernel(index_dtype, n, lq):
    feeds = msda_feeds(index_dtype, n=n, lq=lq)
    f = TensorProto.FLOAT
    i = TensorProto.INT32 if index_dtype == np.int32 else TensorProto.INT64
    inputs = inputs_of(MSDA_IN, [f, i, i, f, f], MSDA_RANKS)
    node = helper.make_node("MSDeformAttn", MSDA_IN, ["output"], domain="detrt")
    model = compiled(node, inputs, [helper.make_tensor_value_info("output", f, None)])
    out = model(feeds)[model.outputs[0]]
    ref = cpu.ms_deform_attn(*feeds.values())
    assert out.shape == (n, lq, 4 * 8)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)  # split across threads: the same sums per query


def test_dcgneighbors_matches_the_cpu_kernel():
    rng = np.random.default_rng(1)
    boxes = np.concatenate([rng.uniform(0.2, 0.8, (2, 40, 2)), rng.uniform(0.05, 0.3, (2, 40, 2))], -1)
    scores = rng.uniform(0, 1, (2, 40)).astype(np.float32)
    f = TensorProto.FLOAT
    node = helper.make_node("DCGNeighbors", ["boxes", "scores"], ["indices", "valid"], domain="detrt", k=5,
                            iou_threshold=0.3, low_score=0.2)
    model = compiled(node, inputs_of(["boxes", "scores"], [f, f], [3, 2]),
                     [helper.make_tensor_value_info("indices", TensorProto.INT64, None),
                      helper.make_tensor_value_info("valid", TensorProto.BOOL, None)])
    result = model({"boxes": boxes.astype(np.float32), "scores": scores})
    indices, valid = (result[o] for o in model.outputs)
    ref_indices, ref_valid = cpu.dcg_neighbors(boxes.astype(np.float32), scores, k=5, iou_threshold=0.3,
                                               low_score=0.2)
    assert valid.any() and not valid.all()  # the case exercises both
    np.testing.assert_array_equal(valid, ref_valid)
    np.testing.assert_array_equal(np.where(valid, indices, -1), np.where(ref_valid, ref_indices, -1))


def test_a_rejected_input_is_a_python_error_and_the_process_goes_on():
    # In a child: a throw that escaped evaluate() into OpenVINO's threads would abort the process.
    child = textwrap.dedent("""
        import numpy as np
        from onnx import TensorProto, helper
        from tests.ops.test_openvino import MSDA_IN, MSDA_RANKS, compiled, inputs_of, msda_feeds
        feeds = msda_feeds(np.int32)
        feeds["level_start_index"][1] = 47
        f, i = TensorProto.FLOAT, TensorProto.INT32
        inputs = inputs_of(MSDA_IN, [f, i, i, f, f], MSDA_RANKS)
        model = compiled(helper.make_node("MSDeformAttn", MSDA_IN, ["output"], domain="detrt"), inputs,
                         [helper.make_tensor_value_info("output", f, None)])
        try:
            model(feeds)
        except RuntimeError as e:
            print("raised:", e)
        print("alive")
    """)
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "alive" in proc.stdout and "detrt::MSDeformAttn: level_start_index[1] must be 48" in proc.stdout, proc.stdout
