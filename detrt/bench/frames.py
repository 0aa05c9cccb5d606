"""Benchmark inputs: real frames (a video, an image folder or glob), preprocessed as the runtime does.

Never zeros: a model's speed can depend on its input (top-k, sparse attention, denormals), so the
timed batches are real frames run through `detrt.data.preprocess.Preprocessor` with each
artifact's own manifest. Without --frames, a short synthetic crowd video is rendered with
`detrt.data.synthetic_set` into a temporary directory (about a second), with a notice saying so.
"""

import tempfile
from pathlib import Path

import numpy as np

from detrt.data.preprocess import Preprocessor
from detrt.data.synthetic_set import synthesize
from detrt.errors import InputError
from detrt.runtime.sources import open_source

SYNTHETIC_FRAMES = 32
SYNTHETIC_SEED = 0


def read_frames(spec, count):
    """The first `count` frames of a video file, image folder or glob (BGR uint8). InputError if none."""
    source = open_source(spec, live=False)
    frames = []
    try:
        for frame in source:
            frames.append(frame.image)
            if len(frames) >= count:
                break
    finally:
        source.close()
    if not frames:
        raise InputError(f"--frames {spec}: no readable frames")
    return frames


def synthetic_frames(count=SYNTHETIC_FRAMES, seed=SYNTHETIC_SEED):
    """`count` frames of a synthetic crowd video (detrt.data.synthetic), rendered in a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="detrt-bench-") as tmp:
        out = Path(tmp) / "synthetic"
        synthesize(out, num=0, frames=count, seed=seed, progress=False)
        return read_frames(out / "video.mp4", count)


def load_frames(spec=None, count=SYNTHETIC_FRAMES, notice=print):
    """(frames, description): from `spec` when given, else a synthetic crowd video (with a notice)."""
    if spec:
        frames = read_frames(spec, count)
        return frames, f"{len(frames)} frames of {spec}"
    frames = synthetic_frames(count)
    h, w = frames[0].shape[:2]
    what = f"{len(frames)} frames of a synthetic crowd video (detrt.data.synthetic, seed {SYNTHETIC_SEED}, {w}x{h})"
    if notice:
        notice(f"no --frames given: using {what}")
    return frames, what


def input_batches(frames, manifest, batch, distinct=4):
    """Up to `distinct` different float32 [batch, 3, H, W] inputs for one artifact, cycling through frames."""
    prep = Preprocessor.from_manifest(manifest)
    n = max(1, min(distinct, -(-len(frames) // batch)))
    out = []
    for i in range(n):
        chosen = [frames[(i * batch + j) % len(frames)] for j in range(batch)]
        out.append(np.ascontiguousarray(prep(chosen)[0]))
    return out
