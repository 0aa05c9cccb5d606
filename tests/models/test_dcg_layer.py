"""The DCG layer: gathered neighbours equal the reference's dense [B, N, N, C] computation; masking rules."""

import pytest
import torch
import torch.nn.functional as F

import detrt.models.dcg as dcg_module
from detrt.models.dcg import DeHomoCodingGenerator, dcg_query_mask, dense_forward
from detrt.models.deformable_transformer import DecoderLayer


def crowd(b, n, seed, spread):
    """Random boxes clustered so that many pairs overlap with IoU >= 0.4, and distinct scores."""
    g = torch.Generator().manual_seed(seed)
    centre = 0.5 + spread * (torch.rand(b, n, 2, generator=g) - 0.5)
    size = 0.2 + 0.1 * torch.rand(b, n, 2, generator=g)
    return torch.cat([centre, size], -1), torch.rand(b, n, generator=g)


@pytest.mark.parametrize("spread, n", [(0.05, 30), (0.3, 24), (0.8, 17)])
def test_gather_equals_dense_reference(spread, n):
    torch.manual_seed(0)
    m = DeHomoCodingGenerator(d_model=32, k=10)
    boxes, scores = crowd(2, n, seed=n, spread=spread)
    tgt = torch.randn(2, n, 32)
    _, valid = m.neighbors(boxes, scores)
    if spread == 0.05:
        assert (valid.sum(-1) == 10).any()  # some queries have more than k candidates: top-k by IoU matters
    torch.testing.assert_close(m(tgt, boxes, scores), dense_forward(m, tgt, boxes, scores), atol=1e-5, rtol=1e-5)


def test_uses_dcg_neighbors_op(monkeypatch):
    calls = []

    def fake(boxes, scores, k, iou_threshold, low_score):
        calls.append((boxes.shape, k, iou_threshold, low_score, boxes.requires_grad))
        b, n, _ = boxes.shape
        return torch.arange(n).view(1, n, 1).expand(b, n, k).clone(), torch.zeros(b, n, k, dtype=torch.bool)

    monkeypatch.setattr(dcg_module, "dcg_neighbors", fake)
    m = DeHomoCodingGenerator(d_model=16, k=5, iou_threshold=0.3, low_score=0.2)
    boxes = torch.rand(1, 7, 4, requires_grad=True)
    m(torch.randn(1, 7, 16), boxes, torch.rand(1, 7))
    assert calls == [(torch.Size([1, 7, 4]), 5, 0.3, 0.2, False)]


def test_invalid_slots_contribute_zero_and_no_neighbours_gives_g_zero():
    torch.manual_seed(1)
    m = DeHomoCodingGenerator(d_model=16, k=4)
    tgt = torch.randn(1, 6, 16)
    boxes = torch.tensor([[[0.5, 0.5, 0.2, 0.2]] * 6])
    # equal scores: no s_i < s_j, so nobody has a neighbour: g = 0 and q' = q + ReLU(b5)
    out = m(tgt, boxes, torch.full((1, 6), 0.9))
    torch.testing.assert_close(out, tgt + F.relu(m.linear5.bias))
    # one higher-scoring identical box: every other query has exactly one valid slot j=0, 3 padding slots,
    # so g_i = max(0, f_i0) element-wise
    scores = torch.tensor([[0.9, 0.5, 0.5, 0.5, 0.5, 0.5]])
    code = m.norm(m.linear2(F.relu(m.linear1(tgt))))
    f = m.linear4(F.relu(m.linear3(code - code[:, :1])))
    g = f.clamp(min=0)
    g[:, 0] = 0  # the top query has no neighbour
    torch.testing.assert_close(m(tgt, boxes, scores), tgt + F.relu(m.linear5(g)), atol=1e-6, rtol=1e-6)


def test_low_scored_neighbours_are_ignored():
    torch.manual_seed(2)
    m = DeHomoCodingGenerator(d_model=16, k=4, low_score=0.1)
    tgt = torch.randn(1, 2, 16)
    boxes = torch.tensor([[[0.5, 0.5, 0.2, 0.2]] * 2])
    out = m(tgt, boxes, torch.tensor([[0.02, 0.08]]))  # the higher one is below low_score
    torch.testing.assert_close(out, tgt + F.relu(m.linear5.bias))


def test_query_mask_from_scores():
    logits = torch.logit(torch.tensor([[[0.01, 0.2], [0.04, 0.05], [0.051, 0.0]]]))
    assert dcg_query_mask(logits, 0.05).tolist() == [[True, False, True]]


def test_dropped_queries_do_not_depend_on_their_input():
    """c_i = 0: the query leaves the DCG layer as a constant, whatever its tgt and pos (reference: * cur_all_mask)."""
    torch.manual_seed(3)
    layer = DecoderLayer("dcg", d_model=32, d_ffn=64, dropout=0.0, n_levels=1, n_heads=2, n_points=2).eval()
    memory = torch.randn(1, 16, 32)
    shapes, starts = torch.tensor([[4, 4]]), torch.tensor([0])
    boxes, scores = crowd(1, 5, seed=4, spread=0.2)
    keep = torch.tensor([[True, False, True, False, False]])
    outs = []
    for seed in range(2):
        torch.manual_seed(10 + seed)
        tgt, pos = torch.randn(1, 5, 32), torch.randn(1, 5, 32)
        outs.append(layer(tgt, pos, boxes[:, :, None], memory, shapes, starts, boxes=boxes, scores=scores, keep=keep))
    a, b = outs
    torch.testing.assert_close(a[0, 1], b[0, 3])
    torch.testing.assert_close(a[0, 1], a[0, 4])
    assert not torch.allclose(a[0, 0], b[0, 0])  # kept queries do depend on their input
