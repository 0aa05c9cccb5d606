"""NVIDIA's MSDA plugin node on values that could be wrong: the Reshape that merges its heads keeps batch and
queries (0, 0) and merges the rest (-1), and a value tensor of unknown shape leaves the heads' shape unknown."""

import numpy as np
import onnx_graphsurgeon as gs
from onnx import TensorProto as TP
from onnx import helper

from detrt.compile import surgery
from detrt.ops.names import NVIDIA_MSDA_OP
from tests.compile.test_surgery import apply, tiny_model


def _nvidia(model):
    model, _ = apply(model, *surgery.passes_for("plugin", msda_plugin="nvidia"))
    graph = gs.import_onnx(model)
    node = next(n for n in graph.nodes if n.op == NVIDIA_MSDA_OP)
    return graph, node


def test_heads_reshape_keeps_batch_and_queries():
    graph, node = _nvidia(tiny_model())
    reshape = node.outputs[0].outputs[0]
    assert reshape.op == "Reshape" and reshape.inputs[1].values.tolist() == [0, 0, -1]


def test_value_of_unknown_shape_leaves_the_heads_unknown():
    model = tiny_model()
    value = next(i for i in model.graph.input if i.name == "v")
    value.CopyFrom(helper.make_tensor_value_info("v", TP.FLOAT, None))
    _, node = _nvidia(model)
    assert node.outputs[0].shape is None and node.outputs[0].dtype == np.float32
