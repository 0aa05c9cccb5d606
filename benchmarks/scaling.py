"""Scaling: latency and memory vs the number of queries (100..2000) and vs the input size, on the CPU.

    .venv/bin/python benchmarks/scaling.py
    .venv/bin/python benchmarks/scaling.py --queries 100 300 1000 2000 --sizes 256x384 384x576 512x768

Each point is a randomly initialized `dhdetr_r18_tiny` with that num_queries / input_size (speed and memory
do not depend on training), exported by the compile stage in the portable form (standard ops: dense DCG
neighbours, GridSample MSDA) and, for the query sweep, also the plugin form (detrt CPU kernels: sub-quadratic
DCG). Each point is measured in its own process by `detrt bench`'s session (ONNX Runtime, batch 1, synthetic
crowd frames). Latency: all points of a sweep measured interleaved in one `detrt bench` run (drift hits all
alike). Memory: each point loaded and run (3 batches) in its own process, so its peak resident memory (VmHWM)
is its own; memory = peak - resident before the model was loaded. Ratios are against the first point of
each sweep and form. CQ-DINO's latency and memory vs its vocabulary size: benchmarks/vocab_scaling.py.
Writes benchmarks/results/scaling.json and the section of benchmarks/RESULTS.md.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


def rss_mb(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return None


def measure_memory(onnx_path, frames, threads):
    """In a fresh process: load one artifact, run 3 batches of real frames; print its memory as one JSON line."""
    from detrt.bench.frames import input_batches, read_frames
    from detrt.bench.run import open_artifact

    images = read_frames(frames, 3)
    base = rss_mb("VmRSS")
    backend, _ = open_artifact(onnx_path, threads=threads)
    for x in input_batches(images, backend.manifest, 1, distinct=3):
        backend.infer(x)
    print(json.dumps({"rss_before_mb": base, "peak_rss_mb": rss_mb("VmHWM"), "memory_mb": rss_mb("VmHWM") - base}))


def point(overrides, form):
    """Export (cached) the random model of these overrides in `form`; returns the ONNX path."""
    from detrt.compile.export import export_checkpoint

    ckpt, _ = common.random_model(**overrides)
    path = ckpt / f"{form}.onnx"
    if not path.is_file():
        export_checkpoint(ckpt, path, form=form, max_batch=1, log=common.log)
    return path


def memory_of(path, args, video):
    cmd = [sys.executable, __file__, "--memory-of", str(path), "--frames", str(video)] + \
        (["--threads", str(args.threads)] if args.threads else [])
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        sys.exit(f"error: measuring {path} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, nargs="+", default=[100, 300, 1000, 2000])
    parser.add_argument("--sizes", nargs="+", default=["256x384", "384x576", "512x768"], help="HxW, multiples of 32")
    parser.add_argument("--warmup", default="1s")
    parser.add_argument("--duration", default="3s", help="measured time per point (3s)")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--note", help="a line printed in bold at the top of the RESULTS.md section")
    parser.add_argument("--memory-of", help=argparse.SUPPRESS)  # internal: one point, in its own process
    parser.add_argument("--frames", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    from detrt.bench.measure import parse_duration

    if args.memory_of:
        return measure_memory(args.memory_of, args.frames, args.threads)
    argv = sys.argv[1:] if argv is None else argv
    from detrt.bench.device import device_facts
    from detrt.bench.report import roofline_text
    from detrt.bench.roofline import count_graph, measure_peak, roofline
    from detrt.bench.run import run_bench

    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes]
    load = common.load_average()
    video = common.synthetic_video()
    peak = measure_peak(threads=args.threads)
    sweeps = {"queries": [({"num_queries": q}, form, f"{q} queries") for q in args.queries
                          for form in ("portable", "plugin")],
              "input size": [({"input_size": hw, "num_queries": 100}, "portable", f"{hw[0]}x{hw[1]}")
                             for hw in sizes]}
    warmup, duration = parse_duration(args.warmup, "--warmup", bare="ms"), parse_duration(args.duration)
    results = {}
    for sweep, points in sweeps.items():
        paths = [point(overrides, form) for overrides, form, _ in points]
        common.log(f"scaling.py: latency vs {sweep}, {len(paths)} models interleaved")
        bench = run_bench([str(p) for p in paths], [1], warmup, duration, frames=str(video), threads=args.threads,
                          roofline=False, notice=common.log)
        rows = []
        for (overrides, form, label), path, r in zip(points, paths, bench["results"]):
            common.log(f"scaling.py: memory of {label} ({form})")
            m = memory_of(path, args, video)
            cost = count_graph(path, 1)
            m.update(label=label, form=form, overrides={k: list(v) if isinstance(v, tuple) else v
                                                        for k, v in overrides.items()}, onnx=str(path),
                     latency_ms=r["latency_ms"], calls=r["calls"], gflop=cost.flops / 1e9,
                     roofline=roofline(cost, peak, r["latency_ms"]["p50"] / 1e3))
            rows.append(m)
        results[sweep] = rows
    facts = device_facts(args.threads)
    result = {"device": facts, "peak": peak, "sweeps": results}
    lines = common.header("latency and memory vs number of queries and input size (CPU, batch 1)", "scaling.py",
                          argv, facts, "randomly initialized dhdetr_r18_tiny variants (speed and memory only)",
                          args.note, load)
    lines += [f"ONNX Runtime, batch 1, {args.duration} measured per point after {args.warmup} warm-up, the points of a "
              "sweep interleaved in one run; memory = peak resident (VmHWM) - resident before loading the model, each "
              "point in its own process. Ratios vs the first row of each table and form. Roofline peak: "
              f"{peak['matmul_gflops']:.0f} GFLOP/s, {peak['copy_gbps']:.1f} GB/s.  "]
    for sweep, rows in results.items():
        first = {}
        lines += ["", f"vs {sweep}:", "", "| point | form | p50 ms | p90 ms | latency ratio | memory MB | memory ratio "
                                          "| GFLOP | % of roof |", "|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            f = first.setdefault(r["form"], r)
            lat = r["latency_ms"]
            lines.append(f"| {r['label']} | {r['form']} | {lat['p50']:.1f} | {lat['p90']:.1f} | "
                         f"{r['latency_ms']['p50'] / f['latency_ms']['p50']:.2f}x | {r['memory_mb']:.0f} | "
                         f"{r['memory_mb'] / f['memory_mb']:.2f}x | {r['gflop']:.2f} | "
                         f"{100 * r['roofline']['fraction_of_roof']:.0f}% |")
        lines.append("")
        lines += [f"- roofline, {r['label']} {r['form']}: {roofline_text(r['roofline'])}" for r in rows]
    lines += ["", "CQ-DINO latency and memory vs vocabulary size: benchmarks/vocab_scaling.py's section."]
    print("\n".join(lines))
    common.write_outputs("scaling", result, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
