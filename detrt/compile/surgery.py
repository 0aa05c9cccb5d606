"""Graph surgery: small named passes, each onnx-graphsurgeon Graph -> Graph.

    graph = gs.import_onnx(model)
    graph, changes = run_passes(graph, passes_for("plugin", msda_plugin="detrt"))
    model = export_model(graph)

The two special ops exist in three spellings; the passes move a graph between them:

- `detrt::MSDeformAttn`, `detrt::DCGNeighbors`: our plugin nodes (the form TensorRT parses with
  libdetrt_plugins.so loaded, and ONNX Runtime runs with the CPU kernels as custom ops);
- `detrt.portable::...`: the same node, defined by a model-local function of standard ops
  (`portable_ops.py`); ONNX Runtime runs it with nothing registered;
- `trt::MultiscaleDeformableAttnPlugin_TRT`: NVIDIA's built-in MSDA plugin (output [N, Lq, M, D], so a
  Reshape to [N, Lq, M*D] follows it).

Each pass changes the graph in place and returns it; `run_passes` records what each one changed
(`detrt surgery --print`). Passes from elsewhere (precision.passes_for) join the same list, so that one
`detrt build` imports the model once, runs one list and exports once.
"""

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnx_graphsurgeon as gs
import onnxruntime as ort

from detrt.compile.onnx_io import load_onnx, save_onnx
from detrt.compile.portable_ops import dcg_function, msda_function
from detrt.errors import InputError
from detrt.manifest import load_manifest, manifest_path
from detrt.ops.names import (DCG_OP, DETRT_DOMAIN, DETRT_OPS, MSDA_OP, NVIDIA_DOMAIN, NVIDIA_MSDA_OP,
                             NVIDIA_MSDA_VERSION, PLUGIN_VERSION, PORTABLE_DOMAIN)

# ONNX IR version written: ONNX Runtime 1.17+ reads 9, and onnx >= 1.19 would otherwise write one it rejects.
IR_VERSION = 9


def is_detrt(node, op=None):
    return node.domain == DETRT_DOMAIN and (node.op in DETRT_OPS if op is None else node.op == op)


def form_of(model):
    """"plugin" if the ModelProto has plugin nodes (detrt::, or NVIDIA's trt::), else "portable"."""
    return "plugin" if any(n.domain in (DETRT_DOMAIN, NVIDIA_DOMAIN) for n in model.graph.node) else "portable"


def fold_constants(graph):
    """Evaluate every subgraph that depends on constants only (shape arithmetic, spatial shapes)."""
    ort.set_default_logger_severity(3)  # gs folds through ONNX Runtime sessions, whose optimizer warns per node
    try:
        return graph.fold_constants(error_ok=False).cleanup()
    finally:
        ort.set_default_logger_severity(2)  # ONNX Runtime's default


def cleanup(graph):
    """Drop nodes and tensors that no graph output depends on."""
    return graph.cleanup()


def toposort(graph):
    """Order nodes so that each comes after the producers of its inputs."""
    return graph.toposort()


def to_portable(graph):
    """detrt:: plugin nodes -> detrt.portable:: calls of model-local standard-op functions."""
    levels = set()
    for node in graph.nodes:
        if is_detrt(node):
            node.domain = PORTABLE_DOMAIN
            for key in ("plugin_namespace", "plugin_version"):
                node.attrs.pop(key, None)
            if node.op == MSDA_OP:
                levels.add(_num_levels(node))
    _attach_portable_functions(graph, levels)
    return graph


def to_plugins(graph):
    """detrt.portable:: calls -> detrt:: plugin nodes, tagged with the fields TensorRT's ONNX parser reads.

    The parser looks a plugin up by op type, the `plugin_version` attribute and the `plugin_namespace`
    attribute (the node's domain is not used), and passes the creator only the fields it declares.
    """
    for node in graph.nodes:
        if node.domain == PORTABLE_DOMAIN and node.op in DETRT_OPS:
            node.domain = DETRT_DOMAIN
        if is_detrt(node):
            node.attrs["plugin_namespace"] = DETRT_DOMAIN
            node.attrs["plugin_version"] = PLUGIN_VERSION
    graph.functions = [f for f in graph.functions if f.domain != PORTABLE_DOMAIN]
    return graph


def int32_shape_inputs(graph):
    """spatial_shapes and level_start_index of plugin MSDA nodes as int32 (what the plugins read)."""
    converted = {}  # one int32 twin per tensor, shared by every node that reads it
    for node in graph.nodes:
        if is_detrt(node, MSDA_OP) or node.op == NVIDIA_MSDA_OP:
            for slot in (1, 2):
                tensor = node.inputs[slot]
                if tensor.dtype == np.int32:
                    continue
                if tensor.name not in converted:
                    if isinstance(tensor, gs.Constant):
                        converted[tensor.name] = gs.Constant(f"{tensor.name}_int32", tensor.values.astype(np.int32))
                    else:
                        cast = gs.Variable(f"{tensor.name}_int32", dtype=np.int32, shape=tensor.shape)
                        graph.nodes.append(gs.Node("Cast", f"{tensor.name}/cast_int32", {"to": onnx.TensorProto.INT32},
                                                   [tensor], [cast]))
                        converted[tensor.name] = cast
                node.inputs[slot] = converted[tensor.name]
    return graph


def to_nvidia_msda(graph):
    """detrt::MSDeformAttn -> trt::MultiscaleDeformableAttnPlugin_TRT + Reshape [N, Lq, M, D] -> [N, Lq, M*D]."""
    for node in [n for n in graph.nodes if is_detrt(n, MSDA_OP)]:
        out = node.outputs[0]
        value, locations = node.inputs[0], node.inputs[3]
        shape4 = None
        if value.shape is not None and locations.shape is not None:
            shape4 = [value.shape[0], locations.shape[1], value.shape[2], value.shape[3]]
        heads = gs.Variable(f"{out.name}_heads", dtype=out.dtype, shape=shape4)
        nvidia = gs.Node(NVIDIA_MSDA_OP, node.name, {"plugin_version": NVIDIA_MSDA_VERSION, "plugin_namespace": ""},
                         list(node.inputs), [heads], domain=NVIDIA_DOMAIN)
        shape = gs.Constant(f"{out.name}_shape", np.array([0, 0, -1], dtype=np.int64))
        node.outputs.clear()
        node.inputs.clear()
        graph.nodes += [nvidia, gs.Node("Reshape", f"{node.name}/merge_heads", inputs=[heads, shape], outputs=[out])]
    return graph.cleanup()


GROUP_NORM_OPSET = 21  # GroupNormalization with per-channel scale and bias (opset 18's, per group, is deprecated)


def group_norm_op(graph):
    """GroupNorm as exported (Reshape [0, G, -1] -> InstanceNormalization -> Reshape back -> Mul -> Add)
    -> one GroupNormalization node, in graphs of opset >= 21; older graphs keep the pattern.

    A runtime with a GroupNormalization kernel (OpenVINO) then normalizes in the input's own layout, where
    the pattern's reshapes force layout copies. Only the exact pattern is taken: unit InstanceNormalization
    scale, zero bias, and a per-channel affine [C, 1, ..] that follows it and nothing else.
    """
    if graph.opset < GROUP_NORM_OPSET:
        return graph
    for norm in [n for n in graph.nodes if n.op == "InstanceNormalization"]:
        match = _group_norm_pattern(graph, norm)
        if match is None:
            continue
        x, groups, scale, bias, add = match
        out = add.outputs[0]
        add.outputs.clear()
        graph.nodes.append(gs.Node("GroupNormalization", f"{norm.name}/GroupNormalization",
                                   {"num_groups": groups, "epsilon": float(norm.attrs.get("epsilon", 1e-5))},
                                   [x, scale, bias], [out]))
    return graph.cleanup()


def _group_norm_pattern(graph, norm):
    """(x, groups, scale [C], bias [C], the Add node) if `norm` is the middle of an exported GroupNorm, else None."""
    def only_consumer(tensor, op):  # an intermediate that the fused node absorbs: read by one node, no graph output
        users = tensor.outputs
        return users[0] if len(users) == 1 and users[0].op == op and tensor not in graph.outputs else None

    split, unit, zero = norm.inputs[0], norm.inputs[1], norm.inputs[2]
    if not split.inputs or split.inputs[0].op != "Reshape" or not isinstance(unit, gs.Constant):
        return None
    reshape = split.inputs[0]
    x, shape = reshape.inputs
    groups = unit.values.size
    if not (isinstance(shape, gs.Constant) and shape.values.tolist() == [0, groups, -1]) or \
            not (isinstance(zero, gs.Constant) and (unit.values == 1).all() and (zero.values == 0).all()):
        return None
    back = only_consumer(norm.outputs[0], "Reshape")
    back_shape = back.inputs[1] if back else None
    if back is None or not (back_shape.inputs and back_shape.inputs[0].op == "Shape" and
                            back_shape.inputs[0].inputs[0] is x):
        return None
    mul = only_consumer(back.outputs[0], "Mul")
    add = only_consumer(mul.outputs[0], "Add") if mul else None
    if add is None:
        return None
    affine = []
    channels = x.shape[1] if x.shape and len(x.shape) > 2 else None
    for node in (mul, add):
        const = [t for t in node.inputs if isinstance(t, gs.Constant)]
        if len(const) != 1 or not isinstance(channels, int) or const[0].values.size != channels or \
                const[0].values.shape[0] != channels or channels % groups:
            return None
        affine.append(gs.Constant(f"{const[0].name}_per_channel", const[0].values.reshape(channels)))
    return x, groups, affine[0], affine[1], add


def merge_constant_adds(graph):
    """Add(Add(x, a), b) with constants a and b, the inner sum read by nothing else -> Add(x, a + b).

    E.g. a Linear's bias followed by a constant residual: CQ-DINO's first selector layer adds the folded
    categories [C, D] to its attention output, one pass over C x D instead of two. Only where a + b is no
    larger than the larger of the two (a [C, 1] + [1, D] pair would grow a constant to C x D).
    """
    for add in [n for n in graph.nodes if n.op == "Add"]:  # topological: a chain of three folds into one
        outer = _constant_operand(add)
        inner = outer[1].inputs[0] if outer and len(outer[1].inputs) == 1 else None
        if inner is None or inner.op != "Add" or len(outer[1].outputs) != 1 or outer[1] in graph.outputs:
            continue
        first = _constant_operand(inner)
        if first is None:
            continue
        merged = first[0].values + outer[0].values
        if merged.dtype == outer[0].values.dtype and merged.size <= max(first[0].values.size, outer[0].values.size):
            add.inputs = [first[1], gs.Constant(f"{outer[0].name}_merged", merged)]
    return graph.cleanup()


def _constant_operand(node):
    """(constant, variable) of a two-input node with exactly one constant input, else None."""
    if len(node.inputs) != 2:
        return None
    a, b = node.inputs
    if isinstance(a, gs.Constant) != isinstance(b, gs.Constant):
        return (a, b) if isinstance(a, gs.Constant) else (b, a)
    return None


def infer_plugin_shapes(graph):
    """Set dtype and shape of plugin outputs from their inputs: ONNX shape inference cannot see into them."""
    for node in graph.nodes:
        if node.op == MSDA_OP and node.domain in (DETRT_DOMAIN, PORTABLE_DOMAIN):
            value, locations = node.inputs[0], node.inputs[3]
            out = node.outputs[0]
            out.dtype = value.dtype if value.dtype is not None else out.dtype
            if value.shape is not None and locations.shape is not None:
                n, _, m, d = value.shape
                md = m * d if isinstance(m, int) and isinstance(d, int) else None
                out.shape = [n, locations.shape[1], md]
        elif node.op == DCG_OP and node.domain in (DETRT_DOMAIN, PORTABLE_DOMAIN):
            boxes = node.inputs[0]
            indices, valid = node.outputs
            indices.dtype, valid.dtype = np.int32, np.int32
            if boxes.shape is not None:
                shape = [boxes.shape[0], boxes.shape[1], int(node.attrs["k"])]
                indices.shape, valid.shape = list(shape), list(shape)
    return graph


def infer_shapes(graph):
    """ONNX shape inference over the whole graph, seeded with the plugin outputs (infer_plugin_shapes).

    Inference stops at each plugin node, whose inputs it types only on the next round: repeat until
    every plugin output has a dtype.
    """
    plugins = [n for n in graph.nodes if n.domain in (DETRT_DOMAIN, PORTABLE_DOMAIN) and n.op in DETRT_OPS]
    for _ in range(len(plugins) + 1):
        graph = infer_plugin_shapes(graph)
        model = onnx.shape_inference.infer_shapes(export_model(graph, do_type_check=False), data_prop=True)
        graph = gs.import_onnx(model)
        plugins = [n for n in graph.nodes if n.domain in (DETRT_DOMAIN, PORTABLE_DOMAIN) and n.op in DETRT_OPS]
        if all(t.dtype is not None for n in plugins for t in n.outputs):
            break
    return infer_plugin_shapes(graph)


def passes_for(form, msda_plugin="detrt"):
    """The pass list that takes any detrt graph to `form` ("plugin" or "portable")."""
    if form == "portable":
        return [infer_shapes, fold_constants, merge_constant_adds, group_norm_op, to_portable, cleanup, toposort,
                infer_shapes]
    if form != "plugin":
        raise ValueError(f"form must be 'plugin' or 'portable', not {form!r}")
    # shapes first: folding evaluates Shape nodes only where the shape is known
    passes = [infer_shapes, fold_constants, merge_constant_adds, group_norm_op, to_plugins, int32_shape_inputs]
    if msda_plugin == "nvidia":
        passes.append(to_nvidia_msda)
    elif msda_plugin != "detrt":
        raise ValueError(f"msda_plugin must be 'detrt' or 'nvidia', not {msda_plugin!r}")
    return passes + [cleanup, toposort, infer_shapes]


def run_passes(graph, passes):
    """Apply passes in order -> (graph, [(pass name, change summary)])."""
    changes = []
    with gs.logger.G_LOGGER.suppress(gs.logger.G_LOGGER.ERROR):  # not its per-tensor warnings
        for fn in passes:
            before = _op_counts(graph)
            graph = fn(graph)
            changes.append((fn.__name__, _describe(before, _op_counts(graph))))
    return graph, changes


def rewrite(model, passes):
    """ModelProto -> ModelProto through `passes`: one import, one export (none when there are no passes)."""
    if not passes:
        return model
    graph, _ = run_passes(gs.import_onnx(model), passes)
    return export_model(graph)


def export_model(graph, do_type_check=True):
    """gs.Graph -> onnx.ModelProto with the opset imports every node needs and a readable IR version."""
    domains = {n.domain for n in graph.nodes if n.domain not in (None, "", "ai.onnx")}
    imports = [onnx.helper.make_opsetid(d, 1) for d in sorted(domains)]
    have = {i.domain for i in graph.import_domains or []}
    graph.import_domains = list(graph.import_domains or []) + [i for i in imports if i.domain not in have]
    graph.import_domains = [i for i in graph.import_domains if i.domain in domains or i.domain in ("", "ai.onnx")]
    model = gs.export_onnx(graph, do_type_check=do_type_check)
    model.ir_version = IR_VERSION
    return model


def _num_levels(node):
    shape = node.inputs[1].shape
    if not shape or not isinstance(shape[0], int):
        raise ValueError(f"{node.name}: the number of levels (spatial_shapes dim 0) must be static")
    return shape[0]


def _attach_portable_functions(graph, levels):
    """Add the FunctionProtos of portable_ops for the op variants present, as gs Functions."""
    opset = graph.opset
    if len(levels) > 1:
        raise ValueError(f"MSDeformAttn nodes with different numbers of levels: {sorted(levels)}")
    needed = [msda_function(levels.pop(), opset)] if levels else []
    if any(n.domain == PORTABLE_DOMAIN and n.op == DCG_OP for n in graph.nodes):
        needed.append(dcg_function(opset))
    holder = onnx.helper.make_model(onnx.helper.make_graph([], "holder", [], []), functions=needed,
                                    opset_imports=[onnx.helper.make_opsetid("", opset)])
    graph.functions = [f for f in graph.functions if f.domain != PORTABLE_DOMAIN] + gs.import_onnx(holder).functions


def _op_counts(graph):
    return Counter(f"{n.domain}::{n.op}" if n.domain else n.op for n in graph.nodes)


def _describe(before, after):
    removed, added = before - after, after - before
    if not removed and not added:
        return "no change"
    parts = []
    if removed:
        parts.append("removed " + ", ".join(f"{op} x{c}" for op, c in sorted(removed.items())))
    if added:
        parts.append("added " + ", ".join(f"{op} x{c}" for op, c in sorted(added.items())))
    return "; ".join(parts) + f" ({sum(before.values())} -> {sum(after.values())} nodes)"


def run_surgery(input_path, output, form="plugin", msda_plugin="detrt", show=False, log=print):
    """The `detrt surgery` verb: read, rewrite, check, write atomically; the manifest follows when present."""
    model = load_onnx(input_path)
    try:
        graph, changes = run_passes(gs.import_onnx(model), passes_for(form, msda_plugin))
        out = export_model(graph)
        onnx.checker.check_model(out, full_check=True)
    except (ValueError, onnx.checker.ValidationError) as e:  # gs and the checker raise ValueError subclasses
        raise InputError(f"{input_path}: graph surgery failed: {str(e).splitlines()[0]}") from None
    if show and log:
        width = max(len(name) for name, _ in changes)
        for name, what in changes:
            log(f"{name:<{width}}  {what}")
    manifest = None
    if manifest_path(input_path).is_file():
        manifest = load_manifest(input_path).derive(form=form, parent=str(input_path))
    elif log:
        log(f"note: no manifest beside {input_path}; {Path(output).name} has none either")
    save_onnx(out, output, manifest)
    return out
