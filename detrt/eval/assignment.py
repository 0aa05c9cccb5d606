"""Maximum-weight bipartite matching for the JI metric, with or without scipy.

CrowdDet's `compute_JI.py` matches detections to ground truth by a maximum-weight matching (Edmonds'
blossom algorithm) over the edges with IoU > 0.5, weighted by IoU. On a bipartite graph with
non-negative weights that optimum equals a linear assignment maximising the sum of the weight matrix
with 0 where there is no edge; the zero pairs are then dropped. scipy's `linear_sum_assignment` solves
it when importable (training installs); a runtime-only install (numpy alone) uses the shortest
augmenting path Hungarian method below, vectorised over columns.
"""

import numpy as np

try:
    from scipy.optimize import linear_sum_assignment as _scipy_lsa
except ImportError:  # runtime-only install
    _scipy_lsa = None


def hungarian_min(cost):
    """Rows and columns of a minimum-cost assignment of cost [n, m] (min(n, m) pairs), like scipy's.

    Jonker-Volgenant style shortest augmenting paths with potentials, O(n^2 m) for n <= m.
    """
    cost = np.asarray(cost, dtype=np.float64)
    if cost.shape[0] > cost.shape[1]:
        cols, rows = hungarian_min(cost.T)
        order = np.argsort(rows)
        return rows[order], cols[order]
    n, m = cost.shape
    u, v = np.zeros(n + 1), np.zeros(m + 1)
    owner = np.zeros(m + 1, dtype=np.int64)  # owner[j]: 1-based row holding column j (0: free)
    way = np.zeros(m + 1, dtype=np.int64)
    for i in range(1, n + 1):
        owner[0], j0 = i, 0
        minv = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, dtype=bool)
        while True:
            used[j0] = True
            i0 = owner[j0]
            free = ~used[1:]
            cur = cost[i0 - 1] - u[i0] - v[1:]
            better = free & (cur < minv[1:])
            minv[1:][better] = cur[better]
            way[1:][better] = j0
            candidates = np.where(free, minv[1:], np.inf)
            j1 = int(np.argmin(candidates)) + 1
            delta = candidates[j1 - 1]
            u[owner[used]] += delta
            v[used] -= delta
            minv[1:][free] -= delta
            j0 = j1
            if owner[j0] == 0:
                break
        while j0:  # flip the augmenting path
            j1 = way[j0]
            owner[j0] = owner[j1]
            j0 = j1
    cols = np.nonzero(owner[1:])[0]
    rows = owner[1:][cols] - 1
    order = np.argsort(rows)
    return rows[order], cols[order]


def max_weight_matching(weight):
    """Pairs (rows, cols) of a maximum-weight matching on weight [n, m] >= 0; 0 means no edge.

    Only rows and columns with an edge enter the solver, so crowded images stay cheap.
    """
    weight = np.asarray(weight, dtype=np.float64)
    edge = weight > 0
    r_idx, c_idx = np.nonzero(edge.any(1))[0], np.nonzero(edge.any(0))[0]
    if len(r_idx) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    sub = weight[np.ix_(r_idx, c_idx)]
    if _scipy_lsa is not None:
        rows, cols = _scipy_lsa(sub, maximize=True)
    else:
        rows, cols = hungarian_min(-sub)
    keep = sub[rows, cols] > 0
    return r_idx[rows[keep]], c_idx[cols[keep]]
