"""The pre- and post-processing steps of a Triton ensemble, as plain numpy functions of named tensors.

`detrt export-triton` writes one Python-backend model.py that runs a step by name (its config's `detrt_step`
parameter): "preprocess" turns BGR uint8 frames into the network's inputs, "postprocess" turns the network's
outputs into boxes in frame pixels with class names. They are the runtime's own Preprocessor and Postprocessor,
so a client of the ensemble gets what `detrt run` writes. The frame geometry travels between the two as
`transform` float32 [6]: the fields of detrt.data.preprocess.Transform in order.
"""

import dataclasses

import numpy as np

from detrt.data.preprocess import Preprocessor, Transform, image_sizes
from detrt.manifest import IMAGE_SIZES, IMAGES
from detrt.runtime.postprocess import Postprocessor

TRANSFORM_FIELDS = [f.name for f in dataclasses.fields(Transform)]


class Preprocess:
    """frames uint8 [B, h, w, 3] BGR -> images float32 [B, 3, H, W], transform float32 [B, 6] (and image_sizes
    float32 [B, 2] for a network that masks padding)."""

    inputs = ("frames",)

    def __init__(self, manifest):
        self.preprocess = Preprocessor.from_manifest(manifest)
        self.masks_padding = manifest.masks_padding

    def __call__(self, frames):
        images, transforms = self.preprocess(list(frames))
        rows = [[getattr(t, name) for name in TRANSFORM_FIELDS] for t in transforms]
        out = {IMAGES: images, "transform": np.asarray(rows, np.float32)}
        if self.masks_padding:  # the network masks the letterbox's padding: it needs each image's size
            out[IMAGE_SIZES] = image_sizes(transforms)
        return out


class Postprocess:
    """The network's outputs + transform -> boxes float32 [B, K, 4] xyxy in frame pixels, scores [B, K],
    labels int64 [B, K], names bytes [B, K]: every detection above the manifest's score floor, sorted by score;
    frames with fewer than K are padded with score 0, label -1 and name b"" (a client cuts at its threshold)."""

    def __init__(self, manifest):
        self.postprocess = Postprocessor.from_manifest(manifest, threshold=0.0)
        self.inputs = (*manifest.outputs, "transform")

    def __call__(self, transform, **outputs):
        transforms = [Transform(*(int(v) if f.startswith(("src", "new")) else float(v)
                                  for f, v in zip(TRANSFORM_FIELDS, row))) for row in transform]
        detections = self.postprocess(outputs, transforms)
        k = max(len(d) for d in detections)
        boxes = np.zeros((len(detections), k, 4), np.float32)
        scores = np.zeros((len(detections), k), np.float32)
        labels = np.full((len(detections), k), -1, np.int64)
        names = np.full((len(detections), k), b"", object)
        for i, d in enumerate(detections):
            n = len(d)
            boxes[i, :n], scores[i, :n], labels[i, :n] = d.boxes, d.scores, d.labels
            names[i, :n] = [name.encode() for name in d.names]
        return {"boxes": boxes, "scores": scores, "labels": labels, "names": names}


STEPS = {"preprocess": Preprocess, "postprocess": Postprocess}
