"""max_weight_matching never returns a pair without an edge, with scipy or with the built-in solver."""

import numpy as np
import pytest

from detrt.eval import assignment


@pytest.mark.parametrize("solver", ["scipy", "builtin"])
def test_a_row_left_with_no_edge_is_not_matched(monkeypatch, solver):
    if solver == "builtin":
        monkeypatch.setattr(assignment, "_scipy_lsa", None)
    # rows 0 and 1 both want column 0 only; the square solver must still give row 1 some column (weight 0)
    weight = np.array([[1.0, 0, 0], [0.5, 0, 0], [0, 0.7, 0.2]])
    rows, cols = assignment.max_weight_matching(weight)
    assert rows.tolist() == [0, 2] and cols.tolist() == [0, 1]
