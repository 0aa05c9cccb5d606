"""Timing: warm-up and measurement by time, several runners interleaved, latency percentiles.

    results = interleave({"a.onnx": run_a, "b.onnx": run_b}, warmup_s=2, duration_s=10)
    results["a.onnx"].stats(batch=4)   # min/p50/p90/p99/max/mean ms and images/s

Interleaving is by time slices, round robin: A runs for one slice (at least one call), then B, then
A again, ... so slow drift (thermal throttling, a neighbour process, frequency scaling) hits every
runner alike. A slice is a tenth of the duration, at most 0.5 s, so each runner is visited at least
ten times; a runner whose one call is longer than a slice runs one call per visit. A runner leaves the
rotation once its measured time reaches the duration, so a 10x slower model gets the same measured
time, not ten times more. Warm-up runs the same rotation for `warmup_s` per runner (at least one call
each) and is discarded.

The clock is injectable (any callable returning seconds) so the order and the statistics are tested
with a counter clock instead of sleeps.
"""

import math
import re
import time
from dataclasses import dataclass, field

import numpy as np

from detrt.errors import InputError

PERCENTILES = (50, 90, 99)
MAX_SLICE_S = 0.5
_UNITS = {"ms": 1e-3, "s": 1.0, "m": 60.0, "min": 60.0}


def parse_duration(text, flag="--duration", bare="s"):
    """'2s', '500ms', '1m' -> seconds (float > 0); a bare number is in `bare` units, as trtexec reads its flags
    (--warmUp=N milliseconds, --duration=N seconds). InputError naming `flag` otherwise."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e-?[0-9]+)?)\s*(ms|s|min|m)?\s*", str(text))
    if not m:
        raise InputError(f"{flag} {text!r}: expected a duration such as 2s, 500ms or 1m")
    seconds = float(m.group(1)) * _UNITS[m.group(2) or bare]
    if seconds <= 0:
        raise InputError(f"{flag} {text!r}: must be longer than zero")
    return seconds


def parse_batches(text, flag="--batch"):
    """'1,4,8' -> [1, 4, 8] (sorted, unique, each >= 1); InputError naming `flag` otherwise."""
    try:
        batches = sorted({int(v) for v in str(text).split(",") if v.strip()})
    except ValueError:
        raise InputError(f"{flag} {text!r}: expected comma-separated integers such as 1,4,8") from None
    if not batches or batches[0] < 1:
        raise InputError(f"{flag} {text!r}: batch sizes must be integers >= 1")
    return batches


def percentile(values, q):
    """The q-th percentile with linear interpolation between closest ranks (numpy's default)."""
    return float(np.percentile(np.asarray(values, np.float64), q))


@dataclass
class Samples:
    """Per-call latencies (seconds) of one runner, in the order measured."""

    latencies: list = field(default_factory=list)
    warmup_calls: int = 0
    warmup_s: float = 0.0

    @property
    def total_s(self):
        return float(sum(self.latencies))

    def stats(self, batch=1):
        """min/p50/p90/p99/max/mean in milliseconds, calls, and images/s (batch x calls / time measured)."""
        ms = np.asarray(self.latencies, np.float64) * 1e3
        if ms.size == 0:
            raise ValueError("no samples")
        out = {"min": float(ms.min())}
        out.update({f"p{q}": percentile(ms, q) for q in PERCENTILES})
        out.update({"max": float(ms.max()), "mean": float(ms.mean()), "calls": int(ms.size),
                    "images_per_s": batch * ms.size / (ms.sum() / 1e3)})
        return out


class DurationTooShort(InputError):
    """One call takes longer than the measurement duration."""


def _slice_s(duration_s):
    return min(MAX_SLICE_S, duration_s / 10)


def _rotate(runners, samples, budget_s, clock, record, order, progress=None):
    """Round-robin time slices until every runner has spent budget_s (at least one call each)."""
    spent = {k: 0.0 for k in runners}
    slice_s = _slice_s(budget_s)
    while True:
        active = [k for k in runners if spent[k] < budget_s or (record is False and samples[k].warmup_calls == 0)]
        if not active:
            return
        for key in active:
            start_slice = spent[key]
            while True:
                t0 = clock()
                runners[key]()
                dt = clock() - t0
                spent[key] += dt
                if order is not None:
                    order.append(key)
                if record:
                    samples[key].latencies.append(dt)
                else:
                    samples[key].warmup_calls += 1
                    samples[key].warmup_s += dt
                if progress is not None:
                    progress(key, dt)
                if spent[key] - start_slice >= slice_s or spent[key] >= budget_s:
                    break


def interleave(runners, warmup_s, duration_s, clock=time.perf_counter, order=None, progress=None, what=None):
    """Warm up, then measure each runner for `duration_s` seconds, interleaved; return {key: Samples}.

    runners: {key: callable doing one timed call (e.g. one backend.infer on a prepared batch)}.
    order: a list that receives the key of every call, warm-up included (tests check the rotation).
    progress(key, seconds): called after every call (a progress bar). what: {key: label} for messages.
    Raises DurationTooShort (an InputError) when one warmed-up call of some runner is longer than
    duration_s: no meaningful distribution fits, say so rather than report one sample.
    """
    samples = {k: Samples() for k in runners}
    _rotate(runners, samples, warmup_s, clock, False, order, progress)
    for key, s in samples.items():
        one = s.warmup_s / s.warmup_calls
        if one > duration_s:
            name = (what or {}).get(key, key)
            raise DurationTooShort(f"--duration {duration_s:g}s is shorter than one run of {name} "
                                   f"({one:.3g} s after warm-up); give --duration {math.ceil(5 * one)}s or more")
    _rotate(runners, samples, duration_s, clock, True, order, progress)
    return samples


def wall_time():
    """Local date and time, ISO format to the second (for results)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
