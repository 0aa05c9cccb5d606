"""The numpy box ops (runtime, data, eval) and the torch ones (ops, models) are twins: same names, same values."""

import numpy as np
import pytest
import torch

import detrt.box_ops as npb
import detrt.ops.box_ops as tb

NAMES = ["box_cxcywh_to_xyxy", "box_area"]


def random_xyxy(rng, *shape):
    xy = rng.uniform(0, 100, (*shape, 2))
    return np.concatenate([xy, xy + rng.uniform(1, 50, (*shape, 2))], axis=-1)


@pytest.mark.parametrize("name", NAMES)
def test_unary_twins_agree(name):
    boxes = random_xyxy(np.random.default_rng(0), 17)
    np.testing.assert_allclose(getattr(npb, name)(boxes), getattr(tb, name)(torch.from_numpy(boxes)).numpy(), rtol=1e-12)


def test_iou_twins_agree():
    rng = np.random.default_rng(1)
    a, b = random_xyxy(rng, 9), random_xyxy(rng, 13)
    (ours, our_union), (theirs, their_union) = npb.box_iou(a, b), tb.box_iou(torch.from_numpy(a), torch.from_numpy(b))
    np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-12)
    np.testing.assert_allclose(our_union, their_union.numpy(), rtol=1e-12)


def test_iou_batches_over_leading_dimensions():
    boxes = random_xyxy(np.random.default_rng(3), 3, 7)  # 3 images of 7 boxes
    per_image = np.stack([npb.box_iou(x, x)[0] for x in boxes])
    np.testing.assert_array_equal(npb.box_iou(boxes, boxes)[0], per_image)
    np.testing.assert_array_equal(tb.box_iou(torch.from_numpy(boxes), torch.from_numpy(boxes))[0].numpy(), per_image)


def test_iou_and_giou_known_values():
    a = np.array([[0.0, 0, 2, 2]])
    b = np.array([[1.0, 1, 3, 3], [4, 4, 5, 5], [0, 0, 2, 2]])
    iou, _ = npb.box_iou(a, b)
    np.testing.assert_allclose(iou, [[1 / 7, 0, 1]])
    # Disjoint boxes: GIoU = 0 - (hull - union) / hull = -(25 - 5) / 25.
    giou = tb.generalized_box_iou(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    np.testing.assert_allclose(giou, [[1 / 7 - (9 - 7) / 9, -20 / 25, 1]])
