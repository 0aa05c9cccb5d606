"""Training transforms: each moves the image and its boxes together (numpy, boxes xyxy float64 pixels).

A target is a dict with `boxes` [N, 4] (persons) and `ignore` [M, 4] (ignore regions), both xyxy in the
pixels of the image beside it. The last step, `letterbox`, is the runtime's preprocessing
(`detrt.data.preprocess`): resize keeping the aspect ratio, image at the top-left, bottom/right padded
with zeros after normalization. With scale 1 it gives exactly the runtime's tensor, so the exported
model sees what it was trained on; a scale below 1 is the multi-scale augmentation (smaller persons,
more padding), a crop before it the zoom-in.
"""

import numpy as np

from detrt.data.preprocess import Preprocessor, Transform, resize_transform
from detrt.optional import require


def box_area(boxes):
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)


def clip_boxes_to_image(boxes, width, height):
    """xyxy boxes clipped to [0, width] x [0, height] (full-body boxes may reach past the border)."""
    out = np.array(boxes, dtype=np.float64).reshape(-1, 4)
    out[:, 0::2] = out[:, 0::2].clip(0, width)
    out[:, 1::2] = out[:, 1::2].clip(0, height)
    return out


def hflip(image, target):
    """Mirror left-right: x -> width - x."""
    w = image.shape[1]
    out = {}
    for key in ("boxes", "ignore"):
        b = target[key].copy()
        b[:, [0, 2]] = w - target[key][:, [2, 0]]
        out[key] = b
    return image[:, ::-1].copy(), out


def crop(image, target, region, min_visible=0.3):
    """Cut `region` (x0, y0, x1, y1 integer pixels) out of the image.

    Boxes are clipped to the region. A person with nothing left is dropped; one keeping less than
    `min_visible` of its (in-image) area becomes an ignore region: a sliver of a person is neither a
    target nor a background example. Ignore regions are clipped, empty ones dropped.
    """
    x0, y0, x1, y1 = (int(v) for v in region)
    h, w = image.shape[:2]
    before = box_area(clip_boxes_to_image(target["boxes"], w, h))
    shift = np.array([x0, y0, x0, y0], dtype=np.float64)
    boxes = clip_boxes_to_image(target["boxes"] - shift, x1 - x0, y1 - y0)
    ignore = clip_boxes_to_image(target["ignore"] - shift, x1 - x0, y1 - y0)
    after = box_area(boxes)
    alive = after > 0
    kept = alive & (after >= min_visible * before)
    ignore = np.concatenate([ignore[box_area(ignore) > 0], boxes[alive & ~kept]])
    return image[y0:y1, x0:x1].copy(), {"boxes": boxes[kept], "ignore": ignore.reshape(-1, 4)}


def scaled_transform(src_hw, input_hw, scale=1.0):
    """The runtime's letterbox Transform (scale 1), or one for an image `scale` times smaller (scale <= 1)."""
    t = resize_transform(src_hw, input_hw, "letterbox")
    if scale == 1.0:
        return t
    h, w = int(src_hw[0]), int(src_hw[1])
    new_h, new_w = max(1, min(t.new_h, round(t.new_h * scale))), max(1, min(t.new_w, round(t.new_w * scale)))
    return Transform(h, w, new_w / w, new_h / h, new_h, new_w)


def letterbox(image, target, input_hw, mean, std, scale=1.0):
    """BGR uint8 image -> (normalized RGB float32 [3, H, W], target in network-input pixels, Transform).

    The pixels are written by the runtime's own Preprocessor (same interpolation, same arithmetic).
    """
    t = scaled_transform(image.shape[:2], input_hw, scale)
    out = np.zeros((3, *input_hw), np.float32)
    resized = image
    if (t.new_h, t.new_w) != image.shape[:2]:
        import cv2

        interp = cv2.INTER_AREA if t.new_w < image.shape[1] else cv2.INTER_LINEAR
        resized = cv2.resize(image, (t.new_w, t.new_h), interpolation=interp)
    Preprocessor((t.new_h, t.new_w), mean, std).into(np.ascontiguousarray(resized), out[:, :t.new_h, :t.new_w])
    scale_xy = np.array([t.sx, t.sy, t.sx, t.sy])
    return out, {key: target[key] * scale_xy for key in ("boxes", "ignore")}, t


def random_crop_region(rng, width, height, min_side):
    """A random (x0, y0, x1, y1) keeping between min_side and all of each side."""
    cw = int(rng.integers(max(1, round(min_side * width)), width + 1))
    ch = int(rng.integers(max(1, round(min_side * height)), height + 1))
    x0, y0 = int(rng.integers(0, width - cw + 1)), int(rng.integers(0, height - ch + 1))
    return x0, y0, x0 + cw, y0 + ch


def to_model_target(target, input_hw):
    """Network-pixel xyxy target -> the criterion's format: boxes / ignore_boxes cxcywh normalized to the
    padded input, labels 0 (person). Boxes are clipped to the input; zero-size ones are dropped."""
    torch = require("torch", "training targets")  # the numpy transforms above run without it

    H, W = input_hw
    out = {}
    for key, name in (("boxes", "boxes"), ("ignore", "ignore_boxes")):
        b = clip_boxes_to_image(target[key], W, H)
        b = b[(b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])]
        cxcywh = np.stack([(b[:, 0] + b[:, 2]) / 2 / W, (b[:, 1] + b[:, 3]) / 2 / H,
                           (b[:, 2] - b[:, 0]) / W, (b[:, 3] - b[:, 1]) / H], -1)
        out[name] = torch.as_tensor(cxcywh, dtype=torch.float32).reshape(-1, 4)
    out["labels"] = torch.zeros(len(out["boxes"]), dtype=torch.int64)
    return out
