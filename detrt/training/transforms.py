"""Training transforms: each moves the image and its boxes together (numpy, boxes xyxy float64 pixels).

A target is a dict with `boxes` [N, 4] (persons) and `ignore` [M, 4] (ignore regions), both xyxy in the
pixels of the image beside it. The last step, `letterbox`, is the runtime's preprocessing
(`detrt.data.preprocess`): resize keeping the aspect ratio, image at the top-left, bottom/right padded
with zeros after normalization. At the fitting size it gives exactly the runtime's tensor, so the exported
model sees what it was trained on; a smaller size is the multi-scale augmentation (smaller persons,
more padding, which the model's padding mask hides), a crop before it the zoom-in.

The augmentation schemes (a config's `augment`, `SCHEMES` below) draw from a numpy Generator and return
(image, target, the letterbox Transform):
- "detr_multiscale": the recipe of Deformable DETR's `make_coco_transforms`, which the official DH-DETR /
  Iter-Deformable-DETR code trains CrowdHuman with: flip; then either a resize to a short side of
  480..800 (long side <= 1333), or a resize to a short side of 400/500/600, a random crop of 384..600 px
  per side (cut boxes stay persons, clipped) and that multi-scale resize. Every image is then placed at the
  top-left of the config's input (a multi-scale size larger than it is fitted into it); the model's padding
  mask (the target's `size`) makes the padding invisible to it, as the official padded batches are.
- "letterbox_jitter": flip, a crop keeping >= crop_min_side of each side (slivers become ignore regions),
  the letterbox at U(scale_min, 1) times the fitting scale.
"""

import cv2
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
    out = dict(target)
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
    out = {"boxes": boxes[kept], "ignore": ignore.reshape(-1, 4)}
    if "labels" in target:
        out["labels"] = target["labels"][kept]
    return image[y0:y1, x0:x1].copy(), out


def resize(image, target, new_hw):
    """Image and boxes resized to new_hw (h, w); INTER_AREA when shrinking, as the runtime does."""
    h, w = image.shape[:2]
    new_h, new_w = int(new_hw[0]), int(new_hw[1])
    if (new_h, new_w) == (h, w):
        return image, target
    interp = cv2.INTER_AREA if new_w < w else cv2.INTER_LINEAR
    scale_xy = np.array([new_w / w, new_h / h] * 2)
    return (cv2.resize(image, (new_w, new_h), interpolation=interp),
            {**target, **{key: target[key] * scale_xy for key in ("boxes", "ignore")}})


def short_side_size(src_hw, short, max_size=None):
    """(h, w) with the short side `short` and the aspect ratio kept; the short side shrinks until the long
    side is <= max_size. As Deformable DETR's `resize` (get_size_with_aspect_ratio), except that the capped
    short side is floored where it rounds, so the long side never passes max_size (there it can by 1-2 px)."""
    h, w = int(src_hw[0]), int(src_hw[1])
    if max_size is not None and max(h, w) / min(h, w) * short > max_size:
        short = int(max_size * min(h, w) / max(h, w))
    if w < h:
        return int(short * h / w), short
    return short, int(short * w / h)


def scaled_transform(src_hw, input_hw, scale=1.0):
    """The runtime's letterbox Transform (scale 1), or one for an image `scale` times smaller (scale <= 1)."""
    t = resize_transform(src_hw, input_hw, "letterbox")
    if scale == 1.0:
        return t
    h, w = int(src_hw[0]), int(src_hw[1])
    new_h, new_w = max(1, min(t.new_h, round(t.new_h * scale))), max(1, min(t.new_w, round(t.new_w * scale)))
    return Transform(h, w, new_w / w, new_h / h, new_h, new_w)


def multiscale_transform(src_hw, input_hw, short, max_size):
    """The letterbox Transform of the multi-scale resize to `short` (long side <= max_size), fitted into the
    network input when larger (then it is the runtime's letterbox)."""
    new_h, new_w = short_side_size(src_hw, short, max_size)
    if new_h > input_hw[0] or new_w > input_hw[1]:
        return resize_transform(src_hw, input_hw, "letterbox")
    h, w = int(src_hw[0]), int(src_hw[1])
    return Transform(h, w, new_w / w, new_h / h, new_h, new_w)


def letterbox(image, target, input_hw, mean, std, transform=None):
    """BGR uint8 image -> (normalized RGB float32 [3, H, W], target in network-input pixels, Transform).

    `transform` (from this image's size; default the runtime's) says the resized size inside the input.
    The pixels are written by the runtime's own Preprocessor (same interpolation, same arithmetic).
    """
    t = transform or resize_transform(image.shape[:2], input_hw, "letterbox")
    out = np.zeros((3, *input_hw), np.float32)
    resized, target = resize(image, target, (t.new_h, t.new_w))
    Preprocessor((t.new_h, t.new_w), mean, std).into(np.ascontiguousarray(resized), out[:, :t.new_h, :t.new_w])
    return out, target, t


def random_region(rng, width, height, width_range, height_range):
    """A random (x0, y0, x1, y1) inside a width x height image, its sides drawn from the (low, high) ranges."""
    cw = int(rng.integers(width_range[0], width_range[1] + 1))
    ch = int(rng.integers(height_range[0], height_range[1] + 1))
    x0, y0 = int(rng.integers(0, width - cw + 1)), int(rng.integers(0, height - ch + 1))
    return x0, y0, x0 + cw, y0 + ch


def detr_multiscale(rng, image, target, input_hw, a):
    """The "detr_multiscale" scheme (module docstring); `a` an Augment."""
    if rng.random() < a.flip:
        image, target = hflip(image, target)
    if rng.random() < a.crop:
        image, target = resize(image, target, short_side_size(image.shape[:2], int(rng.choice(a.crop_resize))))
        h, w = image.shape[:2]
        low, high = a.crop_size  # Deformable DETR's RandomSizeCrop: low..high px, at most the image's side
        region = random_region(rng, w, h, (min(low, w), min(high, w)), (min(low, h), min(high, h)))
        image, target = crop(image, target, region, min_visible=0.0)  # cut persons stay persons
    short = int(rng.choice(a.scales))
    return image, target, multiscale_transform(image.shape[:2], input_hw, short, a.max_size)


def letterbox_jitter(rng, image, target, input_hw, a):
    """The "letterbox_jitter" scheme (module docstring); `a` an Augment."""
    if rng.random() < a.flip:
        image, target = hflip(image, target)
    if rng.random() < a.crop:
        h, w = image.shape[:2]
        region = random_region(rng, w, h, (max(1, round(a.crop_min_side * w)), w),
                               (max(1, round(a.crop_min_side * h)), h))
        image, target = crop(image, target, region, a.min_visible)
    scale = float(rng.uniform(a.scale_min, 1.0))
    return image, target, scaled_transform(image.shape[:2], input_hw, scale)


SCHEMES = {"detr_multiscale": detr_multiscale, "letterbox_jitter": letterbox_jitter}


def to_model_target(target, image_hw):
    """Network-pixel xyxy target -> the criterion's format: boxes / ignore_boxes cxcywh normalized to the
    image (image_hw: its (h, w) at the top-left of the padded input, the model's `sizes`), labels
    (target["labels"], class indices; else 0, person), size [2] float (h, w). Boxes are clipped to the image;
    zero-size ones are dropped."""
    torch = require("torch", "training targets")  # the numpy transforms above run without it

    H, W = image_hw
    out, labels = {}, np.asarray(target.get("labels", np.zeros(len(target["boxes"]))), np.int64)
    for key, name in (("boxes", "boxes"), ("ignore", "ignore_boxes")):
        b = clip_boxes_to_image(target[key], W, H)
        keep = (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
        b = b[keep]
        labels = labels[keep] if key == "boxes" else labels
        cxcywh = np.stack([(b[:, 0] + b[:, 2]) / 2 / W, (b[:, 1] + b[:, 3]) / 2 / H,
                           (b[:, 2] - b[:, 0]) / W, (b[:, 3] - b[:, 1]) / H], -1)
        out[name] = torch.as_tensor(cxcywh, dtype=torch.float32).reshape(-1, 4)
    out["labels"] = torch.as_tensor(labels, dtype=torch.int64)
    out["size"] = torch.tensor([H, W], dtype=torch.float32)
    return out
