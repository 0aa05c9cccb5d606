"""The training dataset: any image converted, targets consistent with the pixels, reproducible augmentation."""

import json

import cv2
import numpy as np
import pytest
import torch

from detrt.data.crowdhuman import read_gt
from detrt.data.preprocess import Preprocessor
from detrt.errors import InputError
from detrt.training.dataset import CrowdHumanDataset, collate
from detrt.training.options import Augment
from tests.helpers.tiny_training import tiny_config

CFG = tiny_config()


def dataset(tiny_data, augment=None, seed=0):
    gt, images = tiny_data
    return CrowdHumanDataset(read_gt(gt, images), CFG.input_size, CFG.mean, CFG.std, augment, seed)


def test_eval_items_are_the_runtime_tensor_and_boxes(tiny_data):
    ds = dataset(tiny_data)
    for i in range(len(ds)):
        image, target, meta = ds[i]
        frame = cv2.imread(str(ds.records[i].image_path), cv2.IMREAD_COLOR)
        runtime, transforms = Preprocessor(CFG.input_size, CFG.mean, CFG.std)([frame])
        np.testing.assert_array_equal(image.numpy(), runtime[0])  # grayscale PNGs included
        assert meta["transform"] == transforms[0]
        assert target["size"].tolist() == [transforms[0].new_h, transforms[0].new_w] == [64, 96]
        # 120x80 -> 96x64 (0.8), filling the input: boxes normalized to it
        xyxy = ds.records[i].boxes * 0.8
        expect = np.stack([(xyxy[:, 0] + xyxy[:, 2]) / 192, (xyxy[:, 1] + xyxy[:, 3]) / 128,
                           (xyxy[:, 2] - xyxy[:, 0]) / 96, (xyxy[:, 3] - xyxy[:, 1]) / 64], -1)
        torch.testing.assert_close(target["boxes"], torch.tensor(expect, dtype=torch.float32))
        torch.testing.assert_close(target["ignore_boxes"], torch.tensor([[4 / 96, 4 / 64, 8 / 96, 8 / 64]]))


def test_flip_keeps_boxes_on_the_pixels(tiny_data):
    plain = dataset(tiny_data)
    flipped = dataset(tiny_data, Augment("letterbox_jitter", flip=1.0, crop=0.0, scale_min=1.0))
    for i in range(len(plain)):
        a, ta, _ = plain[i]
        b, tb, _ = flipped[i]
        # the 120x80 image fills the 96x64 input: mirrored pixels, cx -> 1 - cx
        torch.testing.assert_close(b, a.flip(-1), atol=1e-5, rtol=0)
        expect = ta["boxes"].clone()
        expect[:, 0] = 1 - expect[:, 0]
        torch.testing.assert_close(tb["boxes"], expect)


@pytest.mark.parametrize("scheme", ["letterbox_jitter", "detr_multiscale"])
def test_augmented_boxes_cover_the_drawn_rectangles(tiny_data, scheme):
    ds = dataset(tiny_data, Augment(scheme, flip=0.5, crop=1.0, scale_min=0.6))
    for epoch in range(3):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            image, target, _ = ds[i]
            h, w = target["size"].tolist()  # boxes are normalized to the image inside the input
            for cx, cy, bw, bh in target["boxes"].tolist():
                x0, x1 = round((cx - bw / 2) * w), round((cx + bw / 2) * w)
                y0, y1 = round((cy - bh / 2) * h), round((cy + bh / 2) * h)
                inner = image[:, y0 + 1:y1 - 1, x0 + 1:x1 - 1]
                if inner.numel():  # inside a drawn rectangle (possibly overlapped by another): bright
                    assert inner[0].median() > 1.0, (epoch, i)


def test_augmentation_is_reproducible_and_changes_with_the_epoch(tiny_data):
    jitter = Augment("letterbox_jitter")
    a, b = dataset(tiny_data, jitter, seed=3), dataset(tiny_data, jitter, seed=3)
    torch.testing.assert_close(a[2][0], b[2][0])
    draws = []
    for epoch in range(4):
        a.set_epoch(epoch)
        draws.append(a[2][0])
    assert any(not torch.equal(draws[0], d) for d in draws[1:])


def test_collate(tiny_data):
    images, targets, metas = collate([dataset(tiny_data)[i] for i in range(3)])
    assert images.shape == (3, 3, *CFG.input_size) and len(targets) == 3 and metas[1]["image_id"] == "img_1"


def test_annotation_of_another_image_size_is_scaled_to_the_file(tmp_path):
    cv2.imwrite(str(tmp_path / "a.jpg"), np.zeros((40, 60, 3), np.uint8))
    line = {"ID": "a", "width": 120, "height": 80, "gtboxes": [{"tag": "person", "fbox": [12, 8, 24, 40]}]}
    (tmp_path / "gt.odgt").write_text(json.dumps(line) + "\n")
    ds = CrowdHumanDataset(read_gt(tmp_path / "gt.odgt", tmp_path), CFG.input_size, CFG.mean, CFG.std)
    _, target = ds.load(0)
    np.testing.assert_allclose(target["boxes"], [[6, 4, 18, 24]])


def test_unreadable_image_is_an_input_error(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"not an image")
    (tmp_path / "gt.odgt").write_text(json.dumps({"ID": "a", "gtboxes": []}) + "\n")
    ds = CrowdHumanDataset(read_gt(tmp_path / "gt.odgt", tmp_path), CFG.input_size, CFG.mean, CFG.std)
    with pytest.raises(InputError, match="a.jpg: cannot read image"):
        ds[0]


def test_unknown_augmentation_scheme_is_an_input_error(tiny_data):
    with pytest.raises(InputError, match="scheme 'mosaic'; valid: detr_multiscale, letterbox_jitter"):
        dataset(tiny_data, Augment("mosaic"))
