"""One benchmark run: open the artifacts, check the batches, measure them interleaved, collect results.

    report = run_bench(["torch:runs/tiny", "model.onnx", "model_int8.onnx"], batches=[1, 4],
                       warmup_s=2, duration_s=10)
    print(format_table(report))                       # detrt.bench.report

Artifacts (ARTIFACT arguments of `detrt bench`):
- `model.onnx` / `model.engine` (.plan, .trt): through `detrt.runtime.backend.open_backend`, with the
  manifest beside it, exactly as `detrt run` loads them;
- a PyTorch checkpoint, PyTorch eager (detrt.bench.torch_backend): `torch:PATH`, or a directory holding
  checkpoint.safetensors, or a .safetensors file (its .json beside it).
A TensorRT engine is measured twice, without and with CUDA-graph replay ("+cudagraph"), each with CUDA
events splitting GPU time into H2D copy, compute and D2H copies (a replayed graph is timed as a whole).

For each batch size, every artifact is measured interleaved with the others (detrt.bench.measure), on
the same frames, each preprocessed with its own manifest. Results carry each one's speed relative to
the first artifact at that batch (first's p50 / its p50), and a roofline against this machine's peak.
"""

import itertools
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from detrt.bench import measure
from detrt.bench.device import device_facts
from detrt.bench.frames import input_batches, load_frames
from detrt.bench.roofline import count_graph, measure_gpu_peak, measure_peak, roofline
from detrt.bench.torch_backend import TorchBackend, is_checkpoint
from detrt.errors import InputError
from detrt.manifest import ENGINE_SUFFIXES
from detrt.progress import progress_bar
from detrt.runtime.backend import open_backend
from detrt.runtime.base import default_threads


MAX_SAMPLES = 20_000  # per-call latencies kept in the results (every k-th beyond this; statistics use all)


@dataclass
class Entry:
    """One thing measured: an open backend under a label (a TensorRT engine gives two)."""

    label: str
    spec: str
    backend: object
    kind: str  # "onnxruntime" | "tensorrt" | "torch"
    cuda_graph: bool = None  # TensorRT only
    onnx: str = None  # the ONNX graph its roofline is counted from, when known
    gpu: list = field(default_factory=list)  # TensorRT: per-call CUDA-event times

    @property
    def max_batch(self):
        return self.backend.max_batch


def _label(spec, others):
    path = Path(str(spec).removeprefix("torch:"))
    name = path.name or str(path)
    if sum(Path(str(o).removeprefix("torch:")).name == name for o in others) > 1:
        name = str(path)
    return f"torch:{name}" if str(spec).startswith("torch:") or is_checkpoint(spec) else name


def open_artifact(spec, *, threads=None, plugins=None, cuda_graph=False, max_batch=8):
    """(backend, kind) for one ARTIFACT; InputError (one line) for anything that does not load."""
    if is_checkpoint(spec):
        try:
            return TorchBackend.from_checkpoint(spec, threads=threads, max_batch=max_batch), "torch"
        except InputError:
            raise
        except Exception as e:  # noqa: BLE001 - a model that does not build from its checkpoint
            raise InputError(f"{spec}: the checkpoint does not load: {_first_line(e)}") from None
    try:
        be = open_backend(spec, threads=threads, plugins=plugins, cuda_graph=cuda_graph, gated=False)
    except InputError:
        raise
    except Exception as e:  # noqa: BLE001 - e.g. a corrupt protobuf, an engine TensorRT rejects
        raise InputError(f"{spec}: does not load: {_first_line(e)}") from None
    return be, be.name


def _first_line(e):
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _graph_of(spec, backend):
    """The ONNX file a roofline can be counted from: the artifact itself, or an engine's parent."""
    path = Path(spec)
    if path.suffix.lower() == ".onnx":
        return str(path)
    if path.suffix.lower() in ENGINE_SUFFIXES:
        parent = getattr(backend.manifest, "parent", None)
        for cand in (Path(parent), path.parent / Path(parent).name) if parent else ():
            if cand.suffix == ".onnx" and cand.is_file():
                return str(cand)
    return None


def open_entries(specs, batches, threads=None, plugins=None):
    """Open every artifact (TensorRT twice: plain and CUDA graph); close them all on any error."""
    entries = []
    try:
        for spec in specs:
            label = _label(spec, specs)
            be, kind = open_artifact(spec, threads=threads, plugins=plugins, max_batch=max(batches))
            entries.append(Entry(label, str(spec), be, kind, onnx=_graph_of(spec, be)))
            if kind == "tensorrt":
                entries[-1].cuda_graph = False
                be.timing = True
                be2, _ = open_artifact(spec, plugins=plugins, cuda_graph=True)
                be2.timing = True
                entries.append(Entry(f"{label} +cudagraph", str(spec), be2, kind, cuda_graph=True,
                                     onnx=entries[-1].onnx))
        for e in entries:
            too_big = [b for b in batches if b > e.max_batch]
            if too_big:
                raise InputError(f"--batch {too_big[0]}: larger than {e.label}'s max batch {e.max_batch} "
                                 f"(set when it was exported/built); use --batch up to {e.max_batch}")
    except BaseException:
        close_entries(entries)
        raise
    return entries


def close_entries(entries):
    for e in entries:
        try:
            e.backend.close()
        except Exception:  # noqa: BLE001 - closing after an error: the first error is the one to report
            pass


def _costs(entries, batches):
    costs = {}
    for e in entries:
        for b in batches:
            if e.onnx and (e.onnx, b) not in costs:
                try:
                    costs[e.onnx, b] = count_graph(e.onnx, b, e.backend.manifest.input_size)
                except Exception as err:  # noqa: BLE001 - a roofline is extra information, never a failure
                    print(f"note: no roofline for {e.label}: {_first_line(err)}", file=sys.stderr)
                    costs[e.onnx, b] = None
    return costs


def run_bench(specs, batches, warmup_s, duration_s, frames=None, threads=None, plugins=None, roofline=True,
              progress=True, notice=print, clock=time.perf_counter, command=None):
    """Measure every artifact at every batch, interleaved; return the report dict (see report.py)."""
    if not specs:
        raise InputError("give at least one ARTIFACT")
    threads = threads or default_threads()
    entries = open_entries(specs, batches, threads=threads, plugins=plugins)
    try:
        images, frames_what = load_frames(frames, count=max(16, 4 * max(batches)), notice=notice)
        costs, peak = {}, {}
        if roofline:  # without onnx (detrt[compile]) _costs notes why per artifact, and the peaks do without it
            costs = _costs(entries, batches)
            peak["cpu"] = measure_peak(threads=threads)
            if any(e.kind == "tensorrt" for e in entries):
                peak["gpu"] = measure_gpu_peak()
        results = []
        bar = progress_bar(total=round(len(entries) * len(batches) * (warmup_s + duration_s), 1), show=progress,
                           unit="s", desc="benchmarking", leave=False,
                           bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s [{elapsed}<{remaining}]")
        for b in batches:
            runners, what = {}, {}
            for i, e in enumerate(entries):
                runners[i] = _runner(e, input_batches(images, e.backend.manifest, b))
                what[i] = f"{e.label} at batch {b}"
                e.gpu.clear()
            samples = measure.interleave(runners, warmup_s, duration_s, clock=clock, what=what,
                                         progress=lambda key, dt: bar.update(max(0.0, min(dt, bar.total - bar.n))))
            first = None
            for i, e in enumerate(entries):
                row = _result(e, b, samples[i], costs.get((e.onnx, b)), peak)
                first = first or row
                row["vs_first"] = first["latency_ms"]["p50"] / row["latency_ms"]["p50"]
                results.append(row)
        bar.close()
    finally:
        close_entries(entries)
    return {"command": command,
            "date": measure.wall_time(), "device": device_facts(threads), "peak": peak or None,
            "settings": {"batches": list(batches), "warmup_s": warmup_s, "duration_s": duration_s,
                         "threads": threads, "frames": frames_what, "pid": os.getpid()},
            "results": results}


def _runner(entry, inputs):
    cycle = itertools.cycle(inputs)
    be, gpu = entry.backend, entry.gpu

    def call():
        be.infer(next(cycle))
        if entry.kind == "tensorrt" and getattr(be, "last_gpu_times", None):
            gpu.append(be.last_gpu_times)

    return call


def _result(entry, batch, samples, cost, peak):
    stats = samples.stats(batch)
    m = entry.backend.manifest
    row = {"artifact": entry.label, "path": entry.spec, "backend": entry.kind, "precision": m.precision,
           "form": m.form, "config": m.config, "input_size": list(m.input_size), "batch": batch,
           "cuda_graph": entry.cuda_graph, "threads": getattr(entry.backend, "threads", None),
           "latency_ms": {k: stats[k] for k in ("min", "p50", "p90", "p99", "max", "mean")},
           "images_per_s": stats["images_per_s"], "calls": stats["calls"], "warmup_calls": samples.warmup_calls,
           "samples_ms": None, "samples_stride": 1, "gpu_ms": None, "roofline": None}
    stride = max(1, -(-len(samples.latencies) // MAX_SAMPLES))  # keep the JSON small for very fast models
    row["samples_ms"] = [round(v * 1e3, 4) for v in samples.latencies[::stride]]
    row["samples_stride"] = stride
    timed = entry.gpu[samples.warmup_calls:]
    if timed:  # a CUDA-graph entry may still have had an ordinary (split-timed) run: keep the replays' kind
        timed = [t for t in timed if set(t) == set(timed[-1])]
        row["gpu_ms"] = {k: float(np.median([t[k] for t in timed])) for k in timed[-1]}
    device_peak = peak.get("gpu") if entry.kind == "tensorrt" else peak.get("cpu")
    if cost is not None:
        row["cost"] = {"gflop": cost.flops / 1e9, "mb_compulsory": cost.bytes_compulsory / 1e6,
                       "mb_unfused": cost.bytes_unfused / 1e6, "by_op": cost.by_op}
        if device_peak:
            gpu = row["gpu_ms"] or {}
            timed_as = next((k for k in ("compute_ms", "total_ms") if k in gpu), None)
            seconds = (gpu[timed_as] if timed_as else stats["p50"]) / 1e3
            row["roofline"] = roofline(cost, device_peak, seconds)
            row["roofline"]["timed"] = f"gpu {timed_as[:-3]} p50" if timed_as else "latency p50"
    return row
