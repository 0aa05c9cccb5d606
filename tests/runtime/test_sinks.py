"""Sinks: JSONL and .odgt lines (readable by detrt.data.crowdhuman), video, URI dispatch, headless window."""

import errno
import io
import json
import os

import cv2
import numpy as np
import pytest

from detrt.data.crowdhuman import read_dt
from detrt.errors import InputError
from detrt.manifest import Manifest
from detrt.runtime.postprocess import Detections
from detrt.runtime.sinks import (CocoSink, DisplaySink, JsonlSink, OdgtSink, SinkError, VideoSink, class_color,
                                 draw_detections, has_gui, open_sink)
from detrt.runtime.sources import Frame


def _dets():
    return Detections(np.array([[10, 20, 50, 80], [0, 0, 5, 5]], np.float32), np.array([0.9, 0.3], np.float32),
                      np.array([0, 0]), ("person",))


def _frame(i, name=None):
    return Frame(i, np.full((90, 160, 3), 100, np.uint8), 0.0, name=name, pts=i / 25)


def test_jsonl_lines(tmp_path):
    with JsonlSink(tmp_path / "d.jsonl") as s:
        s.write(_frame(0), _dets(), fps=12.345)
        s.write(_frame(1), Detections.empty(("person",)))
        assert (tmp_path / "d.jsonl").read_text().count("\n") == 2  # on disk before close
    a, b = [json.loads(x) for x in (tmp_path / "d.jsonl").read_text().splitlines()]
    assert a == {"frame": 0, "pts": 0.0, "name": None, "width": 160, "height": 90, "count": 2, "fps": 12.35,
                 "detections": [{"box": [10.0, 20.0, 50.0, 80.0], "score": 0.9, "label": 0, "name": "person",
                                 "category_id": 1},
                                {"box": [0.0, 0.0, 5.0, 5.0], "score": 0.3, "label": 0, "name": "person",
                                 "category_id": 1}]}
    assert b["count"] == 0 and b["detections"] == [] and b["pts"] == 0.04


def test_jsonl_disk_full_cuts_the_partial_line(tmp_path):
    class Full(io.FileIO):
        def write(self, data):
            if b'"frame":2' in bytes(data):
                super().write(bytes(data)[:7])
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return super().write(data)

    s = JsonlSink(tmp_path / "d.jsonl", opener=lambda p: Full(p, "wb"))
    s.write(_frame(0), _dets())
    s.write(_frame(1), _dets())
    with pytest.raises(SinkError, match=r"write failed at frame 2 \(No space left on device\); the first 2 lines"):
        s.write(_frame(2), _dets())
    s.close()
    assert [json.loads(x)["frame"] for x in (tmp_path / "d.jsonl").read_text().splitlines()] == [0, 1]


def test_unwritable_path(tmp_path):
    (tmp_path / "file").write_text("x")
    s = JsonlSink(tmp_path / "file" / "d.jsonl")
    with pytest.raises(SinkError, match="cannot write"):
        s.write(_frame(0), _dets())


def test_odgt_lines_read_back(tmp_path):
    with OdgtSink(tmp_path / "d.odgt") as s:
        s.write(_frame(3), _dets())
        s.write(_frame(4, name="273271,c9db000d5146c15"), _dets())
    recs = read_dt(tmp_path / "d.odgt")
    assert [r.image_id for r in recs] == ["frame_000003", "273271,c9db000d5146c15"]
    np.testing.assert_allclose(recs[0].boxes, _dets().boxes)
    np.testing.assert_allclose(recs[0].scores, [0.9, 0.3], rtol=1e-6)
    assert (recs[0].width, recs[0].height) == (160, 90)
    assert json.loads((tmp_path / "d.odgt").read_text().splitlines()[0])["dtboxes"][0]["box"] == [10, 20, 40, 60]
    assert OdgtSink(tmp_path / "x.odgt").threshold == 0.0  # keeps every score


def test_video(tmp_path):
    s = VideoSink(tmp_path / "out.mp4", fps=10)
    for i in range(5):
        s.write(_frame(i), _dets(), fps=3.0)
    s.write(Frame(5, np.zeros((45, 80, 3), np.uint8), 0.0), _dets())  # another size: resized
    assert not (tmp_path / "out.mp4").exists()  # appears when complete
    s.close()
    cap = cv2.VideoCapture(str(tmp_path / "out.mp4"))
    assert cap.get(cv2.CAP_PROP_FRAME_COUNT) == 6 and cap.get(cv2.CAP_PROP_FRAME_WIDTH) == 160
    assert list(tmp_path.iterdir()) == [tmp_path / "out.mp4"]


def test_video_rate_is_the_sources_unless_told(tmp_path):
    for told, source_fps, want in ((None, 15.0, 15), (10, 15.0, 10), (None, None, 30)):
        path = tmp_path / f"{told}-{source_fps}.mp4"
        with open_sink(path, fps=told) as s:
            for i in range(3):
                s.write(Frame(i, np.full((90, 160, 3), 100, np.uint8), 0.0, fps=source_fps), _dets())
        assert cv2.VideoCapture(str(path)).get(cv2.CAP_PROP_FPS) == want


def test_drawing_changes_pixels_where_boxes_are():
    img = np.full((90, 160, 3), 100, np.uint8)
    out = draw_detections(img, _dets(), fps=9.0)
    assert (img == 100).all()  # the input is untouched
    assert (out[20:81, 10] != 100).any() and (out[60, 100] == 100).all()


def test_score_label_has_a_filled_background():
    img = np.full((90, 160, 3), 100, np.uint8)
    dets = Detections(np.array([[20, 35, 120, 88], [130, 40, 140, 50]], np.float32), np.array([0.87, 0.5], np.float32),
                      np.array([0, 0]), ("person",))
    out = draw_detections(img, dets, fps=9.0)
    label = out[37:50, 22:44]  # inside the big box's top-left corner, where its score is written
    green = (label == (0, 255, 0)).all(axis=2)
    black = (label < 60).all(axis=2)
    assert green.mean() > 0.5 and black.mean() > 0.1  # filled, with dark text on it
    assert not (label == 100).all(axis=2).any()  # no frame pixel shows through
    assert (out[43:48, 133:138] == 100).all()  # a 10-pixel box has no room for a label: its inside is untouched


def _coco_dets(n, label=1):
    return Detections(np.array([[10, 20, 50, 80]] * n, np.float32), np.linspace(0.9, 0.5, n).astype(np.float32),
                      np.full(n, label), ("cat", "dog"), (17, 18))


def test_coco_results_are_a_json_list_after_every_frame(tmp_path):
    path = tmp_path / "r.json"
    with CocoSink(path) as s:
        s.write(_frame(0, name="000042"), _coco_dets(2))
        assert [r["image_id"] for r in json.loads(path.read_text())] == [42, 42]  # on disk, valid, before close
        s.write(_frame(1, name="IMG_7"), Detections.empty(("cat", "dog")))
        s.write(_frame(2), _coco_dets(1, label=0))
        assert s.lines == 3 and s.entries == 3
    got = json.loads(path.read_text())
    assert got[0] == {"image_id": 42, "category_id": 18, "bbox": [10.0, 20.0, 40.0, 60.0], "score": 0.9}
    assert [(r["image_id"], r["category_id"]) for r in got] == [(42, 18), (42, 18), (2, 17)]  # video: frame index
    assert CocoSink.image_id(_frame(5, name="IMG_7")) == "IMG_7"
    with CocoSink(tmp_path / "none.json") as s:
        s.open()
        s.write(_frame(0), Detections.empty())
    assert json.loads((tmp_path / "none.json").read_text()) == []


def test_coco_disk_full_keeps_the_frames_before(tmp_path):
    class Full(io.FileIO):
        def write(self, data):
            if b'"image_id":2' in bytes(data):
                super().write(bytes(data)[:9])  # a partial write over the closing bracket
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return super().write(data)

    s = CocoSink(tmp_path / "r.json", opener=lambda p: Full(p, "wb"))
    s.write(_frame(0), _coco_dets(2))
    s.write(_frame(1), _coco_dets(1))
    with pytest.raises(SinkError, match=r"write failed at frame 2 \(No space left on device\); the first 2 frames"):
        s.write(_frame(2), _coco_dets(1))
    s.close()
    assert [r["image_id"] for r in json.loads((tmp_path / "r.json").read_text())] == [0, 0, 1]


def test_odgt_sink_refuses_a_model_of_many_classes(tmp_path):
    def manifest(names):
        return Manifest("cq-dino", "tiny", names, (32, 32), "a" * 64)

    OdgtSink(tmp_path / "d.odgt").check_model(manifest(["person"]))
    with pytest.raises(InputError, match=r"d.odgt: .odgt holds CrowdHuman person detections, and this cq-dino model "
                                         r"detects 2 classes; write COCO results instead \(--coco results.json"):
        OdgtSink(tmp_path / "d.odgt").check_model(manifest(["person", "car"]))
    CocoSink(tmp_path / "r.json").check_model(manifest(["person", "car"]))


def test_many_classes_are_named_in_their_colours_readable_at_640():
    img = np.full((360, 640, 3), 100, np.uint8)
    dets = Detections(np.array([[300, 200, 310, 210], [20, 40, 400, 300]], np.float32),
                      np.array([0.91, 0.42], np.float32), np.array([1151, 7]),
                      tuple(f"class {i}" for i in range(1152)))
    out = draw_detections(img, dets)
    small = out[184:199, 300:400]  # the 10-pixel box has no room inside: its label stands above it
    assert (small == class_color(1151)).all(axis=2).mean() > 0.4 and (small < 60).all(axis=2).mean() > 0.05
    assert (out[205, 305] == 100).all()  # and the box's inside stays clear
    big = out[41:56, 21:120]  # the big box's label fits inside its corner
    assert (big == class_color(7)).all(axis=2).mean() > 0.4
    assert class_color(1151) != class_color(7) and class_color(1151) != class_color(1150)
    rows = np.flatnonzero((out[:, 302] == class_color(1151)).all(axis=1))
    assert rows.min() == 184 and rows.max() == 199  # a 16-pixel label, its bottom on the box's top edge


def test_open_sink_dispatch(tmp_path):
    assert isinstance(open_sink(tmp_path / "a.json"), CocoSink)
    assert isinstance(open_sink(tmp_path / "a.jsonl"), JsonlSink)
    assert isinstance(open_sink(f"file://{tmp_path}/a.odgt"), OdgtSink)
    assert isinstance(open_sink(tmp_path / "a.avi"), VideoSink)
    with pytest.raises(InputError, match="unknown output type"):
        open_sink(tmp_path / "a.txt")
    with pytest.raises(InputError, match="streaming outputs are not supported"):
        open_sink("rtp://host:1234")


@pytest.mark.skipif(has_gui(), reason="this OpenCV has a GUI")
def test_display_on_headless_opencv():
    with pytest.raises(InputError, match="opencv-python"):
        DisplaySink()
