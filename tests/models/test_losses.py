"""SetCriterion: focal loss values, ignore regions, DCG query mask, GIoU-aware encoder targets, weights."""

import pytest
import torch

from detrt.models import build_criterion
from detrt.models.losses import SetCriterion, box_ioa, loss_weights, sigmoid_focal_loss
from detrt.models.matcher import HungarianMatcher
from detrt.ops.box_ops import box_cxcywh_to_xyxy, generalized_box_iou

GT = torch.tensor([[0.3, 0.3, 0.2, 0.2]])
IGNORE = torch.tensor([[0.75, 0.75, 0.3, 0.3]])


def criterion(**kw):
    return SetCriterion(1, HungarianMatcher(2, 5, 2), loss_weights(1, False), **kw)


def outputs(logits, boxes, **extra):
    return {"pred_logits": torch.tensor(logits).view(1, -1, 1), "pred_boxes": torch.tensor(boxes)[None], **extra}


BOXES = [[0.31, 0.3, 0.2, 0.2],   # matched to the GT
         [0.75, 0.75, 0.1, 0.1],  # inside the ignore region
         [0.1, 0.8, 0.1, 0.1]]    # background


def test_focal_loss_value_with_soft_target():
    x, t, a = torch.tensor([0.3]), torch.tensor([0.6]), 0.25
    p = torch.sigmoid(x)
    bce = -(t * p.log() + (1 - t) * (1 - p).log())
    p_t, a_t = p * t + (1 - p) * (1 - t), a * t + (1 - a) * (1 - t)
    assert sigmoid_focal_loss(x, t, 2.0).item() == pytest.approx((a_t * (1 - p_t) ** 2 * bce / 2).item(), rel=1e-6)


def test_box_ioa_is_over_the_first_box():
    a = box_cxcywh_to_xyxy(torch.tensor([[0.5, 0.5, 0.2, 0.2]]))
    b = box_cxcywh_to_xyxy(torch.tensor([[0.55, 0.5, 0.2, 0.2], [0.5, 0.5, 1.0, 1.0]]))
    torch.testing.assert_close(box_ioa(a, b), torch.tensor([[0.75, 1.0]]))


def ce(crit, logits, **extra):
    target = [{"boxes": GT, "labels": torch.tensor([0]), "ignore_boxes": IGNORE}]
    return crit(outputs(logits, BOXES, **extra), target)["loss_ce"].item()


def test_ignored_prediction_gets_no_classification_loss():
    crit = criterion()
    base = ce(crit, [2.0, 1.0, -3.0])
    assert ce(crit, [2.0, 5.0, -3.0]) == pytest.approx(base)  # ignored: its score does not matter
    assert ce(crit, [2.0, 1.0, 3.0]) > base + 1  # background: a high score is penalized
    # without the ignore region the same prediction is penalized
    no_ignore = [{"boxes": GT, "labels": torch.tensor([0])}]
    a = crit(outputs([2.0, 1.0, -3.0], BOXES), no_ignore)["loss_ce"].item()
    b = crit(outputs([2.0, 5.0, -3.0], BOXES), no_ignore)["loss_ce"].item()
    assert b > a + 1


def test_matched_prediction_inside_ignore_region_still_counts():
    crit = criterion()
    target = [{"boxes": torch.tensor([[0.75, 0.75, 0.1, 0.1]]), "labels": torch.tensor([0]), "ignore_boxes": IGNORE}]
    lo = crit(outputs([2.0, -4.0, -3.0], BOXES), target)["loss_ce"].item()
    hi = crit(outputs([2.0, 4.0, -3.0], BOXES), target)["loss_ce"].item()
    assert lo > hi  # query 1 is matched: a low score on it is penalized although it lies in the ignore region


def test_dcg_query_mask_limits_classification_loss():
    crit = criterion()
    mask = torch.tensor([[True, True, False]])
    base = ce(crit, [2.0, 1.0, float("-inf")], query_mask=mask)
    assert base == pytest.approx(ce(crit, [2.0, 1.0, float("-inf")], query_mask=mask))
    assert torch.isfinite(torch.tensor(base))
    # dropping the matched query leaves no match: no box loss, the other queries are negatives
    target = [{"boxes": GT, "labels": torch.tensor([0])}]
    out = crit(outputs([float("-inf"), -2.0, -3.0], BOXES, query_mask=torch.tensor([[False, True, True]])), target)
    assert out["loss_bbox"].item() == 0 and out["loss_giou"].item() == 0
    assert all(torch.isfinite(v) for v in out.values())


def test_encoder_loss_uses_giou_target_and_class_agnostic_matching():
    crit = SetCriterion(1, HungarianMatcher(2, 5, 2), loss_weights(1, True))
    logits = torch.tensor([[[0.5], [-1.0], [-2.0]]])
    boxes = torch.tensor([BOXES])
    enc = {"pred_logits": logits, "pred_boxes": boxes}
    out = {"pred_logits": logits, "pred_boxes": boxes, "aux_outputs": [], "enc_outputs": enc}
    target = [{"boxes": GT, "labels": torch.tensor([0])}]
    losses = crit(out, target)
    giou = generalized_box_iou(box_cxcywh_to_xyxy(boxes[0, :1]), box_cxcywh_to_xyxy(GT))[0, 0]
    expected = sigmoid_focal_loss(logits[0, :, 0], torch.stack([giou, torch.tensor(0.0), torch.tensor(0.0)]), 1.0)
    assert losses["loss_ce_enc"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert losses["loss_ce"].item() != pytest.approx(losses["loss_ce_enc"].item())  # decoder targets are 1
    assert losses["loss_bbox_enc"].item() == pytest.approx(losses["loss_bbox"].item())


def test_gqs_target_gradient_reaches_boxes_unless_detached():
    target = [{"boxes": GT, "labels": torch.tensor([0])}]
    for detach, expect in ((False, True), (True, False)):
        boxes = torch.tensor([BOXES], requires_grad=True)
        crit = SetCriterion(1, HungarianMatcher(2, 5, 2), {}, gqs_detach_target=detach)
        logits = torch.tensor([[[2.0], [0.0], [0.0]]], requires_grad=True)
        loss = crit.loss_labels({"pred_logits": logits, "pred_boxes": boxes}, target,
                                [(torch.tensor([0]), torch.tensor([0]))], 1.0, giou_target=True)["loss_ce"]
        loss.backward()
        assert (boxes.grad is not None and boxes.grad.abs().sum() > 0) == expect


def test_weight_dict_covers_every_loss_of_the_model_outputs():
    crit = build_criterion("dhdetr_r18_tiny")
    assert crit.weight_dict["loss_ce"] == 2 and crit.weight_dict["loss_bbox_1"] == 5
    assert crit.weight_dict["loss_giou_enc"] == 2
    assert sorted(crit.weight_dict) == sorted(k + s for k in ("loss_ce", "loss_bbox", "loss_giou")
                                              for s in ("", "_0", "_1", "_enc"))
