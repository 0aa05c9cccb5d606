"""A synthetic vast vocabulary: shapes whose class is shape x colour x texture x size, labelled in COCO JSON.

The classes form a tree of four levels (docs/data.md), every node a category:
    shape (8)  ->  colour shape (64)  ->  texture colour shape (384)  ->  size texture colour shape (1,152 leaves)
e.g. "star" -> "red star" -> "dotted red star" -> "large dotted red star": 1,608 categories. Objects are
labelled with leaves only. Leaf frequencies are long-tailed and the same for every seed (a fixed ranking
of the leaves, drawn once with RANK_SEED, and probabilities falling exponentially over it by TAIL_RATIO
from the first leaf to the last), so a training set and a validation set share their frequent and rare
classes, and rare leaves have frequent siblings. Sizes are fractions of the image's shorter side that do
not overlap (small 0.08-0.12, medium 0.16-0.22, large 0.28-0.36), so size is visible, not guessed.

    synthesize_vocab("data/vocab", num=2000, seed=1)  # OUT/images/*.jpg, annotations.json, vocabulary.json

Image i has COCO id i and file images/{i:06d}.jpg; category ids are 1..C in vocabulary order. Each image is
a pure function of (seed, index); the set is written atomically like the crowd sets (synthetic_set).
"""

import json
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from detrt.atomic import disk_full, no_space
from detrt.data.synthetic_set import staging_dir
from detrt.data.vocabulary import Vocabulary
from detrt.errors import InputError
from detrt.progress import progress_bar

SHAPES = ("circle", "square", "triangle", "diamond", "star", "hexagon", "cross", "crescent")
COLOURS = {"red": (40, 40, 220), "orange": (20, 140, 245), "yellow": (40, 220, 235), "green": (60, 170, 40),
           "cyan": (210, 200, 40), "blue": (220, 70, 40), "purple": (200, 50, 140), "white": (245, 245, 245)}  # BGR
TEXTURES = ("solid", "striped", "barred", "checkered", "dotted", "outlined")
SIZES = {"small": (0.08, 0.12), "medium": (0.16, 0.22), "large": (0.28, 0.36)}
RANK_SEED = 20240613  # fixes which leaves are frequent and which are rare, for every seed
TAIL_RATIO = 200.0  # probability of the most frequent leaf over that of the rarest
SUPERSAMPLE = 4  # shapes are drawn at 4x and averaged down: anti-aliased edges


@dataclass
class VocabConfig:
    width: int = 160
    height: int = 160
    objects: tuple = (2, 6)  # objects per image, MIN-MAX
    max_cover: float = 0.25  # at most this much of the smaller of two objects' boxes lies in the other's
    ext: str = ".jpg"


def build_vocabulary():
    """The 1,608-category tree (parents before children) and the leaves' indices in (shape, colour, texture,
    size) order."""
    names, parents, leaves = [], [], []

    def add(name, parent):
        names.append(name)
        parents.append(parent)
        return len(names) - 1

    for shape in SHAPES:
        s = add(shape, -1)
        for colour in COLOURS:
            c = add(f"{colour} {shape}", s)
            for texture in TEXTURES:
                t = add(f"{texture} {colour} {shape}", c)
                leaves += [add(f"{size} {texture} {colour} {shape}", t) for size in SIZES]
    return Vocabulary(tuple(names), tuple(parents)), np.array(leaves)


VOCABULARY, LEAVES = build_vocabulary()


def leaf_probabilities():
    """Probability of each leaf (in LEAVES order): exponential in a fixed random rank."""
    rank = np.random.default_rng(RANK_SEED).permutation(len(LEAVES))
    p = TAIL_RATIO ** (-rank / (len(LEAVES) - 1))
    return p / p.sum()


PROBABILITIES = leaf_probabilities()


def _polygon(shape):
    """Vertices in [0, 1]^2 of the polygonal shapes; None for the round ones."""
    if shape == "square":
        return [(0, 0), (1, 0), (1, 1), (0, 1)]
    if shape == "triangle":
        return [(0.5, 0), (1, 1), (0, 1)]
    if shape == "diamond":
        return [(0.5, 0), (1, 0.5), (0.5, 1), (0, 0.5)]
    if shape == "hexagon":
        return [(0.5 + 0.5 * np.cos(a), 0.5 + 0.5 * np.sin(a)) for a in np.arange(6) * np.pi / 3]
    if shape == "star":
        r = np.where(np.arange(10) % 2, 0.2, 0.5)
        a = np.arange(10) * np.pi / 5 - np.pi / 2
        return list(zip(0.5 + r * np.cos(a), 0.55 + r * np.sin(a)))
    if shape == "cross":
        a, b = 1 / 3, 2 / 3
        return [(a, 0), (b, 0), (b, a), (1, a), (1, b), (b, b), (b, 1), (a, 1), (a, b), (0, b), (0, a), (a, a)]
    return None


def shape_mask(shape, w, h):
    """float32 [h, w] coverage in [0, 1] of `shape` filling a w x h box."""
    S = SUPERSAMPLE
    big = np.zeros((h * S, w * S), np.uint8)
    poly = _polygon(shape)
    if poly is not None:
        pts = np.round(np.array(poly) * [w * S - 1, h * S - 1]).astype(np.int32)
        cv2.fillPoly(big, [pts], 255)
    else:
        center, axes = (w * S // 2, h * S // 2), (w * S // 2, h * S // 2)
        cv2.ellipse(big, center, axes, 0, 0, 360, 255, -1)
        if shape == "crescent":  # the same disc, shifted right by 40%, cut out
            cv2.ellipse(big, (center[0] + int(0.4 * w * S), center[1]), axes, 0, 0, 360, 0, -1)
    return cv2.resize(big, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255


def texture_pattern(texture, w, h):
    """float32 [h, w] in [0, 1]: 1 where the colour shows, 0 where its dark shade does (outlined: see paint)."""
    y, x = np.mgrid[0:h, 0:w]
    period = max(4, min(w, h) // 4)
    half = period // 2
    if texture == "striped":
        return (y % period < half).astype(np.float32)
    if texture == "barred":
        return (x % period < half).astype(np.float32)
    if texture == "checkered":
        return ((y // half + x // half) % 2 == 0).astype(np.float32)
    if texture == "dotted":
        cy, cx = y % period - period / 2, x % period - period / 2
        return (cy * cy + cx * cx > (period / 4) ** 2).astype(np.float32)
    return np.ones((h, w), np.float32)


def paint_object(img, box, shape, colour, texture):
    """Draw one object into img (BGR uint8) inside integer xyxy `box`; return the xyxy box of what was drawn
    (a crescent or a star does not fill its box)."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    alpha = shape_mask(shape, w, h)
    if texture == "outlined":  # a ring of the shape's border: what is left after eroding its inside away
        k = max(2, min(w, h) // 8)
        kernel = np.ones((2 * k + 1, 2 * k + 1), np.uint8)
        alpha = alpha - cv2.erode(alpha, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    base = np.array(COLOURS[colour], np.float32)
    pattern = texture_pattern(texture, w, h)[..., None]
    fill = pattern * base + (1 - pattern) * 0.3 * base
    view = img[y0:y1, x0:x1].astype(np.float32)
    img[y0:y1, x0:x1] = np.clip(view * (1 - alpha[..., None]) + fill * alpha[..., None], 0, 255).astype(np.uint8)
    rows, cols = np.flatnonzero((alpha > 0.25).any(1)), np.flatnonzero((alpha > 0.25).any(0))
    return x0 + int(cols[0]), y0 + int(rows[0]), x0 + int(cols[-1]) + 1, y0 + int(rows[-1]) + 1


def background(rng, w, h):
    """A low-saturation vertical gradient with noise: no object colour is lost in it."""
    grey = rng.uniform(30, 120, size=2)
    tint = rng.uniform(-12, 12, size=(2, 3))
    top, bottom = grey[0] + tint[0], grey[1] + tint[1]
    t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    img = top * (1 - t) + bottom * t + rng.normal(0, 6, (h, w, 3))
    return np.clip(np.broadcast_to(img, (h, w, 3)), 0, 255).astype(np.uint8)


def _covered(a, b):
    """How much of the smaller of two xyxy boxes the other covers (a small shape on a large one counts)."""
    iw = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    return iw * ih / min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))


def _place(rng, cfg, side, boxes):
    """An integer xyxy box of `side` px (aspect jittered) inside the image, covering or covered by the others
    at most cfg.max_cover; None after 30 tries."""
    for _ in range(30):
        w = max(6, int(round(side * rng.uniform(0.9, 1.1))))
        h = max(6, int(round(side * rng.uniform(0.9, 1.1))))
        if w > cfg.width or h > cfg.height:
            return None
        x0, y0 = int(rng.integers(0, cfg.width - w + 1)), int(rng.integers(0, cfg.height - h + 1))
        box = (x0, y0, x0 + w, y0 + h)
        if all(_covered(box, b) <= cfg.max_cover for b in boxes):
            return box
    return None


def synth_vocab_image(seed, index, cfg=VocabConfig()):
    """One image and its objects [(xyxy box, category index)], a pure function of (seed, index)."""
    rng = np.random.default_rng([seed, index])
    img = background(rng, cfg.width, cfg.height)
    objects, placed = [], []
    for leaf in rng.choice(len(LEAVES), size=int(rng.integers(cfg.objects[0], cfg.objects[1] + 1)),
                           p=PROBABILITIES):
        shape, colour, texture, size = np.unravel_index(leaf, (len(SHAPES), len(COLOURS), len(TEXTURES),
                                                               len(SIZES)))
        lo, hi = list(SIZES.values())[size]
        box = _place(rng, cfg, rng.uniform(lo, hi) * min(cfg.width, cfg.height), placed)
        if box is None:
            continue
        placed.append(box)
        drawn = paint_object(img, box, SHAPES[shape], list(COLOURS)[colour], TEXTURES[texture])
        objects.append((drawn, int(LEAVES[leaf])))
    return img, objects


def categories():
    """COCO categories of VOCABULARY: id = index + 1, parent = the parent's id (null for the shapes)."""
    return [{"id": i + 1, "name": n, "parent": None if p < 0 else p + 1}
            for i, (n, p) in enumerate(zip(VOCABULARY.names, VOCABULARY.parents))]


def vocab_stats(images, annotations):
    """Objects per image, and leaves by how many images show them (LVIS's groups: rare 1-10, common 11-100)."""
    counts = np.zeros(len(VOCABULARY), np.int64)
    for cat in {(a["image_id"], a["category_id"]) for a in annotations}:
        counts[cat[1] - 1] += 1
    leaf = counts[LEAVES]
    n = max(len(images), 1)
    return {"images": len(images), "objects": len(annotations), "objects_per_image": len(annotations) / n,
            "categories": len(VOCABULARY), "leaves": len(LEAVES), "leaves_seen": int((leaf > 0).sum()),
            "leaves_rare": int(((leaf >= 1) & (leaf <= 10)).sum()), "leaves_common": int(((leaf > 10) &
                                                                                          (leaf <= 100)).sum()),
            "leaves_frequent": int((leaf > 100).sum()), "most_images": int(leaf.max(initial=0))}


def format_vocab_stats(name, s):
    return (f"{name}: {s['images']} images, {s['objects_per_image']:.1f} objects/image ({s['objects']} in all), "
            f"{s['categories']} categories\n"
            f"  leaves seen {s['leaves_seen']} of {s['leaves']}: rare (1-10 images) {s['leaves_rare']}, common "
            f"(11-100) {s['leaves_common']}, frequent (>100) {s['leaves_frequent']}; most images of one leaf "
            f"{s['most_images']}")


def write_vocab_set(directory, num, seed=0, cfg=VocabConfig(), quality=90, progress=True):
    """Render images 0..num-1 into directory/images/, with annotations.json and vocabulary.json; returns stats."""
    (directory / "images").mkdir(parents=True, exist_ok=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if cfg.ext.lower() in (".jpg", ".jpeg") else []
    images, annotations = [], []
    for i in progress_bar(range(num), show=progress, desc="synth images", unit="img", leave=False):
        img, objects = synth_vocab_image(seed, i, cfg)
        name = f"{i:06d}{cfg.ext}"
        if not cv2.imwrite(str(directory / "images" / name), img, params):
            raise no_space(directory / "images" / name) if disk_full(directory) else \
                InputError(f"{directory / 'images' / name}: cannot write image")
        images.append({"id": i, "file_name": name, "width": cfg.width, "height": cfg.height})
        annotations += [{"id": len(annotations) + k + 1, "image_id": i, "category_id": c + 1,
                         "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0), "iscrowd": 0}
                        for k, ((x0, y0, x1, y1), c) in enumerate(objects)]
    with open(directory / "annotations.json", "w") as f:
        json.dump({"images": images, "annotations": annotations, "categories": categories()}, f,
                  separators=(",", ":"))
    VOCABULARY.save(directory / "vocabulary.json")
    return vocab_stats(images, annotations)


def synthesize_vocab(out, num=2000, seed=0, cfg=VocabConfig(), quality=90, overwrite=False, progress=True):
    """Write a vast-vocabulary set into `out` atomically; returns its statistics (also in out/synth.json)."""
    if num <= 0:
        raise InputError("nothing to generate: give --num > 0")
    with staging_dir(out, overwrite) as tmp:
        stats = write_vocab_set(tmp, num, seed, cfg, quality, progress)
        with open(tmp / "synth.json", "w") as f:
            json.dump({"kind": "vocab", "seed": seed, "num": num, "config": asdict(cfg), "stats": stats}, f,
                      indent=1)
    return stats
