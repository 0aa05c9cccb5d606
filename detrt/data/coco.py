"""COCO-format detection JSON (COCO, LVIS, V3Det, `detrt synth --kind vocab`): ground truth and results.

    records, vocab = read_coco("annotations.json", "images/")   # list[GroundTruth], Vocabulary

Ground truth: {"images": [{"id", "file_name", "width", "height"}], "categories": [{"id", "name"}],
"annotations": [{"id", "image_id", "category_id", "bbox": [x, y, w, h], "iscrowd"?}]}. What detrt reads
of it (docs/data.md):
- categories become the Vocabulary in the order of their ids (index 0 is the smallest id); their ids are kept
  (Vocabulary.ids) so results go back in the file's numbering. A hierarchy comes from a `parent` field on
  the categories (the parent's category id, null or absent for a root), as `detrt synth --kind vocab`
  writes; COCO's `supercategory` is not a category (no box is labelled with it) and is not read. A names
  file given as `vocabulary` sets the order and the hierarchy instead: every category's name must be in it,
  with the same id.
- iscrowd 1 boxes are ignore regions (class-agnostic here; the COCO evaluation treats them per category).
- LVIS: images without `file_name` take the last part of `coco_url`; `frequency` and `image_count` of
  categories are read by detrt.eval.coco. V3Det's JSON is COCO's with paths in `file_name`.
- images are GroundTruth.image_id = str(COCO image id), image_path = images_dir / file_name.
Errors, each an InputError naming the file and the entry: unknown image or category ids, boxes outside
the image (beyond BOX_TOLERANCE px) or without area, images missing from images_dir, duplicate ids.
"""

import json
import math
from pathlib import Path

import numpy as np

from detrt.atomic import atomic_open
from detrt.data.crowdhuman import GroundTruth
from detrt.data.vocabulary import Vocabulary
from detrt.errors import InputError

BOX_TOLERANCE = 1.0  # px a box may reach past the image border (COCO's rounding): clipped, not refused


def _int(where, value, minimum=None):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) \
            or (minimum is not None and value < minimum):
        more = f" >= {minimum}" if minimum is not None else ""
        raise InputError(f"{where} must be an integer{more}, got {value!r}")
    return int(value)


def load_json(path):
    """The parsed JSON object of `path`; InputError when it cannot be read or is not a JSON object."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read())
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror or e})") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text (expected COCO-format JSON)") from None
    except json.JSONDecodeError as e:
        what = "empty file" if not e.doc.strip() else f"not valid JSON (line {e.lineno}: {e.msg})"
        raise InputError(f"{path}: {what} (expected COCO-format JSON)") from None
    return data


def _entries(path, data, key):
    value = data.get(key)
    if not isinstance(value, list):
        raise InputError(f"{path}: missing list '{key}' (a COCO-format ground truth has images, annotations and "
                         f"categories)")
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise InputError(f"{path}: {key}[{i}] is not an object")
    return value


def _ids(path, key, entries):
    """{id: position} of entries with unique integer ids."""
    seen = {}
    for i, e in enumerate(entries):
        ident = _int(f"{path}: {key}[{i}].id", e.get("id"))
        if ident in seen:
            raise InputError(f"{path}: {key}[{i}] repeats id {ident} of {key}[{seen[ident]}]")
        seen[ident] = i
    return seen


def _vocabulary(path, categories, vocabulary):
    """The Vocabulary of `categories` (by id), or `vocabulary` checked against them; and {category id: index}."""
    cats = sorted(categories, key=lambda c: c["id"])
    names = []
    for c in cats:
        if not isinstance(c.get("name"), str):
            raise InputError(f"{path}: category id {c['id']} has no string 'name'")
        names.append(c["name"])
    if vocabulary is None:
        position = {c["id"]: i for i, c in enumerate(cats)}
        parents = []
        for c in cats:
            parent = c.get("parent")
            if parent is not None and (isinstance(parent, bool) or parent not in position):
                raise InputError(f"{path}: category {c['name']!r} (id {c['id']}): parent {parent!r} is not a "
                                 f"category id")
            parents.append(-1 if parent is None else position[parent])
        vocabulary = Vocabulary(tuple(names), tuple(parents), tuple(c["id"] for c in cats), str(path))
        return vocabulary, position
    for c, name in zip(cats, names):
        i = vocabulary.index.get(name)
        if i is None:
            raise InputError(f"{path}: category {name!r} (id {c['id']}) is not in {vocabulary.source}")
        if vocabulary.ids[i] != c["id"]:
            raise InputError(f"{path}: category {name!r} has id {c['id']} here and id {vocabulary.ids[i]} in "
                             f"{vocabulary.source}")
    return vocabulary, {c["id"]: vocabulary.index[c["name"]] for c in cats}


def is_coco(path):
    """A COCO-format annotation file (.json), as opposed to CrowdHuman's .odgt: the file says which."""
    return Path(path).suffix.lower() == ".json"


def file_name(image):
    """The image's path relative to the images directory (LVIS has coco_url instead of file_name), or None."""
    name = image.get("file_name")
    if name is None and isinstance(image.get("coco_url"), str):
        name = image["coco_url"].rsplit("/", 1)[-1]
    return name if isinstance(name, str) and name else None


def _image(path, i, image):
    where = f"{path}: images[{i}] (id {image['id']})"
    if file_name(image) is None:
        raise InputError(f"{where}: no string 'file_name'")
    return _int(f"{where}.width", image.get("width"), 1), _int(f"{where}.height", image.get("height"), 1)


def _box(where, bbox, width, height, drop_degenerate):
    """COCO [x, y, w, h] -> xyxy inside the image, or None for a degenerate box dropped; else InputError."""
    if (not isinstance(bbox, list) or len(bbox) != 4
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in bbox)):
        raise InputError(f"{where}.bbox must be a list of 4 numbers [x, y, w, h], got {bbox!r}")
    x, y, w, h = (float(v) for v in bbox)
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        raise InputError(f"{where}.bbox is not finite: {bbox!r}")
    if w <= 0 or h <= 0:
        if drop_degenerate:
            return None
        raise InputError(f"{where}.bbox has {'negative' if min(w, h) < 0 else 'zero'} size: {bbox!r}")
    t = BOX_TOLERANCE
    if x < -t or y < -t or x + w > width + t or y + h > height + t:
        raise InputError(f"{where}.bbox {bbox!r} is outside the {width}x{height} image")
    return max(x, 0.0), max(y, 0.0), min(x + w, width), min(y + h, height)


def read_coco(json_path, images_dir=None, vocabulary=None, drop_degenerate=False):
    """Read COCO-format ground truth -> (list[GroundTruth] in the file's image order, Vocabulary).

    images_dir: resolve images_dir / file_name for every image; InputError naming the missing ones.
    vocabulary: a Vocabulary (names file) that sets category order and hierarchy (see the module's doc).
    drop_degenerate: skip boxes without area instead of failing.
    """
    return parse_coco(load_json(json_path), json_path, images_dir, vocabulary, drop_degenerate)


def parse_coco(data, path, images_dir=None, vocabulary=None, drop_degenerate=False):
    """read_coco on the already parsed JSON `data` of file `path`; once it returns, `data` is known good."""
    path = Path(path)
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object with images, annotations and categories")
    images = _entries(path, data, "images")
    annotations = _entries(path, data, "annotations")
    categories = _entries(path, data, "categories")
    if not categories:
        raise InputError(f"{path}: 'categories' is empty")
    image_pos = _ids(path, "images", images)
    _ids(path, "categories", categories)
    vocabulary, index = _vocabulary(path, categories, vocabulary)
    sizes = [_image(path, i, im) for i, im in enumerate(images)]
    boxes, labels, ignore = ([[] for _ in images] for _ in range(3))
    for i, a in enumerate(annotations):
        where = f"{path}: annotations[{i}]" + (f" (id {a['id']})" if "id" in a else "")
        image_id, category_id = a.get("image_id"), a.get("category_id")
        if isinstance(image_id, bool) or image_id not in image_pos:
            raise InputError(f"{where}: image_id {image_id!r} is not in 'images'")
        if isinstance(category_id, bool) or category_id not in index:
            raise InputError(f"{where}: category_id {category_id!r} is not in 'categories'")
        k = image_pos[image_id]
        box = _box(where, a.get("bbox"), *sizes[k], drop_degenerate)
        if box is None:
            continue
        if a.get("iscrowd", 0):
            ignore[k].append(box)
        else:
            boxes[k].append(box)
            labels[k].append(index[category_id])
    records = [GroundTruth(str(im["id"]), np.asarray(boxes[k], np.float64).reshape(-1, 4),
                           np.asarray(ignore[k], np.float64).reshape(-1, 4), *sizes[k],
                           labels=np.asarray(labels[k], np.int64))
               for k, im in enumerate(images)]
    if images_dir is not None:
        _resolve_images(path, images, records, Path(images_dir))
    return records, vocabulary


def _resolve_images(path, images, records, images_dir):
    if not images_dir.is_dir():
        raise InputError(f"{images_dir}: images directory does not exist")
    missing = []
    for im, r in zip(images, records):
        r.image_path = images_dir / file_name(im)
        if not r.image_path.is_file():
            missing.append(im)
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise InputError(f"{path}: image {file_name(missing[0])!r} (id {missing[0]['id']}) not found in "
                         f"{images_dir}{more}")


def result_entries(image_id, boxes, scores, category_ids):
    """COCO results entries of one image: [{"image_id", "category_id", "bbox": [x, y, w, h], "score"}] from xyxy
    boxes [N, 4], scores [N] and the dataset's category ids [N] (Vocabulary.ids of the labels)."""
    return [{"image_id": image_id, "category_id": int(c), "bbox": [round(x0, 2), round(y0, 2), round(x1 - x0, 2),
                                                                  round(y1 - y0, 2)], "score": round(s, 5)}
            for (x0, y0, x1, y1), s, c in zip(np.asarray(boxes, np.float64).reshape(-1, 4).tolist(),
                                              np.asarray(scores, np.float64).tolist(), category_ids)]


def write_results(path, entries):
    """Write COCO results (a JSON list of result_entries) atomically. Returns the number of entries."""
    entries = list(entries)
    with atomic_open(path, "w", encoding="utf-8") as f:
        json.dump(entries, f, separators=(",", ":"))
    return len(entries)
