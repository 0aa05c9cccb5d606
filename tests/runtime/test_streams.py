"""Several sources in one process: each stream's output is what a run of it alone writes, local batches meet in
the muxer, and one failing stream does not stop the others."""

import json
import os
import signal
import threading

import numpy as np

from detrt.cli import main
from detrt.runtime.backend import open_backend
from detrt.runtime.streams import StreamMuxer, aggregate, run_streams
from tests.helpers.probe_models import SlowBackend, gradient_frames, make_topk_model, write_video


def _clips(tmp_path, n, frames=6):
    return [write_video(tmp_path / f"c{i}.mp4", gradient_frames(frames, seed=i)) for i in range(n)]


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _muxed(clips, muxer, prefix):
    """run_streams of `clips` through `muxer` into PREFIX{i}.jsonl at threshold 0; closes the muxer's backend."""
    try:
        return run_streams([str(c) for c in clips], muxer,
                           [lambda i=i: [f"{prefix}{i}.jsonl"] for i in range(len(clips))], threshold=0.0)
    finally:
        muxer.close()
        muxer.backend.close()


def test_streams_write_what_single_runs_write_and_the_muxer_batches_them(tmp_path, capsys):
    make_topk_model(tmp_path / "m.onnx", max_batch=4)
    clips = _clips(tmp_path, 4)
    for i, clip in enumerate(clips):
        assert main(["run", str(clip), "--model", str(tmp_path / "m.onnx"), "--jsonl", str(tmp_path / f"a{i}.jsonl"),
                     "--batch", "1", "--threshold", "0"]) == 0
    muxer = StreamMuxer(open_backend(tmp_path / "m.onnx"), delay_s=0.05)
    summaries = _muxed(clips, muxer, tmp_path / "b")
    assert [s.frames for s in summaries] == [6] * 4 and not any(s.error for s in summaries)
    assert sum(muxer.batches) == 24 and max(muxer.batches) > 1  # frames of several streams in one batch
    for i in range(4):
        alone, together = _lines(tmp_path / f"a{i}.jsonl"), _lines(tmp_path / f"b{i}.jsonl")
        assert [r["frame"] for r in together] == list(range(6))
        for a, b in zip(alone, together):
            assert a["count"] > 0 and [d["label"] for d in a["detections"]] == [d["label"] for d in b["detections"]]
            np.testing.assert_allclose([d["box"] for d in a["detections"]], [d["box"] for d in b["detections"]],
                                       atol=0.02)
    assert aggregate(summaries).startswith("all 4 streams: 24 frames, ")


def test_cli_several_sources_one_file_each_and_a_failing_one_reports(tmp_path, capsys):
    make_topk_model(tmp_path / "m.onnx")
    clips = _clips(tmp_path, 2, frames=3)
    argv = ["run", *map(str, clips), "rtsp://127.0.0.1:9/none", "--model", str(tmp_path / "m.onnx"),
            "--jsonl", str(tmp_path / "d{stream}.jsonl"), "--retry", "1.5"]
    assert main(argv) == 1  # a stream failed; the others wrote everything
    out, err = capsys.readouterr()
    assert [len(_lines(tmp_path / f"d{i}.jsonl")) for i in range(2)] == [3, 3]
    assert not (tmp_path / "d2.jsonl").exists()
    assert "all 3 streams: 6 frames" in out and ", 1 failed" in out
    assert "stream 2: rtsp://127.0.0.1:9/none: cannot open" in err and "trying again in 1 s" in err
    assert "detrt run: stream 2 (rtsp://127.0.0.1:9/none): error: " in err


def test_several_sources_need_a_stream_placeholder(tmp_path, capsys):
    make_topk_model(tmp_path / "m.onnx")
    clips = _clips(tmp_path, 3, frames=2)
    assert main(["run", *map(str, clips), "--model", str(tmp_path / "m.onnx"), "--jsonl",
                 str(tmp_path / "d.jsonl")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "3 sources write one file each: put {stream} in the name (e.g. d_{stream}.jsonl)" in err[0]
    assert not list(tmp_path.glob("*.jsonl"))


def test_an_existing_video_second_is_a_source_never_written_over(tmp_path, capsys):
    make_topk_model(tmp_path / "m.onnx")
    first, second = _clips(tmp_path, 2, frames=2)
    before = second.read_bytes()
    assert main(["run", str(first), str(second), "--model", str(tmp_path / "m.onnx")]) == 0
    assert second.read_bytes() == before and "all 2 streams: 4 frames" in capsys.readouterr().out


def test_ctrl_c_ends_every_stream_and_writes_what_is_in_flight(tmp_path):
    make_topk_model(tmp_path / "m.onnx")
    clips = _clips(tmp_path, 2, frames=80)
    threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT)).start()
    summaries = _muxed(clips, StreamMuxer(SlowBackend(open_backend(tmp_path / "m.onnx"), 0.05)), tmp_path / "d")
    for i, s in enumerate(summaries):
        assert s.interrupted and 0 < s.frames < 80 and not s.error
        assert [r["frame"] for r in _lines(tmp_path / f"d{i}.jsonl")] == list(range(s.frames))
