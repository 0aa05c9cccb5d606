"""Latency and throughput: per-stage p50/p95/p99, end-to-end latency, FPS, dropped frames.

Samples are kept in fixed-size reservoirs (uniform over the whole run, Vitter's algorithm R), so
a stream running for days keeps percentiles over all of it in constant memory.
"""

import random
import threading
import time
from dataclasses import dataclass, field

import numpy as np

STAGES = ("decode", "preprocess", "infer", "postprocess", "sink")


class Reservoir:
    """Uniform sample of at most `capacity` values from a stream, with exact count and mean."""

    def __init__(self, capacity=10_000, seed=0):
        self.values = np.empty(capacity, np.float64)
        self.count = 0
        self.total = 0.0
        self._rng = random.Random(seed)

    def add(self, value):
        n, cap = self.count, len(self.values)
        if n < cap:
            self.values[n] = value
        else:
            j = self._rng.randrange(n + 1)
            if j < cap:
                self.values[j] = value
        self.count += 1
        self.total += value

    def percentiles(self, qs=(50, 95, 99)):
        k = min(self.count, len(self.values))
        if k == 0:
            return [float("nan")] * len(qs)
        return [float(v) for v in np.percentile(self.values[:k], qs)]

    @property
    def mean(self):
        return self.total / self.count if self.count else float("nan")


@dataclass
class Summary:
    """The end-of-run report. Latencies in milliseconds; `stages[name]` = (p50, p95, p99, mean)."""

    frames: int = 0
    dropped: int = 0
    corrupt: int = 0
    reconnects: int = 0
    wall_s: float = 0.0
    fps: float = 0.0
    stages: dict = field(default_factory=dict)
    end_to_end: tuple = ()
    batch: int = 1
    backend: str = ""
    interrupted: bool = False
    signal: str = None  # SIGINT or SIGTERM, when one stopped the run
    error: str = None

    def to_dict(self):
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}

    def format(self):
        stopped = "" if not self.interrupted else "  [interrupted" + (f" by {self.signal}]" if self.signal else "]")
        lines = [f"frames {self.frames}  dropped {self.dropped}  corrupt {self.corrupt}  "
                 f"reconnects {self.reconnects}  |  {self.fps:.1f} FPS over {self.wall_s:.2f} s  "
                 f"(batch {self.batch}, {self.backend})" + stopped]
        lines.append(f"{'latency ms':<12}{'p50':>9}{'p95':>9}{'p99':>9}{'mean':>9}")
        for name, row in list(self.stages.items()) + [("end-to-end", self.end_to_end)]:
            if row:
                lines.append(f"{name:<12}" + "".join(f"{v:>9.2f}" for v in row))
        if self.end_to_end:
            lines.append("(end-to-end: capture to sink, time queued included; a file is read ahead of inference, "
                         "a live source drops stale frames instead)")
        if self.error:
            lines.append(f"stopped by: {self.error}")
        return "\n".join(lines)


class Stats:
    """Thread-safe collector the pipeline stages report into."""

    def __init__(self, capacity=10_000):
        self._lock = threading.Lock()
        self.stages = {s: Reservoir(capacity) for s in STAGES}
        self.e2e = Reservoir(capacity)
        self.frames = 0
        self.start = time.monotonic()
        self.last = self.start

    def stage(self, name, seconds, frames=1):
        """Record one stage duration; a batched stage reports its per-frame share `frames` times."""
        with self._lock:
            r = self.stages[name]
            for _ in range(frames):
                r.add(seconds * 1000.0 / frames)

    def frame_done(self, captured_at):
        now = time.monotonic()
        with self._lock:
            self.e2e.add((now - captured_at) * 1000.0)
            self.frames += 1
            self.last = now

    @property
    def fps(self):
        dt = self.last - self.start
        return self.frames / dt if dt > 0 else 0.0

    def summary(self, **extra):
        with self._lock:
            wall = max(self.last - self.start, 1e-9)
            stages = {n: (*r.percentiles(), r.mean) for n, r in self.stages.items() if r.count}
            e2e = (*self.e2e.percentiles(), self.e2e.mean) if self.e2e.count else ()
            return Summary(frames=self.frames, wall_s=wall, fps=self.frames / wall, stages=stages,
                           end_to_end=e2e, **extra)
