"""Synthetic crowd video: persons walk across a fixed street scene, entering and leaving the frame.

Each person keeps one identity (appearance, `extra.track_id`) for as long as it is labelled; its gait
phase advances with its speed, and its size follows the ground-plane perspective as it moves in depth.
Groups walk side by side (SynthConfig.overlap), so heavy overlap persists over many frames. Output:
an MP4 (OpenCV, mp4v) and a per-frame .odgt with IDs "frame_000000", "frame_000001", ...
"""

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detrt.atomic import AtomicVideo
from detrt.data.crowdhuman import write_odgt
from detrt.data.figures import person_pose, person_style
from detrt.data.synthetic import SynthConfig, _masks, make_figure, render, sample_person, sample_scene
from detrt.progress import progress_bar


@dataclass
class Walker:
    track_id: int
    style: dict
    pose: dict
    x: float  # foot centre, image px
    y: float  # foot line, image px (depth)
    size: float  # own height relative to the perspective height at y
    vx: float  # body heights per second, signed
    vy: float  # foot-line motion in body heights per second (toward the camera when > 0)
    cadence: float  # gait cycles per second


def _walker(rng, cfg, cam, tid, spot, vx=None, vy=None, cadence=None, inward=0):
    """A new identity at spot (x, y, h): walking with the given velocity, or a fresh one (15% stand still,
    unless `inward` (+1 from the left border, -1 from the right) makes it walk into view)."""
    x, y, h = spot
    standing = vx is None and not inward and rng.random() < 0.15
    if vx is None:
        vx = 0.0 if standing else (inward or rng.choice([-1, 1])) * rng.uniform(0.35, 1.0)
        vy = 0.0 if standing else rng.normal(0, 0.06)
        cadence = rng.uniform(1.5, 2.1) * min(1.0, abs(vx) / 0.7 + 0.3)
    pose = person_pose(rng, walking=vx != 0)
    return Walker(tid, person_style(rng), pose, x, y, h / cam.height_at(y), vx, vy, cadence)


def write_video(directory, frames, seed=0, cfg=None, fps=15, progress=True):
    """Render `frames` frames into directory/video.mp4 and directory/video.odgt; returns the .odgt objects."""
    cfg = cfg or SynthConfig()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 1 << 30])
    cam, bg, ignore_boxes, objects = sample_scene(rng, cfg)
    target = (cfg.persons[0] + cfg.persons[1]) / 2
    walkers, next_id, dt = [], 0, 1.0 / fps

    def spawn(spot, like=None, inward=0):
        nonlocal next_id
        if like is None:
            w = _walker(rng, cfg, cam, next_id, spot, inward=inward)
        else:
            w = _walker(rng, cfg, cam, next_id, spot, like.vx, like.vy, like.cadence)
            w.pose["phase"] = like.pose["phase"] + rng.uniform(-0.6, 0.6)
        walkers.append(w)
        next_id += 1
        return w

    def spawn_group(spot, inward=0):
        leader = spawn(spot, inward=inward)
        while rng.random() < cfg.overlap and leader.vx != 0:
            near = sample_person(rng, cfg, cam, (leader.x, leader.y, leader.size * cam.height_at(leader.y)))
            if near is None:
                break
            spawn(near, like=leader)

    while len(walkers) < target:
        spot = sample_person(rng, cfg, cam)
        if spot is not None:
            spawn_group(spot)
    path = directory / "video.mp4"
    writer = AtomicVideo(path, "mp4v", fps, (cfg.width, cfg.height))
    objs = []
    try:
        for f in progress_bar(range(frames), show=progress, desc="synth video", unit="frame", leave=False):
            figures = []
            for w in walkers:
                h = w.size * cam.height_at(w.y)
                if w.vx != 0:  # walkers show their side, facing where they go
                    w.pose["facing"] = int(np.sign(w.vx))
                figures.append(make_figure(w.style, w.pose, w.x, w.y, h, track_id=w.track_id))
            img, gtboxes = render(rng, cfg, bg, objects, figures)
            writer.write(img)
            objs.append({"ID": f"frame_{f:06d}", "width": cfg.width, "height": cfg.height,
                         "gtboxes": gtboxes + _masks(ignore_boxes)})
            walkers[:] = [w for w in walkers if _step(w, cam, cfg, dt)]
            if len(walkers) < target and rng.random() < 0.12 * (target - len(walkers)):
                spot = _entry(rng, cfg, cam)
                if spot is not None:
                    spawn_group(spot, inward=1 if spot[0] < 0 else -1)
    except BaseException:
        writer.discard()
        raise
    writer.commit()
    write_odgt(directory / "video.odgt", objs)
    return objs


def _step(w, cam, cfg, dt):
    """Advance one frame; False once the walker has left the view sideways."""
    h = w.size * cam.height_at(w.y)
    w.x += w.vx * h * dt
    y = w.y + w.vy * h * dt
    if cfg.min_height <= w.size * cam.height_at(y) <= cfg.max_height and y - h < cfg.height:
        w.y = y
    else:  # turn back rather than shrink below or grow past the labelled size range
        w.vy = -w.vy
    w.pose["phase"] += 2 * math.pi * w.cadence * dt * (w.vx != 0)
    return -0.6 * h < w.x < cfg.width + 0.6 * h


def _entry(rng, cfg, cam):
    """A spot just outside the left or right border, at a random depth."""
    for _ in range(10):
        spot = sample_person(rng, cfg, cam)
        if spot is None:
            continue
        _, y, h = spot
        x = -0.45 * h if rng.random() < 0.5 else cfg.width + 0.45 * h
        return x, y, h
    return None
