"""CrowdHuman `.odgt` files: ground truth and detections, read and written as docs/evaluation.md describes.

An `.odgt` file holds one JSON object per line. Ground truth:
    {"ID": "273271,c9db000d5146c15", "width": 640, "height": 480,       (size optional)
     "gtboxes": [{"tag": "person", "fbox": [x, y, w, h], "extra": {"ignore": 0}, "hbox": ..., "vbox": ...}]}
A box is an ignore region if tag != "person" or extra.ignore != 0; for training (`head_ignore`), as the
official DH-DETR loader does, a box whose `extra` has no "ignore" takes head_attr.ignore instead (a person
with an ignored head is an ignore region). Evaluation reads extra.ignore alone, as CrowdDet's does. Detections:
    {"ID": ..., "width": ..., "height": ..., "dtboxes": [{"box": [x, y, w, h], "score": 0.93, "tag": 1}]}
In memory boxes are float64 xyxy pixels (`fbox` is the full body, occluded parts included, and may reach
past the image border). Torch-free: training wraps `read_gt` in its own Dataset.

Bad files raise InputError naming the file, the line and the problem. Writers are atomic.
"""

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detrt.atomic import atomic_open
from detrt.errors import InputError

IMAGE_EXTENSIONS = (".jpg", ".png", ".jpeg", ".JPG", ".PNG", ".JPEG")


@dataclass
class GroundTruth:
    """One image of a ground truth: objects that count and ignore regions, xyxy pixels, file order kept.
    CrowdHuman's objects are persons (labels None); detrt.data.coco fills labels with category indices."""

    image_id: str
    boxes: np.ndarray  # [N, 4] float64 xyxy full-body boxes of persons (tag "person", extra.ignore == 0)
    ignore: np.ndarray  # [M, 4] float64 xyxy ignore regions
    width: int | None = None
    height: int | None = None
    image_path: Path | None = None  # set by read_gt when given images_dir
    line: int = 0  # 1-based line in the .odgt it came from (0: built in memory)
    labels: np.ndarray | None = None  # [N] int64 category index of each box; None: person-only data (all 0)


@dataclass
class OdgtDetections:
    """One image's detections as an .odgt line holds them: xyxy pixel boxes and their scores, in any order.
    (The runtime's results are detrt.runtime.postprocess.Detections; `detrt run --odgt` converts.)"""

    image_id: str
    boxes: np.ndarray  # [K, 4] float64 xyxy
    scores: np.ndarray  # [K] float64
    width: int | None = None
    height: int | None = None
    line: int = 0


def iter_odgt(path):
    """Yield (line number, JSON object) for each non-blank line; InputError for a missing/empty/bad file."""
    path = Path(path)
    try:
        f = open(path, "rb")  # decoded line by line, so a byte that is not UTF-8 is named with its line
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror or e})") from None
    seen = False
    with f:
        for n, raw in enumerate(f, 1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise InputError(f"{path}:{n}: not UTF-8 text (byte 0x{raw[e.start]:02x} at column {e.start + 1}); "
                                 f"an .odgt file is JSON lines") from None
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as e:
                raise InputError(f"{path}:{n}: not valid JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(obj, dict):
                raise InputError(f"{path}:{n}: expected a JSON object, got {type(obj).__name__}")
            if not isinstance(obj.get("ID"), str):
                raise InputError(f"{path}:{n}: missing string key 'ID'")
            seen = True
            yield n, obj
    if not seen:
        raise InputError(f"{path}: empty file (expected one JSON object per line)")


def _box(where, value):
    """[x, y, w, h] -> (x, y, w, h) floats, or InputError naming `where`."""
    if (not isinstance(value, (list, tuple)) or len(value) != 4
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        raise InputError(f"{where} must be a list of 4 numbers [x, y, w, h], got {value!r}")
    x, y, w, h = (float(v) for v in value)
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        raise InputError(f"{where} is not finite: {value!r}")
    return x, y, w, h


def _size_error(where, value):
    return InputError(f"{where} has {'negative' if min(value[2:]) < 0 else 'zero'} size: {list(value)!r}")


def _size(where, obj):
    out = []
    for key in ("width", "height"):
        v = obj.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0 or v != int(v)):
            raise InputError(f"{where}: '{key}' must be a positive integer, got {v!r}")
        out.append(None if v is None else int(v))
    return out


def _list(where, obj, key):
    value = obj.get(key)
    if not isinstance(value, list):
        raise InputError(f"{where}: missing list '{key}'")
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise InputError(f"{where}: {key}[{i}] is not an object")
    return value


def _array(rows):
    return np.asarray(rows, dtype=np.float64).reshape(-1, 4)


def _ignore_flag(where, box, key):
    """box[key]["ignore"] as a number (None when absent); InputError naming the field when malformed."""
    attrs = box.get(key, {})
    if not isinstance(attrs, dict):
        raise InputError(f"{where}.{key} is not an object")
    flag = attrs.get("ignore")
    if flag is not None and (isinstance(flag, bool) or not isinstance(flag, (int, float))):
        raise InputError(f"{where}.{key}.ignore must be a number, got {flag!r}")
    return flag


def parse_gt(obj, where="", drop_degenerate=False, head_ignore=False):
    """One ground-truth JSON object -> GroundTruth (no image path). `where` prefixes error messages.
    head_ignore: head_attr.ignore marks an ignore region where extra has no "ignore" (training, above)."""
    width, height = _size(where, obj)
    persons, ignore = [], []
    for i, b in enumerate(_list(where, obj, "gtboxes")):
        if "fbox" not in b:
            raise InputError(f"{where}: gtboxes[{i}] has no 'fbox'")
        tag = b.get("tag")
        if not isinstance(tag, str):
            raise InputError(f"{where}: gtboxes[{i}] has no string 'tag'")
        flag = _ignore_flag(f"{where}: gtboxes[{i}]", b, "extra")
        if flag is None:
            flag = _ignore_flag(f"{where}: gtboxes[{i}]", b, "head_attr") if head_ignore else None
        x, y, w, h = _box(f"{where}: gtboxes[{i}].fbox", b["fbox"])
        if w <= 0 or h <= 0:
            if drop_degenerate:
                continue
            raise _size_error(f"{where}: gtboxes[{i}].fbox", (x, y, w, h))
        (persons if tag == "person" and not flag else ignore).append((x, y, x + w, y + h))
    return GroundTruth(obj["ID"], _array(persons), _array(ignore), width, height)


def parse_dt(obj, where=""):
    """One detection JSON object -> OdgtDetections. Zero-size boxes are accepted (only false positives)."""
    width, height = _size(where, obj)
    boxes, scores = [], []
    for i, b in enumerate(_list(where, obj, "dtboxes")):
        if "box" not in b or "score" not in b:
            raise InputError(f"{where}: dtboxes[{i}] needs 'box' and 'score'")
        s = b["score"]
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s):
            raise InputError(f"{where}: dtboxes[{i}].score must be a finite number, got {s!r}")
        x, y, w, h = _box(f"{where}: dtboxes[{i}].box", b["box"])
        if w < 0 or h < 0:
            raise _size_error(f"{where}: dtboxes[{i}].box", (x, y, w, h))
        boxes.append((x, y, x + w, y + h))
        scores.append(float(s))
    return OdgtDetections(obj["ID"], _array(boxes), np.asarray(scores, dtype=np.float64), width, height)


def _read(path, parse):
    out, first = [], {}
    for n, obj in iter_odgt(path):
        if obj["ID"] in first:
            raise InputError(f"{path}:{n}: ID {obj['ID']!r} repeats line {first[obj['ID']]}")
        first[obj["ID"]] = n
        record = parse(obj, f"{path}:{n}")
        record.line = n
        out.append(record)
    return out


def resolve_image(images_dir, image_id):
    """Path of image `image_id` in `images_dir` (the ID itself, or ID + a usual extension), or None."""
    images_dir = Path(images_dir)
    for name in (image_id, *(image_id + ext for ext in IMAGE_EXTENSIONS)):
        p = images_dir / name
        if p.is_file():
            return p
    return None


def read_gt(path, images_dir=None, drop_degenerate=False, head_ignore=False):
    """Read a ground-truth .odgt -> list[GroundTruth] in file order (the dataset index).

    images_dir: resolve each image to `images_dir/ID(.jpg|.png|...)`; InputError naming the missing ones.
    drop_degenerate: skip boxes with zero or negative size instead of failing (some public files have them).
    head_ignore: head_attr.ignore counts where extra has no "ignore" (training, as the official loader).
    """
    records = _read(path, lambda obj, where: parse_gt(obj, where, drop_degenerate, head_ignore))
    if images_dir is not None:
        if not Path(images_dir).is_dir():
            raise InputError(f"{images_dir}: images directory does not exist")
        missing = []
        for r in records:
            r.image_path = resolve_image(images_dir, r.image_id)
            if r.image_path is None:
                missing.append(r)
        if missing:
            r = missing[0]
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise InputError(f"{path}:{r.line}: image {r.image_id!r} not found in {images_dir}{more}")
    return records


def read_dt(path):
    """Read a detection .odgt -> list[OdgtDetections] in file order."""
    return _read(path, parse_dt)


def _xywh(box):
    x0, y0, x1, y1 = (float(v) for v in box)
    return [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)]


def _sized(image_id, width, height):
    obj = {"ID": image_id}
    if width is not None and height is not None:
        obj.update(width=int(width), height=int(height))
    return obj


def gt_to_json(record):
    """GroundTruth -> its .odgt object (persons first, then ignore regions tagged "mask")."""
    obj = _sized(record.image_id, record.width, record.height)
    obj["gtboxes"] = ([{"tag": "person", "fbox": _xywh(b), "extra": {"ignore": 0}} for b in record.boxes]
                      + [{"tag": "mask", "fbox": _xywh(b), "extra": {"ignore": 1}} for b in record.ignore])
    return obj


def dt_to_json(det):
    """OdgtDetections -> its .odgt object; boxes keep full precision (eval must see what the model said)."""
    obj = _sized(det.image_id, det.width, det.height)
    obj["dtboxes"] = [{"box": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)], "score": float(s), "tag": 1}
                      for (x0, y0, x1, y1), s in zip(np.asarray(det.boxes).reshape(-1, 4), det.scores)]
    return obj


def write_odgt(path, objects):
    """Write JSON objects one per line, atomically. Returns the number of lines."""
    n = 0
    with atomic_open(path, "w", encoding="utf-8") as f:
        for obj in objects:
            f.write(json.dumps(obj, separators=(",", ":")) + "\n")
            n += 1
    return n


def write_gt(path, records):
    return write_odgt(path, (gt_to_json(r) for r in records))


def write_dt(path, detections):
    return write_odgt(path, (dt_to_json(d) for d in detections))
