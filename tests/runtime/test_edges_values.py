"""Runtime values that could be wrong, each checked by hand: empty detections' dtypes, a raw batch of two on a
non-square input, the second Ctrl-C, and the exact words of an engine refused for its GPU or plugin library."""

import signal
import threading

import numpy as np
import pytest

from detrt.errors import InputError
from detrt.manifest import Manifest, check_engine_environment
from detrt.runtime.pipeline import Pipeline
from detrt.runtime.postprocess import Detections, Postprocessor


class _Identity:
    def to_source(self, boxes):
        return np.asarray(boxes, np.float32)


def test_empty_detections_have_the_dtypes_of_real_ones():
    d = Detections.empty(["person"])
    assert (d.boxes.dtype, d.scores.dtype, d.labels.dtype) == (np.float32, np.float32, np.int64)
    assert d.boxes.shape == (0, 4) and d.class_names == ("person",)


def test_raw_batch_of_two_on_a_64x96_input():
    # 3 queries x 2 classes per image; image 1 has the best pair at query 2 class 0, image 2 at query 0 class 1
    logits = np.full((2, 3, 2), -9.0, np.float32)
    logits[0, 2, 0], logits[0, 1, 1] = 2.0, 1.0
    logits[1, 0, 1] = 3.0
    boxes = np.zeros((2, 3, 4), np.float32)
    boxes[0, 2] = [0.5, 0.25, 0.5, 0.5]  # cx, cy, w, h of the padded 64 x 96 (H x W) input
    boxes[0, 1] = [0.25, 0.5, 0.1, 0.2]
    boxes[1, 0] = [0.75, 0.75, 0.5, 0.5]
    post = Postprocessor("raw", (64, 96), ["a", "b"], threshold=0.5, topk=2, boxes_on_image=False)
    first, second = post({"pred_logits": logits, "pred_boxes": boxes}, [_Identity(), _Identity()])
    np.testing.assert_allclose(first.scores, 1 / (1 + np.exp([-2.0, -1.0])), rtol=1e-6)
    assert first.labels.tolist() == [0, 1]
    np.testing.assert_allclose(first.boxes, [[24, 0, 72, 32], [19.2, 25.6, 28.8, 38.4]], rtol=1e-6)
    assert second.labels.tolist() == [1]
    np.testing.assert_allclose(second.boxes, [[48, 32, 96, 64]], rtol=1e-6)


def test_first_signal_drains_and_second_aborts():
    pipeline = Pipeline.__new__(Pipeline)  # only the signal state: no source or backend needed
    pipeline.stop_reading, pipeline.abort = threading.Event(), threading.Event()
    pipeline._signals, pipeline.interrupted, pipeline.signal = 0, False, None
    pipeline._on_signal(signal.SIGTERM)
    assert pipeline.stop_reading.is_set() and not pipeline.abort.is_set() and pipeline.signal == "SIGTERM"
    pipeline._on_signal(signal.SIGINT)
    assert pipeline.abort.is_set() and pipeline.signal == "SIGTERM"


def test_engine_refusal_words():
    m = Manifest(family="dh-detr", config="c", class_names=["person"], input_size=(64, 96), onnx_sha256="a" * 64,
                 engine_sha256="e" * 64, tensorrt_version="10.3.0", compute_capability="8.7",
                 plugin_sha256="0123456789abcdef" * 4, parent="model.onnx")
    with pytest.raises(InputError, match=r"compute capability 8\.7 \(another GPU\), this GPU is 9\.0"):
        check_engine_environment(m, "m.engine", tensorrt_version="10.3.0", compute_capability="9.0")
    with pytest.raises(InputError, match=r"plugin library sha256 0123456789ab\.\.\., the plugin library differs"):
        check_engine_environment(m, "m.engine", tensorrt_version="10.3.0", compute_capability="8.7",
                                 plugin_sha256="f" * 64)


def test_above_keeps_the_class_names():
    d = Detections(np.zeros((2, 4), np.float32), np.array([0.9, 0.4], np.float32), np.array([0, 0]), ("person",))
    assert d.above(0.5).names == ["person"]


def test_warmup_runs_two_float32_zero_batches():
    from detrt.runtime.base import Backend

    class Recording(Backend):
        name = "recording"

        def _run(self, feed):
            images = feed["images"]
            seen.append((images.dtype, images.shape, float(np.abs(images).sum())))
            return {}

    seen = []
    manifest = Manifest(family="dh-detr", config="c", class_names=["person"], input_size=(64, 96),
                        onnx_sha256="a" * 64, max_batch=3)
    Recording("m.onnx", manifest).warmup()
    assert seen == [(np.float32, (3, 3, 64, 96), 0.0)] * 2


def test_backend_repr_names_its_artifact_and_max_batch(tmp_path):
    from detrt.runtime.backend import open_backend
    from tests.helpers.probe_models import make_topk_model

    path = tmp_path / "probe.onnx"
    make_topk_model(path, max_batch=3)
    with open_backend(path) as be:
        assert repr(be) == f"OrtBackend({str(path)!r}, max_batch=3)"
