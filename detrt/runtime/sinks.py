"""Where detections go: annotated video, JSONL per frame, CrowdHuman .odgt, COCO results, a window.

URIs as jetson-inference's videoOutput: `out.mp4` (or file://out.mp4), `display://0`; plus
`dets.jsonl`, `dets.odgt` and `results.json` (COCO). Every sink has `write(frame, detections, fps=None)`,
`close()`, `is_streaming` (False once a window is closed) and `check_model(manifest)` (a sink that cannot
hold what the model detects refuses it before the run: .odgt holds persons only), and is a context manager.

Crash safety: JSONL and .odgt lines, and each frame's COCO results, are written whole with one system call
per frame (an unbuffered file), so a crash loses nothing already computed; a failed write (disk full)
truncates the partial line away and raises SinkError naming how many lines are intact. The COCO file is
a JSON list after every frame: each frame's results are written over the closing bracket and end with it.
The video appears at its path only when closed, and only if it reads back with every frame
(detrt.atomic.AtomicVideo: OpenCV's writer fails silently); Ctrl-C still closes it.
Each sink may carry its own score `threshold` (the .odgt and COCO results keep every detection by default,
since AP needs the whole precision/recall curve).
"""

import dataclasses
import functools
import json
import os
import re
from pathlib import Path

import cv2
import numpy as np

from detrt.atomic import AtomicVideo
from detrt.data.coco import result_entries
from detrt.data.crowdhuman import OdgtDetections, dt_to_json
from detrt.errors import InputError

VIDEO_FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "mp4v"}


class SinkError(InputError):
    """A sink could not write (disk full, unwritable path): the run stops with this one-line message."""


class Sink:
    threshold = None  # None: take what the pipeline gives

    def check_model(self, manifest):
        """Refuse (InputError) a model whose detections this sink cannot hold; called before the run starts."""

    def open(self):
        """Acquire what the sink writes to; called by the pipeline before the first frame (optional)."""

    @property
    def is_streaming(self):
        return True

    def write(self, frame, detections, fps=None):
        raise NotImplementedError

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _LineSink(Sink):
    """One JSON line per frame, written whole, never buffered."""

    unit = "lines"  # what `lines` counts, for the message of a failed write

    def __init__(self, path, opener=None):
        self.path = Path(path)
        self.lines = 0
        self._opener = opener
        self._f = None
        self._closed = False
        self._offset = 0

    def open(self):
        """Create the file (the pipeline does this once its model and source are ready; else the first write)."""
        if self._f is not None:
            return
        if self._closed:
            raise SinkError(f"{self.path}: written after close")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._f = self._opener(self.path) if self._opener else open(self.path, "wb", buffering=0)
        except OSError as e:
            raise SinkError(f"{self.path}: cannot write ({e.strerror or e})") from None

    def _line(self, frame, detections, fps):
        raise NotImplementedError

    def write(self, frame, detections, fps=None):
        self.open()
        self._put((json.dumps(self._line(frame, detections, fps), separators=(",", ":")) + "\n").encode(),
                  frame.index)

    def _put(self, data, index, back=0):
        """Write `data` over the file's last `back` bytes and on past its end, then count one more line."""
        try:
            if back:
                self._f.seek(self._offset - back)
            view = memoryview(data)
            while view:
                n = self._f.write(view)
                view = view[n if n is not None else len(view):]
            if hasattr(self._f, "flush"):
                self._f.flush()
        except OSError as e:
            self._truncate()
            raise SinkError(f"{self.path}: write failed at frame {index} ({e.strerror or e}); "
                            f"the first {self.lines} {self.unit} are intact") from None
        self._offset += len(data) - back
        self.lines += 1

    def _truncate(self):
        """Cut a partly written line, so the file holds exactly the lines reported written."""
        try:
            os.ftruncate(self._f.fileno(), self._offset)
        except (OSError, AttributeError, ValueError):
            pass

    def close(self):
        self._closed = True
        if self._f is not None:
            try:
                self._f.close()
            except OSError:
                self._truncate()
            self._f = None


class JsonlSink(_LineSink):
    """`{"frame", "pts", "name", "width", "height", "count", "fps", "detections": [{"box": xyxy, "score",
    "label", "name"}]}` per frame, boxes in source pixels."""

    def __init__(self, path, threshold=None, opener=None):
        super().__init__(path, opener)
        self.threshold = threshold

    def _line(self, frame, detections, fps):
        h, w = frame.image.shape[:2]
        line = {"frame": frame.index, "pts": None if frame.pts is None else round(frame.pts, 4), "name": frame.name,
                "width": w, "height": h, "count": len(detections), "detections": detections.to_list()}
        if fps is not None:
            line["fps"] = round(fps, 2)
        return line


class OdgtSink(_LineSink):
    """CrowdHuman detections (docs/evaluation.md), one line per frame, for `detrt eval`.

    Lines come from detrt.data.crowdhuman.dt_to_json: `{"ID", "width", "height", "dtboxes": [{"box":
    [x, y, w, h], "score", "tag": 1}]}`. ID: the image's stem for image sources, else `id_format` of
    the frame index (`frame_{index:06d}` by default, the IDs of detrt.data.synthetic_video ground truth).
    """

    def __init__(self, path, threshold=0.0, id_format="frame_{index:06d}", opener=None):
        super().__init__(path, opener)
        self.threshold = threshold
        self.id_format = id_format

    def check_model(self, manifest):
        if list(manifest.class_names) != ["person"]:
            raise InputError(f"{self.path}: .odgt holds CrowdHuman person detections, and this {manifest.family} "
                             f"model detects {manifest.num_classes} classes; write COCO results instead "
                             f"(--coco results.json, scored by detrt eval)")

    def _line(self, frame, detections, fps):
        ident = frame.name if frame.name is not None else self.id_format.format(index=frame.index)
        h, w = frame.image.shape[:2]
        return dt_to_json(OdgtDetections(ident, detections.boxes.astype("float64"),
                                         detections.scores.astype("float64"), w, h))


class CocoSink(_LineSink):
    """COCO results for `detrt eval`: a JSON list of {"image_id", "category_id", "bbox": [x, y, w, h], "score"}.

    category_id is the dataset's (the manifest's class_ids). image_id: for image sources the file's name
    without extension, as a number when it is one (COCO's 000000397133.jpg is image 397133), else as the
    string that `detrt eval` finds among the ground truth's file names; for video, the frame index.
    """

    unit = "frames"
    CLOSE = b"]\n"

    def __init__(self, path, threshold=0.0, opener=None):
        super().__init__(path, opener)
        self.threshold = threshold
        self.entries = 0

    @staticmethod
    def image_id(frame):
        if frame.name is None:
            return frame.index
        return int(frame.name) if frame.name.isdigit() else frame.name

    def write(self, frame, detections, fps=None):
        self.open()
        entries = result_entries(self.image_id(frame), detections.boxes, detections.scores, detections.ids)
        body = ",\n".join(json.dumps(e, separators=(",", ":")) for e in entries).encode()
        if not entries:
            self._put(b"", frame.index)
        elif self.entries:
            self._put(b",\n" + body + self.CLOSE, frame.index, back=len(self.CLOSE))
        else:
            self._put(b"[" + body + self.CLOSE, frame.index)
        self.entries += len(entries)

    def _truncate(self):
        """Cut what a failed write left and put the closing bracket back (it may have been written over)."""
        super()._truncate()
        if self.entries:
            try:
                self._f.seek(self._offset - len(self.CLOSE))
                self._f.write(self.CLOSE)
            except (OSError, AttributeError, ValueError):
                pass

    def close(self):
        if self._f is not None and not self.entries and not self._closed:
            try:
                self._put(b"[]\n", -1)  # no detections at all: still a results file
            except SinkError:
                pass
        super().close()


def _printable(name, limit=32):
    """A class name as OpenCV's Hershey fonts can draw it: ASCII, at most `limit` characters."""
    text = name.encode("ascii", "replace").decode()
    return text if len(text) <= limit else text[:limit - 2] + ".."


@functools.lru_cache(maxsize=4096)
def class_color(label):
    """A bright BGR colour for class `label`; neighbouring labels get distant hues (golden-ratio steps)."""
    hue = int((label * 0.6180339887) % 1.0 * 180)
    return tuple(int(c) for c in cv2.cvtColor(np.uint8([[[hue, 150, 255]]]), cv2.COLOR_HSV2BGR)[0, 0])


def _draw_label(image, text, x0, y0, x1, y1, color, scale=0.4, outside=False):
    """`text` in black on a filled `color` rectangle in the box's top-left corner (inside the box, clipped to the
    image), legible on any background. Where the box has no room for it, the label goes above the box when
    `outside` (a class name matters more than the box's look), else it is skipped."""
    weight = 1 if scale < 0.8 else 2
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, weight)
    x0, y0 = max(x0, 0), max(y0, 0)
    if x1 - x0 < tw + 4 or y1 - y0 < th + base + 4:
        if not outside:
            return
        x0 = max(min(x0, image.shape[1] - tw - 4), 0)  # on screen, even for a box at the right border
        y0 = y0 - th - base - 4 if y0 >= th + base + 4 else y0
    cv2.rectangle(image, (x0, y0), (x0 + tw + 3, y0 + th + base + 3), color, -1)
    cv2.putText(image, text, (x0 + 2, y0 + th + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), weight, cv2.LINE_AA)


def draw_detections(image, detections, fps=None, color=(0, 255, 0)):
    """Boxes, labels, and a banner with the count and FPS, drawn on a copy of `image`.

    A one-class model (DH-DETR's persons) draws `color` boxes with their scores; a model of many classes
    draws each class in its own colour with "name score" labels, every label shown, the best on top.
    """
    out = image.copy()
    h, w = out.shape[:2]
    thick = max(1, round(min(h, w) / 400))
    named = len(detections.class_names) > 1
    boxes = [tuple(int(round(v)) for v in b) for b in detections.boxes.tolist()]
    colors = [class_color(label) for label in detections.labels.tolist()] if named else [color] * len(boxes)
    for (x0, y0, x1, y1), c in zip(boxes, colors):
        cv2.rectangle(out, (x0, y0), (x1, y1), c, thick, cv2.LINE_AA)
    scale = max(0.4, w / 1600)  # the text grows with the frame: as readable at 1920 px wide as at 640
    names = detections.names if named else [None] * len(boxes)
    for box, c, score, name in reversed(list(zip(boxes, colors, detections.scores.tolist(), names))):
        _draw_label(out, f"{_printable(name)} {score:.2f}" if named else f"{score:.2f}", *box, c, scale, named)
    banner = f"{len(detections)} {'objects' if named else 'people'}" + (f" | {fps:.1f} FPS" if fps else "")
    scale = max(0.5, min(h, w) / 720)
    (tw, th), base = cv2.getTextSize(banner, cv2.FONT_HERSHEY_SIMPLEX, scale, 2)
    cv2.rectangle(out, (0, 0), (tw + 12, th + base + 12), (0, 0, 0), -1)
    cv2.putText(out, banner, (6, th + 6), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 2, cv2.LINE_AA)
    return out


class VideoSink(Sink):
    """Annotated video. Opened at the first frame: its size, and its source's frame rate unless `fps` is given
    (30 when neither says); frames of another size are resized."""

    def __init__(self, path, fps=None, threshold=None):
        self.path = Path(path)
        self.fps = fps
        self.threshold = threshold
        suffix = self.path.suffix.lower()
        if suffix not in VIDEO_FOURCC:
            raise InputError(f"{self.path}: unsupported video type {suffix!r} ({', '.join(VIDEO_FOURCC)})")
        self._video = None
        self._size = None
        self.frames = 0

    def _open(self, w, h, fps):
        try:
            self._video = AtomicVideo(self.path, VIDEO_FOURCC[self.path.suffix.lower()], float(self.fps or fps or 30.0),
                                      (w, h))
        except InputError as e:
            raise SinkError(str(e)) from None
        self._size = (w, h)

    def write(self, frame, detections, fps=None):
        image = frame.image
        if self._video is None:
            self._open(image.shape[1], image.shape[0], frame.fps)
        if (image.shape[1], image.shape[0]) != self._size:
            sx, sy = self._size[0] / image.shape[1], self._size[1] / image.shape[0]
            image = cv2.resize(image, self._size)
            detections = dataclasses.replace(detections, boxes=detections.boxes * np.float32([sx, sy, sx, sy]))
        self._video.write(draw_detections(image, detections, fps))
        self.frames += 1

    def close(self):
        """Finish the video; it takes its name only if it reads back with every frame (SinkError otherwise)."""
        if self._video is None:
            return
        video, self._video = self._video, None
        try:
            video.commit()
        except InputError as e:
            raise SinkError(str(e)) from None


def has_gui():
    """Whether this OpenCV build can open windows (opencv-python can, -headless cannot)."""
    m = re.search(r"GUI:\s*(\S+)", cv2.getBuildInformation())
    return m is not None and m.group(1).upper() != "NONE"


class DisplaySink(Sink):
    """A window (display://0 or --show); closing it or pressing q / Esc ends the run."""

    def __init__(self, name="detrt", threshold=None):
        if not has_gui():
            raise InputError("display://: this OpenCV has no GUI (opencv-python-headless); "
                             "pip install opencv-python to use --show")
        if os.name == "posix" and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise InputError("display://: no display ($DISPLAY is not set)")
        self.name = name
        self.threshold = threshold
        self._open = False
        self._streaming = True

    @property
    def is_streaming(self):
        return self._streaming

    def write(self, frame, detections, fps=None):
        cv2.imshow(self.name, draw_detections(frame.image, detections, fps))
        self._open = True
        key = cv2.waitKey(1) & 0xFF
        if key in (ord("q"), 27) or cv2.getWindowProperty(self.name, cv2.WND_PROP_VISIBLE) < 1:
            self._streaming = False

    def close(self):
        if self._open:
            cv2.destroyWindow(self.name)
            self._open = False


def open_sink(uri, *, fps=None, threshold=None):
    """A sink for a URI or path: display://N, *.jsonl, *.odgt, *.json (COCO results), or a video file (.mp4 .avi
    .mkv .mov)."""
    text = str(uri).strip()
    if text.startswith("display://"):
        return DisplaySink(f"detrt {text}", threshold=threshold)
    if re.match(r"^[a-z][a-z0-9+.-]*://", text) and not text.startswith("file://"):
        raise InputError(f"{text}: streaming outputs are not supported; write a file or use display://0")
    path = Path(text[len("file://"):] if text.startswith("file://") else text)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return JsonlSink(path, threshold=threshold)
    if suffix == ".odgt":
        return OdgtSink(path)
    if suffix == ".json":
        return CocoSink(path)
    if suffix in VIDEO_FOURCC:
        return VideoSink(path, fps=fps, threshold=threshold)
    raise InputError(f"{text}: unknown output type {suffix or '(no suffix)'!r}; use .mp4/.avi/.mkv/.mov, "
                     f".jsonl, .odgt, .json (COCO results) or display://0")
