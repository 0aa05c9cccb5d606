"""The pipeline on values that could be wrong: topk reaches the postprocess, and the per-frame stage times are
times (a batch of 4 frames preprocessed in milliseconds, not 4000 ms), the progress bar's words and settings, and
the first of two failures is the one raised."""

import re

import pytest

from detrt.runtime import pipeline
from detrt.runtime.backend import open_backend
from detrt.runtime.pipeline import run
from detrt.runtime.sinks import JsonlSink
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


def test_progress_bar_settings(tmp_path, model, clip, monkeypatch):  # noqa: F811
    seen = []
    real = pipeline.progress_bar
    monkeypatch.setattr(pipeline, "progress_bar", lambda **kw: seen.append(kw) or real(**kw))
    run(clip, model, [tmp_path / "d.jsonl"], batch=4, progress=False)
    (kw,) = seen
    assert (kw["total"], kw["show"], kw["unit"], kw["dynamic_ncols"]) == (37, False, "frame", True)


def test_a_failed_run_raises_its_own_error_when_a_sink_also_fails_to_close(tmp_path, model, clip):  # noqa: F811
    class Broken:
        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def submit(self, feed):
            raise RuntimeError("device lost")

    class BadClose(JsonlSink):
        def close(self):
            super().close()
            raise OSError("close failed")

    with open_backend(model) as be, pytest.raises(RuntimeError, match="^device lost$") as e:
        run(clip, Broken(be), [BadClose(tmp_path / "d.jsonl")], batch=2, warmup=False)
    assert e.value.summary.error == "device lost"


class Recording:
    """A backend under another name that logs when each batch is submitted and when its result is taken."""

    def __init__(self, inner, name):
        self.inner, self.name, self.calls = inner, name, []

    def __getattr__(self, attr):
        return getattr(self.inner, attr)

    def submit(self, feed):
        i = sum(call == "submit" for call, _ in self.calls)
        self.calls.append(("submit", i))
        result = self.inner.submit(feed)
        return lambda: self.calls.append(("result", i)) or result()


@pytest.mark.parametrize("name, overlapped", [("tensorrt", True), ("onnxruntime", False)])
def test_tensorrt_keeps_two_batches_in_flight_on_files(tmp_path, model, clip, name, overlapped):  # noqa: F811
    with open_backend(model) as be:
        rec = Recording(be, name)
        run(clip, rec, [tmp_path / "d.jsonl"], batch=4)  # 37 frames: 10 batches, the last of one frame
    first = [("submit", 0), ("submit", 1), ("result", 0)] if overlapped else [("submit", 0), ("result", 0)]
    assert rec.calls[:len(first)] == first and rec.calls[-1] == ("result", 9) and len(rec.calls) == 20
    assert [ln["frame"] for ln in _lines(tmp_path / "d.jsonl")] == list(range(37))


def test_a_live_camera_slower_than_the_poll_loses_no_frame(tmp_path, model):  # noqa: F811
    """8 frames at 10 fps (100 ms apart, twice the pipeline's 50 ms wait for a frame): a wait that times out
    while the camera still streams is no end of the run (which would end at the first wait, with no frame)."""
    from detrt.runtime.sources import VideoSource
    from tests.helpers.probe_models import FakeCapture

    cap = FakeCapture(n=8, fps=10)
    src = VideoSource(lambda: cap, "fake://cam", live=True, reconnect_timeout=0.05, backoff=(0.01, 0.01))
    s = run(src, model, [tmp_path / "d.jsonl"])
    idx = [ln["frame"] for ln in _lines(tmp_path / "d.jsonl")]
    assert 6 <= s.frames + s.dropped <= 8 and s.frames == len(idx) and idx == sorted(set(idx))  # drops: under load
