"""Duplicate rate: how often a detector reports one person twice (numpy; the figure DCG should lower).

Definition, per image, on boxes clipped to the image as the CrowdHuman evaluation clips them:
1. Confident detections: score > `score_threshold` (0.3).
2. They are matched one-to-one to ground-truth persons as AP matches them (Caltech rule,
   `detrt.eval.crowdhuman.match_caltech`: descending score, IoU > 0.5, each person taken once); those
   lying > 0.5 inside an ignore region (IoA) without a match are set aside, as in AP.
3. A confident detection is a duplicate when it matched no person (the person it covers, if any, was
   already taken by a higher-scoring detection) and it overlaps another confident detection with
   IoU > `iou_threshold` (0.7): it sits on a detection, yet matches no separate person.
duplicate_rate = duplicates / confident detections (ignore-region ones not counted), over all images.
"""

import numpy as np

from detrt.eval.crowdhuman import clip_boxes_crowddet, iou_eps, match_caltech


def image_duplicates(dt_boxes, dt_scores, gt_boxes, ignore, score_threshold=0.3, iou_threshold=0.7):
    """(duplicates, confident detections counted) of one image; boxes xyxy, already clipped."""
    keep = dt_scores > score_threshold
    order = np.argsort(-dt_scores[keep], kind="stable")
    boxes = dt_boxes[keep][order]
    labels = match_caltech(boxes, gt_boxes, ignore)  # 1 matched, 0 unmatched, -1 set aside (ignore region)
    if len(boxes) == 0:
        return 0, 0
    overlap = iou_eps(boxes, boxes)
    np.fill_diagonal(overlap, 0.0)
    sits_on_other = (overlap > iou_threshold).any(1)
    return int(((labels == 0) & sits_on_other).sum()), int((labels >= 0).sum())


def duplicate_rate(gt, dt, score_threshold=0.3, iou_threshold=0.7):
    """gt: list[GroundTruth] with sizes; dt: list[OdgtDetections] or {image_id: OdgtDetections}.

    Returns {"duplicate_rate": duplicates / confident detections (0 when there are none),
    "duplicates": int, "confident_detections": int, "duplicates_per_image": float}.
    """
    dts = dt if isinstance(dt, dict) else {d.image_id: d for d in dt}
    dup = total = 0
    for g in gt:
        d = dts.get(g.image_id)
        if d is None or len(d.scores) == 0:
            continue
        w, h = g.width, g.height
        if w and h:
            boxes, gt_boxes, ignore = (clip_boxes_crowddet(b, w, h) for b in (d.boxes, g.boxes, g.ignore))
        else:
            boxes, gt_boxes, ignore = np.asarray(d.boxes, np.float64).reshape(-1, 4), g.boxes, g.ignore
        n, m = image_duplicates(boxes, np.asarray(d.scores), gt_boxes, ignore, score_threshold, iou_threshold)
        dup, total = dup + n, total + m
    return {"duplicate_rate": dup / total if total else 0.0, "duplicates": dup, "confident_detections": total,
            "duplicates_per_image": dup / max(len(gt), 1)}
