"""The threaded pipeline: every file frame exactly once and in order, live drops, faults, Ctrl-C."""

import errno
import io
import json
import os
import signal
import time

import cv2
import numpy as np
import pytest

from detrt.errors import InputError
from detrt.runtime.backend import open_backend
from detrt.runtime.pipeline import run
from detrt.runtime.sinks import JsonlSink, OdgtSink, SinkError, VideoSink
from detrt.runtime.sources import IterSource, VideoSource
from tests.helpers.probe_models import (FakeCapture, SlowBackend, expected_m, gradient_frames, make_raw_model,
                                        make_topk_model, write_video)

GAIN, BIAS = 4.0, (0.5, -0.5, -3.0)


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "probe.onnx"
    make_topk_model(path, input_hw=(64, 96), gain=GAIN, bias=BIAS, max_batch=4,
                    boxes=[[8, 4, 40, 60], [50, 10, 90, 30], [0, 0, 16, 16]])
    return path


@pytest.fixture
def clip(tmp_path):
    return write_video(tmp_path / "clip.mp4", gradient_frames(37), fps=25)


def _decoded(path):
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            return frames
        frames.append(f)


def _lines(path):
    return [json.loads(line) for line in open(path, encoding="utf-8")]


@pytest.mark.parametrize("batch", [1, 3, 4])
def test_every_frame_once_in_order(tmp_path, model, clip, batch):
    from detrt.manifest import load_manifest

    jsonl, odgt, out = tmp_path / "d.jsonl", tmp_path / "d.odgt", tmp_path / "out.mp4"
    s = run(clip, model, [jsonl, odgt, out], threshold=0.0, batch=batch)
    frames = _decoded(clip)
    assert s.frames == len(frames) == 37 and s.dropped == 0 and s.corrupt == 0 and s.batch == batch
    lines = _lines(jsonl)
    assert [ln["frame"] for ln in lines] == list(range(37))  # all, once, in order
    # each line's detections belong to its own frame: the probe's score is a function of the frame
    m = expected_m(frames, load_manifest(model))
    want = 1 / (1 + np.exp(-(GAIN * m[:, None] + np.array(BIAS))))
    got = np.array([[d["score"] for d in ln["detections"]] for ln in lines])
    np.testing.assert_allclose(got, want, atol=2e-5)
    assert len(set(np.round(want[:, 0], 4))) == 37  # frames are distinguishable
    # boxes in source pixels: 128x72 -> 96x54 letterbox (scale 0.75)
    assert lines[0]["detections"][0]["box"] == [10.67, 5.33, 53.33, 72.0]
    assert lines[0]["width"] == 128 and lines[0]["count"] == 3
    odgt_lines = _lines(odgt)
    assert [o["ID"] for o in odgt_lines] == [f"frame_{i:06d}" for i in range(37)]
    cap = cv2.VideoCapture(str(out))
    assert cap.get(cv2.CAP_PROP_FRAME_COUNT) == 37 and cap.get(cv2.CAP_PROP_FPS) == 25  # the clip's rate
    assert not list(tmp_path.glob(".*.tmp*"))


def test_threshold_per_sink(tmp_path, model, clip):
    s = run(clip, model, [JsonlSink(tmp_path / "hi.jsonl"), OdgtSink(tmp_path / "all.odgt")], threshold=0.6)
    hi, all_ = _lines(tmp_path / "hi.jsonl"), _lines(tmp_path / "all.odgt")
    assert s.frames == 37
    assert all(d["score"] >= 0.6 for ln in hi for d in ln["detections"])
    assert sum(ln["count"] for ln in hi) < sum(len(o["dtboxes"]) for o in all_) == 3 * 37


def test_raw_model_in_pipeline(tmp_path, clip):
    make_raw_model(tmp_path / "raw.onnx")
    seen = []
    s = run(clip, tmp_path / "raw.onnx", [], threshold=0.0, on_frame=lambda f, d: seen.append((f.index, len(d))))
    assert s.frames == 37 and [i for i, _ in seen] == list(range(37))
    assert all(n == 4 for _, n in seen)  # top-k defaults to the N queries


def test_corrupt_frame_in_a_file_is_skipped_counted_and_the_run_goes_on(tmp_path, model):
    src = VideoSource(lambda: FakeCapture(n=20, fail_at={7, 13}, frame_count=20), "fake.mp4", live=False)
    s = run(src, model, [tmp_path / "d.jsonl"])
    assert s.frames == 18 and s.corrupt == 2
    assert [ln["frame"] for ln in _lines(tmp_path / "d.jsonl")] == [i for i in range(20) if i not in (7, 13)]


@pytest.mark.parametrize("in_flight", [None, 4])
def test_live_source_drops_stale_frames(tmp_path, model, in_flight):
    """A 200 fps camera and a 25 ms model (or an overloaded server, 4 requests in flight): the pipeline infers the
    newest frame, the rest are dropped and counted."""
    cap = FakeCapture(n=200, fps=200)
    src = VideoSource(lambda: cap, "fake://cam", live=True, reconnect_timeout=0.05, backoff=(0.01, 0.01))
    with open_backend(model) as be:
        slow = SlowBackend(be, 0.025)
        slow.in_flight = in_flight
        s = run(src, slow, [tmp_path / "d.jsonl"])
    idx = [ln["frame"] for ln in _lines(tmp_path / "d.jsonl")]
    assert s.batch == 1 and s.frames == len(idx) and slow.calls >= len(idx)
    assert idx == sorted(set(idx))  # in order, no duplicates
    assert s.dropped > 50 and max(np.diff(idx)) > 1
    assert s.frames + s.dropped <= 200 <= s.frames + s.dropped + 2  # every frame either inferred or counted


def test_full_disk_stops_with_a_clear_error_and_keeps_the_lines(tmp_path, model, clip):
    class FullDisk(io.FileIO):
        writes = 0

        def write(self, data):
            FullDisk.writes += 1
            if FullDisk.writes > 10:
                half = bytes(data[: len(data) // 2])
                super().write(half)  # a partial line reaches the disk first
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return super().write(data)

    path = tmp_path / "d.jsonl"
    sink = JsonlSink(path, opener=lambda p: FullDisk(p, "wb"))
    video = VideoSink(tmp_path / "out.mp4")
    with pytest.raises(SinkError) as e:
        run(clip, model, [sink, video])
    msg = str(e.value)
    assert "No space left on device" in msg and "the first 10 lines are intact" in msg and str(path) in msg
    lines = _lines(path)  # every line parses: the partial one was cut
    assert [ln["frame"] for ln in lines] == list(range(10))
    assert e.value.summary.error == msg
    assert (tmp_path / "out.mp4").exists()  # the other sinks were closed and finalized


def test_model_path_that_does_not_exist_leaves_no_outputs(tmp_path, clip):
    with pytest.raises(InputError, match="no such model file"):
        run(clip, tmp_path / "missing.onnx", [tmp_path / "d.jsonl", tmp_path / "o.mp4"])
    assert not (tmp_path / "d.jsonl").exists() and not (tmp_path / "o.mp4").exists()


def test_batch_larger_than_the_artifact(tmp_path, model, clip):
    with pytest.raises(InputError, match="must be 1..4"):
        run(clip, model, [], batch=8)


def _slow_frames(n, delay):
    for f in gradient_frames(n):
        time.sleep(delay)
        yield f


def test_ctrl_c_flushes_sinks(tmp_path, model):
    """SIGINT mid-run: reading stops, frames in flight finish, the JSONL and the video are complete."""

    def press_ctrl_c(frame, dets):  # sent from inside the run, so it always lands in run()'s wait loop
        if frame.index == 10:
            os.kill(os.getpid(), signal.SIGINT)

    s = run(IterSource(_slow_frames(1000, 0.01), fps=25), model, [tmp_path / "d.jsonl", tmp_path / "o.mp4"],
            on_frame=press_ctrl_c)
    assert s.interrupted and 10 < s.frames < 1000
    lines = _lines(tmp_path / "d.jsonl")
    assert [ln["frame"] for ln in lines] == list(range(s.frames))
    assert cv2.VideoCapture(str(tmp_path / "o.mp4")).get(cv2.CAP_PROP_FRAME_COUNT) == s.frames


def test_first_ctrl_c_writes_every_frame_already_read(tmp_path, model):
    """A slow backend and a fast source: when SIGINT lands, frames wait in every queue. The first Ctrl-C
    drains them all: every frame the source gave is written (only a second Ctrl-C may drop them)."""
    taken = []

    def frames():
        for i, f in enumerate(gradient_frames(200)):
            taken.append(i)
            yield f

    def press_ctrl_c(frame, dets):
        if frame.index == 1:
            os.kill(os.getpid(), signal.SIGINT)

    with open_backend(model) as be:
        s = run(IterSource(frames(), fps=25), SlowBackend(be, 0.05), [tmp_path / "d.jsonl"], batch=2,
                on_frame=press_ctrl_c, warmup=False)
    assert s.interrupted and s.signal == "SIGINT"
    assert s.frames == len(taken) > 6  # more in flight than written when the signal came, and none lost
    assert [ln["frame"] for ln in _lines(tmp_path / "d.jsonl")] == list(range(len(taken)))


def test_keyboard_interrupt_raised_in_the_source(tmp_path, model):
    def frames():
        yield from gradient_frames(9)
        raise KeyboardInterrupt

    s = run(IterSource(frames()), model, [tmp_path / "d.jsonl"], batch=4)
    assert s.interrupted and s.frames == 9
    assert [ln["frame"] for ln in _lines(tmp_path / "d.jsonl")] == list(range(9))


def test_backend_error_stops_everything(tmp_path, model, clip):
    class Broken:
        def __init__(self, inner):
            self.inner, self.n = inner, 0

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def submit(self, feed):
            self.n += 1
            if self.n > 3:
                raise RuntimeError("device lost")
            return self.inner.submit(feed)

        def warmup(self, **kw):
            pass

    with open_backend(model) as be:
        with pytest.raises(RuntimeError, match="device lost"):
            run(clip, Broken(be), [tmp_path / "d.jsonl"], batch=2)
    written = [ln["frame"] for ln in _lines(tmp_path / "d.jsonl")]
    assert written == list(range(len(written))) and len(written) <= 6  # a clean prefix; in-flight work dropped
