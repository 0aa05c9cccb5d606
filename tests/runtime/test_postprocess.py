"""Postprocess both output formats: threshold, top-k, boxes back to source pixels, class names; no NMS."""

import numpy as np
import pytest

from detrt.data.preprocess import resize_transform
from detrt.errors import InputError
from detrt.manifest import Manifest
from detrt.runtime.postprocess import Detections, Postprocessor


def _t():
    return resize_transform((360, 640), (320, 320), "letterbox")  # sx = sy = 0.5, image 180x320


def test_topk_threshold_map_and_names():
    out = {"scores": np.array([[0.9, 0.6, 0.4, 0.1]], np.float32),
           "labels": np.array([[0, 1, 0, 1]], np.int64),
           "boxes": np.array([[[10, 20, 110, 90], [0, 0, 320, 180], [5, 5, 6, 6], [1, 1, 2, 2]]], np.float32)}
    post = Postprocessor("topk", (320, 320), ("person", "head"), threshold=0.5)
    (d,) = post(out, [_t()])
    np.testing.assert_allclose(d.scores, [0.9, 0.6])
    np.testing.assert_allclose(d.boxes, [[20, 40, 220, 180], [0, 0, 640, 360]])
    assert d.names == ["person", "head"] and d.labels.tolist() == [0, 1]
    post.topk = 1
    (d,) = post(out, [_t()])
    assert len(d) == 1
    post.topk, post.threshold = None, 0.0
    (d,) = post(out, [_t()])
    assert len(d) == 4  # no NMS: overlapping boxes all survive


def test_score_floor_is_kept_whatever_the_threshold():
    out = {"scores": np.array([[0.9, 0.05, 0.0499, 0.0]], np.float32), "labels": np.zeros((1, 4), np.int64),
           "boxes": np.zeros((1, 4, 4), np.float32)}
    post = Postprocessor("topk", (320, 320), threshold=0.0, score_floor=0.05)
    (d,) = post(out, [_t()])
    np.testing.assert_allclose(d.scores, [0.9, 0.05])  # >= the floor stays, as the reference's filter
    post.threshold = 0.5
    (d,) = post(out, [_t()])
    np.testing.assert_allclose(d.scores, [0.9])
    with pytest.raises(InputError, match="score_floor must be in"):
        Postprocessor("topk", (320, 320), score_floor=1.5)


def test_raw_graph_takes_num_select_and_floor_from_the_manifest():
    from detrt.manifest import Manifest

    logits = np.log(np.array([[[0.9], [0.2], [0.1], [0.04]]]) / (1 - np.array([[[0.9], [0.2], [0.1], [0.04]]])))
    out = {"pred_logits": logits.astype(np.float32), "pred_boxes": np.full((1, 4, 4), 0.5, np.float32)}
    m = Manifest(family="dh-detr", config="x", class_names=["person"], input_size=(320, 320), onnx_sha256=None,
                 output_format="raw", num_select=3, score_floor=0.05)
    (d,) = Postprocessor.from_manifest(m, threshold=0.0)(out, [_t()])
    np.testing.assert_allclose(d.scores, [0.9, 0.2, 0.1], rtol=1e-5)
    (d,) = Postprocessor.from_manifest(m, threshold=0.0, topk=4)(out, [_t()])
    np.testing.assert_allclose(d.scores, [0.9, 0.2, 0.1], rtol=1e-5)  # the 4th is under the floor
    m.score_floor = 0.15
    (d,) = Postprocessor.from_manifest(m, threshold=0.0)(out, [_t()])
    np.testing.assert_allclose(d.scores, [0.9, 0.2], rtol=1e-5)


def test_topk_unsorted_input_is_sorted():
    out = {"scores": np.array([[0.2, 0.8]], np.float32), "labels": np.zeros((1, 2), np.int64),
           "boxes": np.array([[[0, 0, 2, 2], [0, 0, 4, 4]]], np.float32)}
    (d,) = Postprocessor("topk", (320, 320), threshold=0.0)(out, [_t()])
    np.testing.assert_allclose(d.scores, [0.8, 0.2])
    np.testing.assert_allclose(d.boxes[0], [0, 0, 8, 8])


def _raw_reference(logits, boxes, k, threshold, size_hw, t):
    """Deformable DETR's PostProcess, written as loops; boxes normalized to size_hw."""
    H, W = size_hw
    B, N, C = logits.shape
    results = []
    for b in range(B):
        cands = []
        for n in range(N):
            for c in range(C):
                cands.append((1 / (1 + np.exp(-logits[b, n, c])), n, c))
        cands.sort(key=lambda s: -s[0])
        rows = []
        for s, n, c in cands[:k]:
            if s < threshold:
                continue
            cx, cy, w, h = boxes[b, n]
            xyxy = np.array([(cx - w / 2) * W, (cy - h / 2) * H, (cx + w / 2) * W, (cy + h / 2) * H])
            xyxy /= [t.sx, t.sy, t.sx, t.sy]
            xyxy[0::2] = np.clip(xyxy[0::2], 0, t.src_w)
            xyxy[1::2] = np.clip(xyxy[1::2], 0, t.src_h)
            rows.append((s, c, xyxy))
        results.append(rows)
    return results


@pytest.mark.parametrize("on_image", [True, False])
@pytest.mark.parametrize("input_hw", [(320, 320), (64, 96)])
@pytest.mark.parametrize("k", [None, 3, 7])
def test_raw_matches_reference(k, input_hw, on_image):
    # on_image: boxes normalized to the letterboxed image (a graph with image_sizes), else to the padded input
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 2, (2, 5, 3)).astype(np.float32)
    boxes = rng.uniform(0.1, 0.6, (2, 5, 4)).astype(np.float32)
    t = resize_transform((360, 640), input_hw, "letterbox")
    post = Postprocessor("raw", input_hw, ("a", "b", "c"), threshold=0.3, topk=k, boxes_on_image=on_image)
    got = post({"pred_logits": logits, "pred_boxes": boxes}, [t, t])
    want = _raw_reference(logits, boxes, k or 5, 0.3, (t.new_h, t.new_w) if on_image else input_hw, t)
    for d, rows in zip(got, want):
        assert len(d) == len(rows)
        np.testing.assert_allclose(d.scores, [r[0] for r in rows], rtol=1e-6)
        assert d.labels.tolist() == [r[1] for r in rows]
        np.testing.assert_allclose(d.boxes, np.array([r[2] for r in rows]).reshape(-1, 4), rtol=1e-5, atol=1e-3)


def test_raw_by_hand():
    """One query, one class: logit 0 -> score 0.5; cxcywh (0.5, 0.25, 0.5, 0.5) of the 320x180 image inside
    the 320x320 input is xyxy (80, 0, 240, 90) there, doubled in the source. A graph without image_sizes
    normalizes to the padded 320x320 input: xyxy (80, 0, 240, 160), doubled (clipped to the 360 rows)."""
    out = {"pred_logits": np.zeros((1, 1, 1), np.float32),
           "pred_boxes": np.array([[[0.5, 0.25, 0.5, 0.5]]], np.float32)}
    (d,) = Postprocessor("raw", (320, 320), ("person",), threshold=0.5)(out, [_t()])
    np.testing.assert_allclose(d.scores, [0.5])
    np.testing.assert_allclose(d.boxes, [[160, 0, 480, 180]])
    (d,) = Postprocessor("raw", (320, 320), ("person",), threshold=0.5, boxes_on_image=False)(out, [_t()])
    np.testing.assert_allclose(d.boxes, [[160, 0, 480, 320]])


def test_raw_by_hand_on_a_non_square_input():
    """64x96 (H x W): x scales by W = 96 and y by H = 64; a W/H swap moves every coordinate.
    cxcywh (0.5, 0.25, 0.5, 0.5) -> xyxy (24, 0, 72, 32) in the input; the 128x192 source is twice that."""
    out = {"pred_logits": np.zeros((1, 1, 1), np.float32),
           "pred_boxes": np.array([[[0.5, 0.25, 0.5, 0.5]]], np.float32)}
    t = resize_transform((128, 192), (64, 96), "letterbox")
    (d,) = Postprocessor("raw", (64, 96), ("person",), threshold=0.5)(out, [t])
    np.testing.assert_allclose(d.boxes, [[48, 0, 144, 64]])


def test_raw_equal_scores_keep_query_order():
    """50 queries x 2 classes, logits 0 and -1 alternating, every pair a candidate (topk 100: no argpartition,
    whose order of ties is arbitrary): the 50 equal top scores come in query order (a sort that is not stable
    reorders ties in arrays this long)."""
    logits = np.tile(np.array([0.0, -1.0], np.float32), (1, 50, 1))
    boxes = np.stack([np.linspace(0.2, 0.8, 50), np.full(50, 0.5), np.full(50, 0.1), np.full(50, 0.1)], -1)
    t = resize_transform((64, 96), (64, 96), "letterbox")
    post = Postprocessor("raw", (64, 96), ("a", "b"), threshold=0.4, topk=100)
    (d,) = post({"pred_logits": logits, "pred_boxes": boxes[None]}, [t])
    assert len(d) == 50 and (d.labels == 0).all() and d.labels.dtype == np.int64
    np.testing.assert_allclose(d.boxes[:, 0], boxes[:, 0] * 96 - 4.8, rtol=1e-5)  # x0 grows with the query


def test_detections_helpers():
    d = Detections(np.array([[0, 0, 1, 1], [0, 0, 2, 2]], np.float32), np.array([0.9, 0.2], np.float32),
                   np.array([0, 5]), ("person",))
    assert d.names == ["person", "5"]
    assert len(d.above(0.5)) == 1 and d.above(0.1) is d
    assert d.to_list()[0] == {"box": [0.0, 0.0, 1.0, 1.0], "score": 0.9, "label": 0, "name": "person",
                              "category_id": 1}
    assert d.ids == [1, 6]  # no ids given: 1..C
    coco = Detections(d.boxes, d.scores, np.array([1, 0]), ("person", "bicycle"), (1, 2))
    assert coco.ids == [2, 1] and coco.above(0.5).ids == [2] and coco.above(0.5).category_ids == (1, 2)
    assert len(Detections.empty()) == 0


def test_manifest_ids_reach_the_detections():
    m = Manifest("cq-dino", "tiny", ["cat", "dog"], (32, 32), "a" * 64, class_ids=[17, 18], num_select=2)
    out = {"scores": np.array([[0.9, 0.8]], np.float32), "labels": np.array([[1, 0]]),
           "boxes": np.zeros((1, 2, 4), np.float32)}
    (d,) = Postprocessor.from_manifest(m, threshold=0.5)(out, [resize_transform((32, 32), (32, 32), "letterbox")])
    assert d.names == ["dog", "cat"] and d.ids == [18, 17]
