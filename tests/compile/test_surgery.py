"""Graph-surgery passes, each on a tiny hand-built graph (detrt/compile/surgery.py)."""

import numpy as np
import onnx
import onnx_graphsurgeon as gs
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto as TP
from onnx import helper, numpy_helper

from detrt.compile import surgery
from detrt.ops.dcg import dcg_neighbors_reference
from detrt.ops.msda import ms_deform_attn_reference
from detrt.ops.names import NVIDIA_MSDA_OP, PORTABLE_DOMAIN

SHAPES = [(6, 4), (2, 2), (2, 2)]  # even, so that spatial_shapes = half + half is exact
N, LQ, M, D, L, P = 2, 7, 2, 4, 3, 4  # heads != levels != points
S = sum(h * w for h, w in SHAPES)
K = 12  # more slots than boxes: exercises the padding branch
IOU, LOW = 0.3, 0.25  # not DCG's defaults (0.4, 0.1): a pass that drops the attributes changes the neighbours


def tiny_model(opset=17):
    """One detrt::MSDeformAttn (shape inputs int64 behind a foldable Add) and one detrt::DCGNeighbors."""
    starts = np.concatenate([[0], np.cumsum([h * w for h, w in SHAPES])[:-1]])
    nodes = [
        helper.make_node("Add", ["ss_half", "ss_half"], ["ss"], name="fold_me"),
        helper.make_node("MSDeformAttn", ["v", "ss", "lsi", "loc", "aw"], ["o"], name="msda", domain="detrt"),
        helper.make_node("DCGNeighbors", ["bx", "sc"], ["idx32", "val"], name="dcg", domain="detrt",
                         k=K, iou_threshold=IOU, low_score=LOW),
        helper.make_node("Cast", ["idx32"], ["idx"], to=TP.INT64),
    ]
    inputs = [helper.make_tensor_value_info("v", TP.FLOAT, ["N", S, M, D]),
              helper.make_tensor_value_info("loc", TP.FLOAT, ["N", LQ, M, L, P, 2]),
              helper.make_tensor_value_info("aw", TP.FLOAT, ["N", LQ, M, L, P]),
              helper.make_tensor_value_info("bx", TP.FLOAT, ["B", 10, 4]),
              helper.make_tensor_value_info("sc", TP.FLOAT, ["B", 10])]
    outputs = [helper.make_tensor_value_info("o", TP.FLOAT, None),
               helper.make_tensor_value_info("idx", TP.INT64, None),
               helper.make_tensor_value_info("val", TP.INT32, None)]
    inits = [helper.make_tensor("ss_half", TP.INT64, [L, 2], (np.array(SHAPES) // 2).flatten().tolist()),
             helper.make_tensor("lsi", TP.INT64, [L], starts.tolist())]
    graph = helper.make_graph(nodes, "tiny", inputs, outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid("detrt", 1)],
                             ir_version=surgery.IR_VERSION)


def feeds(seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0.3, 0.6, (2, 10, 2))
    sizes = rng.uniform(0.1, 0.4, (2, 10, 2))
    return {"v": rng.standard_normal((N, S, M, D)).astype(np.float32),
            "loc": rng.uniform(-0.2, 1.2, (N, LQ, M, L, P, 2)).astype(np.float32),  # outside [0, 1] too
            "aw": rng.random((N, LQ, M, L, P)).astype(np.float32),
            "bx": np.concatenate([centres, sizes], -1).astype(np.float32),
            "sc": rng.random((2, 10)).astype(np.float32)}


def reference(f):
    t = {k: torch.from_numpy(v) for k, v in f.items()}
    starts = np.concatenate([[0], np.cumsum([h * w for h, w in SHAPES])[:-1]])
    out = ms_deform_attn_reference(t["v"], torch.tensor(SHAPES), torch.from_numpy(starts), t["loc"], t["aw"])
    idx, valid = dcg_neighbors_reference(t["bx"], t["sc"], K, IOU, LOW)
    return out.numpy(), idx.numpy(), valid.numpy()


def apply(model, *passes):
    graph, changes = surgery.run_passes(gs.import_onnx(model), passes)
    return surgery.export_model(graph), dict(changes)


def ops(model):
    return [(n.domain, n.op_type) for n in model.graph.node]


def test_fold_constants_removes_shape_arithmetic():
    model, changes = apply(tiny_model(), surgery.fold_constants)
    assert ("", "Add") not in ops(model)
    assert "removed Add x1" in changes["fold_constants"]


def test_to_portable_runs_on_plain_onnxruntime_and_matches_reference():
    model, _ = apply(tiny_model(), *surgery.passes_for("portable"))
    assert {d for d, _ in ops(model)} <= {"", PORTABLE_DOMAIN}
    onnx.checker.check_model(model, full_check=True)
    f = feeds()
    out, idx, valid = ort.InferenceSession(model.SerializeToString()).run(["o", "idx", "val"], f)
    assert valid.dtype == np.int32 and set(np.unique(valid)) <= {0, 1}  # the op's mask is int32 0/1
    valid = valid.astype(bool)
    ref_out, ref_idx, ref_valid = reference(f)
    assert np.abs(out - ref_out).max() < 1e-5
    assert ref_valid.sum() > 0 and (valid == ref_valid).all()
    assert dcg_neighbors_reference(torch.from_numpy(f["bx"]), torch.from_numpy(f["sc"]), K)[1].sum() != valid.sum()
    assert (np.where(valid, idx, -1) == np.where(ref_valid, ref_idx, -1)).all()
    assert (idx[~valid] == np.broadcast_to(np.arange(10)[None, :, None], idx.shape)[~valid]).all()


def test_to_plugins_tags_nodes_for_the_tensorrt_parser_and_round_trips():
    portable, _ = apply(tiny_model(), *surgery.passes_for("portable"))
    plugin, changes = apply(portable, *surgery.passes_for("plugin"))
    assert ("detrt", "MSDeformAttn") in ops(plugin) and ("detrt", "DCGNeighbors") in ops(plugin)
    assert not plugin.functions
    onnx.checker.check_model(plugin, full_check=True)
    for node in plugin.graph.node:
        if node.domain == "detrt":
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            assert attrs["plugin_namespace"] == b"detrt" and attrs["plugin_version"] == b"1"
            if node.op_type == "DCGNeighbors":  # through the portable function and back
                assert (attrs["k"], attrs["iou_threshold"], attrs["low_score"]) == (K, pytest.approx(IOU),
                                                                                  pytest.approx(LOW))
    assert "detrt.portable::MSDeformAttn x1; added" in changes["to_plugins"]


def test_int32_shape_inputs_converts_constants_and_casts_variables():
    model, _ = apply(tiny_model(), surgery.fold_constants, surgery.int32_shape_inputs)
    graph = gs.import_onnx(model)
    msda = next(n for n in graph.nodes if n.op == "MSDeformAttn")
    assert msda.inputs[1].dtype == np.int32 and msda.inputs[2].dtype == np.int32
    assert msda.inputs[1].values.tolist() == [list(s) for s in SHAPES]
    # not folded first: spatial_shapes is computed, so a Cast goes in front
    model, _ = apply(tiny_model(), surgery.int32_shape_inputs)
    assert ("", "Cast") in ops(model)[:3] or sum(op == "Cast" for _, op in ops(model)) == 2
    casts = [n for n in gs.import_onnx(model).nodes if n.name.endswith("/cast_int32")]
    assert casts and all(n.attrs == {"to": TP.INT32} for n in casts)


def test_infer_plugin_shapes_sets_output_types():
    graph = surgery.infer_plugin_shapes(gs.import_onnx(tiny_model()))
    msda = next(n for n in graph.nodes if n.op == "MSDeformAttn")
    dcg = next(n for n in graph.nodes if n.op == "DCGNeighbors")
    assert msda.outputs[0].shape == ["N", LQ, M * D] and msda.outputs[0].dtype == np.float32
    assert dcg.outputs[0].shape == ["B", 10, K] and dcg.outputs[0].dtype == np.int32
    assert dcg.outputs[1].dtype == np.int32


def test_to_nvidia_msda_adds_reshape_of_heads():
    model, _ = apply(tiny_model(), *surgery.passes_for("plugin", msda_plugin="nvidia"))
    node = next(n for n in model.graph.node if n.op_type == NVIDIA_MSDA_OP)
    assert node.domain == "trt"
    reshape = next(n for n in model.graph.node if n.input and n.input[0] == node.output[0])
    assert reshape.op_type == "Reshape"
    graph = gs.import_onnx(model)
    heads = graph.tensors()[node.output[0]]
    assert heads.shape == ["N", LQ, M, D]
    # NVIDIA's documented input order (TensorRT plugin/multiscaleDeformableAttnPlugin/README.md): value,
    # spatial_shapes, level_start_index, sampling_locations, attention_weights
    value, shapes, starts, locations, weights = (graph.tensors()[name] for name in node.input)
    assert value.name == "v" and locations.name == "loc" and weights.name == "aw"
    assert shapes.dtype == starts.dtype == np.int32
    assert shapes.values.tolist() == [list(s) for s in SHAPES] and starts.values.tolist() == [0, 24, 28]


def test_toposort_and_cleanup():
    model = tiny_model()
    model.graph.node.reverse()
    model.graph.node.append(helper.make_node("Relu", ["v"], ["unused"], name="dead"))
    model, changes = apply(model, surgery.cleanup, surgery.toposort)
    assert "removed Relu x1" in changes["cleanup"]
    produced = set(i.name for i in model.graph.input) | set(i.name for i in model.graph.initializer)
    for node in model.graph.node:
        assert all(i in produced for i in node.input if i)
        produced.update(node.output)


def test_unknown_form_is_refused():
    with pytest.raises(ValueError):
        surgery.passes_for("tensorrt")


def test_portable_msda_sums_each_level_without_a_concat_of_samples():
    model, _ = apply(tiny_model(), *surgery.passes_for("portable"))
    (body,) = [f.node for f in model.functions if f.name == "MSDeformAttn"]
    sampled = {o for n in body if n.op_type in ("GridSample", "Mul", "ReduceSum") for o in n.output}
    assert not sampled & {i for n in body if n.op_type == "Concat" for i in n.input}
    assert sum(n.op_type == "GridSample" for n in body) == sum(n.op_type == "ReduceSum" for n in body) == L
    assert [len(n.input) for n in body if n.op_type == "Sum"] == [L]


def group_norm_model(opset, affine=True):
    """torch's export of Conv -> GroupNorm(2 groups, 8 channels, random affine) at `opset` (torch writes <= 20)."""
    import io
    import warnings

    from detrt.compile.export import TORCH_MAX_OPSET
    from detrt.compile.onnx_io import upgrade_opset

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 1), torch.nn.GroupNorm(2, 8, affine=affine)).eval()
    if affine:
        torch.nn.init.normal_(net[1].weight)
        torch.nn.init.normal_(net[1].bias)
    x = torch.randn(2, 3, 5, 6)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy-exporter notice, TracerWarnings
        torch.onnx.export(net, (x,), buffer, dynamo=False, opset_version=min(opset, TORCH_MAX_OPSET),
                          input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "n"}})
    with torch.no_grad():
        want = net(x).numpy()
    return upgrade_opset(onnx.load_from_string(buffer.getvalue()), opset), x.numpy(), want


def test_group_norm_op_fuses_the_exported_pattern_from_opset_21():
    model, x, want = group_norm_model(21)
    fused, changes = apply(model, surgery.infer_shapes, surgery.fold_constants, surgery.group_norm_op)
    assert [op for _, op in ops(fused)] == ["Conv", "GroupNormalization"], changes
    onnx.checker.check_model(fused, full_check=True)
    norm = fused.graph.node[1]
    assert helper.get_attribute_value(next(a for a in norm.attribute if a.name == "num_groups")) == 2
    (y,) = ort.InferenceSession(fused.SerializeToString()).run(None, {"x": x})
    assert np.abs(y - want).max() < 1e-5
    # older opsets keep the pattern (opset 18's GroupNormalization scales per group)
    old, _ = apply(group_norm_model(20)[0], surgery.infer_shapes, surgery.fold_constants, surgery.group_norm_op)
    assert ("", "InstanceNormalization") in ops(old) and ("", "GroupNormalization") not in ops(old)
    # without a per-channel affine it is not the pattern: left alone
    plain, _ = apply(group_norm_model(21, affine=False)[0], surgery.infer_shapes, surgery.group_norm_op)
    assert ("", "InstanceNormalization") in ops(plain)


def test_inline_functions_names_each_expanded_node_after_its_call():
    from detrt.compile.onnx_io import inline_functions

    portable, _ = apply(tiny_model(), *surgery.passes_for("portable"))
    inlined = inline_functions(portable)
    assert not inlined.functions and {d for d, _ in ops(inlined)} == {""}
    onnx.checker.check_model(inlined, full_check=True)
    names = [n.name for n in inlined.graph.node]
    assert len(set(names)) == len(names)
    top = {n.name for n in portable.graph.node if n.domain == ""}  # the nodes that were never calls
    assert all(name in top or name.startswith(("msda/", "dcg/")) for name in names)
    assert any(n.op_type == "GridSample" and n.name.startswith("msda/") for n in inlined.graph.node)
    assert any(n.op_type == "TopK" and n.name.startswith("dcg/") for n in inlined.graph.node)
    f = feeds()
    got = ort.InferenceSession(inlined.SerializeToString()).run(["o", "idx", "val"], f)
    want = ort.InferenceSession(portable.SerializeToString()).run(["o", "idx", "val"], f)
    for a, b in zip(got, want):
        assert (a == b).all()


def test_merge_constant_adds_sums_a_chain_of_constants_into_one_add():
    rng = np.random.default_rng(0)
    bias, rows, col = (rng.standard_normal(s).astype(np.float32) for s in ((4,), (1, 5, 4), (5, 1)))
    nodes = [helper.make_node("MatMul", ["x", "w"], ["xw"]),
             helper.make_node("Add", ["bias", "xw"], ["a1"]),  # a Linear's bias...
             helper.make_node("Add", ["a1", "rows"], ["a2"]),  # ...then a constant residual: one Add
             helper.make_node("Add", ["a2", "col"], ["a3"]),  # [5, 1]: the sum would be no larger, merged too
             helper.make_node("Add", ["xw", "col"], ["b1"]),  # read twice: kept
             helper.make_node("Add", ["b1", "bias"], ["b2"]),
             helper.make_node("Relu", ["b1"], ["r"])]
    inits = [numpy_helper.from_array(v, n) for n, v in (("bias", bias), ("rows", rows), ("col", col),
                                                         ("w", rng.standard_normal((3, 4)).astype(np.float32)))]
    graph = helper.make_graph(nodes, "adds", [helper.make_tensor_value_info("x", TP.FLOAT, ["B", 5, 3])],
                              [helper.make_tensor_value_info(n, TP.FLOAT, None) for n in ("a3", "b2", "r")], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=surgery.IR_VERSION)
    merged, _ = apply(model, surgery.merge_constant_adds)
    assert [op for _, op in ops(merged)] == ["MatMul", "Add", "Add", "Add", "Relu"]
    x = {"x": rng.standard_normal((2, 5, 3)).astype(np.float32)}
    want = ort.InferenceSession(model.SerializeToString()).run(None, x)
    for a, b in zip(ort.InferenceSession(merged.SerializeToString()).run(None, x), want):
        assert np.abs(a - b).max() < 1e-5
    # a [5, 1] constant and a [1, 4] one would sum to [5, 4]: left as two Adds
    grow = helper.make_graph([helper.make_node("Add", ["x", "col"], ["t"]),
                              helper.make_node("Add", ["t", "row"], ["y"])], "grow",
                             [helper.make_tensor_value_info("x", TP.FLOAT, ["B", 5, 4])],
                             [helper.make_tensor_value_info("y", TP.FLOAT, None)],
                             [numpy_helper.from_array(col, "col"), numpy_helper.from_array(bias[None], "row")])
    grow = helper.make_model(grow, opset_imports=[helper.make_opsetid("", 17)], ir_version=surgery.IR_VERSION)
    kept, _ = apply(grow, surgery.merge_constant_adds)
    assert [op for _, op in ops(kept)] == ["Add", "Add"]


def test_portable_functions_refuse_mixed_level_counts():
    with pytest.raises(ValueError, match=r"MSDeformAttn nodes with different numbers of levels: \[3, 4\]"):
        surgery._attach_portable_functions(gs.Graph(opset=17), {4, 3})
