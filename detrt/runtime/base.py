"""The backend interface: a loaded artifact that maps images to the outputs its manifest names.

A backend is a loaded artifact plus its manifest that maps `images` float32 [B, 3, H, W] (and, where the
manifest's inputs say so, `image_sizes` float32 [B, 2]: each image's (h, w) inside the input) to the
output dict the manifest names. Backends are context managers (Polygraphy's runner lifecycle);
`infer` checks its input once at the edge. `submit` returns a callable producing the outputs later,
so a pipeline can queue batch t+1 while batch t runs (TensorRT overlaps them on the GPU; ONNX
Runtime computes at once and the callable just returns the result). detrt.runtime.backend picks and
opens one for an artifact.
"""

import os
from pathlib import Path

import numpy as np

from detrt.data.preprocess import filled_sizes
from detrt.errors import InputError
from detrt.manifest import IMAGE_SIZES, IMAGES


class Backend:
    """Base class: subclasses set `name` and implement `_run(feed) -> dict` (and may override submit); `feed`
    holds an array for each of the artifact's inputs (`input_names`)."""

    name = "base"
    input_name = IMAGES

    def __init__(self, artifact, manifest):
        self.artifact = Path(artifact)
        self.manifest = manifest
        self._max_batch = manifest.max_batch

    @property
    def max_batch(self):
        return self._max_batch

    @property
    def input_shape(self):
        """(max_batch, 3, H, W)."""
        return (self.max_batch, 3, *self.manifest.input_size)

    @property
    def output_names(self):
        return tuple(self.manifest.outputs)

    @property
    def input_names(self):
        return tuple(self.manifest.inputs)

    def check_input(self, feed):
        """Accept an images array or {"images": array, "image_sizes": array}; return {input name: array} for
        the artifact's inputs: images C-contiguous float32 [B, 3, H, W], image_sizes float32 [B, 2] (default:
        every image fills the input). An artifact without image_sizes ignores it."""
        images = feed[self.input_name] if isinstance(feed, dict) else feed
        images = np.ascontiguousarray(images, dtype=np.float32)
        H, W = self.manifest.input_size
        if images.ndim != 4 or images.shape[1:] != (3, H, W):
            raise InputError(f"{self.artifact.name}: input '{self.input_name}' must be [B, 3, {H}, {W}], "
                             f"got {list(images.shape)}")
        b = images.shape[0]
        if not 1 <= b <= self.max_batch:
            raise InputError(f"{self.artifact.name}: batch {b} outside 1..{self.max_batch} (the artifact's max batch)")
        if IMAGE_SIZES not in self.input_names:
            return {self.input_name: images}
        sizes = feed.get(IMAGE_SIZES) if isinstance(feed, dict) else None
        sizes = filled_sizes(b, (H, W)) if sizes is None else np.ascontiguousarray(sizes, np.float32)
        if sizes.shape != (b, 2) or not ((sizes >= 1) & (sizes <= (H, W))).all():
            raise InputError(f"{self.artifact.name}: input '{IMAGE_SIZES}' must be [{b}, 2] sizes (h, w) within "
                             f"the {H}x{W} input, got {sizes.tolist()}")
        return {self.input_name: images, IMAGE_SIZES: sizes}

    def infer(self, feed):
        """images [B, 3, H, W] (or {"images": ..., "image_sizes": ...}) -> {output name: array}. Outputs are
        fresh arrays."""
        return self.submit(feed)()

    def submit(self, feed):
        """Start inference; return a callable that waits and returns the outputs dict."""
        out = self._run(self.check_input(feed))
        return lambda: out

    def _run(self, feed):
        raise NotImplementedError

    def warmup(self, iterations=2, batch=None):
        """Run a few zero batches so first-frame latency does not include lazy initialization."""
        x = np.zeros((batch or self.max_batch, *self.input_shape[1:]), np.float32)
        for _ in range(iterations):
            self.infer(x)

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"{type(self).__name__}({str(self.artifact)!r}, max_batch={self.max_batch})"


def default_threads():
    """ONNX Runtime intra-op threads: the usable cores, at most 8 (more rarely helps a single model)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 8))


def check_threads(threads, name="threads"):
    """None (default_threads() decides) or a count >= 1; InputError otherwise (ONNX Runtime takes 0 or a
    negative count as its own default, every core, silently)."""
    if threads is None:
        return None
    if not threads >= 1:
        raise InputError(f"{name} must be >= 1, got {threads}")
    return int(threads)
