"""Transforms move image and boxes together: flip, crop, letterbox against hand-computed boxes, and the letterbox
equals the runtime's preprocessing."""

import numpy as np
import torch

from detrt.data.preprocess import Preprocessor
from detrt.training.transforms import (clip_boxes_to_image, crop, hflip, letterbox, scaled_transform,
                                       to_model_target)

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def target(boxes, ignore=()):
    return {"boxes": np.array(boxes, np.float64).reshape(-1, 4), "ignore": np.array(ignore, np.float64).reshape(-1, 4)}


def marked_image(h, w, box):
    img = np.zeros((h, w, 3), np.uint8)
    x0, y0, x1, y1 = box
    img[y0:y1, x0:x1] = 255
    return img


def test_hflip_moves_pixels_and_boxes_together():
    img = marked_image(40, 100, (10, 5, 30, 25))
    out, t = hflip(img, target([[10, 5, 30, 25]], [[0, 0, 5, 40]]))
    np.testing.assert_array_equal(t["boxes"], [[70, 5, 90, 25]])
    np.testing.assert_array_equal(t["ignore"], [[95, 0, 100, 40]])
    ys, xs = np.nonzero(out[..., 0])
    assert (xs.min(), xs.max() + 1, ys.min(), ys.max() + 1) == (70, 90, 5, 25)


def test_crop_clips_drops_and_turns_slivers_into_ignore_regions():
    img = marked_image(100, 200, (50, 20, 70, 60))
    boxes = [[50, 20, 70, 60],  # inside the crop: shifted by (40, 10)
             [0, 0, 30, 30],  # entirely cut away: dropped
             [30, 10, 44, 90],  # 4 of 14 px wide left (29% < 30%): an ignore region
             [100, 50, 130, 80],  # half cut at x = 120: kept, clipped
             [-20, 40, 50, 60]]  # reaches past the image: visibility counts the in-image part only
    out, t = crop(img, target(boxes, [[0, 0, 35, 100]]), (40, 10, 120, 90), min_visible=0.3)
    assert out.shape == (80, 80, 3)
    np.testing.assert_array_equal(t["boxes"], [[10, 10, 30, 50], [60, 40, 80, 70]])
    # the old ignore region is cut away; box 2 keeps 4/14 of its width, box 4 x 40..50 of its in-image
    # 0..50 (20%): both become ignore regions
    np.testing.assert_array_equal(t["ignore"], [[0, 0, 4, 80], [0, 30, 10, 50]])
    ys, xs = np.nonzero(out[..., 0])
    assert (xs.min(), xs.max() + 1, ys.min(), ys.max() + 1) == (10, 30, 10, 50)


def test_crop_min_visible_threshold():
    img, boxes = np.zeros((100, 200, 3), np.uint8), target([[30, 10, 44, 90], [-20, 40, 50, 60]])
    _, t = crop(img, boxes, (40, 10, 120, 90), min_visible=0.25)  # keeps 28.6% and 20%
    np.testing.assert_array_equal(t["boxes"], [[0, 0, 4, 80]])
    np.testing.assert_array_equal(t["ignore"], [[0, 30, 10, 50]])


def test_letterbox_scales_boxes_and_equals_the_runtime_preprocessing():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (320, 512, 3), dtype=np.uint8)
    pixels, t, transform = letterbox(img, target([[100, 40, 200, 300]]), (256, 384), MEAN, STD)
    # 384/512 = 0.75 < 256/320 = 0.8: 384x240 at the top-left, 16 rows of padding
    assert (transform.new_h, transform.new_w) == (240, 384)
    np.testing.assert_allclose(t["boxes"], [[75, 30, 150, 225]])
    runtime, _ = Preprocessor((256, 384), MEAN, STD)([img])
    np.testing.assert_array_equal(pixels, runtime[0])
    assert (pixels[:, 240:] == 0).all()


def test_multiscale_letterbox_shrinks_into_the_top_left():
    img = marked_image(320, 512, (100, 40, 200, 300))
    pixels, t, transform = letterbox(img, target([[100, 40, 200, 300]]), (256, 384), MEAN, STD, scale=0.5)
    assert (transform.new_h, transform.new_w) == (120, 192)
    np.testing.assert_allclose(t["boxes"], [[37.5, 15, 75, 112.5]])
    assert (pixels[:, 120:] == 0).all() and (pixels[:, :, 192:] == 0).all()
    bright = pixels[0] > 1.0  # the white box, normalized
    ys, xs = np.nonzero(bright)
    assert abs(xs.min() - 37.5) <= 1 and abs(xs.max() + 1 - 75) <= 1 and abs(ys.max() + 1 - 112.5) <= 1


def test_scaled_transform_is_the_runtime_transform_at_scale_one():
    t = scaled_transform((480, 640), (256, 384), 1.0)
    assert (t.new_h, t.new_w, t.sx) == (256, 341, 341 / 640)
    np.testing.assert_allclose(t.to_source([[0, 0, 341, 256]]), [[0, 0, 640, 480]])


def test_to_model_target_is_cxcywh_normalized_to_the_padded_input():
    out = to_model_target(target([[96, 32, 192, 160], [-10, 0, 0, 5], [380, 200, 400, 300]], [[0, 0, 48, 64]]),
                          (256, 384))
    torch.testing.assert_close(out["boxes"], torch.tensor([[0.375, 0.375, 0.25, 0.5],
                                                           [382 / 384, 228 / 256, 4 / 384, 56 / 256]]))
    torch.testing.assert_close(out["ignore_boxes"], torch.tensor([[1 / 16, 1 / 8, 1 / 8, 1 / 4]]))
    assert out["labels"].tolist() == [0, 0]


def test_clip_boxes_to_image():
    np.testing.assert_array_equal(clip_boxes_to_image([[-5, -5, 50, 500]], 40, 30), [[0, 0, 40, 30]])
