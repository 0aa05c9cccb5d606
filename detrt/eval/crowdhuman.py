"""CrowdHuman metrics: AP, MR-2 and JI as docs/evaluation.md defines them, equal to CrowdDet's scripts to 1e-6.

Reference: CrowdDet `lib/evaluate/compute_APMR.py` (APMRToolkits) and `compute_JI.py` (JIToolkits),
checked on random cases (see tests/eval/test_crowdhuman_metrics.py). Details taken from it:
- boxes (ground truth and detections) are clipped to the image: x0 to [0, W-1], x1 to [0, W];
- IoU = inter / (area_d + area_g - inter + 1e-6); IoA = inter / (area_d + 1e-6);
- Caltech matching in descending score, ties kept in file order (stable sort: ground-truth file order of
  images, then detection order within an image), so with exactly equal scores the result depends on order,
  as it does in CrowdDet; with distinct scores it is invariant to any permutation;
- MR-2 uses CrowdDet's rounded FPPI references (0.0178, 0.0316, ... not 10^linspace(-2, 0, 9) exactly);
- JI also drops unmatched ground truth whose IoA with an ignore region is > 0.5 from m.
Images with no ground truth count as images (for FPPI); an image without detections has none.
"""

import numpy as np

from detrt.data.crowdhuman import read_dt, read_gt
from detrt.eval.assignment import max_weight_matching
from detrt.errors import InputError

EPS = 1e-6
THRESH = 0.5
# CrowdDet's CALTECH_MRREF_2: 9 FPPI points from 10^-2 to 1, rounded to 4 digits as written there.
MR_REFS = np.array([0.0100, 0.0178, 0.03160, 0.0562, 0.1000, 0.1778, 0.3162, 0.5623, 1.000])
# JI score thresholds. CrowdDet: 0.0..0.9, mean over images with any ground truth or detection left.
# DH-DETR's script: 0.1..0.9, mean over all images. Computed as 1e-1 * i, as CrowdDet does.
JI_THRESHOLDS = [1e-1 * i for i in range(10)]


def clip_boxes_crowddet(boxes, width, height):
    """Clip xyxy boxes as CrowdDet does: x0 to [0, W-1], y0 to [0, H-1], x1 to [0, W], y1 to [0, H]."""
    b = np.array(boxes, dtype=np.float64).reshape(-1, 4)
    b[:, 0] = np.minimum(np.maximum(b[:, 0], 0), width - 1)
    b[:, 1] = np.minimum(np.maximum(b[:, 1], 0), height - 1)
    b[:, 2] = np.maximum(np.minimum(b[:, 2], width), 0)
    b[:, 3] = np.maximum(np.minimum(b[:, 3], height), 0)
    return b


def _inter(d, g):
    iw = np.minimum(d[:, None, 2], g[None, :, 2]) - np.maximum(d[:, None, 0], g[None, :, 0])
    ih = np.minimum(d[:, None, 3], g[None, :, 3]) - np.maximum(d[:, None, 1], g[None, :, 1])
    return np.maximum(iw, 0) * np.maximum(ih, 0)


def _area(b):
    return np.maximum(b[:, 2] - b[:, 0], 0) * np.maximum(b[:, 3] - b[:, 1], 0)


def iou_eps(d, g):
    """IoU [D, G] of xyxy boxes with CrowdDet's eps in the denominator."""
    inter = _inter(d, g)
    return inter / (_area(d)[:, None] + _area(g)[None, :] - inter + EPS)


def ioa_eps(d, g):
    """Intersection over the area of d [D, G] (how much of each d lies in g), with eps."""
    return _inter(d, g) / (_area(d)[:, None] + EPS)


def _any_ioa(d, regions):
    if len(regions) == 0 or len(d) == 0:
        return np.zeros(len(d), dtype=bool)
    return (ioa_eps(d, regions) > THRESH).any(1)


def match_caltech(dt_boxes, gt_boxes, ignore):
    """Caltech matching of detections (already in descending score order) -> labels per detection:
    1 true positive, 0 false positive, -1 dropped (not matched, IoA > 0.5 with an ignore region)."""
    iou = iou_eps(dt_boxes, gt_boxes)
    on_ignore = _any_ioa(dt_boxes, ignore)
    labels = np.where(on_ignore, -1, 0)
    if len(gt_boxes) == 0:
        return labels
    # Only detections with some IoU > 0.5 can be true positives; match them greedily in score order.
    free = np.ones(len(gt_boxes), dtype=bool)
    for i in np.nonzero((iou > THRESH).any(1))[0]:
        row = np.where(free, iou[i], -1.0)
        j = int(np.argmax(row))  # first of equal maxima, as CrowdDet's strict '>' scan
        if row[j] > THRESH:
            free[j] = False
            labels[i] = 1
    return labels


def ap_mr(scores, labels, num_gt, num_images):
    """AP and MR-2 from all images' detections (scores, labels 1/0; dropped ones removed).

    As CrowdDet: AP is 0 with fewer than two detections left (the curve starts at the first one), MR-2 is NaN
    with none; with no ground truth to find, recall and both metrics are NaN (CrowdDet divides 0 by 0).
    """
    if len(scores) == 0:
        return 0.0, float("nan")
    order = np.argsort(-scores, kind="stable")
    tp = np.cumsum(labels[order] == 1).astype(np.float64)
    fp = np.cumsum(labels[order] == 0).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = tp / num_gt
    precision = tp / (tp + fp)  # every entry is a TP or an FP, so tp + fp >= 1
    ap = float(np.sum((recall[1:] - recall[:-1]) * (precision[1:] + precision[:-1]) / 2))
    fppi = fp / num_images
    idx = np.minimum(np.searchsorted(fppi, MR_REFS, side="left"), len(fppi) - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        mr = float(np.exp(np.mean(np.log(1.0 - recall[idx]))))
    return ap, mr


def ji_image(iou, dt_scores, dt_on_ignore, gt_on_ignore, threshold):
    """(k, m, n) of one image at a score threshold: matched pairs, ground truth, detections (ignores out)."""
    keep = dt_scores > threshold
    rows, cols = max_weight_matching(np.where(iou[keep] > THRESH, iou[keep], 0.0))
    k = len(rows)
    dt_left = np.ones(int(keep.sum()), dtype=bool)
    dt_left[rows] = False
    gt_left = np.ones(iou.shape[1], dtype=bool)
    gt_left[cols] = False
    n = int(keep.sum()) - int(dt_on_ignore[keep][dt_left].sum())
    m = iou.shape[1] - int(gt_on_ignore[gt_left].sum())
    return k, m, n


def _pair(gt, dt, sizes, gt_path):
    """Clipped (gt boxes, ignore, dt boxes sorted by score, scores) of one image."""
    size = (gt.width, gt.height) if gt.width and gt.height else None
    if size is None and dt is not None and dt.width and dt.height:
        size = (dt.width, dt.height)
    if size is None and sizes is not None:
        size = sizes.get(gt.image_id)
    if size is None:
        raise InputError(f"{gt_path}:{gt.line}: image {gt.image_id!r} has no width/height in the ground truth "
                         "or detections; give the images directory so sizes can be read")
    w, h = size
    if dt is None:
        boxes, scores = np.zeros((0, 4)), np.zeros(0)
    else:
        order = np.argsort(-dt.scores, kind="stable")
        boxes, scores = dt.boxes[order], dt.scores[order]
    return (clip_boxes_crowddet(gt.boxes, w, h), clip_boxes_crowddet(gt.ignore, w, h),
            clip_boxes_crowddet(boxes, w, h), scores)


def evaluate(gt, dt, sizes=None, gt_path="ground truth", dt_path="detections"):
    """AP, MR-2 and JI of detections against ground truth.

    gt: list[GroundTruth] (detrt.data.crowdhuman.read_gt); dt: list[OdgtDetections] or {image_id: OdgtDetections};
    images missing from dt have no detections. sizes: optional {image_id: (width, height)} for records
    without a size. gt_path, dt_path: names for error messages. Returns a dict: AP, MR2, JI (CrowdDet
    variant), JI_dhdetr, ji_by_threshold, counts.
    """
    dts = dt if isinstance(dt, dict) else {d.image_id: d for d in dt}
    ids = {g.image_id for g in gt}
    stray = [d for d in dts.values() if d.image_id not in ids]
    if stray:
        raise InputError(f"{dt_path}:{stray[0].line}: detections for image {stray[0].image_id!r}, "
                         f"which is not in {gt_path}")
    all_scores, all_labels, num_gt, num_ignore, num_dt = [], [], 0, 0, 0
    ji = np.zeros((len(JI_THRESHOLDS), 4))  # per threshold: sum of ratios, images counted, k, n
    for g in gt:
        gt_boxes, ignore, dt_boxes, scores = _pair(g, dts.get(g.image_id), sizes, gt_path)
        num_gt += len(gt_boxes)
        num_ignore += len(ignore)
        num_dt += len(dt_boxes)
        labels = match_caltech(dt_boxes, gt_boxes, ignore)
        all_scores.append(scores[labels >= 0])
        all_labels.append(labels[labels >= 0])
        iou = iou_eps(dt_boxes, gt_boxes)
        dt_ign, gt_ign = _any_ioa(dt_boxes, ignore), _any_ioa(gt_boxes, ignore)
        for t, thr in enumerate(JI_THRESHOLDS):
            k, m, n = ji_image(iou, scores, dt_ign, gt_ign, thr)
            ji[t] += (k / (m + n - k + EPS), m != 0 or n != 0, k, n)
    ap, mr = ap_mr(np.concatenate(all_scores), np.concatenate(all_labels), num_gt, len(gt))
    with np.errstate(invalid="ignore", divide="ignore"):
        ji_crowddet = ji[:, 0] / ji[:, 1]  # NaN where no image has anything left (CrowdDet: 0 / 0)
    ji_dhdetr = ji[1:, 0] / max(len(gt), 1)
    return {
        "AP": ap, "MR2": mr,
        # CrowdDet's max() skips those NaNs unless all are NaN
        "JI": float(np.nanmax(ji_crowddet)) if not np.isnan(ji_crowddet).all() else float("nan"),
        "JI_dhdetr": float(np.max(ji_dhdetr)) if len(gt) else float("nan"),
        "ji_by_threshold": [{"threshold": round(t, 1), "JI": float(r), "JI_dhdetr": float(d) if i else None,
                             "matched": int(k), "detections": int(n)}
                            for i, (t, r, d, k, n) in enumerate(zip(JI_THRESHOLDS, ji_crowddet,
                                                                    [None, *ji_dhdetr], ji[:, 2], ji[:, 3]))],
        "images": len(gt), "persons": num_gt, "ignore_regions": num_ignore, "detections": num_dt,
    }


def image_sizes(records):
    """{image_id: (width, height)} read from the image files of records that carry image_path (needs cv2)."""
    import cv2

    out = {}
    for r in records:
        if r.image_path is not None and not (r.width and r.height):
            img = cv2.imread(str(r.image_path), cv2.IMREAD_UNCHANGED)
            if img is None:
                raise InputError(f"{r.image_path}: cannot read image")
            out[r.image_id] = (img.shape[1], img.shape[0])
    return out


def evaluate_files(gt_path, dt_path, images_dir=None):
    """evaluate() on .odgt files; images_dir supplies sizes the files lack. Errors name the file and line."""
    gt = read_gt(gt_path, images_dir)
    dt = read_dt(dt_path)
    return evaluate(gt, dt, image_sizes(gt) if images_dir else None, gt_path, dt_path)


def format_table(result):
    """The result dict as a small text table."""
    rows = [("AP", result["AP"]), ("MR-2", result["MR2"]), ("JI (CrowdDet: t 0.0-0.9, images with boxes)",
                                                            result["JI"]),
            ("JI (DH-DETR: t 0.1-0.9, all images)", result["JI_dhdetr"])]
    lines = [f"{'metric':<46}{'value':>9}"] + [f"{name:<46}{100 * v:>8.2f}%" for name, v in rows]
    lines.append(f"images {result['images']}, persons {result['persons']}, ignore regions "
                 f"{result['ignore_regions']}, detections {result['detections']}")
    return "\n".join(lines)
