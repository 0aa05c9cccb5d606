"""Box utilities on torch tensors; detrt/box_ops.py is the numpy twin with the same names.

Formats: xyxy = (x0, y0, x1, y1); cxcywh = (centre x, centre y, w, h).
"""

import torch


def box_cxcywh_to_xyxy(b):
    cx, cy, w, h = b.unbind(-1)
    return torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], dim=-1)


def box_area(b):
    return (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])


def box_iou(a, b):
    """Pairwise IoU of xyxy boxes a [..., N, 4] and b [..., M, 4] -> (iou [..., N, M], union [..., N, M]).

    Leading dimensions are batch dimensions (DCG's neighbours compare the boxes of each image with each other).
    """
    lt = torch.max(a[..., :, None, :2], b[..., None, :, :2])
    rb = torch.min(a[..., :, None, 2:], b[..., None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = box_area(a)[..., :, None] + box_area(b)[..., None, :] - inter
    return inter / union, union


def generalized_box_iou(a, b):
    """Pairwise GIoU of xyxy boxes a [N, 4] and b [M, 4] -> [N, M], in [-1, 1].

    Boxes must be well formed (x1 >= x0, y1 >= y0): degenerate boxes give inf/nan, so a model that
    predicts them is caught early instead of training on garbage.
    """
    iou, union = box_iou(a, b)
    lt = torch.min(a[:, None, :2], b[None, :, :2])
    rb = torch.max(a[:, None, 2:], b[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    hull = wh[..., 0] * wh[..., 1]
    return iou - (hull - union) / hull
