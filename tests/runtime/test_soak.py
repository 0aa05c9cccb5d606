"""Soak: 10,000 synthetic frames through the whole pipeline; memory stays flat, no frame lost or doubled.

A small probe model keeps it to a few seconds, so it runs with every test run.
"""

import json
import os

import numpy as np
import pytest

from detrt.runtime.pipeline import run
from detrt.runtime.sources import IterSource
from tests.helpers.probe_models import make_topk_model

N, WARMUP = 10_000, 1_000


def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _frames(n):
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (72, 128, 3), dtype=np.uint8)
    for i in range(n):
        yield np.roll(base, i % 128, axis=1)  # a new array each frame, as a decoder would give


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc to read resident memory")
def test_soak_10k_frames(tmp_path):
    make_topk_model(tmp_path / "m.onnx", max_batch=4)
    samples = {}

    def on_frame(frame, dets):
        if frame.index >= WARMUP and frame.index % 250 == 0:
            samples[frame.index] = _rss_bytes()

    s = run(IterSource(_frames(N), fps=30, frame_count=N), tmp_path / "m.onnx",
            [tmp_path / "d.jsonl", tmp_path / "out.mp4"], threshold=0.0, on_frame=on_frame)
    assert s.frames == N and s.dropped == 0 and s.corrupt == 0
    with open(tmp_path / "d.jsonl") as f:
        idx = [json.loads(line)["frame"] for line in f]
    assert idx == list(range(N))  # none lost, none duplicated, in order
    base = samples[WARMUP]
    growth = max(samples.values()) / base - 1
    print(f"RSS after warm-up {base / 2**20:.1f} MiB, max growth {growth:.2%} over {N} frames, {s.fps:.0f} FPS")
    assert growth < 0.05, {k: v / 2**20 for k, v in samples.items()}
