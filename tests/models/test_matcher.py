"""Hungarian matcher: optimal against brute force, DCG-layer constraint, empty targets."""

import itertools

import pytest
import torch

from detrt.models.matcher import HungarianMatcher
from detrt.ops.box_ops import box_cxcywh_to_xyxy, box_iou


def random_case(seed, n, g, classes=2):
    gen = torch.Generator().manual_seed(seed)
    boxes = torch.cat([0.2 + 0.6 * torch.rand(n, 2, generator=gen), 0.05 + 0.3 * torch.rand(n, 2, generator=gen)], 1)
    gt = torch.cat([0.2 + 0.6 * torch.rand(g, 2, generator=gen), 0.05 + 0.3 * torch.rand(g, 2, generator=gen)], 1)
    logits = torch.randn(n, classes, generator=gen)
    labels = torch.randint(classes, (g,), generator=gen)
    return logits, boxes, labels, gt


def brute_force(cost, allowed=None):
    """(number of pairs, total cost) of the best partial one-to-one assignment: most allowed pairs, then least cost."""
    n, g = cost.shape
    allowed = torch.ones(n, g, dtype=torch.bool) if allowed is None else allowed
    best = (0, 0.0)
    for size in range(1, min(n, g) + 1):
        for cols in itertools.permutations(range(g), size):
            for rows in itertools.combinations(range(n), size):
                if all(allowed[r, c] for r, c in zip(rows, cols)):
                    total = sum(cost[r, c].item() for r, c in zip(rows, cols))
                    if size > best[0] or (size == best[0] and total < best[1]):
                        best = (size, total)
    return best


@pytest.mark.parametrize("seed, n, g", [(0, 5, 3), (1, 4, 4), (2, 6, 2), (3, 3, 5)])
def test_optimal_against_brute_force(seed, n, g):
    matcher = HungarianMatcher(2, 5, 2)
    logits, boxes, labels, gt = random_case(seed, n, g)
    (rows, cols), = matcher({"pred_logits": logits[None], "pred_boxes": boxes[None]}, [{"labels": labels, "boxes": gt}])
    cost, _ = matcher.cost_matrix(logits, boxes, labels, gt)
    assert len(rows) == min(n, g) and len(set(rows.tolist())) == len(rows) and len(set(cols.tolist())) == len(cols)
    assert rows.tolist() == sorted(rows.tolist())
    size, best = brute_force(cost)
    assert size == min(n, g)
    assert cost[rows, cols].sum().item() == pytest.approx(best, abs=1e-5)


def test_cost_terms():
    """Class cost is the focal positive-minus-negative cost; boxes add 5 L1 - 2 GIoU."""
    matcher = HungarianMatcher(2, 5, 2)
    logits = torch.tensor([[0.0]])
    box = torch.tensor([[0.5, 0.5, 0.2, 0.2]])
    cost, iou = matcher.cost_matrix(logits, box, torch.tensor([0]), box)
    p = 0.5
    pos = 0.25 * (1 - p) ** 2 * -torch.log(torch.tensor(p + 1e-8))
    focal = pos - 0.75 * p ** 2 * -torch.log(torch.tensor(1 - p + 1e-8))
    assert cost.item() == pytest.approx(2 * focal.item() - 2 * 1.0, abs=1e-6)
    assert iou.item() == pytest.approx(1.0)


@pytest.mark.parametrize("seed", range(4))
def test_dcg_constraint_against_brute_force(seed):
    matcher = HungarianMatcher(2, 5, 2)
    logits, _, labels, gt = random_case(10 + seed, 6, 3, classes=1)
    gen = torch.Generator().manual_seed(seed)
    # predictions near the GTs, some centred inside and some outside, some masked out
    boxes = gt[torch.randint(3, (6,), generator=gen)] + 0.12 * (torch.rand(6, 4, generator=gen) - 0.5)
    boxes[:, 2:] = boxes[:, 2:].clamp(min=0.02)
    query_mask = torch.rand(6, generator=gen) > 0.25
    outputs = {"pred_logits": logits[None], "pred_boxes": boxes[None], "query_mask": query_mask[None]}
    (rows, cols), = matcher(outputs, [{"labels": labels, "boxes": gt}])
    cost, iou = matcher.cost_matrix(logits, boxes, labels, gt)
    x0, y0, x1, y1 = box_cxcywh_to_xyxy(gt).unbind(-1)
    inside = (x0 < boxes[:, None, 0]) & (boxes[:, None, 0] < x1) & (y0 < boxes[:, None, 1]) & (boxes[:, None, 1] < y1)
    allowed = inside & (box_iou(box_cxcywh_to_xyxy(boxes), box_cxcywh_to_xyxy(gt))[0] > 0) & query_mask[:, None]
    assert 0 < allowed.sum() < allowed.numel() - 6  # a constrained, non-trivial case
    assert all(allowed[r, c] for r, c in zip(rows.tolist(), cols.tolist()))
    size, best = brute_force(cost, allowed)
    assert len(rows) == size
    assert cost[rows, cols].sum().item() == pytest.approx(best, abs=1e-5)


def test_dcg_constraint_centre_must_be_inside():
    matcher = HungarianMatcher(2, 5, 2)
    gt = torch.tensor([[0.5, 0.5, 0.2, 0.2]])
    # prediction 0 overlaps the GT but its centre is outside; prediction 1 is far worse but centred inside
    boxes = torch.tensor([[0.62, 0.5, 0.2, 0.2], [0.55, 0.55, 0.02, 0.02]])
    mask = torch.ones(1, 2, dtype=torch.bool)
    outputs = {"pred_logits": torch.zeros(1, 2, 1), "pred_boxes": boxes[None], "query_mask": mask}
    target = [{"labels": torch.tensor([0]), "boxes": gt}]
    (rows, _), = matcher(outputs, target)
    assert rows.tolist() == [1]
    (rows, _), = matcher({k: v for k, v in outputs.items() if k != "query_mask"}, target)
    assert rows.tolist() == [0]
    outputs["query_mask"] = torch.tensor([[True, False]])
    (rows, _), = matcher(outputs, target)
    assert rows.tolist() == []


def test_empty_targets_and_batch_equals_single():
    matcher = HungarianMatcher(2, 5, 2)
    logits, boxes, labels, gt = random_case(7, 8, 3)
    logits2, boxes2, labels2, gt2 = random_case(8, 8, 4)
    targets = [{"labels": labels, "boxes": gt}, {"labels": labels[:0], "boxes": gt[:0]},
               {"labels": labels2, "boxes": gt2}]
    out = {"pred_logits": torch.stack([logits, logits, logits2]), "pred_boxes": torch.stack([boxes, boxes, boxes2])}
    batched = matcher(out, targets)
    assert [len(r) for r, _ in batched] == [3, 0, 4]
    single = matcher({"pred_logits": logits2[None], "pred_boxes": boxes2[None]}, targets[2:])
    assert batched[2][0].tolist() == single[0][0].tolist() and batched[2][1].tolist() == single[0][1].tolist()
