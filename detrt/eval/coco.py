"""COCO box AP with faster-coco-eval (a C++ COCOeval that gives pycocotools' numbers), as docs/evaluation.md defines.

    result = evaluate_files("val/annotations.json", "results.json", train_gt="train/annotations.json")

- AP is COCO's: mean over IoU 0.50:0.95 and the categories that have ground truth, 101-point interpolated
  precision; AP50, AP75 at one IoU. iscrowd boxes are ignore regions of their category.
- Detections per image, at 100 (COCO's standard) and 300 (LVIS's, and CQ-DINO's): each image keeps its
  k best detections over all categories before matching, as LVIS counts them. (COCOeval's maxDets alone
  would cap each category of an image, letting a detector with 300 outputs count them all at 100.)
- Frequency groups, LVIS's: a category is rare with at most 10 training images (none counts as rare),
  common with 11-100, frequent with more. The counts come from `train_gt` (images of the training set
  that show the category, matched by name), else from the categories' `frequency` field ("r", "c", "f",
  as LVIS ships it); without either the groups are not reported. APr/APc/APf average the per-category
  AP of the group's categories that have ground truth here.
- LVIS's federated protocol (negative and not-exhaustive category lists) is not applied: plain COCO
  evaluation counts an unlabelled true object as a false positive.

Results: a JSON list of {"image_id", "category_id", "bbox": [x, y, w, h], "score"} (detrt.data.coco.write_results).
An image_id may also be a string: the image's file_name, or its name without extension (what `detrt run
--coco` writes for image files whose names are not numbers).
"""

import math
from pathlib import Path

import numpy as np

from detrt.data.coco import file_name, load_json, parse_coco
from detrt.errors import InputError
from detrt.optional import require

MAX_DETS = (100, 300)
RARE, COMMON = 10, 100  # LVIS's training-image counts: rare <= 10 < common <= 100 < frequent
METRICS = ("AP", "AP50", "AP75", "APr", "APc", "APf")


def ground_truth(path):
    """(the evaluation's ground truth dict, Vocabulary) of a COCO-format file; InputError when bad."""
    data = load_json(path)
    _, vocabulary = parse_coco(data, path)  # validates every field used below
    images = [{"id": im["id"], "width": im["width"], "height": im["height"], "file_name": file_name(im)}
              for im in data["images"]]
    annotations = [{"id": k + 1, "image_id": a["image_id"], "category_id": a["category_id"],
                    "bbox": [float(v) for v in a["bbox"]], "area": float(a["bbox"][2] * a["bbox"][3]),
                    "iscrowd": int(bool(a.get("iscrowd", 0)))} for k, a in enumerate(data["annotations"])]
    categories = [{"id": c["id"], "name": c["name"], **({"frequency": c["frequency"]} if "frequency" in c else {})}
                  for c in data["categories"]]
    return {"images": images, "annotations": annotations, "categories": categories}, vocabulary


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def read_results(path, gt):
    """The detections of a results file, checked against ground truth `gt`; string image ids resolved."""
    path = Path(path)
    data = load_json(path)
    if not isinstance(data, list):
        raise InputError(f"{path}: expected a JSON list of detections (COCO results), got {type(data).__name__}")
    ids = {im["id"] for im in gt["images"]}
    by_name = {}
    for im in gt["images"]:
        by_name[im["file_name"]] = by_name[im["file_name"].rsplit(".", 1)[0]] = im["id"]
    categories = {c["id"] for c in gt["categories"]}
    out = []
    for i, d in enumerate(data):
        where = f"{path}: [{i}]"
        if not isinstance(d, dict):
            raise InputError(f"{where} is not an object")
        image_id = d.get("image_id")
        image_id = by_name.get(image_id, image_id) if isinstance(image_id, str) else image_id
        if isinstance(image_id, bool) or image_id not in ids:
            raise InputError(f"{where}: image_id {d.get('image_id')!r} is not an image of the ground truth")
        if isinstance(d.get("category_id"), bool) or d.get("category_id") not in categories:
            raise InputError(f"{where}: category_id {d.get('category_id')!r} is not a category of the ground truth")
        bbox, score = d.get("bbox"), d.get("score")
        if not isinstance(bbox, list) or len(bbox) != 4 or not all(_number(v) for v in bbox) or min(bbox[2:]) < 0:
            raise InputError(f"{where}: bbox must be [x, y, w, h], 4 finite numbers with w, h >= 0, got {bbox!r}")
        if not _number(score):
            raise InputError(f"{where}: score must be a finite number, got {score!r}")
        out.append({"image_id": image_id, "category_id": d["category_id"], "bbox": [float(v) for v in bbox],
                    "score": float(score)})
    return out


def image_counts(path):
    """{category name: number of images with a (non-crowd) box of it} of a training set's COCO-format file."""
    records, vocabulary = parse_coco(load_json(path), path)
    counts = np.zeros(len(vocabulary), np.int64)
    for r in records:
        counts[np.unique(r.labels)] += 1
    return dict(zip(vocabulary.names, counts.tolist()))


def frequency_groups(gt, counts=None):
    """{"r"|"c"|"f": [category ids]} from training-image counts by name, else from the categories' `frequency`
    field; None when neither is there."""
    if counts is not None:
        group = {c["id"]: "r" if counts.get(c["name"], 0) <= RARE else "c" if counts[c["name"]] <= COMMON else "f"
                 for c in gt["categories"]}
    elif all(c.get("frequency") in ("r", "c", "f") for c in gt["categories"]):
        group = {c["id"]: c["frequency"] for c in gt["categories"]}
    else:
        return None
    return {g: [i for i, v in group.items() if v == g] for g in "rcf"}


def keep_top(detections, k):
    """Each image's k highest-scoring detections (over all categories); ties keep file order."""
    by_image = {}
    for d in detections:
        by_image.setdefault(d["image_id"], []).append(d)
    return [d for dets in by_image.values() for d in sorted(dets, key=lambda d: -d["score"])[:k]]


def _mean(values):
    values = values[values > -1]
    return float(values.mean()) if values.size else None


def _run(gt, detections, k, cat_ids):
    """COCOeval's interpolated precision [T, R, K] (10 IoU thresholds, 101 recall points, `cat_ids`; -1 where a
    category has no ground truth) for each image's top-k detections; None when nothing was detected."""
    fce = require("faster_coco_eval", "COCO evaluation")
    if not detections:
        return None
    # The library adds keys to the entries it is given (never changes a value): shallow copies keep ours clean.
    coco_gt = fce.COCO({key: [dict(e) for e in entries] for key, entries in gt.items()})
    e = fce.COCOeval_faster(coco_gt, coco_gt.loadRes([dict(d) for d in keep_top(detections, k)]), "bbox")
    e.params.catIds = list(cat_ids)  # the others have no ground truth: AP leaves them out, so skip their work
    e.params.maxDets = [k]
    e.params.areaRng, e.params.areaRngLbl = [[0, 1e10]], ["all"]
    e.evaluate()
    e.accumulate()
    return e.eval["precision"][..., 0, 0]


def evaluate(gt, detections, groups=None):
    """{f"{metric}@{k}": value or None} for METRICS and k in MAX_DETS, plus counts. None: no category to
    average (no ground truth in the group)."""
    with_gt = sorted({a["category_id"] for a in gt["annotations"] if not a["iscrowd"]})
    column = {c: i for i, c in enumerate(with_gt)}
    result = {}
    for k in MAX_DETS:
        precision = _run(gt, detections, k, with_gt) if with_gt else None
        if precision is None:  # nothing detected (or nothing to find): AP 0 for each category with ground truth
            precision = np.zeros((10, 1, len(with_gt)))
        result[f"AP@{k}"] = _mean(precision)
        result[f"AP50@{k}"] = _mean(precision[:1])
        result[f"AP75@{k}"] = _mean(precision[5:6])
        for g in "rcf":
            cols = [column[c] for c in (groups or {}).get(g, ()) if c in column]
            result[f"AP{g}@{k}"] = _mean(precision[:, :, cols]) if groups is not None else None
    result.update(images=len(gt["images"]), categories=len(gt["categories"]), categories_with_gt=len(with_gt),
                  detections=len(detections), boxes=len(gt["annotations"]))
    if groups is not None:
        result.update({f"categories_{name}": len(set(groups[g]) & set(with_gt))
                       for g, name in (("r", "rare"), ("c", "common"), ("f", "frequent"))})
    return result


def evaluate_files(gt_path, dt_path, train_gt=None):
    """evaluate() on files; train_gt: the training set's COCO JSON, for the frequency groups."""
    gt, _ = ground_truth(gt_path)
    detections = read_results(dt_path, gt)
    groups = frequency_groups(gt, image_counts(train_gt) if train_gt is not None else None)
    result = evaluate(gt, detections, groups)
    result["groups_from"] = (str(train_gt) if train_gt is not None else
                             "categories' frequency field" if groups is not None else None)
    return result


def format_table(result):
    """The result dict as a small text table: each metric at 100 and 300 detections per image."""
    def cell(v):
        return f"{100 * v:>9.2f}%" if v is not None else f"{'-':>10}"

    names = {"AP": "AP (IoU 0.50:0.95)", "AP50": "AP50", "AP75": "AP75", "APr": "AP rare (<= 10 train images)",
             "APc": "AP common (11-100)", "APf": "AP frequent (> 100)"}
    lines = [f"{'metric':<32}" + "".join(f"{f'@{k} dets':>10}" for k in MAX_DETS)]
    lines += [f"{names[m]:<32}" + "".join(cell(result[f"{m}@{k}"]) for k in MAX_DETS) for m in METRICS]
    lines.append(f"images {result['images']}, categories {result['categories']} ({result['categories_with_gt']} "
                 f"with boxes), boxes {result['boxes']}, detections {result['detections']}")
    if result.get("groups_from"):
        lines.append(f"frequency groups from {result['groups_from']}: rare {result['categories_rare']}, common "
                     f"{result['categories_common']}, frequent {result['categories_frequent']} (with boxes here)")
    else:
        lines.append("frequency groups: not reported (give --train-gt, the training set's JSON)")
    return "\n".join(lines)
