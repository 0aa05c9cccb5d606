"""The numpy box ops (runtime, eval) and the torch ones (training) are twins: same names, same values."""

import numpy as np
import pytest
import torch

import detrt.box_ops as npb
import detrt.ops.box_ops as tb

NAMES = ["box_cxcywh_to_xyxy", "box_xyxy_to_cxcywh", "box_xywh_to_xyxy", "box_xyxy_to_xywh", "box_area"]


def random_xyxy(rng, n):
    xy = rng.uniform(0, 100, (n, 2))
    return np.concatenate([xy, xy + rng.uniform(1, 50, (n, 2))], axis=1)


@pytest.mark.parametrize("name", NAMES)
def test_unary_twins_agree(name):
    boxes = random_xyxy(np.random.default_rng(0), 17)
    np.testing.assert_allclose(getattr(npb, name)(boxes), getattr(tb, name)(torch.from_numpy(boxes)).numpy(), rtol=1e-12)


@pytest.mark.parametrize("name", ["box_iou", "generalized_box_iou"])
def test_pairwise_twins_agree(name):
    rng = np.random.default_rng(1)
    a, b = random_xyxy(rng, 9), random_xyxy(rng, 13)
    ours, theirs = getattr(npb, name)(a, b), getattr(tb, name)(torch.from_numpy(a), torch.from_numpy(b))
    if name == "box_iou":
        ours, theirs = ours[0], theirs[0]
    np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-12)


def test_format_round_trips():
    boxes = random_xyxy(np.random.default_rng(2), 5)
    np.testing.assert_allclose(npb.box_cxcywh_to_xyxy(npb.box_xyxy_to_cxcywh(boxes)), boxes)
    np.testing.assert_allclose(npb.box_xywh_to_xyxy(npb.box_xyxy_to_xywh(boxes)), boxes)


def test_iou_and_giou_known_values():
    a = np.array([[0.0, 0, 2, 2]])
    b = np.array([[1.0, 1, 3, 3], [4, 4, 5, 5], [0, 0, 2, 2]])
    iou, _ = npb.box_iou(a, b)
    np.testing.assert_allclose(iou, [[1 / 7, 0, 1]])
    # Disjoint boxes: GIoU = 0 - (hull - union) / hull = -(25 - 5) / 25.
    np.testing.assert_allclose(npb.generalized_box_iou(a, b), [[1 / 7 - (9 - 7) / 9, -20 / 25, 1]])
