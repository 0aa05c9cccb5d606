"""DCG neighbour selection, `dcg_neighbors` (docs/ops.md): reference implementation.

j is a neighbour of i iff s_i < s_j (strict), s_j > low_score and IoU(i, j) >= iou_threshold; the k
neighbours of largest IoU are kept. Padding slots have valid = False and index = i. The set of valid
neighbours is the contract, not the slot order.

This reference is the dense O(N^2) form of the paper's code; the compiled kernels are exact and
sub-quadratic (plugins/).
"""

import torch

from detrt.ops.box_ops import box_cxcywh_to_xyxy, box_iou
from detrt.ops.msda import _cpu_kernels
from detrt.ops.names import TORCH_DCG_OP


def dcg_neighbors_reference(boxes, scores, k=10, iou_threshold=0.4, low_score=0.1):
    """Dense neighbours: boxes [B, N, 4] cxcywh, scores [B, N] -> (indices int64 [B, N, k], valid bool [B, N, k])."""
    bsz, n, _ = boxes.shape
    xyxy = box_cxcywh_to_xyxy(boxes)
    iou = box_iou(xyxy, xyxy)[0]  # [B, N, N]
    allowed = (scores[:, :, None] < scores[:, None, :]) & (scores[:, None, :] > low_score) & (iou >= iou_threshold)
    key = torch.where(allowed, iou, torch.full_like(iou, -1.0))
    top, indices = key.topk(min(k, n), dim=-1)
    valid = top >= 0
    self_index = torch.arange(n, device=boxes.device).view(1, n, 1)
    indices = torch.where(valid, indices, self_index)
    if k > n:  # fewer candidates than slots: the rest are padding
        pad = k - n
        indices = torch.cat([indices, self_index.expand(bsz, n, pad)], dim=-1)
        valid = torch.cat([valid, valid.new_zeros(bsz, n, pad)], dim=-1)
    return indices, valid


def dcg_neighbors(boxes, scores, k=10, iou_threshold=0.4, low_score=0.1):
    """Public entry; see dcg_neighbors_reference for shapes. Runs the custom op `detrt::dcg_neighbors`
    (the exact sub-quadratic CPU kernel where built; slot order may differ from the reference's)."""
    threshold, low = float(iou_threshold), float(low_score)
    return torch.ops.detrt.dcg_neighbors(boxes.detach(), scores.detach(), int(k), threshold, low)


@torch.library.custom_op(TORCH_DCG_OP, mutates_args=())
def _dcg_neighbors_op(
    boxes: torch.Tensor, scores: torch.Tensor, k: int, iou_threshold: float, low_score: float
) -> tuple[torch.Tensor, torch.Tensor]:
    on_cpu = boxes.device.type == "cpu" and scores.device.type == "cpu"
    cpu = _cpu_kernels() if on_cpu else None
    if cpu is not None and boxes.dtype == scores.dtype == torch.float32:
        boxes_np, scores_np = boxes.contiguous().numpy(), scores.contiguous().numpy()
        indices, valid = cpu.dcg_neighbors(boxes_np, scores_np, k, iou_threshold, low_score)
        return torch.from_numpy(indices), torch.from_numpy(valid)
    return dcg_neighbors_reference(boxes, scores, k, iou_threshold, low_score)


@_dcg_neighbors_op.register_fake
def _(boxes, scores, k, iou_threshold, low_score):
    bsz, n, _ = boxes.shape
    return boxes.new_empty((bsz, n, k), dtype=torch.int64), boxes.new_empty((bsz, n, k), dtype=torch.bool)
