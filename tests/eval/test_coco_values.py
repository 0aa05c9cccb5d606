"""COCO evaluation on values that could be wrong: the metrics table's exact text, frequency groups from counts at
their bounds, each image's own top k, LVIS's images named by coco_url, and the words when faster-coco-eval is
missing."""

import json
import sys

import pytest

from detrt.errors import InputError
from detrt.eval.coco import evaluate, evaluate_files, format_table, frequency_groups, ground_truth, keep_top


def test_format_table_exact_text():
    result = {f"{m}@{k}": v for k in (100, 300) for m, v in
              zip(("AP", "AP50", "AP75", "APr", "APc", "APf"), (0.5, 0.75, 0.25, 0.125, None, 1.0))}
    result.update(images=3, categories=4, categories_with_gt=2, boxes=7, detections=9, groups_from="train.json",
                  categories_rare=1, categories_common=0, categories_frequent=1)
    assert format_table(result).splitlines() == [
        f"{'metric':<32}{'@100 dets':>10}{'@300 dets':>10}",
        f"{'AP (IoU 0.50:0.95)':<32}{'50.00%':>10}{'50.00%':>10}",
        f"{'AP50':<32}{'75.00%':>10}{'75.00%':>10}",
        f"{'AP75':<32}{'25.00%':>10}{'25.00%':>10}",
        f"{'AP rare (<= 10 train images)':<32}{'12.50%':>10}{'12.50%':>10}",
        f"{'AP common (11-100)':<32}{'-':>10}{'-':>10}",
        f"{'AP frequent (> 100)':<32}{'100.00%':>10}{'100.00%':>10}",
        "images 3, categories 4 (2 with boxes), boxes 7, detections 9",
        "frequency groups from train.json: rare 1, common 0, frequent 1 (with boxes here)",
    ]
    result["groups_from"] = None
    assert format_table(result).splitlines()[-1] == ("frequency groups: not reported (give --train-gt, the "
                                                     "training set's JSON)")


def test_frequency_groups_from_counts_at_the_bounds():
    gt = {"categories": [{"id": i, "name": n} for i, n in enumerate("ABCDE")]}
    counts = {"A": 10, "B": 11, "C": 100, "D": 101}  # E: in no training image, rare
    assert frequency_groups(gt, counts) == {"r": [0, 4], "c": [1, 2], "f": [3]}


def test_keep_top_is_per_image():
    dets = [{"image_id": im, "score": s} for im in (1, 2) for s in (0.1, 0.9, 0.5)]
    assert [(d["image_id"], d["score"]) for d in keep_top(dets, 2)] == [(1, 0.9), (1, 0.5), (2, 0.9), (2, 0.5)]


def test_lvis_images_are_named_by_their_coco_url(tmp_path):
    d = {"images": [{"id": 5, "coco_url": "http://images.cocodataset.org/val2017/000000000139.jpg", "width": 640,
                     "height": 426}],
         "categories": [{"id": 1, "name": "A"}], "annotations": []}
    (tmp_path / "gt.json").write_text(json.dumps(d))
    gt, _ = ground_truth(tmp_path / "gt.json")
    assert gt["images"] == [{"id": 5, "width": 640, "height": 426, "file_name": "000000000139.jpg"}]


def test_without_faster_coco_eval_the_error_names_what_needs_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "faster_coco_eval", None)  # import fails as for a missing package
    gt = {"images": [{"id": 1}], "annotations": [{"category_id": 1, "iscrowd": 0}], "categories": [{"id": 1}]}
    with pytest.raises(InputError, match=r"^COCO evaluation needs faster_coco_eval: pip install 'detrt\[eval\]'$"):
        evaluate(gt, [{"image_id": 1}])


def test_groups_from_the_categories_frequency_field_are_reported(tmp_path):
    d = {"images": [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 10}],
         "categories": [{"id": 1, "name": "A", "frequency": "r"}],
         "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5]}]}
    (tmp_path / "gt.json").write_text(json.dumps(d))
    (tmp_path / "dt.json").write_text(json.dumps([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5],
                                                   "score": 0.9}]))
    r = evaluate_files(tmp_path / "gt.json", tmp_path / "dt.json")
    assert r["groups_from"] == "categories' frequency field" and r["APr@100"] == pytest.approx(1.0)
