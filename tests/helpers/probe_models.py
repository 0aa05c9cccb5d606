"""Tiny ONNX models (built with onnx.helper, no torch) that honour the export contract.

A "probe" model's detections are a known function of its input, so tests can assert exact values:
m = mean(images) over C, H, W (one number per frame), z_k = gain * m + bias_k, and
- topk form: scores = sigmoid(z) [B, K] (bias decreasing, so sorted), labels = label_k, boxes = box_k
  (xyxy network-input pixels) for every frame;
- raw form: pred_logits [B, N, C] = z_n + offset[n, c], pred_boxes [B, N, 4] = box_n (cxcywh, normalized).
`expected_m(frames, manifest)` computes m with the runtime's own preprocessing.
"""

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from detrt.manifest import Manifest, save_manifest, sha256_file


def _const(name, array):
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.asarray(array), name))


def _mean_logits(nodes, gain, bias):
    nodes += [
        helper.make_node("ReduceMean", ["images"], ["m"], axes=[1, 2, 3], keepdims=0),
        _const("ax1", np.array([1], np.int64)),
        helper.make_node("Unsqueeze", ["m", "ax1"], ["m2"]),
        _const("gain", np.array(gain, np.float32)),
        _const("bias", np.asarray(bias, np.float32)),
        helper.make_node("Mul", ["m2", "gain"], ["gm"]),
        helper.make_node("Add", ["gm", "bias"], ["z"]),  # [B, K]
        _const("zero", np.array(0, np.float32)),
        helper.make_node("Mul", ["z", "zero"], ["z0"]),  # zeros [B, K], to broadcast constants over B
        _const("ax2", np.array([2], np.int64)),
        helper.make_node("Unsqueeze", ["z0", "ax2"], ["z03"]),  # [B, K, 1]
    ]


def _save(graph, path, manifest_fields, opsets=None):
    model = helper.make_model(graph, opset_imports=opsets or [helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=not any(o.domain == "detrt" for o in model.opset_import))
    path = Path(path)
    onnx.save(model, str(path))
    m = Manifest(onnx_sha256=sha256_file(path), **manifest_fields)
    save_manifest(m, path)
    return m


def make_topk_model(path, input_hw=(64, 96), boxes=None, labels=None, gain=1.0, bias=None, max_batch=4,
                    resize="letterbox", pad_value=None, class_names=("person",), mean=None, std=None, class_ids=None):
    """A topk-form probe model; returns its Manifest. boxes: [K, 4] xyxy in network pixels."""
    H, W = input_hw
    boxes = np.asarray(boxes if boxes is not None else [[8, 4, 40, 60], [50, 10, 90, 30], [0, 0, 16, 16]],
                       np.float32)
    K = len(boxes)
    bias = np.asarray(bias if bias is not None else np.linspace(1.0, -1.0, K), np.float32)
    labels = np.asarray(labels if labels is not None else np.zeros(K), np.int64)
    nodes = []
    _mean_logits(nodes, gain, bias)
    nodes += [
        helper.make_node("Sigmoid", ["z"], ["scores"]),
        helper.make_node("Cast", ["z0"], ["z0i"], to=TensorProto.INT64),
        _const("label_k", labels),
        helper.make_node("Add", ["z0i", "label_k"], ["labels"]),
        _const("box_k", boxes),
        helper.make_node("Add", ["z03", "box_k"], ["boxes"]),
    ]
    graph = helper.make_graph(
        nodes, "probe_topk",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["B", 3, H, W])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["B", K]),
         helper.make_tensor_value_info("labels", TensorProto.INT64, ["B", K]),
         helper.make_tensor_value_info("boxes", TensorProto.FLOAT, ["B", K, 4])])
    fields = dict(family="probe", config="probe_topk", class_names=list(class_names), input_size=(H, W),
                  resize=resize, pad_value=pad_value, output_format="topk", max_batch=max_batch, class_ids=class_ids)
    if mean is not None:
        fields.update(mean=mean, std=std)
    return _save(graph, path, fields)


def make_raw_model(path, input_hw=(64, 96), boxes=None, offsets=None, gain=1.0, max_batch=4,
                   resize="letterbox", class_names=("person", "head"), plugin=False):
    """A raw-form probe model; boxes: [N, 4] cxcywh normalized; offsets: [N, C] added to the logits.

    plugin=True: the plugin form, with a detrt::DCGNeighbors node whose (zero-weighted) result feeds
    the logits, so the graph only runs where the detrt CPU kernels are registered.
    """
    H, W = input_hw
    boxes = np.asarray(boxes if boxes is not None else [[0.25, 0.5, 0.2, 0.4], [0.7, 0.3, 0.3, 0.2],
                                                        [0.5, 0.5, 1.0, 1.0], [0.1, 0.1, 0.1, 0.1]], np.float32)
    N, C = len(boxes), len(class_names)
    offsets = np.asarray(offsets if offsets is not None else np.arange(N * C).reshape(N, C) * -0.3, np.float32)
    nodes = []
    _mean_logits(nodes, gain, np.zeros(N, np.float32))
    logits = "pred_logits"
    nodes += [
        helper.make_node("Unsqueeze", ["z", "ax2"], ["z3"]),  # [B, N, 1]
        _const("offsets", offsets),
        helper.make_node("Add", ["z3", "offsets"], ["logits0" if plugin else logits]),
        _const("box_n", boxes),
        helper.make_node("Add", ["z03", "box_n"], ["pred_boxes"]),
    ]
    opsets = [helper.make_opsetid("", 17)]
    if plugin:
        nodes += [
            helper.make_node("Sigmoid", ["z"], ["s"]),
            helper.make_node("DCGNeighbors", ["pred_boxes", "s"], ["nb_idx", "nb_valid"], domain="detrt",
                             k=2, iou_threshold=0.4, low_score=0.1),
            helper.make_node("Cast", ["nb_idx"], ["nb_f"], to=TensorProto.FLOAT),
            helper.make_node("ReduceSum", ["nb_f"], ["nb_sum"], keepdims=0),
            helper.make_node("Mul", ["nb_sum", "zero"], ["nb_zero"]),
            helper.make_node("Add", ["logits0", "nb_zero"], [logits]),
        ]
        opsets.append(helper.make_opsetid("detrt", 1))
    graph = helper.make_graph(
        nodes, "probe_raw",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["B", 3, H, W])],
        [helper.make_tensor_value_info("pred_logits", TensorProto.FLOAT, ["B", N, C]),
         helper.make_tensor_value_info("pred_boxes", TensorProto.FLOAT, ["B", N, 4])])
    fields = dict(family="probe", config="probe_raw", class_names=list(class_names), input_size=(H, W),
                  resize=resize, output_format="raw", max_batch=max_batch, form="plugin" if plugin else "portable")
    return _save(graph, path, fields, opsets)


def expected_m(frames, manifest):
    """The probe's m for each BGR frame, with the runtime's preprocessing."""
    from detrt.data.preprocess import Preprocessor

    x, _ = Preprocessor.from_manifest(manifest)(list(frames))
    return x.reshape(len(x), -1).mean(axis=1, dtype=np.float64)


def gradient_frames(n, h=72, w=128, seed=0):
    """n distinct BGR frames: a brightness ramp per frame plus a fixed texture (survives video codecs)."""
    rng = np.random.default_rng(seed)
    texture = rng.integers(0, 40, (h // 8, w // 8, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
    return [np.clip(texture.astype(np.int16) + 20 + (i * 200) // max(n - 1, 1), 0, 255).astype(np.uint8)
            for i in range(n)]


def write_video(path, frames, fps=25.0):
    import cv2

    h, w = frames[0].shape[:2]
    fourcc = "MJPG" if str(path).endswith(".avi") else "mp4v"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    assert writer.isOpened(), path
    for f in frames:
        writer.write(f)
    writer.release()
    return Path(path)


class SlowBackend:
    """Wraps a backend, sleeping `delay` seconds per batch (a stand-in for a slow model)."""

    def __init__(self, inner, delay):
        self.inner, self.delay = inner, delay
        self.calls = 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def submit(self, feed):
        import time

        time.sleep(self.delay)
        self.calls += 1
        return self.inner.submit(feed)

    def infer(self, feed):
        return self.submit(feed)()


def stamp(index, h=72, w=128):
    """A BGR frame whose first pixel row encodes `index` (24 bits), texture elsewhere."""
    img = np.full((h, w, 3), 60 + index % 150, np.uint8)
    img[0, 0] = (index & 255, (index >> 8) & 255, (index >> 16) & 255)
    return img


def unstamp(img):
    b, g, r = (int(v) for v in img[0, 0])
    return b | (g << 8) | (r << 16)


class FakeCapture:
    """A cv2.VideoCapture stand-in: `n` frames (None: endless) at `fps`, failing at chosen reads.

    fail_at: read numbers (0-based, counting every read) that return (False, None) once.
    """

    def __init__(self, n=None, fps=None, fail_at=(), start=0, frame_count=None, on_read=None):
        self.n, self.fps, self.fail_at = n, fps, set(fail_at)
        self.reads = 0
        self.index = start
        self.frame_count = frame_count
        self.opened = True
        self.on_read = on_read

    def isOpened(self):
        return self.opened

    def get(self, prop):
        import cv2

        if prop == cv2.CAP_PROP_FPS:
            return float(self.fps or 0)
        if prop == cv2.CAP_PROP_FRAME_COUNT:
            return float(self.frame_count or 0)
        return 0.0

    def read(self):
        import time

        if self.on_read is not None:
            self.on_read(self)
        r = self.reads
        self.reads += 1
        if not self.opened or (self.n is not None and self.index >= self.n):
            return False, None
        if self.fps:
            time.sleep(1.0 / self.fps)
        i = self.index
        self.index += 1
        if r in self.fail_at:
            return False, None
        return True, stamp(i)

    def release(self):
        self.opened = False
