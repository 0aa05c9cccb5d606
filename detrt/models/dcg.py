"""The De-Homo Coding Generator (DCG) of DH-DETR (docs/models.md), replacing decoder self-attention.

Each query gets a learned identity code d = LN(W2 ReLU(W1 q)). From its neighbours j (queries that score
higher, score > low_score, IoU >= iou_threshold; the k of largest IoU, chosen by `dcg_neighbors`), it
aggregates g_i = max over the k slots of valid_ij * W4 ReLU(W3 (d_i - d_j)), and adds ReLU(W5 g_i).
The asymmetry (only higher-scoring neighbours count) lets a duplicate learn that a better query already
covers its object.

The reference code builds [B, N, N, C] differences and sorts an N x N IoU matrix; here neighbours are
gathered from [B, N, C], so memory is [B, N, k, C]. W3 is linear, so W3 (d_i - d_j) + b3 is computed as
(W3 d_i + b3) - W3 d_j with W3 d projected once per query: the per-pair cost is one C x C matmul (W4).
"""

import torch
import torch.nn.functional as F
from torch import nn

from detrt.ops import dcg_neighbors
from detrt.ops.box_ops import box_cxcywh_to_xyxy, box_iou


class DeHomoCodingGenerator(nn.Module):
    """forward(tgt [B, N, C], boxes [B, N, 4] cxcywh, scores [B, N]) -> tgt + ReLU(W5 g) [B, N, C].

    boxes and scores are the previous layer's predictions; they only choose neighbours (no gradient).
    """

    def __init__(self, d_model=256, k=10, iou_threshold=0.4, low_score=0.1):
        super().__init__()
        self.k, self.iou_threshold, self.low_score = k, iou_threshold, low_score
        self.linear1 = nn.Linear(d_model, d_model)
        self.linear2 = nn.Linear(d_model, d_model)
        self.norm = nn.LayerNorm(d_model)
        self.linear3 = nn.Linear(d_model, d_model)
        self.linear4 = nn.Linear(d_model, d_model)
        self.linear5 = nn.Linear(d_model, d_model)

    def neighbors(self, boxes, scores):
        """(indices int64 [B, N, k], valid bool [B, N, k]) of each query's higher-scoring overlapping queries."""
        with torch.no_grad():
            return dcg_neighbors(boxes.detach(), scores.detach(), self.k, self.iou_threshold, self.low_score)

    def forward(self, tgt, boxes, scores):
        indices, valid = self.neighbors(boxes, scores)
        code = self.norm(self.linear2(F.relu(self.linear1(tgt))))
        proj = F.linear(code, self.linear3.weight)  # W3 d, bias added once below
        b, n, c = proj.shape
        k = indices.shape[-1]
        neighbor = torch.gather(proj, 1, indices.reshape(b, n * k, 1).expand(b, n * k, c)).view(b, n, k, c)
        pair = self.linear4(F.relu(proj[:, :, None] + self.linear3.bias - neighbor))  # [B, N, k, C]
        # An invalid slot contributes 0 to the max, exactly as the reference's (features * mask).max(2).
        g = (pair * valid[..., None].to(pair.dtype)).amax(2)
        return tgt + F.relu(self.linear5(g))


def dense_forward(m, tgt, boxes, scores):
    """DeHomoCodingGenerator.forward as the reference code computes it (DH_DETR_paper, AMself=0, no seeds):
    an N x N IoU matrix, argsort, gather of the k best, features of all [B, N, N, C] code differences.

    The oracle that tests and benchmarks/dcg_layer.py hold the gathered forward to; O(N^2 C) memory.
    """
    xyxy = box_cxcywh_to_xyxy(boxes)
    ious = box_iou(xyxy, xyxy)[0]
    high = (scores[:, :, None] < scores[:, None, :]) & (scores[:, None, :] > m.low_score)
    overlaps = ious * high
    idx = torch.argsort(-overlaps, dim=-1)[..., : m.k]
    mk = torch.gather(high, 2, idx) & (torch.gather(overlaps, 2, idx) >= m.iou_threshold)
    code = m.norm(m.linear2(F.relu(m.linear1(tgt))))
    diff = code[:, :, None, :] - code[:, None, :, :]  # [B, N, N, C]: what forward() avoids
    feats = m.linear4(F.relu(m.linear3(diff)))
    feats = torch.gather(feats, 2, idx[..., None].expand(-1, -1, -1, feats.shape[-1]))
    g = (feats * mk[..., None]).max(dim=2)[0]
    return tgt + F.relu(m.linear5(g))

def dcg_query_mask(logits, floor_score=0.05):
    """c_i = sigmoid(max class logit) > floor_score, from the previous layer's detached logits [B, N, C] -> [B, N]."""
    return logits.detach().amax(-1).sigmoid() > floor_score
