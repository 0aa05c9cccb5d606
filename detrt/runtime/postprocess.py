"""Network outputs to detections in source pixels: score floor and threshold, top-k, inverse resize. No NMS.

DH-DETR's queries are de-homogenized so duplicates are already suppressed inside the model; an NMS
here would only remove true positives in crowds. Two output formats (the manifest says which):
- "topk": scores [B, K], labels [B, K], boxes [B, K, 4] xyxy in network-input pixels, sorted.
- "raw": pred_logits [B, N, C], pred_boxes [B, N, 4] cxcywh normalized to the image inside the input (each
  Transform's resized size), or to the padded input for a graph without `image_sizes` (manifest inputs);
  scores are sigmoid(logits) and the top-k runs over all N x C (query, class) pairs, as Deformable
  DETR's PostProcess does, so a query may yield more than one class.
The manifest's `score_floor` (the evaluation protocol the model was made for) drops lower scores whatever
threshold is asked; its `num_select` is the top-k of a raw graph unless `topk` is given.
"""

from dataclasses import dataclass, replace

import numpy as np

from detrt.box_ops import box_cxcywh_to_xyxy
from detrt.errors import InputError


@dataclass
class Detections:
    """Detections of one frame, sorted by score: boxes xyxy [N, 4] float32 in source pixels, labels the class
    indices; class_names and category_ids (the dataset's ids, for COCO results) are per class index."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    class_names: tuple = ()
    category_ids: tuple = ()  # empty: 1..C, as detrt.data.vocabulary numbers classes by default

    def __len__(self):
        return len(self.scores)

    @property
    def names(self):
        n = len(self.class_names)
        return [self.class_names[i] if 0 <= i < n else str(i) for i in self.labels.tolist()]

    @property
    def ids(self):
        """The dataset's category id of each detection."""
        ids = self.category_ids
        return [ids[i] for i in self.labels.tolist()] if ids else [i + 1 for i in self.labels.tolist()]

    def above(self, threshold):
        """The detections with score >= threshold (a view-sized copy; self is unchanged)."""
        if len(self.scores) == 0 or self.scores[-1] >= threshold:
            return self
        keep = self.scores >= threshold
        return replace(self, boxes=self.boxes[keep], scores=self.scores[keep], labels=self.labels[keep])

    def to_list(self):
        """JSON-ready: [{"box": [x0, y0, x1, y1], "score", "label", "name", "category_id"}]."""
        return [{"box": [round(v, 2) for v in b], "score": round(s, 5), "label": l, "name": n, "category_id": c}
                for b, s, l, n, c in zip(self.boxes.tolist(), self.scores.tolist(), self.labels.tolist(), self.names,
                                         self.ids)]

    @classmethod
    def empty(cls, class_names=(), category_ids=()):
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64), tuple(class_names),
                   tuple(category_ids))


def check_threshold(value, name="threshold"):
    """`value` as a float score threshold in [0, 1]; InputError otherwise (NaN would keep nothing, silently)."""
    try:
        threshold = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number in [0, 1], got {value!r}") from None
    if not 0.0 <= threshold <= 1.0:
        raise InputError(f"{name} must be in [0, 1], got {value}")
    return threshold


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x.astype(np.float32)))


class Postprocessor:
    """Callable: (outputs dict, [Transform]) -> [Detections], one per frame of the batch."""

    def __init__(self, output_format, input_hw, class_names=(), threshold=0.5, topk=None, score_floor=0.0,
                 category_ids=(), boxes_on_image=True):
        if output_format not in ("topk", "raw"):
            raise ValueError(f"output_format must be 'topk' or 'raw', got {output_format!r}")
        self.output_format = output_format
        self.input_hw = (int(input_hw[0]), int(input_hw[1]))
        self.class_names = tuple(class_names)
        self.category_ids = tuple(category_ids)
        self.threshold = threshold
        self.topk = topk
        self.score_floor = check_threshold(score_floor, "score_floor")
        self.boxes_on_image = boxes_on_image  # "raw" boxes: normalized to the image, else to the input

    @property
    def threshold(self):
        return self._threshold

    @threshold.setter
    def threshold(self, value):
        self._threshold = check_threshold(value)

    @classmethod
    def from_manifest(cls, manifest, threshold=0.5, topk=None):
        return cls(manifest.output_format, manifest.input_size, manifest.class_names, threshold,
                   topk or manifest.num_select, manifest.score_floor, manifest.vocabulary.ids,
                   manifest.masks_padding)

    def __call__(self, outputs, transforms):
        if self.output_format == "topk":
            scores, labels, boxes = outputs["scores"], outputs["labels"], outputs["boxes"]
        else:
            n = min(len(outputs["pred_logits"]), len(transforms))
            sizes = [(t.new_h, t.new_w) if self.boxes_on_image else self.input_hw for t in transforms[:n]]
            scores, labels, boxes = self._from_raw(outputs["pred_logits"][:n], outputs["pred_boxes"][:n], sizes)
        if len(scores) < len(transforms):
            raise ValueError(f"the model returned {len(scores)} results for a batch of {len(transforms)}")
        return [self._one(scores[i], labels[i], boxes[i], t) for i, t in enumerate(transforms)]

    def _from_raw(self, logits, boxes, sizes):
        """[B, N, C], [B, N, 4] cxcywh normalized to `sizes` [(h, w)] -> sorted scores [B, k], labels, xyxy network
        pixels."""
        B, N, C = logits.shape
        k = min(self.topk or N, N * C)
        flat = logits.reshape(B, N * C)
        # Top-k on logits (sigmoid is monotonic); argpartition then sort only the k kept.
        if k < N * C:
            idx = np.argpartition(-flat, k - 1, axis=1)[:, :k]
        else:
            idx = np.broadcast_to(np.arange(N * C), (B, N * C))
        part = np.take_along_axis(flat, idx, axis=1)
        order = np.argsort(-part, axis=1, kind="stable")
        idx = np.take_along_axis(idx, order, axis=1)
        scores = _sigmoid(np.take_along_axis(part, order, axis=1))
        labels = (idx % C).astype(np.int64)
        query = idx // C
        hw = np.array(sizes, dtype=np.float32).reshape(-1, 1, 2)[..., ::-1]
        sel = np.take_along_axis(boxes, query[..., None], axis=1)
        xyxy = box_cxcywh_to_xyxy(sel) * np.concatenate([hw, hw], -1)
        return scores, labels, xyxy.astype(np.float32)

    def _one(self, scores, labels, boxes, transform):
        scores = np.asarray(scores, dtype=np.float32)
        if len(scores) > 1 and (np.diff(scores) > 0).any():  # the contract says sorted; do not rely on it
            order = np.argsort(-scores, kind="stable")
            scores, labels, boxes = scores[order], np.asarray(labels)[order], np.asarray(boxes)[order]
        if self.topk is not None and self.output_format == "topk":
            scores, labels, boxes = scores[:self.topk], labels[:self.topk], boxes[:self.topk]
        keep = scores >= max(self.threshold, self.score_floor)
        if not keep.all():
            scores, labels, boxes = scores[keep], labels[keep], boxes[keep]
        return Detections(transform.to_source(boxes), scores,
                          np.asarray(labels, dtype=np.int64), self.class_names, self.category_ids)
