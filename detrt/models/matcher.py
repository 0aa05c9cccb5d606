"""Hungarian matching between predictions and ground truth (scipy's linear_sum_assignment).

The cost of matching prediction i to target j is
    cost_class * (focal cost of class label_j) + cost_bbox * L1(box_i, box_j) - cost_giou * GIoU(box_i, box_j),
with the focal cost of Deformable DETR: alpha (1-p)^gamma (-log p) - (1-alpha) p^gamma (-log(1-p)), i.e. the
focal loss of calling it positive minus that of calling it negative, so the class cost is on the same scale
as the loss it will receive. With all_columns (CQ-DINO) the class cost sums that focal cost over every
column: positive on the object's column, negative on the others; a label of -1 (a category the selector
did not keep) is negative on all of them.

DCG layers (outputs carrying `query_mask`) match under DH-DETR's constraint: only queries with c_i = 1,
and only pairs whose predicted centre lies strictly inside the GT box with IoU > 0. Among the allowed
pairs, the assignment maximizes the number of matches, then minimizes the cost (the reference sets
forbidden costs to 1e12 and drops forbidden pairs after solving, which is the same thing).
"""

import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

from detrt.ops.box_ops import box_cxcywh_to_xyxy, box_iou, generalized_box_iou

FORBIDDEN = 1e12


class HungarianMatcher(nn.Module):
    def __init__(self, cost_class=2.0, cost_bbox=5.0, cost_giou=2.0, focal_alpha=0.25, focal_gamma=2.0,
                 all_columns=False):
        """cost_class, cost_bbox, cost_giou: weights of the focal class cost, the L1 box distance (cxcywh)
        and the negative GIoU in the matching cost (DH-DETR: 2, 5, 2)."""
        super().__init__()
        if cost_class == 0 and cost_bbox == 0 and cost_giou == 0:
            raise ValueError("all matching costs are 0")
        self.cost_class, self.cost_bbox, self.cost_giou = cost_class, cost_bbox, cost_giou
        self.alpha, self.gamma, self.all_columns = focal_alpha, focal_gamma, all_columns

    def cost_matrix(self, logits, boxes, labels, gt_boxes):
        """logits [N, C], boxes [N, 4] cxcywh, labels [G], gt_boxes [G, 4] cxcywh -> (cost [N, G], iou [N, G])."""
        prob = logits.sigmoid() if self.all_columns else logits.sigmoid()[:, labels]
        neg = (1 - self.alpha) * prob ** self.gamma * -(1 - prob + 1e-8).log()
        pos = self.alpha * (1 - prob) ** self.gamma * -(prob + 1e-8).log()
        if self.all_columns:
            onehot = (labels[:, None] == torch.arange(logits.shape[1], device=labels.device)).to(pos.dtype)
            class_cost = neg.sum(1, keepdim=True) + (pos - neg) @ onehot.T
        else:
            class_cost = pos - neg
        pred_xyxy, gt_xyxy = box_cxcywh_to_xyxy(boxes), box_cxcywh_to_xyxy(gt_boxes)
        iou = box_iou(pred_xyxy, gt_xyxy)[0]
        cost = (self.cost_class * class_cost + self.cost_bbox * torch.cdist(boxes, gt_boxes, p=1)
                - self.cost_giou * generalized_box_iou(pred_xyxy, gt_xyxy))
        return cost, iou

    @torch.no_grad()
    def forward(self, outputs, targets):
        """outputs: pred_logits [B, N, C], pred_boxes [B, N, 4] (cxcywh, normalized), optionally query_mask
        [B, N] bool (a DCG layer: matching is constrained, see the module docstring).
        targets: list of B dicts with labels [G] int64 and boxes [G, 4] (cxcywh, normalized).

        Returns a list of B pairs (index_i, index_j) of int64 tensors of equal length <= min(N, G):
        prediction index_i[k] is matched to target index_j[k]; index_i is increasing.
        """
        mask = outputs.get("query_mask")
        result = []
        for b, t in enumerate(targets):
            logits, boxes = outputs["pred_logits"][b].float(), outputs["pred_boxes"][b].float()
            if len(t["labels"]) == 0:
                result.append((torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.int64)))
                continue
            cost, iou = self.cost_matrix(logits, boxes, t["labels"], t["boxes"].float())
            if mask is None:
                rows, cols = linear_sum_assignment(cost.cpu().numpy())
            else:
                rows, cols = self._constrained(cost, iou, boxes, t["boxes"].float(), mask[b])
            result.append((torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(cols, dtype=torch.int64)))
        return result

    @staticmethod
    def _constrained(cost, iou, boxes, gt_boxes, query_mask):
        gt = box_cxcywh_to_xyxy(gt_boxes)
        cx, cy = boxes[:, None, 0], boxes[:, None, 1]
        allowed = (gt[None, :, 0] < cx) & (cx < gt[None, :, 2]) & (gt[None, :, 1] < cy) & (cy < gt[None, :, 3])
        allowed &= (iou > 0) & query_mask[:, None]
        rows_kept = query_mask.nonzero().flatten()
        cost = cost[rows_kept].double().masked_fill(~allowed[rows_kept], FORBIDDEN).cpu().numpy()
        rows, cols = linear_sum_assignment(cost)
        ok = cost[rows, cols] < FORBIDDEN
        return rows_kept.cpu().numpy()[rows[ok]], cols[ok]
