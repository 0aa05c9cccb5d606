"""Sources: URI vocabulary, files deliver every frame (corrupt ones skipped and counted), live sources
keep only the newest frame and reconnect with back-off."""

import time

import cv2
import numpy as np
import pytest

from detrt.errors import InputError
from detrt.runtime.sources import (ImageSource, IterSource, VideoSource, csi_pipeline, has_gstreamer, open_source)
from tests.helpers.probe_models import FakeCapture, gradient_frames, unstamp, write_video


def test_video_file_every_frame_in_order(tmp_path):
    frames = gradient_frames(12)
    clip = write_video(tmp_path / "clip.avi", frames, fps=10)
    for uri in (str(clip), f"file://{clip}"):
        with open_source(uri) as src:
            assert not src.is_live and src.fps == 10 and src.frame_count == 12
            got = list(src)
        assert [f.index for f in got] == list(range(12))
        assert [f.pts for f in got][:3] == [0.0, 0.1, 0.2]
        means = [f.image.mean() for f in got]
        assert means == sorted(means)  # the brightness ramp, in order


def test_corrupt_frame_in_the_middle_is_skipped_and_counted():
    cap = FakeCapture(n=10, fail_at={4}, frame_count=10)
    src = VideoSource(lambda: cap, "fake.mp4", live=False)
    got = list(src)
    assert [f.index for f in got] == [0, 1, 2, 3, 5, 6, 7, 8, 9]
    assert [unstamp(f.image) for f in got] == [0, 1, 2, 3, 5, 6, 7, 8, 9]
    assert src.corrupt == 1 and not src.is_streaming


def test_frames_the_container_promises_but_lacks_are_corrupt():
    cap = FakeCapture(n=6, frame_count=9)  # a truncated file: the container claims more frames than there are
    src = VideoSource(lambda: cap, "fake.mp4", live=False)
    assert len(list(src)) == 6 and src.corrupt == 3
    cap = FakeCapture(n=6, frame_count=6)  # a whole file: the failed read after the last frame is the end
    src = VideoSource(lambda: cap, "fake.mp4", live=False)
    assert len(list(src)) == 6 and src.corrupt == 0


def test_truncated_avi_counts_the_lost_frames(tmp_path):
    clip = write_video(tmp_path / "clip.avi", gradient_frames(10), fps=10)
    data = clip.read_bytes()
    starts = [i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xD8]
    clip.write_bytes(data[:starts[6]])  # frames 0-5 whole, the rest and the index cut off
    with open_source(clip) as src:
        got = list(src)
    assert [f.index for f in got] == [0, 1, 2, 3, 4, 5] and src.corrupt == 4


def test_garbled_jpeg_in_an_mjpeg_file(tmp_path):
    """A real file: one frame's JPEG data overwritten in the middle of an MJPEG AVI."""
    frames = gradient_frames(10)
    clip = write_video(tmp_path / "clip.avi", frames, fps=10)
    data = bytearray(clip.read_bytes())
    starts = [i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xD8]
    assert len(starts) >= 10
    s = starts[5]
    data[s:s + 600] = bytes(600)  # destroy frame 5's header and first scans
    clip.write_bytes(bytes(data))
    with open_source(clip) as src:
        got = list(src)
    assert [f.index for f in got] == [0, 1, 2, 3, 4, 6, 7, 8, 9] and src.corrupt == 1


def test_truncated_jpeg_is_corrupt_not_half_gray(tmp_path):
    for i, f in enumerate(gradient_frames(3)):
        cv2.imwrite(str(tmp_path / f"img{i}.jpg"), f)
    whole = (tmp_path / "img1.jpg").read_bytes()
    (tmp_path / "img1.jpg").write_bytes(whole[:len(whole) * 2 // 3])  # OpenCV alone decodes it, gray below
    src = open_source(tmp_path)
    assert [f.name for f in src] == ["img0", "img2"] and src.corrupt == 1


def test_image_folder_glob_and_unreadable_image(tmp_path):
    for i, f in enumerate(gradient_frames(4)):
        cv2.imwrite(str(tmp_path / f"img{i}.png"), f)
    (tmp_path / "img1.png").write_bytes(b"not a png")
    (tmp_path / "notes.txt").write_text("ignored")
    src = open_source(tmp_path)
    assert isinstance(src, ImageSource) and src.frame_count == 4
    got = list(src)
    assert [f.name for f in got] == ["img0", "img2", "img3"] and [f.index for f in got] == [0, 2, 3]
    assert src.corrupt == 1
    assert [f.name for f in open_source(str(tmp_path / "img[23].png"))] == ["img2", "img3"]
    assert [f.name for f in open_source(tmp_path / "img0.png")] == ["img0"]


@pytest.mark.parametrize("uri, words", [
    ("missing.mp4", "no such file or directory"),
    ("empty_dir", "has no images"),
    ("*.nothing", "matches no images"),
    ("display://0", "is an output"),
    ("csi://x", "sensor number"),
])
def test_bad_uris(tmp_path, monkeypatch, uri, words):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(InputError, match=words):
        open_source(uri)


def test_undecodable_file(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\0" * 1000)
    with pytest.raises(InputError, match="cannot open"):
        open_source(bad)


@pytest.mark.skipif(has_gstreamer(), reason="this OpenCV has GStreamer")
def test_csi_without_gstreamer_says_so():
    with pytest.raises(InputError, match="needs OpenCV built with GStreamer"):
        open_source("csi://0")
    with pytest.raises(InputError, match="GStreamer"):
        open_source("videotestsrc ! videoconvert ! appsink")


def test_csi_pipeline_string():
    p = csi_pipeline(1)
    assert p.startswith("nvarguscamerasrc sensor-id=1 ! ") and p.endswith("appsink drop=true max-buffers=1")


def test_live_kinds(monkeypatch):
    opened = []

    def fake_capture(*args):
        opened.append(args)
        return FakeCapture(fps=100)

    monkeypatch.setattr(cv2, "VideoCapture", fake_capture)
    for uri, args in [("0", (0,)), ("v4l2:///dev/video3", ("/dev/video3", cv2.CAP_V4L2)),
                      ("rtsp://cam:8554/live", ("rtsp://cam:8554/live", cv2.CAP_FFMPEG))]:
        src = open_source(uri)
        assert src.is_live, uri
        assert opened[-1] == args
        assert src.capture(timeout=2) is not None
        src.close()
    src = open_source("https://host/clip.mp4")  # an http file is a file: every frame
    assert not src.is_live
    src.close()


def test_live_keeps_only_the_newest_frame():
    cap = FakeCapture(fps=200)
    src = VideoSource(lambda: cap, "fake://cam", live=True)
    try:
        taken = []
        for _ in range(8):
            f = src.capture(timeout=2)
            taken.append(f.index)
            time.sleep(0.03)  # a slow consumer: ~6 frames arrive meanwhile
        assert taken == sorted(taken) and len(set(taken)) == len(taken)
        assert max(np.diff(taken)) > 1 and src.dropped > 0
        newest = src.capture(timeout=2).index
        assert newest >= cap.index - 2  # what we get is (nearly) the latest produced
    finally:
        src.close()
    assert src.dropped + 9 <= cap.index + 1


def test_reconnect_with_back_off():
    """The camera disappears after 5 frames twice; the source reopens it and the frames resume."""
    made = []

    def open_capture():
        cap = FakeCapture(n=5 * (len(made) + 1), fps=500, start=5 * len(made))
        if len(made) in (1, 2):  # the first two attempts to reopen fail
            cap.opened = False
        made.append(cap)
        return cap

    src = VideoSource(open_capture, "fake://cam", live=True, backoff=(0.01, 0.04))
    got = []
    t0 = time.monotonic()
    while len(got) < 8 and time.monotonic() - t0 < 5:
        f = src.capture(timeout=0.2)
        if f is not None:
            got.append(unstamp(f.image))
            time.sleep(0.001)
    src.close()
    assert src.reconnects >= 1 and len(made) >= 4
    assert any(v >= 10 for v in got)  # frames from a later connection arrived
    assert got == sorted(got)


def test_source_that_never_comes_back_ends_cleanly():
    calls = []

    def open_capture():
        calls.append(1)
        return FakeCapture(n=3) if len(calls) == 1 else None

    src = VideoSource(open_capture, "fake://cam", live=True, reconnect_timeout=0.3, backoff=(0.02, 0.05))
    frames = list(src)  # returns once the stream gave up
    assert 1 <= len(frames) <= 3 and not src.is_streaming and len(calls) > 2
    src.close()


def test_first_open_failure_is_input_error():
    with pytest.raises(InputError, match="cannot open"):
        VideoSource(lambda: None, "rtsp://nowhere", live=True)


def test_iter_source():
    src = IterSource([np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), np.uint8), np.ones((4, 4, 3), np.uint8)])
    got = list(src)
    assert [f.index for f in got] == [0, 2] and src.corrupt == 1 and src.frame_count == 3
