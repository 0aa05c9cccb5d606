"""detrt.bench.roofline: FLOPs and bytes of tiny graphs against hand-computed numbers."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from detrt.bench.roofline import (count_graph, infer_shapes, measure_peak, roofline, roofline_line,
                                  shapes_from_onnxruntime)


def _init(name, shape):
    return numpy_helper.from_array(np.ones(shape, np.float32), name)


def conv_matmul_model():
    """images [B,3,8,8] -> Conv 3x3 (4 ch, pad 1) -> grouped Conv 1x1 (group 2, 4->6, stride 2)
    -> Reshape [B, 96] -> MatMul [96, 10] -> Gemm (transB, [5, 10]) -> out [B, 5]."""
    nodes = [
        helper.make_node("Conv", ["images", "w1", "b1"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], kernel_shape=[1, 1], strides=[2, 2], group=2),
        helper.make_node("Reshape", ["c2", "shape"], ["flat"]),
        helper.make_node("MatMul", ["flat", "w3"], ["m"]),
        helper.make_node("Gemm", ["m", "w4"], ["out"], transB=1),
    ]
    inits = [_init("w1", [4, 3, 3, 3]), _init("b1", [4]), _init("w2", [6, 2, 1, 1]),
             numpy_helper.from_array(np.array([0, 96], np.int64), "shape"), _init("w3", [96, 10]), _init("w4", [5, 10])]
    g = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["B", 3, 8, 8])],
                          [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["B", 5])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


@pytest.mark.parametrize("batch", [1, 3])
def test_conv_matmul_gemm_flops_and_bytes(batch, tmp_path):
    model = conv_matmul_model()
    path = tmp_path / "tiny.onnx"
    onnx.save(model, path)
    cost = count_graph(path, batch)
    conv1 = 2 * batch * 4 * 8 * 8 * (3 * 3 * 3)  # out elements x (Cin/group x kh x kw) MACs
    conv2 = 2 * batch * 6 * 4 * 4 * (2 * 1 * 1)  # stride 2: 4x4 out, group 2: 2 input channels per output
    matmul = 2 * batch * 10 * 96
    gemm = 2 * batch * 5 * 10
    assert cost.by_op == {"Conv": {"count": 2, "flops": conv1 + conv2}, "MatMul": {"count": 1, "flops": matmul},
                          "Gemm": {"count": 1, "flops": gemm}}
    assert cost.flops == conv1 + conv2 + matmul + gemm
    weights = 4 * (4 * 27 + 4 + 6 * 2 + 96 * 10 + 5 * 10) + 8 * 2  # float32 weights + the int64 shape
    assert cost.weights_bytes == weights
    assert cost.bytes_compulsory == weights + 4 * batch * (3 * 64 + 5)
    per_node = [(3 * 64 + 4 * 27 + 4, 4 * 64), (4 * 64, 4 * 64), (4 * 64 + 6 * 2, 6 * 16), (6 * 16, 96), (96 + 960, 10),
                (10 + 50, 5)]  # (inputs, outputs) in float32 elements per node, batch 1 (weights do not scale)
    weights_in = [4 * 27 + 4, 0, 6 * 2, 0, 960, 50]
    elems = sum((i - w) * batch + w + o * batch for (i, o), w in zip(per_node, weights_in))
    assert cost.bytes_unfused == 4 * elems + 16  # + the Reshape's int64 shape input
    assert not cost.unknown_shapes


def test_msda_and_gridsample_flops():
    s, m, d, lq, levels, points = 10, 2, 4, 5, 2, 3
    vi = helper.make_tensor_value_info
    nodes = [
        helper.make_node("MSDeformAttn", ["value", "shapes", "starts", "loc", "attn"], ["o"], domain="detrt"),
        helper.make_node("GridSample", ["feat", "grid"], ["gs"], mode="bilinear"),
        helper.make_node("GridSample", ["feat", "grid"], ["gs_nearest"], mode="nearest"),
    ]
    levels_hw = numpy_helper.from_array(np.array([[2, 3], [2, 2]], np.int32), "shapes")  # 6 + 4 = s positions
    starts = numpy_helper.from_array(np.array([0, 6], np.int32), "starts")
    g = helper.make_graph(
        nodes, "ops",
        [vi("value", TensorProto.FLOAT, ["B", s, m, d]), vi("loc", TensorProto.FLOAT, ["B", lq, m, levels, points, 2]),
         vi("attn", TensorProto.FLOAT, ["B", lq, m, levels, points]), vi("feat", TensorProto.FLOAT, ["B", 3, 6, 6]),
         vi("grid", TensorProto.FLOAT, ["B", 4, 5, 2])],
        [vi("o", TensorProto.FLOAT, None), vi("gs", TensorProto.FLOAT, None),
         vi("gs_nearest", TensorProto.FLOAT, None)], initializer=[levels_hw, starts])
    # ir_version 10: one that every supported ONNX Runtime accepts, so the graph really runs below
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("detrt", 1)],
                              ir_version=10)
    for batch in (1, 2):
        cost = count_graph(model, batch)
        assert cost.by_op["MSDeformAttn"]["flops"] == 10 * batch * lq * m * levels * points * d
        assert cost.by_op["GridSample"]["flops"] == (8 + 2) * batch * 3 * 4 * 5
    _, types, _ = infer_shapes(model, batch=3)  # fixes the batch in the graph, as count_graph does
    # shapes_from_onnxruntime runs the graph, detrt::MSDeformAttn through the CPU kernel ({} if it cannot run)
    assert shapes_from_onnxruntime(model, ["o", "gs"], types, batch=3) == {"o": [3, lq, m * d], "gs": [3, 3, 4, 5]}


def test_roofline_bound_and_fraction():
    class Cost:
        flops, bytes_compulsory, bytes_unfused = 10e9, 1e9, 4e9

    peak = {"matmul_gflops": 100.0, "copy_gbps": 20.0}
    r = roofline(Cost, peak, seconds=0.2)
    assert r["bound_ms"] == pytest.approx(100.0) and r["limited_by"] == "compute"  # 10 GFLOP / 100 GFLOP/s
    assert r["fraction_of_roof"] == pytest.approx(0.5) and r["achieved_gflops"] == pytest.approx(50.0)
    Cost.bytes_compulsory = 4e9  # now 200 ms of copying at 20 GB/s
    r = roofline(Cost, peak, seconds=0.4)
    assert r["limited_by"] == "memory" and r["bound_ms"] == pytest.approx(200.0)
    assert "50% of roof" in roofline_line(Cost, peak, 0.4)


def test_measure_peak_is_positive():
    p = measure_peak(seconds=0.2, n=256, copy_mb=8, threads=1)
    assert p["matmul_gflops"] > 0.1 and p["copy_gbps"] > 0.1
    assert p["matmul_gflops"] == max(p["numpy_matmul_gflops"], p.get("onnxruntime_matmul_gflops", 0))


def test_onnxruntime_fused_ops_count_like_their_standard_twins():
    vi = helper.make_tensor_value_info
    nodes = [helper.make_node("FusedMatMul", ["a", "w"], ["y"], domain="com.microsoft", transA=1, alpha=1.0),
             helper.make_node("MatMulIntegerToFloat", ["q", "wq", "sa", "sb"], ["z"], domain="com.microsoft")]
    g = helper.make_graph(
        nodes, "fused",
        [vi("a", TensorProto.FLOAT, ["B", 7, 5]), vi("q", TensorProto.UINT8, ["B", 3, 7]),
         vi("sa", TensorProto.FLOAT, []), vi("sb", TensorProto.FLOAT, [])],
        [vi("y", TensorProto.FLOAT, ["B", 5, 4]), vi("z", TensorProto.FLOAT, ["B", 3, 4])],
        [_init("w", [7, 4]), numpy_helper.from_array(np.ones((7, 4), np.uint8), "wq")])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 8
    cost = count_graph(model, 2)  # ONNX shape inference does not know these ops: shapes from one ORT run
    assert cost.by_op["FusedMatMul"]["flops"] == 2 * 2 * 5 * 4 * 7  # transA: K is a's second-last dim
    assert cost.by_op["MatMulIntegerToFloat"]["flops"] == 2 * 2 * 3 * 4 * 7
