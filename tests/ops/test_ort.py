"""The plugin-form ops on ONNX Runtime's CPU (detrt.ops.ort): a one-node model per op against
the PyTorch reference."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from detrt.ops import cpu

pytestmark = pytest.mark.skipif(not cpu.available(), reason=f"{cpu.unavailable_reason()}")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxruntime_extensions")

from onnx import TensorProto, helper  # noqa: E402

from detrt.ops.dcg import dcg_neighbors_reference  # noqa: E402
from detrt.ops.msda import ms_deform_attn_reference  # noqa: E402


def session(node, inputs, outputs):
    from detrt.ops.ort import InferenceSession

    graph = helper.make_graph([node], "one_node", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("detrt", 1)],
                              ir_version=10)
    onnx.checker.check_model(model)
    return InferenceSession(model.SerializeToString())


def test_msdeformattn_node_matches_reference():
    rng = np.random.default_rng(0)
    shapes = np.array([[6, 8], [3, 4], [1, 1]], np.int32)
    sizes = shapes[:, 0] * shapes[:, 1]
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int32)
    n, m, d, lq, p = 2, 4, 8, 30, 4
    feeds = dict(
        value=rng.standard_normal((n, int(sizes.sum()), m, d)).astype(np.float32),
        spatial_shapes=shapes,
        level_start_index=starts,
        sampling_locations=rng.uniform(-0.2, 1.2, (n, lq, m, 3, p, 2)).astype(np.float32),
        attention_weights=rng.uniform(0, 1, (n, lq, m, 3, p)).astype(np.float32),
    )
    f, i = TensorProto.FLOAT, TensorProto.INT32
    inputs = [
        helper.make_tensor_value_info("value", f, ["N", "S", m, d]),
        helper.make_tensor_value_info("spatial_shapes", i, [3, 2]),
        helper.make_tensor_value_info("level_start_index", i, [3]),
        helper.make_tensor_value_info("sampling_locations", f, ["N", "Lq", m, 3, p, 2]),
        helper.make_tensor_value_info("attention_weights", f, ["N", "Lq", m, 3, p]),
    ]
    node = helper.make_node("MSDeformAttn", list(feeds), ["output"], domain="detrt")
    sess = session(node, inputs, [helper.make_tensor_value_info("output", f, ["N", "Lq", m * d])])
    (out,) = sess.run(None, feeds)
    ref = ms_deform_attn_reference(*(torch.from_numpy(feeds[k].astype(np.int64) if feeds[k].dtype == np.int32
                                                      else feeds[k]) for k in feeds)).numpy()
    assert out.shape == (n, lq, m * d) and out.dtype == np.float32
    np.testing.assert_allclose(out, ref, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("k, iou_threshold, low_score", [(6, 0.4, 0.1), (3, 0.6, 0.3)])
def test_dcgneighbors_node_matches_reference(k, iou_threshold, low_score):
    """The node's attributes reach the kernel: other thresholds than the defaults give other neighbours."""
    rng = np.random.default_rng(1)
    b, n = 2, 150
    centres = rng.uniform(0, 1, (b, 20, 2))[:, rng.integers(0, 20, n)] + 0.01 * rng.standard_normal((b, n, 2))
    boxes = np.concatenate([centres, rng.uniform(0.08, 0.12, (b, n, 2))], -1).astype(np.float32)
    scores = rng.uniform(0, 1, (b, n)).astype(np.float32)
    inputs = [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, ["B", "N", 4]),
              helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["B", "N"])]
    outputs = [helper.make_tensor_value_info("indices", TensorProto.INT32, ["B", "N", k]),
               helper.make_tensor_value_info("valid", TensorProto.INT32, ["B", "N", k])]
    node = helper.make_node("DCGNeighbors", ["boxes", "scores"], ["indices", "valid"], domain="detrt", k=k,
                            iou_threshold=iou_threshold, low_score=low_score)
    idx, valid = session(node, inputs, outputs).run(None, {"boxes": boxes, "scores": scores})
    assert idx.dtype == np.int32 and valid.dtype == np.int32 and idx.shape == (b, n, k)
    ref_idx, ref_valid = (t.numpy() for t in dcg_neighbors_reference(
        torch.from_numpy(boxes), torch.from_numpy(scores), k, iou_threshold, low_score))
    assert set(np.unique(valid)) <= {0, 1} and valid.sum() == ref_valid.sum() > 50
    if (iou_threshold, low_score) != (0.4, 0.1):  # the case tells the attributes from the defaults
        assert dcg_neighbors_reference(torch.from_numpy(boxes), torch.from_numpy(scores), k)[1].sum() > valid.sum()
    for bi in range(b):
        for i in range(n):
            got = set(idx[bi, i][valid[bi, i] == 1].tolist())
            want = set(ref_idx[bi, i][ref_valid[bi, i]].tolist())
            assert got == want or len(got) == len(want) == k, (bi, i, got, want)  # ties at the k-th place


def test_ort_is_torch_free():
    code = "import sys, detrt.ops.ort as o; o.InferenceSession; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
