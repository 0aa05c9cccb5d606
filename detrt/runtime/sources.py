"""Video sources in jetson-inference's URI vocabulary (videoSource), on OpenCV.

    clip.mp4, file://clip.mp4       a video file: every frame, in order
    frames/, 'frames/*.jpg', a.png  an image folder (sorted by name), a glob, or one image
    0, 1                            a camera index
    v4l2:///dev/video0              a V4L2 camera
    csi://0                         a Jetson CSI camera (GStreamer nvarguscamerasrc)
    rtsp://host:port/path           a network stream (also rtmp://, http(s):// MJPEG)
    'nvarguscamerasrc ! ... ! appsink'  a GStreamer pipeline string (OpenCV built with GStreamer)

Files and image folders deliver every frame; a frame that does not decode is skipped and counted
(`corrupt`), and so are the frames a truncated file's container promises but no longer holds, and a
truncated JPEG (which OpenCV would decode with its missing rows gray). Live sources (cameras,
streams) are read by a thread that keeps only the newest frame: a frame not taken before the next
arrives is dropped and counted (`dropped`), so inference always sees the present. When a live
stream breaks the thread reconnects with exponential back-off (`reconnects`), and ends the stream
cleanly after `reconnect_timeout` seconds without a frame.
`Frame.index` numbers frames as the source produced them, so drops and corrupt frames leave gaps.
"""

import glob
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from detrt.errors import InputError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".h264", ".h265")
STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "srt://")


@dataclass
class Frame:
    """One decoded frame: BGR uint8 [H, W, 3]."""

    index: int  # position in the source (gaps: dropped or corrupt frames)
    image: np.ndarray
    time: float  # time.monotonic() when it was captured: end-to-end latency starts here
    name: str = None  # image sources: the file's stem (the .odgt ID); else None
    pts: float = None  # files: seconds into the video (index / fps); live: None
    fps: float = None  # the source's frame rate when known (a video sink writes at this rate)


class Source:
    """Base: `capture(timeout)` -> Frame or None; iterate for every frame until the end."""

    is_live = False
    fps = None  # frames per second when known
    frame_count = None  # total frames when known (files, image folders): the progress bar's ETA

    def __init__(self, uri):
        self.uri = str(uri)
        self.dropped = 0
        self.corrupt = 0
        self.reconnects = 0
        self._ended = False

    @property
    def is_streaming(self):
        """False once the source has ended (end of file, or a live stream that did not come back)."""
        return not self._ended

    def capture(self, timeout=None):
        """The next frame, or None at the end of the stream or after `timeout` seconds (live)."""
        raise NotImplementedError

    def __iter__(self):
        while True:
            frame = self.capture(timeout=0.5)
            if frame is not None:
                yield frame
            elif not self.is_streaming:
                return

    def close(self):
        self._ended = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"{type(self).__name__}({self.uri!r})"


def _valid(image):
    return isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3 and image.size > 0


class VideoSource(Source):
    """A cv2.VideoCapture-like object (read/get/isOpened/release) as a file or a live source.

    `open_capture()` makes a new capture (it is called again to reconnect a live stream).
    """

    def __init__(self, open_capture, uri, live, *, reconnect_timeout=30.0, backoff=(0.25, 8.0), max_bad=50):
        super().__init__(uri)
        self._open_capture = open_capture
        self.is_live = bool(live)
        self.reconnect_timeout = reconnect_timeout
        self.backoff = backoff
        self.max_bad = max_bad
        self._cap = self._open_first()
        fps = self._cap.get(cv2.CAP_PROP_FPS) if hasattr(self._cap, "get") else 0
        self.fps = float(fps) if fps and 0 < fps < 1000 else None
        if not self.is_live:
            count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if hasattr(self._cap, "get") else 0
            self.frame_count = count if count > 0 else None
        self._index = 0
        if self.is_live:
            self._cond = threading.Condition()
            self._latest = None
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._reader, name="detrt-capture", daemon=True)
            self._thread.start()

    def _open_first(self):
        try:
            cap = self._open_capture()
        except Exception as e:
            raise InputError(f"{self.uri}: cannot open ({e})") from None
        if cap is None or (hasattr(cap, "isOpened") and not cap.isOpened()):
            raise InputError(f"{self.uri}: cannot open (OpenCV could not read it: wrong path, URL or device, "
                             f"an unsupported codec, or a truncated file)")
        return cap

    # -- files: read on demand, every frame --
    def capture(self, timeout=None):
        if self.is_live:
            return self._take(timeout)
        if self._ended:
            return None
        bad = 0
        while True:
            ok, image = self._cap.read()
            index = self._index
            self._index += 1
            if ok and _valid(image):
                self.corrupt += bad  # failures followed by a good frame were corrupt frames
                fps = self.fps
                return Frame(index, image, time.monotonic(), pts=index / fps if fps else None, fps=fps)
            bad += 1
            # A failed read is the end, unless frames remain (by the container's count): then skip it.
            remaining = self.frame_count is not None and self._index < self.frame_count
            if not remaining or bad >= self.max_bad:
                if self.frame_count is not None:  # a truncated file: the frames it promised are corrupt
                    self.corrupt += max(0, self.frame_count - (self._index - bad))
                self._ended = True
                return None

    # -- live: a reader thread keeps the newest frame --
    def _reader(self):
        cap, delay = self._cap, self.backoff[0]
        last_good = time.monotonic()
        while not self._stop.is_set():
            if cap is None:
                if self.reconnect_timeout is not None and time.monotonic() - last_good > self.reconnect_timeout:
                    break
                self._stop.wait(delay)
                delay = min(delay * 2, self.backoff[1])
                try:
                    cap = self._open_capture()
                    if cap is not None and hasattr(cap, "isOpened") and not cap.isOpened():
                        cap = None
                except Exception:
                    cap = None
                if cap is not None:
                    self.reconnects += 1
                continue
            try:
                ok, image = cap.read()
            except Exception:
                ok, image = False, None
            if not ok or not _valid(image):
                _release(cap)
                cap = None
                continue
            delay, last_good = self.backoff[0], time.monotonic()
            with self._cond:
                if self._latest is not None:
                    self.dropped += 1
                self._latest = Frame(self._index, image, last_good, fps=self.fps)
                self._index += 1
                self._cond.notify_all()
        _release(cap)
        with self._cond:
            self._ended = True
            self._cond.notify_all()

    def _take(self, timeout):
        with self._cond:
            if self._latest is None and not self._ended:
                self._cond.wait_for(lambda: self._latest is not None or self._ended, timeout)
            frame, self._latest = self._latest, None
            return frame

    @property
    def is_streaming(self):
        if self.is_live:
            with self._cond:
                return not (self._ended and self._latest is None)
        return not self._ended

    def close(self):
        if self.is_live:
            self._stop.set()
            if self._thread is not threading.current_thread():
                self._thread.join(timeout=5)
        else:
            _release(self._cap)
        self._ended = True


def _release(cap):
    if cap is not None and hasattr(cap, "release"):
        try:
            cap.release()
        except Exception:
            pass


def read_image(path):
    """BGR image of an image file, or None when it does not decode or is a truncated JPEG."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    # Markers cannot occur inside a JPEG's entropy-coded data (0xFF is stuffed), so a whole JPEG has its
    # end-of-image marker after its last start-of-scan; OpenCV decodes a cut one, only warning on stderr.
    if not data or (data.startswith(b"\xff\xd8") and data.rfind(b"\xff\xd9") < data.rfind(b"\xff\xda")):
        return None
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


class ImageSource(Source):
    """Image files in order; an unreadable image is skipped and counted."""

    def __init__(self, paths, uri):
        super().__init__(uri)
        self.paths = [Path(p) for p in paths]
        self.frame_count = len(self.paths)
        self._index = 0

    def capture(self, timeout=None):
        while self._index < len(self.paths):
            path = self.paths[self._index]
            index = self._index
            self._index += 1
            image = read_image(path)
            if _valid(image):
                return Frame(index, image, time.monotonic(), name=path.stem)
            self.corrupt += 1
        self._ended = True
        return None


class IterSource(Source):
    """Any iterable of BGR uint8 frames (numpy arrays or Frames), e.g. frames rendered in memory."""

    def __init__(self, frames, uri="<frames>", fps=None, live=False, frame_count=None):
        super().__init__(uri)
        self._it = iter(frames)
        self.fps = fps
        self.is_live = live
        self.frame_count = frame_count if frame_count is not None else (
            len(frames) if hasattr(frames, "__len__") else None)
        self._index = 0

    def capture(self, timeout=None):
        if self._ended:
            return None
        try:
            item = next(self._it)
        except StopIteration:
            self._ended = True
            return None
        index = self._index
        self._index += 1
        if isinstance(item, Frame):
            return item
        if not _valid(item):
            self.corrupt += 1
            return self.capture(timeout)
        return Frame(index, item, time.monotonic(), pts=index / self.fps if self.fps else None, fps=self.fps)


def has_gstreamer():
    """Whether this OpenCV build can open GStreamer pipelines."""
    return re.search(r"GStreamer:\s*YES", cv2.getBuildInformation()) is not None


def csi_pipeline(sensor_id, width=1280, height=720, fps=30):
    """The GStreamer pipeline jetson-inference uses for csi://N, ending in a BGR appsink."""
    return (f"nvarguscamerasrc sensor-id={sensor_id} ! "
            f"video/x-raw(memory:NVMM), width={width}, height={height}, framerate={fps}/1 ! "
            f"nvvidconv ! video/x-raw, format=BGRx ! videoconvert ! video/x-raw, format=BGR ! "
            f"appsink drop=true max-buffers=1")


def _gstreamer(uri, pipeline):
    if not has_gstreamer():
        raise InputError(f"{uri}: needs OpenCV built with GStreamer (this cv2 reports GStreamer: NO; "
                         f"on Jetson use the system python3-opencv)")
    return lambda: cv2.VideoCapture(pipeline, cv2.CAP_GSTREAMER)


def open_source(uri, *, live=None, reconnect_timeout=30.0, open_capture=None):
    """Open a source URI (see the module docstring) -> Source. Raises InputError for a bad URI/path.

    live: override whether the source is live (drop stale frames, reconnect) or a file (every frame).
    open_capture: a factory returning a cv2.VideoCapture-like object, used instead of OpenCV.
    """
    if isinstance(uri, Source):
        return uri
    text = str(uri).strip()
    if open_capture is not None:
        return VideoSource(open_capture, text, bool(live), reconnect_timeout=reconnect_timeout)
    if text.startswith("display://"):
        raise InputError(f"{text}: display:// is an output; use it as the SINK")
    if re.fullmatch(r"\d+", text):
        index = int(text)
        return VideoSource(lambda: cv2.VideoCapture(index), text, True if live is None else live,
                           reconnect_timeout=reconnect_timeout)
    if text.startswith("v4l2://"):
        device = text[len("v4l2://"):]
        return VideoSource(lambda: cv2.VideoCapture(device, cv2.CAP_V4L2), text, True if live is None else live,
                           reconnect_timeout=reconnect_timeout)
    if text.startswith("csi://"):
        sensor = text[len("csi://"):] or "0"
        if not sensor.isdigit():
            raise InputError(f"{text}: csi:// takes a sensor number, e.g. csi://0")
        return VideoSource(_gstreamer(text, csi_pipeline(int(sensor))), text, True if live is None else live,
                           reconnect_timeout=reconnect_timeout)
    if "!" in text and not os.path.exists(text):  # a GStreamer pipeline string
        is_live = "filesrc" not in text if live is None else live
        return VideoSource(_gstreamer(text, text), text, is_live, reconnect_timeout=reconnect_timeout)
    if text.lower().startswith(STREAM_SCHEMES):
        path = text.split("?", 1)[0].lower()
        is_live = not path.endswith(VIDEO_SUFFIXES) if live is None else live
        return VideoSource(lambda: cv2.VideoCapture(text, cv2.CAP_FFMPEG), text, is_live,
                           reconnect_timeout=reconnect_timeout)
    path = text[len("file://"):] if text.startswith("file://") else text
    if any(ch in path for ch in "*?[") and not os.path.exists(path):
        paths = sorted(p for p in glob.glob(path) if p.lower().endswith(IMAGE_SUFFIXES))
        if not paths:
            raise InputError(f"{text}: the glob matches no images ({', '.join(IMAGE_SUFFIXES)})")
        return ImageSource(paths, text)
    p = Path(path)
    if not p.exists():
        raise InputError(f"{text}: no such file or directory")
    if p.is_dir():
        paths = sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            raise InputError(f"{text}: the folder has no images ({', '.join(IMAGE_SUFFIXES)})")
        return ImageSource(paths, text)
    if p.suffix.lower() in IMAGE_SUFFIXES:
        return ImageSource([p], text)
    return VideoSource(lambda: cv2.VideoCapture(str(p)), text, bool(live), reconnect_timeout=reconnect_timeout)
