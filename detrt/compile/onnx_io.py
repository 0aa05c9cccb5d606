"""ONNX files in and out of compile: read with one clear error, write with the manifest beside."""

import re
from pathlib import Path

import onnx
import onnx.inliner
import onnx.version_converter

from detrt.errors import InputError
from detrt.manifest import save_artifact


def load_onnx(path):
    """Read an ONNX file; InputError if it is missing or not ONNX."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such ONNX file")
    try:
        model = onnx.load(str(path))
    except Exception as e:  # protobuf's DecodeError and friends
        raise InputError(f"{path}: not an ONNX model ({type(e).__name__})") from None
    if not model.graph.node:
        raise InputError(f"{path}: not an ONNX model (no graph nodes)")
    return model


def save_onnx(model, path, manifest=None):
    """Write `model` atomically with `manifest` beside it (its onnx_sha256 set from the bytes); return it."""
    return save_artifact(path, lambda tmp: onnx.save(model, str(tmp)), manifest)


def inline_functions(model):
    """`model` with its model-local functions expanded into the graph (standard ops only, no FunctionProto).

    For runtimes that refuse local functions (OpenVINO's ONNX reader). onnx.inliner leaves the expanded
    nodes unnamed and suffixes their inner tensors with the call's ordinal (`__3` for the third call); each
    expanded node is named `<call node>/<op>_<i>` from it (or from the call output it writes), so that a
    profile attributes its time to the op that was called (MSDA, DCG), as for the nodes the exporter named.
    """
    local = {(f.domain, f.name) for f in model.functions}
    calls = [n.name for n in model.graph.node if (n.domain, n.op_type) in local]
    caller = {out: n.name for n in model.graph.node if (n.domain, n.op_type) in local for out in n.output}
    inlined = onnx.inliner.inline_local_functions(model)
    for i, node in enumerate(inlined.graph.node):
        if node.name or not node.output:
            continue
        ordinal = re.search(r"__(\d+)$", node.output[0])
        call = caller.get(node.output[0])
        if call is None and ordinal and 1 <= int(ordinal.group(1)) <= len(calls):
            call = calls[int(ordinal.group(1)) - 1]
        if call:
            node.name = f"{call}/{node.op_type}_{i}"
    return inlined


def upgrade_opset(model, opset):
    """`model` at ONNX opset `opset` (onnx's version converter) if it imports an older one; else `model`.

    Before any model-local function is attached (export) or after they are inlined: the converter
    rewrites the graph only, and a function's opset must equal its model's.
    """
    if next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= opset:
        return model
    return onnx.version_converter.convert_version(model, opset)
