"""Synthetic crowds: seeded street scenes with person figures, labelled in CrowdHuman `.odgt` (numpy + OpenCV).

Scenes stand on a ground plane (a horizon and a perspective scale), so far persons are small and high in the
image and near ones occlude them. Persons (head, torso, arms, legs; varied build, clothes, pose, 20-300 px)
walk in groups whose members overlap heavily; non-person objects (poles, lamps, trees, boxes, cars, signs,
snowmen, limbless "ghosts") stand among them as distractors and occluders. Ignore regions (tag "mask",
extra.ignore 1) hold posters and distant crowds of person-like figures. Labels per person: `fbox`, the
full body including occluded and out-of-frame parts; `hbox` (head); `vbox` (visible part); extra.visible.
A person less than 20% visible is labelled with extra.ignore 1; less than 10% is not labelled.

Images: `write_images` writes DIR/images/ID.jpg + DIR/annotations.odgt; the video is detrt.data.synthetic_video,
a whole set (images and video, written atomically, with statistics) detrt.data.synthetic_set.
"""

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from detrt.atomic import disk_full, no_space
from detrt.data.crowdhuman import write_odgt
from detrt.data.figures import background, extent, finish, object_prims, paint, person_pose, person_prims, person_style
from detrt.errors import InputError
from detrt.progress import progress_bar

PAD = 256  # the id map extends this far past the image so out-of-frame parts count in a person's area
VISIBLE_LABEL, VISIBLE_IGNORE = 0.2, 0.1


@dataclass
class SynthConfig:
    """Scene parameters. persons: range of persons drawn per image (or kept on screen in video);
    overlap: probability that a person walks next to another (pairs with IoU > 0.5 grow with it)."""

    width: int = 512
    height: int = 320
    persons: tuple = (8, 38)
    overlap: float = 0.4
    min_height: float = 20.0
    max_height: float = 300.0
    objects: tuple = (2, 10)
    ignore_prob: float = 0.4
    ext: str = ".jpg"


@dataclass
class Camera:
    horizon: float  # image y of the horizon
    scale: float  # person height in px per px below the horizon

    def height_at(self, y):
        return self.scale * (y - self.horizon)

    def y_for(self, h):
        return self.horizon + h / self.scale


def sample_camera(rng, cfg):
    horizon = rng.uniform(-0.05, 0.4) * cfg.height
    # height of a person standing on the bottom border: from a distant view to a close-up
    bottom = math.exp(rng.uniform(math.log(0.3 * cfg.height), math.log(min(1.1 * cfg.max_height, 1.05 * cfg.height))))
    return Camera(horizon, bottom / (cfg.height - horizon))


def sample_person(rng, cfg, cam, near=None, side=None):
    """(x, y_foot, h) on the ground; near=(x, y, h) places a companion beside another person, on `side`
    (-1 left, +1 right, None either)."""
    for _ in range(20):
        if near is not None:  # shifted sideways by the amount that gives equal boxes an IoU in [0.3, 0.85]
            x0, y0, h0 = near
            iou = rng.uniform(0.3, 0.85)
            x = x0 + (side or rng.choice([-1, 1])) * (1 - iou) / (1 + iou) * 0.33 * h0
            y = y0 + rng.normal(0, 0.02) * h0
            h = h0 * cam.height_at(y) / cam.height_at(y0) * rng.uniform(0.93, 1.07)
        else:
            y_lo, y_hi = cam.y_for(cfg.min_height), cfg.height + 0.25 * cam.height_at(cfg.height)
            y = y_lo + (y_hi - y_lo) * rng.random() ** 1.3  # more far (small) persons than near ones
            x = rng.uniform(-0.05, 1.05) * cfg.width
            h = cam.height_at(y) * rng.uniform(0.88, 1.12) * (rng.uniform(0.6, 0.78) if rng.random() < 0.08 else 1)
        if cfg.min_height <= h <= cfg.max_height:
            return x, y, h
    return None


def sample_ignore_regions(rng, cfg, cam):
    """Ignore regions as (xyxy box, painter(img)) pairs: posters and distant crowds of small figures."""
    out = []
    for _ in range(int(rng.random() < cfg.ignore_prob) * int(rng.integers(1, 3))):
        if cam.horizon > 20 and rng.random() < 0.45:  # distant crowd along the horizon
            w, h = rng.uniform(0.12, 0.4) * cfg.width, rng.uniform(14, 30)
            x0, y1 = rng.uniform(-0.1, 0.9) * cfg.width, cam.horizon + rng.uniform(0, 12)
            figs = [(rng.uniform(x0, x0 + w), y1 - rng.uniform(0, h * 0.35), rng.uniform(0.55, 1.0) * h)
                    for _ in range(int(w * rng.uniform(0.15, 0.4)))]
            poster = False
        else:  # poster or billboard with printed persons
            w = rng.uniform(0.08, 0.3) * cfg.width
            h = w * rng.uniform(0.6, 1.6)
            x0, y1 = rng.uniform(-0.05, 0.95) * cfg.width, rng.uniform(h, max(h + 1, cam.horizon + 0.3 * cfg.height))
            figs = [(rng.uniform(x0, x0 + w), y1 - rng.uniform(0, 0.3) * h, rng.uniform(0.35, 0.9) * h)
                    for _ in range(int(rng.integers(2, 9)))]
            poster = True
        box = np.array([x0, y1 - h, x0 + w, y1])
        out.append((box, _crowd_painter(rng, box, figs, poster)))
    return out


def _crowd_painter(rng, box, figs, poster):
    fill = tuple(int(c) for c in rng.integers(120, 256, 3)) if poster else None
    drawn = [person_prims(person_style(rng), person_pose(rng), x, y, h)[0]
             for x, y, h in sorted(figs, key=lambda f: f[1])]
    x0, y0, x1, y1 = (int(round(v)) for v in box)

    def paint_region(img):
        x0c, y0c = max(x0, 0), max(y0, 0)
        view = img[y0c:max(y1, y0c), x0c:max(x1, x0c)]
        if view.size == 0:
            return
        if fill is not None:
            view[:] = fill
        for prims in drawn:  # figures are clipped by the region, as on a printed poster
            paint(view, prims, offset=np.array([-x0c, -y0c]))

    return paint_region


def sample_scene(rng, cfg):
    """Camera, background (with ignore-region content painted), ignore boxes, and the standing objects."""
    cam = sample_camera(rng, cfg)
    bg = background(rng, cfg.width, cfg.height, cam.horizon)
    regions = sample_ignore_regions(rng, cfg, cam)
    for _, painter in regions:
        painter(bg)
    objects = []
    for _ in range(int(rng.integers(cfg.objects[0], cfg.objects[1] + 1))):
        spot = sample_person(rng, cfg, cam)
        if spot is not None:
            x, y, h = spot
            objects.append((y, object_prims(rng, x, y, h / rng.uniform(0.88, 1.12))))
    return cam, bg, [box for box, _ in regions], objects


@dataclass
class Figure:
    """A person to draw: foot y (depth order), primitives, full-body and head boxes (xyxy), extra labels."""

    y: float
    prims: list
    box: np.ndarray
    head: np.ndarray
    extra: dict


def make_figure(style, pose, x, y, h, **extra):
    prims, head = person_prims(style, pose, x, y, h)
    return Figure(y, prims, extent(prims), head, extra)


def render(rng, cfg, bg, objects, persons):
    """Draw persons (list of Figure) and objects [(y, prims)] over bg in depth order.

    Returns (image, gtboxes without ignore regions) with visibility measured on an instance-id map.
    """
    img = bg.copy()
    shadow = np.zeros(img.shape[:2], np.uint8)
    for p in persons:
        x0, _, x1, y1 = p.box
        cv2.ellipse(shadow, (int((x0 + x1) / 2), int(y1)), (int((x1 - x0) * 0.6) + 1, int((x1 - x0) * 0.12) + 1),
                    0, 0, 360, 255, -1)
    if persons:
        img = (img * (1 - 0.35 / 255 * shadow[..., None].astype(np.float32))).astype(np.uint8)
    ids = np.zeros((cfg.height + 2 * PAD, cfg.width + 2 * PAD), np.uint16)
    area = {}
    layers = sorted([(p.y, 1, i) for i, p in enumerate(persons)] + [(o[0], 0, i) for i, o in enumerate(objects)])
    for _, is_person, i in layers:
        prims = persons[i].prims if is_person else objects[i][1]
        paint(img, prims)
        paint(ids, prims, offset=PAD, value=i + 1 if is_person else 0)
        if is_person:
            area[i] = _count(ids, persons[i].box, i + 1)
    gtboxes = []
    for i, p in enumerate(persons):
        visible, vbox = _visible(ids, p.box, i + 1)
        frac = round(visible / max(area[i], 1), 3)  # rounded first, so the label and its flag agree
        if frac < VISIBLE_IGNORE:
            continue
        gtboxes.append({"tag": "person", "fbox": _xywh(p.box), "hbox": _xywh(p.head), "vbox": _xywh(vbox),
                        "extra": {"ignore": int(frac < VISIBLE_LABEL), "visible": frac, **p.extra}})
    return finish(rng, img), gtboxes


def _window(fbox, shape, margin):
    """Slices of the id map covering fbox, kept `margin` px inside the map (PAD: the image itself)."""
    x0, y0, x1, y1 = fbox + PAD
    return (slice(int(max(math.floor(y0), margin)), int(min(math.ceil(y1) + 1, shape[0] - margin))),
            slice(int(max(math.floor(x0), margin)), int(min(math.ceil(x1) + 1, shape[1] - margin))))


def _count(ids, fbox, value):
    ys, xs = _window(fbox, ids.shape, 0)
    return int(np.count_nonzero(ids[ys, xs] == value))


def _visible(ids, fbox, value):
    """Pixels of `value` inside the image, and their xyxy box (None when none)."""
    ys, xs = _window(fbox, ids.shape, PAD)
    mask = ids[ys, xs] == value
    if not mask.any():
        return 0, None
    rows, cols = np.nonzero(mask.any(1))[0], np.nonzero(mask.any(0))[0]
    x0, y0 = xs.start - PAD + cols[0], ys.start - PAD + rows[0]
    return int(mask.sum()), np.array([x0, y0, xs.start - PAD + cols[-1] + 1, ys.start - PAD + rows[-1] + 1], float)


def _xywh(b):
    return [round(float(b[0]), 1), round(float(b[1]), 1), round(float(b[2] - b[0]), 1), round(float(b[3] - b[1]), 1)]


def _masks(boxes):
    return [{"tag": "mask", "fbox": _xywh(b), "extra": {"ignore": 1}} for b in boxes]


def synth_image(seed, index, cfg=SynthConfig()):
    """One image and its .odgt object, a pure function of (seed, index)."""
    rng = np.random.default_rng([seed, index])
    cam, bg, ignore_boxes, objects = sample_scene(rng, cfg)
    persons, spots, free = [], [], []  # free: (spot index, side) where a companion can still stand
    for _ in range(int(rng.integers(cfg.persons[0], cfg.persons[1] + 1))):
        spot = None
        if free and rng.random() < cfg.overlap:  # groups grow sideways into rows, not piles
            i, side = free.pop(rng.integers(len(free)))
            spot = sample_person(rng, cfg, cam, spots[i], side)
            if spot is not None:
                free.append((len(spots), side))
        if spot is None:
            spot = sample_person(rng, cfg, cam)
            if spot is None:
                continue
            free += [(len(spots), -1), (len(spots), 1)]
        spots.append(spot)
        persons.append(make_figure(person_style(rng), person_pose(rng), *spot))
    img, gtboxes = render(rng, cfg, bg, objects, persons)
    image_id = f"{index:06d}"
    return img, {"ID": image_id, "width": cfg.width, "height": cfg.height, "gtboxes": gtboxes + _masks(ignore_boxes)}


def write_images(directory, num, seed=0, cfg=SynthConfig(), quality=90, progress=True):
    """Render images 0..num-1 into directory/images/ and directory/annotations.odgt; returns the .odgt objects."""
    directory = Path(directory)
    (directory / "images").mkdir(parents=True, exist_ok=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if cfg.ext.lower() in (".jpg", ".jpeg") else []
    objs = []
    for i in progress_bar(range(num), show=progress, desc="synth images", unit="img", leave=False):
        img, obj = synth_image(seed, i, cfg)
        path = directory / "images" / f"{obj['ID']}{cfg.ext}"
        if not cv2.imwrite(str(path), img, params):  # OpenCV says no more than that: a full disk is the usual cause
            raise no_space(path) if disk_full(directory) else InputError(f"{path}: cannot write image")
        objs.append(obj)
    write_odgt(directory / "annotations.odgt", objs)
    return objs
