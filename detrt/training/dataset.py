"""A torch Dataset over a CrowdHuman index (`detrt.data.crowdhuman.read_gt`), with training augmentation.

    records = read_gt("annotations.odgt", "images/")
    ds = CrowdHumanDataset(records, cfg.input_size, cfg.mean, cfg.std, Augment(cfg.augment), seed=0)  # .options
    loader = DataLoader(ds, batch_size=2, collate_fn=collate)   # -> images [B, 3, H, W], targets, metas

Images of any size and kind are read as 3-channel BGR (grayscale is replicated, alpha dropped, 16-bit
scaled to 8-bit) and converted to RGB by the letterbox. When a record says another width/height than its
image file has, its boxes are scaled to the file (the annotation was made on a resized copy).

Randomness: sample i of epoch e draws from numpy's Generator seeded with (seed, e, i), so an epoch gives
the same batches in any worker layout, and resuming mid-epoch replays exactly.
"""

from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from detrt.data.coco import is_coco, read_coco
from detrt.data.crowdhuman import read_gt
from detrt.errors import InputError
from detrt.training.transforms import SCHEMES, letterbox, to_model_target


def read_image(path):
    """BGR uint8 HxWx3 of any image file OpenCV reads; InputError if it cannot."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise InputError(f"{path}: cannot read image")
    return image


class CrowdHumanDataset(Dataset):
    """Item i -> (image float32 [3, H, W], target dict for the criterion, meta dict).

    target: boxes [G, 4] cxcywh normalized to the image (the top-left part of the input it fills), labels
    [G] int64 (class indices; 0 = person), ignore_boxes [I, 4] (same format), size [2] (h, w) of the image:
    the model's `sizes`, so the padding around it changes nothing. meta: image_id, the Transform from the
    source image to the network input (identity of the letterbox without augmentation: map detections back with
    `meta["transform"].to_source`), and the source size (height, width).
    augment None: evaluation (letterbox only, exactly the runtime's preprocessing).
    """

    def __init__(self, records, input_size, mean, std, augment=None, seed=0):
        self.records, self.input_size = list(records), tuple(input_size)
        self.mean, self.std, self.augment, self.seed = mean, std, augment, seed
        self.epoch = 0
        if augment is not None and augment.scheme not in SCHEMES:
            raise InputError(f"unknown augmentation scheme {augment.scheme!r}; valid: {', '.join(sorted(SCHEMES))}")
        missing = [r for r in self.records if r.image_path is None]
        if missing:
            raise InputError(f"image {missing[0].image_id!r} has no file (read the index with an images directory)")

    def set_epoch(self, epoch):
        """Change the augmentation draws (call before iterating; workers copy the dataset per epoch)."""
        self.epoch = int(epoch)

    def __len__(self):
        return len(self.records)

    def load(self, index):
        """(BGR image, target dict of xyxy pixel boxes in that image) of record `index`, unaugmented."""
        r = self.records[index]
        image = read_image(r.image_path)
        h, w = image.shape[:2]
        target = {"boxes": np.asarray(r.boxes, np.float64).reshape(-1, 4),
                  "ignore": np.asarray(r.ignore, np.float64).reshape(-1, 4)}
        if r.width and r.height and (r.width, r.height) != (w, h):
            s = np.array([w / r.width, h / r.height] * 2)
            target = {k: v * s for k, v in target.items()}
        if r.labels is not None:  # category indices (COCO-format data); CrowdHuman records are all persons
            target["labels"] = np.asarray(r.labels, np.int64)
        return image, target

    def __getitem__(self, index):
        image, target = self.load(index)
        transform = None  # the runtime's letterbox
        if self.augment is not None:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            scheme = SCHEMES[self.augment.scheme]
            image, target, transform = scheme(rng, image, target, self.input_size, self.augment)
        src_hw = image.shape[:2]
        pixels, target, transform = letterbox(image, target, self.input_size, self.mean, self.std, transform)
        meta = {"image_id": self.records[index].image_id, "transform": transform, "size": src_hw}
        return torch.from_numpy(pixels), to_model_target(target, (transform.new_h, transform.new_w)), meta


def collate(batch):
    """List of dataset items -> (images [B, 3, H, W], list of targets, list of metas)."""
    images, targets, metas = zip(*batch)
    return torch.stack(images), list(targets), list(metas)


def read_records(data, images, what, head_ignore=False, vocabulary=None):
    """(records, Vocabulary of a COCO-format .json or None for CrowdHuman .odgt); `what` names the data in
    errors ("training", "validation")."""
    if data is None or images is None:
        raise InputError(f"{what}: give both the annotation file and the images directory")
    if not Path(data).exists():
        raise InputError(f"{data}: {what} annotation file not found")
    if is_coco(data):
        records, vocabulary = read_coco(data, images, vocabulary)
    else:
        records, vocabulary = read_gt(data, images, head_ignore=head_ignore), None
    if not records:
        raise InputError(f"{data}: no images in the {what} annotation file")
    return records, vocabulary


def eval_loader(records, cfg, batch_size=4, workers=0):
    """Batches of `records` in order, letterboxed into the config's input as at runtime (no augmentation)."""
    return DataLoader(CrowdHumanDataset(records, cfg.input_size, cfg.mean, cfg.std), batch_size=batch_size,
                      num_workers=workers, collate_fn=collate)
