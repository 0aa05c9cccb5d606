"""The runtime API refuses values it cannot use with a clear exception, for Python callers and the CLI alike."""

import numpy as np
import pytest

from detrt.errors import InputError
from detrt.runtime import Detector
from detrt.runtime.backend import open_backend
from detrt.runtime.pipeline import run
from detrt.runtime.sinks import JsonlSink
from detrt.runtime.sources import IterSource
from tests.helpers.probe_models import gradient_frames, make_topk_model


@pytest.fixture
def model(tmp_path):
    make_topk_model(tmp_path / "m.onnx")
    return tmp_path / "m.onnx"


def test_detect_refuses_none_and_an_empty_frame(model):
    with Detector(model, threshold=0.0) as det:
        with pytest.raises(InputError, match=r"HxWx3 frame \(a numpy array\), got NoneType"):
            det.detect(None)  # what a failed cv2.imread hands over
        with pytest.raises(InputError, match=r"got an empty one \(0, 0, 3\)"):
            det.detect(np.zeros((0, 0, 3), np.uint8))
        assert len(det.detect(gradient_frames(1)[0])) == 3  # still usable afterwards


def test_nan_threshold_is_refused_not_an_empty_result(model):
    with pytest.raises(InputError, match=r"threshold must be in \[0, 1\], got nan"):
        Detector(model, threshold=float("nan"))
    with Detector(model, threshold=0.0) as det:
        with pytest.raises(InputError, match="got nan"):
            det.threshold = float("nan")
        with pytest.raises(InputError, match="must be a number"):
            det.threshold = "high"
        assert det.threshold == 0.0 and len(det.detect(gradient_frames(1)[0])) == 3


def test_nan_threshold_through_the_pipeline(model, tmp_path):
    with pytest.raises(InputError, match="got nan"):
        run(IterSource(gradient_frames(2)), model, [], threshold=float("nan"))
    with pytest.raises(InputError, match=r"JsonlSink threshold must be in \[0, 1\], got nan"):
        run(IterSource(gradient_frames(2)), model, [JsonlSink(tmp_path / "d.jsonl", threshold=float("nan"))])
    assert not (tmp_path / "d.jsonl").exists()


def test_negative_threads_are_refused(model):
    # ONNX Runtime takes -1 as "its own default" and would use every core without a word
    for threads in (-1, 0):
        with pytest.raises(InputError, match=f"threads must be >= 1, got {threads}"):
            open_backend(model, threads=threads)
    with open_backend(model, threads=1) as be:
        assert be.threads == 1
