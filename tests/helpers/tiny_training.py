"""Tiny data and model configs for the training tests: a few drawn images, a 64x96 network, seconds per test;
a fixed batch, a criterion that turns one loss term NaN, and a model with trained-looking weights."""

import json

import cv2
import numpy as np
import torch

from detrt.models import build_model, get_config

# 8x12 + 4x6 + 2x3 + 1x2 = 128 encoder tokens >= 20 queries; hidden 32 (GroupNorm needs multiples of 32)
TINY = dict(input_size=(64, 96), hidden_dim=32, nheads=2, enc_layers=1, dim_feedforward=32, num_queries=20)


def tiny_config(name="dhdetr_r18_tiny", **changes):
    return get_config(name, **{**TINY, **changes})


def draw_image(rng, width, height, n):
    """A noisy image with n bright 'person' rectangles; returns (BGR image, boxes xyxy)."""
    img = rng.integers(0, 60, (height, width, 3), dtype=np.uint8)
    boxes = []
    for _ in range(n):
        w, h = rng.uniform(0.1, 0.25) * width, rng.uniform(0.3, 0.6) * height
        x, y = rng.uniform(0, width - w), rng.uniform(0, height - h)
        cv2.rectangle(img, (int(x), int(y)), (int(x + w), int(y + h)), (200, 220, 240), -1)
        boxes.append([x, y, x + w, y + h])
    return img, boxes


def write_dataset(root, num=6, seed=0, width=120, height=80, grayscale_every=3):
    """root/images/img_i.(jpg|png) + root/annotations.odgt; every `grayscale_every`-th image is a grayscale PNG."""
    rng = np.random.default_rng(seed)
    images = root / "images"
    images.mkdir(parents=True)
    lines = []
    for i in range(num):
        img, boxes = draw_image(rng, width, height, int(rng.integers(1, 4)))
        if grayscale_every and i % grayscale_every == grayscale_every - 1:
            cv2.imwrite(str(images / f"img_{i}.png"), cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))
        else:
            cv2.imwrite(str(images / f"img_{i}.jpg"), img)
        gtboxes = [{"tag": "person", "fbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]], "extra": {"ignore": 0}}
                   for b in boxes]
        gtboxes.append({"tag": "mask", "fbox": [0, 0, 10, 10], "extra": {"ignore": 1}})
        lines.append(json.dumps({"ID": f"img_{i}", "width": width, "height": height, "gtboxes": gtboxes}))
    (root / "annotations.odgt").write_text("\n".join(lines) + "\n")
    return root / "annotations.odgt", images


def fixed_batch():
    """Two 64x96 inputs; the second image fills only 48x80 of its input (padding on both axes)."""
    g = torch.Generator().manual_seed(0)
    images = torch.randn(2, 3, 64, 96, generator=g)
    images[1, :, 48:], images[1, :, :, 80:] = 0.0, 0.0
    targets = [{"boxes": torch.tensor([[0.3, 0.5, 0.2, 0.6], [0.7, 0.5, 0.25, 0.7]]),
                "labels": torch.zeros(2, dtype=torch.int64), "ignore_boxes": torch.zeros(0, 4),
                "size": torch.tensor([64.0, 96.0])},
               {"boxes": torch.tensor([[0.5, 0.5, 0.3, 0.8]]), "labels": torch.zeros(1, dtype=torch.int64),
                "ignore_boxes": torch.tensor([[0.1, 0.1, 0.1, 0.1]]), "size": torch.tensor([48.0, 80.0])}]
    return images, targets


class NaNCriterion:
    """A criterion whose `key` term is NaN (what a blown-up box regression gives)."""

    def __init__(self, criterion, key):
        self.criterion, self.key, self.total, self.denoising = criterion, key, criterion.total, criterion.denoising

    def __call__(self, outputs, targets):
        losses = self.criterion(outputs, targets)
        losses[self.key] = losses[self.key] * float("nan")
        return losses

    def to(self, device):  # the training loop moves its criterion (its buffers) to the training device
        self.criterion.to(device)
        return self


def trained_model(name="dhdetr_r18_tiny", seed=0):
    """A tiny model whose weights differ from initialization (so loading is visible)."""
    torch.manual_seed(seed)
    model = build_model(tiny_config(name))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return model.eval()
