"""Box utilities on numpy arrays: the twin of detrt/ops/box_ops.py for runtime, data and eval code.

Same function names and semantics as the torch module (tests compare them), so code that cannot
import torch (detrt/runtime, detrt/eval) computes exactly what training computes.
Formats: xyxy = (x0, y0, x1, y1); cxcywh = (centre x, centre y, w, h).
"""

import numpy as np


def box_cxcywh_to_xyxy(b):
    cx, cy, w, h = np.moveaxis(np.asarray(b), -1, 0)
    return np.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], axis=-1)


def box_area(b):
    b = np.asarray(b)
    return (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])


def box_iou(a, b):
    """Pairwise IoU of xyxy boxes a [..., N, 4] and b [..., M, 4] -> (iou [..., N, M], union [..., N, M])."""
    a, b = np.asarray(a), np.asarray(b)
    lt = np.maximum(a[..., :, None, :2], b[..., None, :, :2])
    rb = np.minimum(a[..., :, None, 2:], b[..., None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = box_area(a)[..., :, None] + box_area(b)[..., None, :] - inter
    return inter / union, union
