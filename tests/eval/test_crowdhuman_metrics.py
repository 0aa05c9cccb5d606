"""CrowdHuman AP, MR-2, JI: hand-computed cases, CrowdDet reference numbers, invariants, bad input, CLI."""

import json

import numpy as np
import pytest

from detrt.cli import main
from detrt.data.crowdhuman import GroundTruth, OdgtDetections, write_dt, write_gt
from detrt.errors import InputError
from detrt.eval import assignment
from detrt.eval.crowdhuman import EPS, _pair, clip_boxes_crowddet, evaluate, evaluate_files, iou_eps, ji_image


def gt(image_id, boxes, ignore=(), w=200, h=200):
    return GroundTruth(image_id, np.array(boxes, float).reshape(-1, 4), np.array(ignore, float).reshape(-1, 4), w, h)


def dt(image_id, boxes, scores):
    return OdgtDetections(image_id, np.array(boxes, float).reshape(-1, 4), np.array(scores, float))


PERSONS = [[10, 10, 40, 100], [60, 10, 90, 100], [100, 50, 140, 150], [150, 20, 190, 110]]


def test_perfect_detections():
    # The curve starts at the first detection (recall 1/N), so AP = (N - 1) / N, as in CrowdDet; MR-2 is 0.
    g = [gt("a", PERSONS[:2]), gt("b", PERSONS[2:])]
    d = [dt("a", PERSONS[:2], [0.9, 0.8]), dt("b", PERSONS[2:], [0.7, 0.6])]
    r = evaluate(g, d)
    assert r["AP"] == pytest.approx(3 / 4)
    assert r["MR2"] == 0.0
    assert r["JI"] == pytest.approx(2 / (2 + EPS))  # per image k / (m + n - k + eps), k = m = n = 2
    assert r["JI_dhdetr"] == pytest.approx(2 / (2 + EPS))


def test_all_misses():
    g = [gt("a", PERSONS)]
    d = [dt("a", [[0, 150, 10, 160], [180, 180, 190, 195]], [0.9, 0.5])]
    r = evaluate(g, d)
    assert r["AP"] == 0.0 and r["MR2"] == 1.0 and r["JI"] == 0.0


def test_no_detections():
    r = evaluate([gt("a", PERSONS)], [])
    assert r["AP"] == 0.0 and np.isnan(r["MR2"]) and r["JI"] == 0.0


@pytest.mark.parametrize("scores, ap, mr, ji", [
    # TP A, TP B, dup A, dup B: points (.5, 1) (1, 1) (1, 2/3) (1, .5); at t = 0.7 only the two TPs are left.
    ([0.9, 0.8, 0.7, 0.6], 0.5, 0.0, 2 / (2 + EPS)),
    # TP A, dup A, TP B, dup B: (.5, 1) (.5, .5) (1, 2/3) (1, .5); FPPI reaches 1 while miss rate is .5;
    # JI: at t = 0.6 k = 2 of n = 3, at t = 0.8 (0.8 is not > 0.8) only A and its duplicate are left.
    ([0.9, 0.85, 0.8, 0.6], 0.5 * (0.5 + 2 / 3) / 2, 0.5, 2 / (3 + EPS)),
])
def test_duplicates(scores, ap, mr, ji):
    a, b = PERSONS[:2]
    boxes = [a, b, [a[0] + 1, a[1], a[2] + 1, a[3]], [b[0], b[1] + 1, b[2], b[3] + 1]]
    if scores[1] == 0.85:
        boxes = [boxes[0], boxes[2], boxes[1], boxes[3]]
    r = evaluate([gt("a", [a, b])], [dt("a", boxes, scores)])
    assert r["AP"] == pytest.approx(ap) and r["MR2"] == pytest.approx(mr) and r["JI"] == pytest.approx(ji)


def test_detections_on_ignore_regions_are_dropped():
    region = [120, 0, 200, 60]
    g = [gt("a", PERSONS[:2], ignore=[region])]
    base = dt("a", PERSONS[:2], [0.9, 0.5])
    on_region = dt("a", PERSONS[:2] + [[130, 5, 170, 50]], [0.9, 0.5, 0.95])  # IoA 1 with the region
    half_on = dt("a", PERSONS[:2] + [[90, 5, 150, 50]], [0.9, 0.5, 0.95])  # IoA 0.5: not > 0.5, so an FP
    r0, r1, r2 = evaluate(g, [base]), evaluate(g, [on_region]), evaluate(g, [half_on])
    assert r1["AP"] == r0["AP"] == pytest.approx(0.5) and r1["JI"] == r0["JI"]
    assert r2["AP"] == pytest.approx(0.5 * 0.5 / 2 + 0.5 * (0.5 + 2 / 3) / 2)  # (0, 0) (.5, .5) (1, 2/3)
    assert r2["JI"] == pytest.approx(2 / 3, abs=1e-5)


def test_ignored_persons_do_not_count_in_recall():
    g = [gt("a", PERSONS[:2], ignore=[PERSONS[2]])]
    r = evaluate(g, [dt("a", PERSONS[:2], [0.9, 0.8])])  # the ignored person is never found: no penalty
    assert r["AP"] == pytest.approx(0.5) and r["MR2"] == 0.0 and r["persons"] == 2


def test_score_ties_follow_file_order_like_crowddet():
    # An FP and a TP share score 0.5: CrowdDet's stable sort keeps file order, and so do we.
    a, b = PERSONS[:2]
    g = [gt("a", [a, b])]
    fp_first = evaluate(g, [dt("a", [a, [150, 150, 190, 190], b], [0.9, 0.5, 0.5])])
    tp_first = evaluate(g, [dt("a", [a, b, [150, 150, 190, 190]], [0.9, 0.5, 0.5])])
    assert fp_first["AP"] == pytest.approx(0.5 * (0.5 + 2 / 3) / 2)  # (.5, 1) (.5, .5) (1, 2/3)
    assert tp_first["AP"] == pytest.approx(0.5)  # (.5, 1) (1, 1) (1, 2/3)
    assert fp_first["JI"] == tp_first["JI"]  # JI counts at thresholds, not an order


def test_clipping():
    b = clip_boxes_crowddet([[-10, -5, 250, 300], [190, 190, 260, 260]], 200, 150)
    np.testing.assert_array_equal(b, [[0, 0, 200, 150], [190, 149, 200, 150]])


def _random_case(rng, n_images=6):
    gts, dts = [], []
    for i in range(n_images):
        boxes = []
        for _ in range(rng.integers(1, 12)):
            x, y = rng.uniform(-20, 300, 2)
            w = rng.uniform(10, 60)
            boxes.append([x, y, x + w, y + w * rng.uniform(1.5, 3)])
        boxes = np.array(boxes)
        ign = rng.random(len(boxes)) < 0.2
        det = np.concatenate([boxes + rng.normal(0, 4, boxes.shape), rng.uniform(0, 300, (rng.integers(0, 6), 4))])
        det[:, 2:] = np.maximum(det[:, 2:], det[:, :2] + 1)
        gts.append(gt(f"im{i}", boxes[~ign], boxes[ign], 320, 256))
        dts.append(dt(f"im{i}", det, rng.random(len(det))))
    return gts, dts


def test_permuting_images_and_detections_changes_nothing():
    rng = np.random.default_rng(0)
    for _ in range(5):
        gts, dts = _random_case(rng)
        ref = evaluate(gts, dts)
        perm = [gts[i] for i in rng.permutation(len(gts))]
        shuffled = []
        for d in dts:
            p = rng.permutation(len(d.scores))
            shuffled.append(dt(d.image_id, d.boxes[p], d.scores[p]))
        out = evaluate(perm, shuffled[::-1])
        for key in ("AP", "MR2", "JI", "JI_dhdetr"):
            assert out[key] == pytest.approx(ref[key], abs=1e-12, nan_ok=True)


# A fixed case and the numbers CrowdDet's own scripts gave for it (xg-chu/CrowdDet e3620a6:
# lib/evaluate/compute_APMR.py Database(...).eval_AP()/eval_MR(), and compute_JI.py's
# compute_JI_with_ignore + gather at score_thr = 0.1 * i, max over i). The numbers were produced by running
# those scripts outside this repository; no CrowdDet code is used here.
def _P(x, y, w, h, tag="person", ignore=0):
    return {"tag": tag, "fbox": [x, y, w, h], "hbox": [x, y, w / 2, h / 6], "extra": {"ignore": ignore}}


def _D(x, y, w, h, s):
    return {"box": [x, y, w, h], "score": s, "tag": 1}


FROZEN_GT = [
    {"ID": "a", "gtboxes": [_P(10, 20, 30, 80), _P(30, 22, 30, 78), _P(150, 60, 40, 100), _P(100, 0, 40, 40, "mask", 1),
                            _P(60, 10, 20, 50, "person", 1), _P(80, 30, 25, 70)]},
    {"ID": "b", "gtboxes": [_P(5, 5, 20, 60), _P(-10, 30, 30, 60), _P(50, 40, 30, 55)]},
    {"ID": "c", "gtboxes": [_P(20, 10, 50, 40, "mask", 1)]},
]
FROZEN_DT = [
    {"ID": "a", "width": 200, "height": 150, "dtboxes": [
        _D(11, 21, 29, 78, 0.95), _D(28, 24, 31, 75, 0.9), _D(12, 18, 33, 84, 0.6), _D(105, 2, 30, 30, 0.85),
        _D(148, 58, 45, 95, 0.7), _D(61, 12, 18, 47, 0.4), _D(120, 90, 30, 50, 0.65), _D(84, 40, 25, 50, 0.3),
        _D(79, 29, 26, 72, 0.2)]},
    {"ID": "b", "width": 100, "height": 100, "dtboxes": [
        _D(4, 6, 21, 58, 0.88), _D(0, 32, 18, 57, 0.55), _D(70, 0, 20, 30, 0.5), _D(52, 45, 26, 50, 0.45),
        _D(45, 35, 40, 60, 0.15)]},
    {"ID": "c", "width": 120, "height": 80, "dtboxes": [_D(25, 12, 40, 30, 0.9), _D(80, 20, 20, 40, 0.35)]},
]
CROWDDET_AP, CROWDDET_MR2, CROWDDET_JI = 0.7077844774273345, 0.4096920336098465, 0.6249998645833637
CROWDDET_JI_BY_THRESHOLD = [0.390476123265318, 0.390476123265318, 0.47222212268520697, 0.4166665763889091,
                            0.6249998645833637, 0.5833331805555995, 0.46666655111114164, 0.41666654861114527,
                            0.41666654861114527, 0.12499996875000781]


def _write_lines(path, objs):
    path.write_text("".join(json.dumps(o) + "\n" for o in objs))
    return path


def test_matches_numbers_from_crowddet(tmp_path):
    r = evaluate_files(_write_lines(tmp_path / "gt.odgt", FROZEN_GT), _write_lines(tmp_path / "dt.odgt", FROZEN_DT))
    assert abs(r["AP"] - CROWDDET_AP) < 1e-6
    assert abs(r["MR2"] - CROWDDET_MR2) < 1e-6
    assert abs(r["JI"] - CROWDDET_JI) < 1e-6
    np.testing.assert_allclose([t["JI"] for t in r["ji_by_threshold"]], CROWDDET_JI_BY_THRESHOLD, atol=1e-6)
    # DH-DETR's variant divides by every image: at t = 0.2 all three have boxes left and both variants agree;
    # at t = 0.4 image c has none, CrowdDet divides by 2 (0.625) and DH-DETR by 3 (0.4167 < 0.4722).
    assert r["JI_dhdetr"] == pytest.approx(CROWDDET_JI_BY_THRESHOLD[2], abs=1e-12)


def test_assignment_without_scipy_matches_scipy(monkeypatch):
    scipy_lsa = pytest.importorskip("scipy.optimize").linear_sum_assignment
    rng = np.random.default_rng(1)
    for n, m in [(1, 1), (3, 7), (7, 3), (12, 12), (20, 9)]:
        cost = rng.random((n, m))
        r, c = assignment.hungarian_min(cost)
        r0, c0 = scipy_lsa(cost)
        assert cost[r, c].sum() == pytest.approx(cost[r0, c0].sum(), abs=1e-12)
        assert len(set(r)) == len(r) == len(set(c)) == min(n, m)
    gts, dts = _random_case(np.random.default_rng(2), 10)
    with_scipy = evaluate(gts, dts)
    monkeypatch.setattr(assignment, "_scipy_lsa", None)
    assert evaluate(gts, dts)["JI"] == pytest.approx(with_scipy["JI"], abs=1e-12)


def test_bad_input_names_file_and_line(tmp_path):
    g = _write_lines(tmp_path / "gt.odgt", [{"ID": "a", "gtboxes": [_P(1, 1, 5, 5)]}])
    d = _write_lines(tmp_path / "dt.odgt", [{"ID": "a", "width": 9, "height": 9, "dtboxes": []},
                                            {"ID": "zz", "width": 9, "height": 9, "dtboxes": []}])
    with pytest.raises(InputError, match=r"dt.odgt:2: detections for image 'zz'"):
        evaluate_files(g, d)
    d = _write_lines(tmp_path / "dt2.odgt", [{"ID": "a", "dtboxes": []}])
    with pytest.raises(InputError, match=r"gt.odgt:1: image 'a' has no width/height"):
        evaluate_files(g, d)


def test_sizes_from_images(tmp_path):
    cv2 = pytest.importorskip("cv2")
    (tmp_path / "im").mkdir()
    cv2.imwrite(str(tmp_path / "im" / "a.png"), np.zeros((50, 60, 3), np.uint8))
    g = _write_lines(tmp_path / "gt.odgt", [{"ID": "a", "gtboxes": [_P(10, 10, 45, 40)]}])
    d = _write_lines(tmp_path / "dt.odgt", [{"ID": "a", "dtboxes": [_D(10, 10, 60, 60, 0.9)]}])
    r = evaluate_files(g, d, tmp_path / "im")  # clipped to the 60x50 image: IoU 0.9 (unclipped: 0.5, a miss)
    assert r["JI"] == pytest.approx(1.0, abs=1e-5)


def test_cli_eval(tmp_path, capsys):
    g, d = tmp_path / "gt.odgt", tmp_path / "dt.odgt"
    write_gt(g, [gt("a", PERSONS)])
    write_dt(d, [dt("a", PERSONS, [0.9, 0.8, 0.7, 0.6])])
    assert main(["eval", "--gt", str(g), "--dt", str(d), "--json", str(tmp_path / "m.json")]) == 0
    out = capsys.readouterr().out
    assert "AP" in out and "MR-2" in out and "75.00%" in out
    saved = json.loads((tmp_path / "m.json").read_text())
    assert saved["AP"] == pytest.approx(0.75) and saved["MR2"] == 0.0
    d.write_text('{"ID": "a", "dtboxes": [{"box": [1, 2, 3, 4], "score": NaN}]}\n')
    assert main(["eval", "--gt", str(g), "--dt", str(d)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{d}:1:" in err and "score" in err
    assert main(["eval", "--gt", str(tmp_path / "none.odgt"), "--dt", str(d)]) == 2
    assert "none.odgt" in capsys.readouterr().err
    d.write_bytes(b'{"ID": "a", "dtboxes": []}\n{"ID": "b\xe9", "dtboxes": []}\n')  # Latin-1, not UTF-8
    assert main(["eval", "--gt", str(g), "--dt", str(d)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"detrt eval: error: {d}:2: not UTF-8 text (byte 0xe9 at column 10); an .odgt file is JSON lines"
    write_dt(d, [dt("a", PERSONS, [0.9, 0.8, 0.7, 0.6])])
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["eval", "--gt", str(g), "--dt", str(d), "--json", str(blocker / "m.json")]) == 2
    assert "cannot write here" in capsys.readouterr().err and not (blocker / "m.json").exists()


def test_cli_eval_json_onto_a_full_disk(tmp_path, on_full_disk):
    g, d = tmp_path / "gt.odgt", tmp_path / "dt.odgt"
    write_gt(g, [gt("a", PERSONS)])
    write_dt(d, [dt("a", PERSONS, [0.9, 0.8, 0.7, 0.6])])
    assert "75.00%" in on_full_disk(["eval", "--gt", g, "--dt", d, "--json", tmp_path / "full" / "m.json"],
                                    tmp_path / "full")
    before = d.read_text()
    assert main(["eval", "--gt", str(g), "--dt", str(d), "--json", str(d)]) == 2  # an input: refused
    assert d.read_text() == before


def test_ji_per_threshold_by_hand_with_both_ignore_branches():
    """Person C lies inside ignore region R, detection D lies on R and matches nobody: both leave JI's counts.
    B's score is exactly 0.1, which the threshold 0.1 drops (scores must be > t)."""
    a, b = PERSONS[:2]
    region, c, d = [150, 0, 200, 60], [155, 5, 195, 55], [150, 0, 170, 60]  # IoA(C, R) = IoA(D, R) = 1
    r = evaluate([gt("a", [a, b, c], ignore=[region])],
                 [dt("a", [a, b, [150, 150, 190, 190], d], [0.35, 0.1, 0.05, 0.75])])
    # t = 0:    k = 2 (A, B), n = 4 - 1 (D dropped), m = 3 - 1 (C dropped): 2 / 3
    # t = 0.1-0.3: A and D kept: k = 1, n = 1, m = 2: 1 / 2;  t >= 0.4: only D, dropped: k = n = 0, m = 2: 0
    want = [2 / 3] + [1 / 2] * 3 + [0.0] * 6
    rows = r["ji_by_threshold"]
    np.testing.assert_allclose([t["JI"] for t in rows], want, rtol=1e-5, atol=1e-12)
    assert [t["threshold"] for t in rows] == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    assert [t["matched"] for t in rows] == [2, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    assert [t["detections"] for t in rows] == [3, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    assert r["JI"] == pytest.approx(2 / 3, rel=1e-5) and r["JI_dhdetr"] == pytest.approx(1 / 2, rel=1e-5)


def test_all_scores_below_0_1_count_only_for_crowddet_ji():
    """CrowdDet's JI starts at t = 0 and sees the detection; DH-DETR's starts at 0.1 and sees nothing."""
    r = evaluate([gt("a", PERSONS[:1])], [dt("a", PERSONS[:1], [0.05])])
    assert r["JI"] == pytest.approx(1.0, rel=1e-5) and r["JI_dhdetr"] == 0.0
    assert [t["JI"] for t in r["ji_by_threshold"]][1:] == [0.0] * 9
    assert r["ji_by_threshold"][0]["JI_dhdetr"] is None
    assert r["AP"] == 0.0 and r["MR2"] == 0.0  # one detection: no curve; recall 1 at every FPPI


def test_x0_beyond_w_minus_1_is_clipped_to_w_minus_1():
    """A box starting past the right edge keeps one pixel column (W - 1 to W), as CrowdDet's clip."""
    b = clip_boxes_crowddet([[250, 10, 300, 50], [20, 180, 40, 260], [30, -20, 50, -5]], 200, 150)
    np.testing.assert_array_equal(b, [[199, 10, 200, 50], [20, 149, 40, 150], [30, 0, 50, 0]])  # above: y to 0


def test_ji_image_iou_of_exactly_one_half_is_no_match_and_a_matched_ignored_person_counts():
    """ji_image on a hand-made IoU matrix. IoU 0.5 is not > 0.5: no pair. Persons 0 and 1 are both flagged as in
    an ignore region; person 0 is matched, so only unmatched person 1 leaves m."""
    none = np.zeros(1, bool)
    assert ji_image(np.array([[0.5]]), np.array([0.9]), none, none, 0.0) == (0, 1, 1)
    assert ji_image(np.array([[0.5 + 1e-9]]), np.array([0.9]), none, none, 0.0) == (1, 1, 1)
    iou = np.array([[0.8, 0.0]])
    assert ji_image(iou, np.array([0.9]), none, np.array([True, True]), 0.0) == (1, 1, 1)


def test_a_ground_truth_with_one_side_only_takes_the_detections_size():
    """Width 200 without a height is no size: the detections' 300 x 100 clips the boxes (y to H 100)."""
    g = GroundTruth("a", np.array([[10.0, 10, 40, 150]]), np.zeros((0, 4)), 200, None)
    d = OdgtDetections("a", np.array([[10.0, 10, 40, 150]]), np.array([0.9]), 300, 100)
    assert evaluate([g], [d])["JI"] == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_array_equal(_pair(g, d, None, "gt")[0], [[10, 10, 40, 100]])


def test_iou_of_a_box_with_itself_is_just_below_1():
    """CrowdDet's eps is added to the union: 100 / (100 + eps)."""
    box = np.array([[0.0, 0.0, 10.0, 10.0]])
    iou = iou_eps(box, box)[0, 0]
    assert iou < 1 and iou == 100 / (100 + EPS)
