"""A synthetic data set on disk: images (detrt.data.synthetic) and/or a video (detrt.data.synthetic_video)
written into one directory atomically, with the crowd statistics of what was written.

    stats = synthesize("data/synth", num=1000, frames=300, seed=1)

The set is rendered into a hidden staging directory beside OUT and renamed onto OUT at the end, so a failed
or interrupted run leaves nothing behind.
"""

import contextlib
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from detrt.atomic import atomic_dir
from detrt.box_ops import box_iou
from detrt.data.synthetic import SynthConfig, write_images
from detrt.data.synthetic_video import write_video
from detrt.errors import InputError


@contextlib.contextmanager
def staging_dir(out, overwrite=False):
    """Yield a hidden directory beside `out`, renamed onto `out` only when the block succeeds.

    `out` must be absent or empty, or with overwrite=True an earlier synth output (it holds synth.json).
    """
    out = Path(out)
    _check_target(out, overwrite)
    with atomic_dir(out.resolve()) as tmp:
        yield tmp
        _check_target(out, overwrite)


def _check_target(out, overwrite):
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise InputError(f"{out}: exists and is not empty (pass --overwrite to replace an earlier synth output)")
        if not (out / "synth.json").is_file():
            raise InputError(f"{out}: not a `detrt synth` output (no synth.json); refusing to replace it")


def crowd_stats(objs):
    """Statistics of .odgt objects: persons per image, pairs with IoU > 0.5, ignore regions, person heights."""
    counts, ignored, masks, pairs, heights, visible, tracks = [], [], [], [], [], [], set()
    for obj in objs:
        boxes = [b for b in obj["gtboxes"] if b["tag"] == "person" and b.get("extra", {}).get("ignore", 0) == 0]
        counts.append(len(boxes))
        ignored.append(sum(b["tag"] == "person" for b in obj["gtboxes"]) - len(boxes))
        masks.append(sum(b["tag"] != "person" for b in obj["gtboxes"]))
        xyxy = np.array([[x, y, x + w, y + h] for x, y, w, h in (b["fbox"] for b in boxes)]).reshape(-1, 4)
        iou = box_iou(xyxy, xyxy)[0] if len(xyxy) else np.zeros((0, 0))
        pairs.append(int(np.triu(iou > 0.5, 1).sum()))
        heights += [b["fbox"][3] for b in boxes]
        visible += [b["extra"]["visible"] for b in boxes if "visible" in b["extra"]]
        tracks.update(b["extra"]["track_id"] for b in obj["gtboxes"] if "track_id" in b.get("extra", {}))
    n = max(len(objs), 1)
    stats = {
        "images": len(objs), "persons": int(sum(counts)), "persons_per_image": sum(counts) / n,
        "persons_min": min(counts, default=0), "persons_max": max(counts, default=0),
        "pairs_iou50_per_image": sum(pairs) / n, "ignored_persons_per_image": sum(ignored) / n,
        "ignore_regions_per_image": sum(masks) / n, "images_with_ignore_regions": int(np.count_nonzero(masks)),
        "height_min": float(np.min(heights)) if heights else 0.0,
        "height_median": float(np.median(heights)) if heights else 0.0,
        "height_max": float(np.max(heights)) if heights else 0.0,
        "visible_mean": float(np.mean(visible)) if visible else 0.0,
    }
    if tracks:
        stats["tracks"] = len(tracks)
    return stats


def format_stats(name, s):
    """crowd_stats as three or four printable lines."""
    unit = "frame" if "tracks" in s else "image"
    lines = [f"{name}: {s['images']} {unit}s, {s['persons_per_image']:.1f} persons/{unit} "
             f"(min {s['persons_min']}, max {s['persons_max']}, {s['persons']} in all)",
             f"  pairs with IoU > 0.5: {s['pairs_iou50_per_image']:.2f}/{unit}; mean visible part "
             f"{100 * s['visible_mean']:.0f}%; heavily occluded (ignored) persons {s['ignored_persons_per_image']:.2f}"
             f"/{unit}",
             f"  ignore regions: {s['ignore_regions_per_image']:.2f}/{unit} "
             f"({s['images_with_ignore_regions']} {unit}s); "
             f"person heights {s['height_min']:.0f}-{s['height_max']:.0f} px (median {s['height_median']:.0f})"]
    if "tracks" in s:
        lines.append(f"  tracks (identities): {s['tracks']}")
    return "\n".join(lines)


def synthesize(out, num=1000, frames=0, seed=0, cfg=SynthConfig(), fps=15, quality=90, overwrite=False,
               progress=True):
    """Write a synthetic set into `out` atomically: images (num > 0) and/or a video (frames > 0).

    Returns {"images": stats, "video": stats} for the parts written; also saved in out/synth.json.
    """
    if num <= 0 and frames <= 0:
        raise InputError("nothing to generate: give --num > 0 and/or --frames > 0")
    stats = {}
    with staging_dir(out, overwrite) as tmp:
        if num > 0:
            stats["images"] = crowd_stats(write_images(tmp, num, seed, cfg, quality, progress))
        if frames > 0:
            stats["video"] = crowd_stats(write_video(tmp, frames, seed, cfg, fps, progress))
        with open(tmp / "synth.json", "w") as f:
            json.dump({"seed": seed, "num": num, "frames": frames, "fps": fps, "config": asdict(cfg),
                       "stats": stats}, f, indent=1)
    return stats
