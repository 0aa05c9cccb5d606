"""Reservoir percentiles and the summary."""

import numpy as np

from detrt.runtime.stats import Reservoir, Stats


def test_reservoir_exact_below_capacity():
    r = Reservoir(capacity=1000)
    values = np.random.default_rng(0).exponential(5.0, 800)
    for v in values:
        r.add(v)
    np.testing.assert_allclose(r.percentiles(), np.percentile(values, [50, 95, 99]))
    assert r.count == 800 and abs(r.mean - values.mean()) < 1e-9


def test_reservoir_bounded_and_representative():
    r = Reservoir(capacity=2000)
    values = np.arange(100_000, dtype=float)  # uniform over the whole stream, not just its end
    for v in values:
        r.add(v)
    assert len(r.values) == 2000 and r.count == 100_000
    p50, p95, _ = r.percentiles()
    assert abs(p50 - 50_000) < 3_000 and abs(p95 - 95_000) < 2_000


def test_summary_format():
    s = Stats()
    for _ in range(10):
        s.stage("infer", 0.004, frames=2)
        s.frame_done(s.start)
    summary = s.summary(dropped=3, batch=2, backend="onnxruntime")
    text = summary.format()
    assert summary.frames == 10 and summary.dropped == 3
    assert abs(summary.stages["infer"][0] - 2.0) < 1e-9  # per-frame share of a batch
    assert "infer" in text and "end-to-end" in text and "dropped 3" in text
    assert summary.to_dict()["stages"]["infer"][0] == summary.stages["infer"][0]
