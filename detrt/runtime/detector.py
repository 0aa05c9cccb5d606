"""`Detector`: one call from a BGR frame to detections, for your own loop (jetson-inference's detectNet).

    net = Detector("model.onnx", threshold=0.5)
    dets = net.detect(frame.image)          # Detections: boxes xyxy in frame pixels, scores, labels
    print(len(dets), net.network_fps)

For whole videos use `detrt.runtime.pipeline.run`, which overlaps decode, inference and writing.
"""

import time

from detrt.data.preprocess import Preprocessor, image_sizes
from detrt.runtime.backend import open_backend
from detrt.runtime.base import Backend
from detrt.runtime.postprocess import Postprocessor
from detrt.runtime.sources import Frame


class Detector:
    """Preprocess -> backend -> postprocess for single frames or small batches."""

    def __init__(self, model, backend="auto", threshold=0.5, topk=None, threads=None, plugins=None,
                 cuda_graph=False):
        if isinstance(model, Backend):
            self.backend = model
        else:
            self.backend = open_backend(model, backend, threads=threads, plugins=plugins, cuda_graph=cuda_graph)
        self.manifest = self.backend.manifest
        self.preprocess = Preprocessor.from_manifest(self.manifest)
        self.postprocess = Postprocessor.from_manifest(self.manifest, threshold, topk)
        self._infer_s = None

    @property
    def class_names(self):
        return self.manifest.class_names

    @property
    def vocabulary(self):
        """The classes: names, hierarchy (parent indices) and the dataset's category ids."""
        return self.manifest.vocabulary

    @property
    def threshold(self):
        return self.postprocess.threshold

    @threshold.setter
    def threshold(self, value):
        self.postprocess.threshold = value

    @property
    def network_fps(self):
        """Frames per second of the backend alone (smoothed over recent calls)."""
        return 1.0 / self._infer_s if self._infer_s else 0.0

    def detect(self, image):
        """A BGR uint8 [H, W, 3] image (or a Frame) -> Detections in its pixels."""
        return self.detect_batch([image])[0]

    def detect_batch(self, images):
        """Up to max_batch images -> [Detections]."""
        images = [im.image if isinstance(im, Frame) else im for im in images]
        x, transforms = self.preprocess(images)
        t0 = time.perf_counter()
        outputs = self.backend.infer({"images": x, "image_sizes": image_sizes(transforms)})
        per_frame = (time.perf_counter() - t0) / len(images)
        self._infer_s = per_frame if self._infer_s is None else 0.9 * self._infer_s + 0.1 * per_frame
        return self.postprocess(outputs, transforms)

    def close(self):
        self.backend.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
