"""dcg_neighbors: the dense reference against a brute-force loop, the exact sub-quadratic CPU kernel
against the dense reference. The contract is the set of valid neighbours per query (slot order is free);
where several candidates tie on IoU at the k-th place any of them may be kept, so such rows compare the
kept IoU values instead.
"""

import numpy as np
import pytest
import torch

from detrt.ops import cpu
from detrt.ops.box_ops import box_cxcywh_to_xyxy, box_iou
from detrt.ops.dcg import dcg_neighbors, dcg_neighbors_reference

needs_ext = pytest.mark.skipif(not cpu.available(), reason=f"{cpu.unavailable_reason()}")


def crowd(rng, b, n, clusters=None, jitter=0.15, quantize=None):
    """Crowd-like boxes: people (aspect ~0.4, log-uniform heights) with several predictions each."""
    clusters = clusters or max(1, n // 6)
    boxes = np.empty((b, n, 4), np.float32)
    for bi in range(b):
        h = np.exp(rng.uniform(np.log(0.03), np.log(0.5), clusters))
        w = h * rng.uniform(0.3, 0.6, clusters)
        cx, cy = rng.uniform(0, 1, clusters), rng.uniform(0, 1, clusters)
        c = rng.integers(0, clusters, n)
        boxes[bi] = np.stack(
            [
                cx[c] + jitter * w[c] * rng.standard_normal(n),
                cy[c] + jitter * h[c] * rng.standard_normal(n),
                w[c] * np.exp(jitter * rng.standard_normal(n)),
                h[c] * np.exp(jitter * rng.standard_normal(n)),
            ],
            -1,
        )
    if quantize:
        boxes = np.round(boxes * quantize) / quantize
        boxes[..., 2:] = np.maximum(boxes[..., 2:], 1.0 / quantize)
    scores = rng.uniform(0, 1, (b, n)).astype(np.float32)
    return boxes.astype(np.float32), scores


def iou_matrix(boxes):
    """[B, N, 4] cxcywh numpy -> [B, N, N] IoU within each image, as the reference computes it."""
    xyxy = box_cxcywh_to_xyxy(torch.from_numpy(boxes))
    return box_iou(xyxy, xyxy)[0]


def reference(boxes, scores, k, t, low):
    i, v = dcg_neighbors_reference(torch.from_numpy(boxes), torch.from_numpy(scores), k, t, low)
    return i.numpy(), v.numpy()


def assert_same_neighbours(boxes, scores, got, want, k, t, low):
    (gi, gv), (wi, wv) = got, want
    assert gi.shape == wi.shape == gv.shape == wv.shape
    assert gv.dtype == np.bool_
    iou = iou_matrix(boxes).numpy()
    self_index = np.arange(boxes.shape[1])[None, :, None]
    assert (gi[~gv] == np.broadcast_to(self_index, gi.shape)[~gv]).all(), "padding slots must hold i"
    for b, i in zip(*np.nonzero((gv.sum(-1) != wv.sum(-1)) | (gv != wv).any(-1) | (gi != wi).any(-1))):
        g, w = set(gi[b, i][gv[b, i]].tolist()), set(wi[b, i][wv[b, i]].tolist())
        if g == w:
            continue
        assert len(g) == len(w), (b, i, g, w)
        s = scores[b]
        for j in g:  # every kept neighbour is one, and the kept IoUs are the k largest
            assert s[i] < s[j] and s[j] > low and iou[b, i, j] >= np.float32(t), (b, i, j)
        assert sorted(iou[b, i, list(g)]) == sorted(iou[b, i, list(w)]), (b, i, g, w)


def brute_force(boxes, scores, k, t, low):
    """docs/ops.md's definition as a loop over pairs (sets of neighbours, IoU in float32 like the reference)."""
    iou = iou_matrix(boxes).numpy()
    out = []
    for b in range(boxes.shape[0]):
        rows = []
        for i in range(boxes.shape[1]):
            cands = [j for j in range(boxes.shape[1])
                     if scores[b, i] < scores[b, j] and scores[b, j] > low and iou[b, i, j] >= np.float32(t)]
            cands.sort(key=lambda j: (-iou[b, i, j], j))
            rows.append(cands[:k])
        out.append(rows)
    return out


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("t, low", [(0.4, 0.1), (0.55, 0.3)])
def test_reference_matches_brute_force(seed, t, low):
    rng = np.random.default_rng(seed)
    boxes, scores = crowd(rng, 2, 40, clusters=5)
    idx, valid = reference(boxes, scores, 4, t, low)
    want = brute_force(boxes, scores, 4, t, low)
    for b in range(2):
        for i in range(40):
            assert set(idx[b, i][valid[b, i]].tolist()) == set(want[b][i])


@needs_ext
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("t", [0.4, 0.1, 0.7, 0.95])
def test_kernel_matches_dense_on_crowds(seed, t):
    rng = np.random.default_rng(10 + seed)
    n = int(rng.integers(1, 400))
    k = int(rng.choice([1, 3, 10, 50]))
    low = float(rng.choice([0.0, 0.1, 0.5]))
    boxes, scores = crowd(rng, 2, n, jitter=float(rng.choice([0.05, 0.15, 0.4])))
    got = cpu.dcg_neighbors(boxes, scores, k, t, low)
    assert_same_neighbours(boxes, scores, got, reference(boxes, scores, k, t, low), k, t, low)


@needs_ext
@pytest.mark.parametrize("t", [0.0, -0.5, 1.0, 1.5, 1e-7, float("nan")])
def test_kernel_matches_dense_at_threshold_extremes(t):
    rng = np.random.default_rng(3)
    boxes, scores = crowd(rng, 2, 120, clusters=6)
    boxes[0, :10] = boxes[0, 10:20]  # identical boxes: IoU exactly 1
    got = cpu.dcg_neighbors(boxes, scores, 10, t, 0.1)
    assert_same_neighbours(boxes, scores, got, reference(boxes, scores, 10, t, 0.1), 10, t, 0.1)


@needs_ext
def test_iou_exactly_at_threshold_and_one_ulp_below():
    # A = [0,4]x[0,1], B = [2,5]x[0,1]: inter 2, union 5, IoU = float32(0.4) exactly
    boxes = np.array([[[2.0, 0.5, 4.0, 1.0], [3.5, 0.5, 3.0, 1.0], [3.5, 0.5, np.nextafter(np.float32(3.0), 0), 1.0]]],
                     np.float32)
    scores = np.array([[0.2, 0.9, 0.8]], np.float32)
    iou = iou_matrix(boxes)[0]
    assert iou[0, 1] == torch.tensor(0.4, dtype=torch.float32)
    got = cpu.dcg_neighbors(boxes, scores, 3, 0.4, 0.1)
    want = reference(boxes, scores, 3, 0.4, 0.1)
    assert set(got[0][0, 0][got[1][0, 0]].tolist()) == set(want[0][0, 0][want[1][0, 0]].tolist())
    assert 1 in set(got[0][0, 0][got[1][0, 0]].tolist())
    assert_same_neighbours(boxes, scores, got, want, 3, 0.4, 0.1)


@needs_ext
@pytest.mark.parametrize("seed", range(4))
def test_quantized_boxes_with_many_exact_ties(seed):
    """Coordinates on a 1/32 grid: many IoUs are equal or land exactly on simple fractions."""
    rng = np.random.default_rng(40 + seed)
    boxes, scores = crowd(rng, 2, 300, clusters=20, quantize=32)
    scores = np.round(scores * 8) / 8  # equal scores: the strict s_i < s_j must hold
    for t in (0.4, 0.5, 0.25):
        got = cpu.dcg_neighbors(boxes, scores.astype(np.float32), 5, t, 0.1)
        assert_same_neighbours(boxes, scores, got, reference(boxes, scores.astype(np.float32), 5, t, 0.1), 5, t, 0.1)


@needs_ext
def test_all_invalid_and_degenerate_boxes():
    rng = np.random.default_rng(5)
    boxes, scores = crowd(rng, 3, 60)
    scores[0] = 0.05  # all below low_score
    scores[1] = 0.7  # all equal: no strict s_i < s_j
    boxes[2, :10, 2] = 0  # zero width
    boxes[2, 10:15, 3] = -0.1  # negative height
    boxes[2, 15:18, 0] = np.nan
    boxes[2, 18:20, 2] = np.inf
    boxes[2, 20:22, 0] = 1e30
    got = cpu.dcg_neighbors(boxes, scores, 10, 0.4, 0.1)
    assert not got[1][:2].any()
    assert (got[0][:2] == np.arange(60)[None, :, None]).all()
    assert_same_neighbours(boxes, scores, got, reference(boxes, scores, 10, 0.4, 0.1), 10, 0.4, 0.1)


@needs_ext
def test_k_larger_than_n_empty_and_single():
    rng = np.random.default_rng(6)
    for n, k in ((5, 12), (1, 3), (0, 4), (7, 0)):
        boxes, scores = crowd(rng, 2, max(n, 1), clusters=1, jitter=0.05)
        boxes, scores = boxes[:, :n].copy(), scores[:, :n].copy()
        got = cpu.dcg_neighbors(boxes, scores, k, 0.3, 0.0)
        assert got[0].shape == (2, n, k) and got[0].dtype == np.int64
        if n:
            assert_same_neighbours(boxes, scores, got, reference(boxes, scores, k, 0.3, 0.0), k, 0.3, 0.0)


@needs_ext
def test_large_n_matches_dense_and_batches_are_independent():
    rng = np.random.default_rng(7)
    boxes, scores = crowd(rng, 1, 5000)
    got = cpu.dcg_neighbors(boxes, scores, 10, 0.4, 0.1)
    assert_same_neighbours(boxes, scores, got, reference(boxes, scores, 10, 0.4, 0.1), 10, 0.4, 0.1)
    # B > 1: each batch element alone gives the same rows
    b2, s2 = crowd(rng, 3, 500)
    both = cpu.dcg_neighbors(b2, s2, 10, 0.4, 0.1, index_dtype=np.int32)
    assert both[0].dtype == np.int32
    for b in range(3):
        one = cpu.dcg_neighbors(b2[b : b + 1].copy(), s2[b : b + 1].copy(), 10, 0.4, 0.1)
        np.testing.assert_array_equal(one[0][0], both[0][b])
        np.testing.assert_array_equal(one[1][0], both[1][b])


@needs_ext
def test_torch_entry_point_uses_the_kernel_and_matches():
    rng = np.random.default_rng(8)
    boxes, scores = crowd(rng, 2, 200)
    for t, low in ((0.4, 0.1), (0.55, 0.3)):  # the op passes its thresholds on, not the defaults
        idx, valid = dcg_neighbors(torch.from_numpy(boxes).requires_grad_(), torch.from_numpy(scores), 10, t, low)
        assert idx.dtype == torch.int64 and valid.dtype == torch.bool
        got = (idx.numpy(), valid.numpy())
        np.testing.assert_array_equal(got[0], cpu.dcg_neighbors(boxes, scores, 10, t, low)[0])
        assert_same_neighbours(boxes, scores, got, reference(boxes, scores, 10, t, low), 10, t, low)
    assert valid.sum() < reference(boxes, scores, 10, 0.4, 0.1)[1].sum()


def test_opcheck_and_fallback_for_other_dtypes():
    rng = np.random.default_rng(9)
    boxes, scores = crowd(rng, 2, 30)
    torch.library.opcheck(torch.ops.detrt.dcg_neighbors.default, (torch.from_numpy(boxes), torch.from_numpy(scores),
                                                                  5, 0.4, 0.1))
    b64, s64 = torch.from_numpy(boxes).double(), torch.from_numpy(scores).double()
    idx, valid = dcg_neighbors(b64, s64, 5, 0.55, 0.3)  # float64: the reference runs
    ref = dcg_neighbors_reference(b64, s64, 5, 0.55, 0.3)
    assert valid.sum() < dcg_neighbors_reference(b64, s64, 5)[1].sum()
    assert torch.equal(idx, ref[0]) and torch.equal(valid, ref[1])


@needs_ext
@pytest.mark.parametrize("t", [0.4, 0.05, 1e-3])
def test_wide_scale_range_sparse_grids(t):
    """Sizes over four decades and a large canvas: sparse size classes (searched cell rows instead of a
    table) and, for small thresholds, reaches wider than a class (whole-class scans)."""
    rng = np.random.default_rng(11)
    n = 800
    size = np.exp(rng.uniform(np.log(1e-3), np.log(10.0), (2, n, 1))) * np.exp(0.3 * rng.standard_normal((2, n, 2)))
    centres = rng.uniform(0, 100, (2, n // 4, 2))[:, rng.integers(0, n // 4, n)] + 0.2 * size * rng.standard_normal(
        (2, n, 2))
    boxes = np.concatenate([centres, size], -1).astype(np.float32)
    boxes[1, :, :2] += np.float32(1e4)  # far from the origin: float spacing of the coordinates is coarse
    scores = rng.uniform(0, 1, (2, n)).astype(np.float32)
    got = cpu.dcg_neighbors(boxes, scores, 8, t, 0.1)
    assert_same_neighbours(boxes, scores, got, reference(boxes, scores, 8, t, 0.1), 8, t, 0.1)


def test_defaults_are_dh_detrs_k10_iou04_low01():
    """Each entry point's defaults (the reference's, the kernel's, the torch op's) are DH-DETR's k = 10, IoU 0.4,
    low score 0.1: called without them, the same neighbours as with them."""
    boxes, scores = crowd(np.random.default_rng(10), 1, 60)
    want = cpu.dcg_neighbors(boxes, scores, 10, 0.4, 0.1)
    for got in (cpu.dcg_neighbors(boxes, scores),
                [t.numpy() for t in dcg_neighbors(torch.from_numpy(boxes), torch.from_numpy(scores))]):
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
    assert 0 < want[1].sum() < want[1].size  # neighbours above IoU 0.4, and padding: the thresholds matter
    tb, ts = torch.from_numpy(boxes), torch.from_numpy(scores)
    for a, b in zip(dcg_neighbors_reference(tb, ts), dcg_neighbors_reference(tb, ts, 10, 0.4, 0.1)):
        torch.testing.assert_close(a, b)
