"""Box utilities on numpy arrays: the twin of detrt/ops/box_ops.py for runtime and eval code.

Same function names and semantics as the torch module (tests compare them), so code that cannot
import torch (detrt/runtime, detrt/eval) computes exactly what training computes.
Formats: xyxy = (x0, y0, x1, y1); cxcywh = (centre x, centre y, w, h); xywh = (x0, y0, w, h).
"""

import numpy as np


def box_cxcywh_to_xyxy(b):
    cx, cy, w, h = np.moveaxis(np.asarray(b), -1, 0)
    return np.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], axis=-1)


def box_xyxy_to_cxcywh(b):
    x0, y0, x1, y1 = np.moveaxis(np.asarray(b), -1, 0)
    return np.stack([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0], axis=-1)


def box_xywh_to_xyxy(b):
    x, y, w, h = np.moveaxis(np.asarray(b), -1, 0)
    return np.stack([x, y, x + w, y + h], axis=-1)


def box_xyxy_to_xywh(b):
    x0, y0, x1, y1 = np.moveaxis(np.asarray(b), -1, 0)
    return np.stack([x0, y0, x1 - x0, y1 - y0], axis=-1)


def box_area(b):
    b = np.asarray(b)
    return (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])


def box_iou(a, b):
    """Pairwise IoU of xyxy boxes a [N, 4] and b [M, 4] -> (iou [N, M], union [N, M])."""
    a, b = np.asarray(a), np.asarray(b)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return inter / union, union


def generalized_box_iou(a, b):
    """Pairwise GIoU of xyxy boxes a [N, 4] and b [M, 4] -> [N, M], in [-1, 1]."""
    a, b = np.asarray(a), np.asarray(b)
    iou, union = box_iou(a, b)
    lt = np.minimum(a[:, None, :2], b[None, :, :2])
    rb = np.maximum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    hull = wh[..., 0] * wh[..., 1]
    return iou - (hull - union) / hull
