"""Export: a trained checkpoint -> ONNX (plugin or portable form) + its manifest.

    model, cfg = model_from_checkpoint("runs/tiny")          # detrt.models.checkpoint
    onnx_model = onnx_from_model(model, (256, 384), form="plugin")
    export_checkpoint("runs/tiny", "model.onnx", form="portable")   # the `detrt export` verb

Exporter choice: the TorchScript exporter (`torch.onnx.export(..., dynamo=False)`) with a symbolic per
custom op. It turns `torch.ops.detrt.ms_deform_attn` / `dcg_neighbors` into single `detrt::` nodes,
two-output op included, and records the model's shape arithmetic so the batch stays dynamic. The
dynamo exporter's `custom_translation_table` failed on the two-output op here (its onnxscript opset
has no schema for `detrt::DCGNeighbors`, so the number of outputs is unknown), and it would need the
same op definitions written a second time in onnxscript.

Both forms come from one trace: export always emits the `detrt::` nodes, then graph surgery makes the
requested form (`surgery.passes_for`). The portable form swaps each node for a call of a model-local
function of standard ops (`portable_ops.py`: GridSample MSDA, dense DCG neighbours). The custom-op
symbolics are registered only inside `detrt_symbolics()`, around the one export call, so nothing
global changes how any other export behaves.
"""

import contextlib
import copy
import io
import time
import warnings

import numpy as np
import onnx
import torch
from torch import nn
from torch.onnx import register_custom_op_symbolic, symbolic_helper, unregister_custom_op_symbolic

from detrt.compile import surgery
from detrt.compile.onnx_io import save_onnx, upgrade_opset
from detrt.errors import InputError
from detrt.manifest import INPUTS, Manifest
from detrt.models.checkpoint import model_from_checkpoint
from detrt.models.dhdetr import PostProcess
from detrt.ops.names import DCG_OP, DETRT_DOMAIN, MSDA_OP, OPSET_VERSION, TORCH_DCG_OP, TORCH_MSDA_OP

MIN_OPSET = 17  # LayerNormalization is one node from opset 17 (a split LayerNorm overflows in FP16)
TORCH_MAX_OPSET = 20  # the newest the TorchScript exporter (dynamo=False) writes, in torch 2.5 to 2.13
# Newer opsets: torch's newest, converted by onnx's version converter. 21 is the first whose GroupNormalization
# takes a scale and bias per channel (surgery.group_norm_op).
MAX_OPSET = 21
DEFAULT_OPSET = 17
INT64, BOOL = 7, 9  # onnx.TensorProto.INT64 / BOOL, for Cast's `to`


class ExportWrapper(nn.Module):
    """(images [B, 3, H, W], image_sizes [B, 2]) -> the exported outputs of one model.

    image_sizes: float32 (h, w) of each image at the top-left of its input (the letterbox's resized size);
    the model masks the rest, so the outputs are those of the unpadded image.
    postprocess=True: the model's PostProcess in the graph -> scores [B, K], labels int64 [B, K],
    boxes [B, K, 4] xyxy in network-input pixels, sorted by score (K = min(topk, N * C)); scores below
    score_floor are 0.
    postprocess=False: pred_logits [B, N, C] (apply sigmoid for scores), pred_boxes [B, N, 4] cxcywh in [0, 1]
    of the image.
    image_sizes None (CQ-DINO, which does not mask padding, is exported so): images only, each filling its input.
    """

    def __init__(self, model, postprocess=True, topk=100, score_floor=0.0):
        super().__init__()
        self.model = model
        self.postprocess = PostProcess(topk, score_floor) if postprocess else None

    def forward(self, images, image_sizes=None):
        out = self.model(images, image_sizes)
        if image_sizes is None:  # a graph of images only (CQ-DINO's): each image fills its input
            image_sizes = images.new_tensor([list(images.shape[-2:])]).expand(images.shape[0], 2)
        if self.postprocess is None:
            return out["pred_logits"], out["pred_boxes"]
        det = self.postprocess(out, image_sizes)
        return det["scores"], det["labels"], det["boxes"]


@contextlib.contextmanager
def detrt_symbolics(opset):
    """Within the block, the TorchScript exporter writes the two detrt custom ops as single detrt:: nodes."""
    register_custom_op_symbolic(TORCH_MSDA_OP, _msda_symbolic, opset)
    register_custom_op_symbolic(TORCH_DCG_OP, _dcg_symbolic, opset)
    try:
        yield
    finally:
        unregister_custom_op_symbolic(TORCH_MSDA_OP, opset)
        unregister_custom_op_symbolic(TORCH_DCG_OP, opset)


def _sizes(value):
    return symbolic_helper._get_tensor_sizes(value) or None


def _msda_symbolic(g, value, spatial_shapes, level_start_index, sampling_locations, attention_weights):
    out = g.op(f"{DETRT_DOMAIN}::{MSDA_OP}", value, spatial_shapes, level_start_index, sampling_locations,
               attention_weights)
    v, loc = _sizes(value), _sizes(sampling_locations)
    if v and loc and None not in (v[2], v[3]):
        # batch left unknown: a traced example size must not be folded into the graph's shape arithmetic
        out.setType(value.type().with_sizes([None, loc[1], v[2] * v[3]]))
    return out


def _dcg_symbolic(g, boxes, scores, k, iou_threshold, low_score):
    k = symbolic_helper._get_const(k, "i", "k")
    iou_threshold = symbolic_helper._get_const(iou_threshold, "f", "iou_threshold")
    low_score = symbolic_helper._get_const(low_score, "f", "low_score")
    indices, valid = g.op(f"{DETRT_DOMAIN}::{DCG_OP}", boxes, scores, k_i=k, iou_threshold_f=iou_threshold,
                          low_score_f=low_score, outputs=2)
    b = _sizes(boxes)
    shape = [None, b[1] if b else None, k]
    indices.setType(boxes.type().with_dtype(torch.int32).with_sizes(shape))
    valid.setType(boxes.type().with_dtype(torch.int32).with_sizes(shape))
    # the op contract gives int32 indices and an int32 0/1 mask (TensorRT plugins may not output bool);
    # the model indexes with int64 and masks with bool
    return g.op("Cast", indices, to_i=INT64), g.op("Cast", valid, to_i=BOOL)


def onnx_from_model(model, input_size, form="portable", postprocess=True, topk=100, score_floor=0.0,
                    opset=DEFAULT_OPSET, msda_plugin="detrt", batch=1):
    """Trace `model` at input_size (H, W) with a dynamic batch -> onnx.ModelProto of the requested form.

    form "plugin": MSDA and DCG neighbours as single detrt:: nodes (msda_plugin "nvidia": MSDA as
    NVIDIA's trt::MultiscaleDeformableAttnPlugin_TRT); form "portable": standard ops only.
    """
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise InputError(f"--opset {opset}: supported are {MIN_OPSET} to {MAX_OPSET} (from {MIN_OPSET}: "
                         f"LayerNormalization as one node; {MAX_OPSET}: GroupNormalization as one node)")
    h, w = input_size
    if h % 32 or w % 32 or h <= 0 or w <= 0:
        raise InputError(f"--imgsz {h} {w}: H and W must be positive multiples of 32")
    if form == "portable" and msda_plugin != "detrt":
        raise InputError("--msda-plugin applies to the plugin form only")
    masks = not hasattr(model, "fold_categories")  # CQ-DINO has no padding masks: its graph takes images only
    if not masks:  # CQ-DINO: the category branch becomes constants of the graph
        if not postprocess:
            raise InputError("CQ-DINO exports with its in-graph top-k only (labels are global category ids)")
        model = copy.deepcopy(model).eval().fold_categories()
    wrapper = ExportWrapper(model, postprocess, topk, score_floor).eval()
    inputs = INPUTS[0] if masks else INPUTS[1]
    names = ["scores", "labels", "boxes"] if postprocess else ["pred_logits", "pred_boxes"]
    images, sizes = torch.zeros(batch, 3, h, w), torch.tensor([[h, w]] * batch, dtype=torch.float32)
    buffer = io.BytesIO()
    traced_opset = min(opset, TORCH_MAX_OPSET)
    with torch.no_grad(), detrt_symbolics(traced_opset), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings for the static level shapes, the legacy-exporter notice
        torch.onnx.export(wrapper, (images, sizes) if masks else (images,), buffer, dynamo=False,
                          opset_version=traced_opset, input_names=list(inputs), output_names=names,
                          dynamic_axes={n: {0: "batch"} for n in [*inputs, *names]},
                          custom_opsets={DETRT_DOMAIN: OPSET_VERSION}, do_constant_folding=True)
    traced = upgrade_opset(onnx.load_from_string(buffer.getvalue()), opset)
    model_proto = surgery.rewrite(traced, surgery.passes_for(form, msda_plugin))
    model_proto.producer_name = "detrt"
    return model_proto


def check_onnx(model_proto, where):
    """onnx.checker with full_check (strict shape inference); custom domains are skipped by design."""
    try:
        onnx.checker.check_model(model_proto, full_check=True)
    except onnx.checker.ValidationError as e:
        raise InputError(f"{where}: exported graph fails onnx.checker: {str(e).splitlines()[0]}") from None


def export_checkpoint(checkpoint, output, form="portable", input_size=None, postprocess=True, opset=DEFAULT_OPSET,
                      msda_plugin="detrt", topk=None, max_batch=8, log=print):
    """The `detrt export` verb: checkpoint -> ONNX at `output` + manifest beside it. Returns the manifest."""
    model, cfg = model_from_checkpoint(checkpoint)
    return export_model_to(model, cfg, output, form=form, input_size=input_size, postprocess=postprocess,
                           opset=opset, msda_plugin=msda_plugin, topk=topk, max_batch=max_batch,
                           parent=str(checkpoint), log=log)


def export_model_to(model, cfg, output, form="portable", input_size=None, postprocess=True, opset=DEFAULT_OPSET,
                    msda_plugin="detrt", topk=None, max_batch=8, parent=None, log=print):
    """Export an in-memory model with its DetrConfig to `output` (+ manifest). Returns the manifest.

    The config's postprocess (num_select, score_floor; `topk` overrides num_select) is in the graph with
    postprocess=True, and in the manifest either way, for the runtime to apply to a raw graph."""
    input_size = tuple(input_size or cfg.input_size)
    start = time.perf_counter()
    num_select = topk or cfg.num_select
    proto = onnx_from_model(model, input_size, form=form, postprocess=postprocess, topk=num_select,
                            score_floor=cfg.score_floor, opset=opset, msda_plugin=msda_plugin)
    check_onnx(proto, output)
    manifest = save_onnx(proto, output, Manifest.for_config(
        cfg, input_size=input_size, output_format="topk" if postprocess else "raw", precision="fp32", form=form,
        opset=opset, max_batch=max_batch, parent=parent, num_select=num_select,
        inputs=tuple(i.name for i in proto.graph.input)))
    if log:
        nodes = len(proto.graph.node)
        log(f"exported {cfg.name} ({form}, {input_size[0]}x{input_size[1]}, opset {opset}, {nodes} nodes) "
            f"-> {output} in {time.perf_counter() - start:.1f} s")
    return manifest


def count_ops(model_proto):
    """{(domain, op_type): count} of the top-level graph (tests, --print)."""
    counts = {}
    for node in model_proto.graph.node:
        key = (node.domain or "", node.op_type)
        counts[key] = counts.get(key, 0) + 1
    return counts


def finite_max_abs_diff(a, b):
    """Max |a - b| over entries finite in both; infinities must sit at the same places (else inf)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    fa, fb = np.isfinite(a), np.isfinite(b)
    if (fa != fb).any() or (a[~fa] != b[~fb]).any():
        return float("inf")
    return float(np.abs(a[fa] - b[fb]).max()) if fa.any() else 0.0
