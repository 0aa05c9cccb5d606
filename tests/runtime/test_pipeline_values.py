"""The pipeline on values that could be wrong: topk reaches the postprocess, and the per-frame stage times are
times (a batch of 4 frames preprocessed in milliseconds, not 4000 ms), and the progress bar's words."""

import re

from detrt.runtime.pipeline import run
from tests.runtime.test_pipeline import _lines, clip, model  # noqa: F401 - the probe model and clip fixtures


def test_topk_reaches_the_postprocess(tmp_path, model, clip):  # noqa: F811
    run(clip, model, [tmp_path / "d.jsonl"], threshold=0.0, topk=1)
    assert {ln["count"] for ln in _lines(tmp_path / "d.jsonl")} == {1}  # the probe model returns 3 per frame


def test_stage_times_are_per_frame_seconds(tmp_path, model, clip):  # noqa: F811
    s = run(clip, model, [tmp_path / "d.jsonl"], batch=4)
    for stage in ("preprocess", "postprocess"):
        p50, _, _, mean = s.stages[stage]
        assert 0 < p50 and mean < 500, (stage, s.stages[stage])  # 64 x 96 frames: far below 1000 ms per batch


def test_progress_bar_names_the_run(tmp_path, model, clip, terminal_stderr):  # noqa: F811
    err = terminal_stderr()
    run(clip, model, [tmp_path / "d.jsonl"], batch=4, progress=True)
    text = err.getvalue()
    assert "detrt run (onnxruntime, batch 4)" in text and "37/37" in text
    assert re.search(r"[0-9?](frame/s|s/frame)\]", text)  # the unit, either way round by speed
