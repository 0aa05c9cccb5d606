"""COCO AP against values worked out by hand: a 2-image toy case, the per-image cap at 100 vs 300 detections,
frequency groups from training-image counts or LVIS's field, string image ids, and one-line errors."""

import json

import pytest

from detrt.cli import main
from detrt.errors import InputError
from detrt.eval.coco import evaluate, evaluate_files, frequency_groups, ground_truth, keep_top, read_results

pytest.importorskip("faster_coco_eval", reason="COCO AP needs detrt[eval] (faster-coco-eval)")


def _gt(tmp_path, annotations, categories=({"id": 1, "name": "A"}, {"id": 2, "name": "B"}, {"id": 3, "name": "C"})):
    d = {"images": [{"id": 1, "file_name": "x/one.jpg", "width": 100, "height": 100},
                    {"id": 2, "file_name": "x/two.jpg", "width": 100, "height": 100}],
         "categories": list(categories),
         "annotations": [{"id": i + 1, "image_id": im, "category_id": c, "bbox": b, **(extra[0] if extra else {})}
                         for i, (im, c, b, *extra) in enumerate(annotations)]}
    (tmp_path / "gt.json").write_text(json.dumps(d))
    return tmp_path / "gt.json"


def _dt(tmp_path, dets, name="dt.json"):
    (tmp_path / name).write_text(json.dumps([{"image_id": im, "category_id": c, "bbox": b, "score": s}
                                             for im, c, b, s in dets]))
    return tmp_path / name


TOY = [(1, 1, [0, 0, 10, 10]), (1, 2, [50, 50, 20, 20]), (2, 1, [20, 20, 10, 10])]
TOY_DT = [(1, 1, [0, 0, 10, 10], 0.9),  # A: TP
          (2, 1, [70, 70, 10, 10], 0.8),  # A: FP
          (2, 1, [20, 20, 10, 10], 0.7),  # A: TP
          (1, 2, [50, 50, 20, 20], 0.6)]  # B: TP
# A: recall 1/2, 1/2, 1 at precision 1, 1/2, 2/3; interpolated: 1 up to recall 0.5 (51 of the 101 recall points,
# 0.00..0.50), 2/3 above (50 points). Every IoU threshold alike (the boxes are exact or far away).
AP_A = (51 * 1 + 50 * 2 / 3) / 101  # 0.834983...
AP_B = 1.0


def test_toy_ap_by_hand(tmp_path):
    r = evaluate_files(_gt(tmp_path, TOY), _dt(tmp_path, TOY_DT))
    for k in (100, 300):
        for m in ("AP", "AP50", "AP75"):
            assert r[f"{m}@{k}"] == pytest.approx((AP_A + AP_B) / 2, abs=1e-9)  # C has no boxes: not averaged
        assert r[f"APr@{k}"] is None and r["groups_from"] is None
    assert (r["images"], r["categories"], r["categories_with_gt"], r["detections"], r["boxes"]) == (2, 3, 2, 4, 3)


def test_ap75_differs_from_ap50_on_a_loose_box(tmp_path):
    # B's box shifted by 4 px: IoU = (16 * 20) / (2 * 400 - 320) = 2/3, a TP at 0.50..0.65 (4 of 10 thresholds)
    dets = TOY_DT[:3] + [(1, 2, [54, 50, 20, 20], 0.6)]
    r = evaluate_files(_gt(tmp_path, TOY), _dt(tmp_path, dets))
    assert r["AP50@100"] == pytest.approx((AP_A + 1) / 2) and r["AP75@100"] == pytest.approx(AP_A / 2)
    assert r["AP@100"] == pytest.approx((AP_A + 0.4) / 2)


def test_detections_per_image_not_per_category(tmp_path):
    # 100 confident false positives of B (no B in image 2), then A's only true positive: cut at 100 detections
    # per image, kept at 300. COCOeval's maxDets would cap per category and give AP 1 at both.
    dets = [(2, 2, [60, 60, 5, 5], 0.9)] * 100 + [(2, 1, [20, 20, 10, 10], 0.1)]
    gt = _gt(tmp_path, [(2, 1, [20, 20, 10, 10])])
    r = evaluate_files(gt, _dt(tmp_path, dets))
    assert r["AP@100"] == 0.0 and r["AP@300"] == pytest.approx(1.0)
    assert len(keep_top([{"image_id": 1, "score": s} for s in range(5)], 2)) == 2


def test_rare_groups_from_training_counts_and_lvis_field(tmp_path):
    train = tmp_path / "train"
    train.mkdir()
    # A in 3 training images (rare), B in 11 (common), C in none (rare, and without boxes here: not averaged)
    anns = [(1, 1, [0, 0, 5, 5])] * 3 + [(2, 2, [0, 0, 5, 5])] * 11
    d = {"images": [{"id": i, "file_name": f"{i}.jpg", "width": 10, "height": 10} for i in range(14)],
         "categories": [{"id": 7, "name": "B"}, {"id": 8, "name": "A"}, {"id": 9, "name": "C"}],  # other ids: by name
         "annotations": [{"id": i, "image_id": i, "category_id": 8 if c == 1 else 7, "bbox": b}
                         for i, (_, c, b) in enumerate(anns)]}
    (train / "gt.json").write_text(json.dumps(d))
    r = evaluate_files(_gt(tmp_path, TOY), _dt(tmp_path, TOY_DT), train_gt=train / "gt.json")
    assert r["APr@300"] == pytest.approx(AP_A) and r["APc@300"] == pytest.approx(AP_B) and r["APf@300"] is None
    assert (r["categories_rare"], r["categories_common"], r["categories_frequent"]) == (1, 1, 0)
    lvis = [{"id": 1, "name": "A", "frequency": "f"}, {"id": 2, "name": "B", "frequency": "r"},
            {"id": 3, "name": "C", "frequency": "c"}]
    gt, _ = ground_truth(_gt(tmp_path, TOY, lvis))
    assert frequency_groups(gt) == {"r": [2], "c": [3], "f": [1]}
    assert evaluate(gt, read_results(_dt(tmp_path, TOY_DT), gt), frequency_groups(gt))["APr@100"] == pytest.approx(1)


def test_crowd_boxes_are_ignored_and_no_detections_give_zero(tmp_path):
    gt = _gt(tmp_path, TOY + [(2, 2, [0, 0, 50, 50], {"iscrowd": 1})])
    on_crowd = TOY_DT + [(2, 2, [0, 0, 40, 40], 0.95)]  # inside the crowd region: neither TP nor FP
    assert evaluate_files(gt, _dt(tmp_path, on_crowd))["AP@100"] == pytest.approx((AP_A + AP_B) / 2)
    r = evaluate_files(gt, _dt(tmp_path, []))
    assert r["AP@100"] == 0.0 and r["AP@300"] == 0.0


def test_string_image_ids_resolve_by_file_name(tmp_path):
    gt, _ = ground_truth(_gt(tmp_path, TOY))
    dets = read_results(_dt(tmp_path, [("x/one.jpg", 1, [0, 0, 1, 1], 0.5), ("x/two", 2, [0, 0, 1, 1], 0.5)]), gt)
    assert [d["image_id"] for d in dets] == [1, 2]


@pytest.mark.parametrize("dets,message", [
    ([(3, 1, [0, 0, 1, 1], 0.5)], r"\[0\]: image_id 3 is not an image of the ground truth"),
    ([(1, 1, [0, 0, 1, 1], 0.5), (1, 4, [0, 0, 1, 1], 0.5)], r"\[1\]: category_id 4 is not a category"),
    ([(1, 1, [0, 0, -1, 1], 0.5)], r"\[0\]: bbox must be \[x, y, w, h\]"),
    ([(1, 1, [0, 0, 1, 1], None)], r"\[0\]: score must be a finite number"),
])
def test_bad_results_name_file_and_entry(tmp_path, dets, message):
    gt_path, dt_path = _gt(tmp_path, TOY), _dt(tmp_path, dets)
    with pytest.raises(InputError, match=rf"^{dt_path}: {message}"):
        evaluate_files(gt_path, dt_path)


def test_cli_picks_coco_from_the_files(tmp_path, capsys):
    gt, dt = _gt(tmp_path, TOY), _dt(tmp_path, TOY_DT)
    assert main(["eval", "--gt", str(gt), "--dt", str(dt), "--json", str(tmp_path / "m.json")]) == 0
    out = capsys.readouterr().out
    assert "@100 dets" in out and f"{100 * (AP_A + AP_B) / 2:.2f}%" in out and "give --train-gt" in out
    assert json.loads((tmp_path / "m.json").read_text())["AP@300"] == pytest.approx((AP_A + AP_B) / 2)
    for argv, expect in [(["--dt", str(tmp_path / "d.odgt")], "is scored against COCO results (.json)"),
                         (["--dt", str(dt), "--images", str(tmp_path)], "--images: not used with a COCO"),
                         ]:
        assert main(["eval", "--gt", str(gt), *argv]) == 2
        assert expect in capsys.readouterr().err
