"""Transforms move image and boxes together: flip, crop, letterbox against hand-computed boxes, the letterbox
equals the runtime's preprocessing, and the augmentation schemes (the official multi-scale recipe for the
CrowdHuman configs, the letterbox jitter for the tiny ones)."""

import numpy as np
import torch

from detrt.data.preprocess import Preprocessor, resize_transform
from detrt.models import get_config
from detrt.training.options import Augment
from detrt.training.transforms import (clip_boxes_to_image, crop, detr_multiscale, hflip, letterbox,
                                       multiscale_transform, scaled_transform, short_side_size, to_model_target)

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
    half = scaled_transform(img.shape[:2], (256, 384), 0.5)
    pixels, t, transform = letterbox(img, target([[100, 40, 200, 300]]), (256, 384), MEAN, STD, half)
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


def test_to_model_target_is_cxcywh_normalized_to_the_image():
    # a 240x360 image at the top-left of its input: boxes normalized to it (clipped to it), as DETR's targets
    out = to_model_target(target([[90, 30, 180, 150], [-10, 0, 0, 5], [350, 200, 400, 300]], [[0, 0, 45, 60]]),
                          (240, 360))
    torch.testing.assert_close(out["boxes"], torch.tensor([[0.375, 0.375, 0.25, 0.5],
                                                           [355 / 360, 220 / 240, 10 / 360, 40 / 240]]))
    torch.testing.assert_close(out["ignore_boxes"], torch.tensor([[1 / 16, 1 / 8, 1 / 8, 1 / 4]]))
    assert out["labels"].tolist() == [0, 0] and out["size"].tolist() == [240.0, 360.0]


def test_clip_boxes_to_image():
    np.testing.assert_array_equal(clip_boxes_to_image([[-5, -5, 50, 500]], 40, 30), [[0, 0, 40, 30]])


def test_crop_without_min_visible_keeps_cut_persons_as_clipped_positives():
    # the official recipe's crop: a person cut by the crop stays a person, clipped; only empty ones go
    boxes = [[30, 10, 44, 90], [-20, 40, 50, 60], [0, 0, 30, 30]]
    _, t = crop(np.zeros((100, 200, 3), np.uint8), target(boxes), (40, 10, 120, 90), min_visible=0.0)
    np.testing.assert_array_equal(t["boxes"], [[0, 0, 4, 80], [0, 30, 10, 50]])
    assert t["ignore"].shape == (0, 4)


def test_short_side_size_rounds_as_deformable_detr_and_caps_the_long_side():
    assert short_side_size((600, 800), 800, 1333) == (800, 1066)  # int(800 * 800 / 600) = 1066
    assert short_side_size((1000, 600), 480, 1333) == (800, 480)  # portrait: the width is the short side
    # 3:1 at 800 would be 2400 long: short side int(1333 / 3) = 444, long int(444 * 3) = 1332
    assert short_side_size((500, 1500), 800, 1333) == (444, 1332)
    # 400x1005: 1333 * 400 / 1005 = 530.5; Deformable DETR rounds to 531 and its long side int(531 * 1005 / 400)
    # = 1334 passes the cap; floored: 530, long side 1331
    assert short_side_size((400, 1005), 800, 1333) == (530, 1331)
    assert short_side_size((300, 400), 400) == (400, 533)  # no cap (the resize before the crop)


def test_multiscale_transform_fits_the_canvas_as_the_runtime_letterbox():
    t = multiscale_transform((600, 800), (800, 1216), 640, 1333)
    assert (t.new_h, t.new_w, t.sx, t.sy) == (640, 853, 853 / 800, 640 / 600)
    # 800 x 1333 does not fit 800 x 1216: fitted, exactly the runtime's letterbox (730 x 1216)
    assert multiscale_transform((600, 1000), (800, 1216), 800, 1333) == resize_transform((600, 1000), (800, 1216))
    assert multiscale_transform((600, 1000), (800, 1216), 800, 1333).new_h == 730


def test_detr_multiscale_sizes_stay_in_range():
    # on a canvas holding every size the recipe makes (long side <= 1333), none is fitted
    rng, a = np.random.default_rng(0), Augment("detr_multiscale")
    drawn = capped = 0
    for _ in range(200):
        h, w = (int(v) for v in rng.integers(200, 2000, 2))
        out, _, t = detr_multiscale(rng, np.zeros((h, w, 3), np.uint8), target([[0, 0, w, h]]), (1344, 1344), a)
        assert (t.src_h, t.src_w) == out.shape[:2]
        short, long = min(t.new_h, t.new_w), max(t.new_h, t.new_w)
        ratio = max(out.shape[:2]) / min(out.shape[:2])
        assert long <= 1333 and abs(long / short - ratio) < 1 / short + 1e-9
        if short in a.scales:
            drawn += 1
        else:  # the long-side cap shrank it: long within one short-side pixel of 1333
            assert long >= 1333 - ratio - 1, (h, w, t)
            capped += 1
    assert drawn > 50 and capped > 20
    # on the CrowdHuman canvas every size fits it
    for _ in range(50):
        h, w = (int(v) for v in rng.integers(200, 2000, 2))
        out, _, t = detr_multiscale(rng, np.zeros((h, w, 3), np.uint8), target([]), (800, 1216), a)
        assert t.new_h <= 800 and t.new_w <= 1216 and max(t.new_h, t.new_w) <= 1333


def test_detr_multiscale_flip_mirrors_boxes_at_the_drawn_scale():
    a = Augment("detr_multiscale", flip=1.0, crop=0.0, scales=(480,))
    img = np.zeros((600, 800, 3), np.uint8)
    img[50:450, 100:300] = 255
    out, t, transform = detr_multiscale(np.random.default_rng(0), img, target([[100, 50, 300, 450]]), (800, 1216), a)
    assert (transform.new_h, transform.new_w) == (480, 640)
    pixels, t, _ = letterbox(out, t, (800, 1216), MEAN, STD, transform)
    np.testing.assert_allclose(t["boxes"], [[400, 40, 560, 360]])  # x -> 800 - x, then x 0.8
    ys, xs = np.nonzero(pixels[0] > 1.0)
    assert (xs.min(), xs.max() + 1, ys.min(), ys.max() + 1) == (400, 560, 40, 360)


def test_detr_multiscale_crop_keeps_a_cut_person_as_a_positive():
    # a person filling a 1800x900 image, resized to 1200x600 and cropped to <= 400x400: every crop keeps
    # <= 22% of it (letterbox_jitter's crop would make it an ignore region); it stays a person, clipped
    a = Augment("detr_multiscale", flip=0.0, crop=1.0, crop_resize=(600,), crop_size=(384, 400))
    for seed in range(5):
        out, t, _ = detr_multiscale(np.random.default_rng(seed), np.zeros((900, 1800, 3), np.uint8),
                                    target([[0, 0, 1800, 900]], [[0, 0, 90, 90]]), (800, 1216), a)
        h, w = out.shape[:2]
        assert 384 <= h <= 400 and 384 <= w <= 400
        np.testing.assert_allclose(t["boxes"], [[0, 0, w, h]])
        assert t["ignore"].shape[0] <= 1  # the corner ignore region is clipped or gone, never a person


def test_crowdhuman_configs_select_the_official_recipe_and_tiny_ones_do_not():
    assert get_config("dhdetr_r50_crowdhuman").augment == "detr_multiscale"
    assert get_config("deformable_detr_r50_crowdhuman").augment == "detr_multiscale"
    assert get_config("dhdetr_r18_tiny").augment == "letterbox_jitter"
    assert get_config("deformable_detr_r18_tiny").augment == "letterbox_jitter"
