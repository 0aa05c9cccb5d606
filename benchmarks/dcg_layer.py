"""One DCG layer (De-Homo Coding Generator, hidden 256, k = 10, batch 2): ours vs the reference's dense form.

    .venv/bin/python benchmarks/dcg_layer.py
    .venv/bin/python benchmarks/dcg_layer.py --queries 500 1000 2000 --repeats 3

Ours (`detrt.models.dcg.DeHomoCodingGenerator`) picks neighbours with `dcg_neighbors` (the compiled,
sub-quadratic CPU kernel when built) and gathers their codes from [B, N, 256]: memory [B, N, k, 256]. The
dense form (the paper's code, as `detrt.models.dcg.dense_forward`, the oracle tests/models/test_dcg_layer.py
checks ours against) sorts an N x N IoU matrix and materializes [B, N, N, 256] code differences through
two 256x256 linears. Both run the same module weights; before measuring, their outputs are compared at
N = 200.

Each point (form, N, mode) runs in its own process: build the layer and inputs, one warm-up call, reset
the peak resident size (/proc/self/clear_refs), then `repeats` timed calls; memory = peak resident during
the timed calls - resident before them. Modes: inference (forward under no_grad) and training (forward +
backward of the output's sum). A dense point whose estimated need exceeds --mem-cap-gb (default: half of
MemAvailable) is not run, so the benchmark cannot push the machine into the OOM killer; its estimate is
reported instead. Inputs: N queries around N/10 persons (jittered copies of person boxes, as decoder
queries cluster on people), distinct random scores.
Writes benchmarks/results/dcg_layer.json and the section of benchmarks/RESULTS.md.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

B, C, K = 2, 256, 10
DENSE_TENSORS = {"inference": 3, "training": 4}  # live [B, N, N, C] float32 tensors at the peak (measured at N=500)


def inputs(n, seed=0):
    """(layer, tgt [B, N, C], boxes [B, N, 4] cxcywh, scores [B, N]) for N queries clustered on N/10 persons."""
    import torch

    from detrt.models.dcg import DeHomoCodingGenerator

    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    layer = DeHomoCodingGenerator(d_model=C, k=K)
    persons = max(1, n // 10)
    centre = torch.rand(B, persons, 2, generator=g) * 0.9 + 0.05
    size = torch.stack([0.02 + 0.05 * torch.rand(B, persons, generator=g),
                        0.08 + 0.2 * torch.rand(B, persons, generator=g)], -1)
    who = torch.randint(0, persons, (B, n), generator=g)
    pick = lambda t: torch.gather(t, 1, who[..., None].expand(-1, -1, 2))  # noqa: E731
    jitter = 1 + 0.15 * torch.randn(B, n, 4, generator=g)
    boxes = torch.cat([pick(centre) + 0.1 * pick(size) * (jitter[..., :2] - 1), pick(size) * jitter[..., 2:]], -1)
    boxes[..., 2:] = boxes[..., 2:].clamp(min=1e-3)
    return layer, torch.randn(B, n, C, generator=g), boxes, torch.rand(B, n, generator=g)


def status_mb(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return None


def run_point(form, n, mode, repeats, threads):
    """In this process: time and peak memory of one point; prints one JSON line."""
    import torch

    from detrt.models.dcg import dense_forward

    if threads:
        torch.set_num_threads(threads)
    layer, tgt, boxes, scores = inputs(n)
    fn = layer if form == "ours" else (lambda t, b, s: dense_forward(layer, t, b, s))
    if mode == "training":
        tgt.requires_grad_(True)

    def call():
        if mode == "inference":
            with torch.no_grad():
                fn(tgt, boxes, scores)
        else:
            layer.zero_grad(set_to_none=True)
            tgt.grad = None
            fn(tgt, boxes, scores).sum().backward()

    call()  # warm-up
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current resident size
    before = status_mb("VmRSS")
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    peak = status_mb("VmHWM")
    print(json.dumps({"ms": [1e3 * t for t in times], "median_ms": 1e3 * sorted(times)[len(times) // 2],
                      "rss_before_mb": before, "peak_rss_mb": peak, "memory_mb": peak - before,
                      "threads": torch.get_num_threads()}))


def check_agreement(n=200):
    """Max |ours - dense| of the layer outputs at N = n (same weights, same inputs)."""
    import torch

    from detrt.models.dcg import dense_forward

    layer, tgt, boxes, scores = inputs(n, seed=1)
    with torch.no_grad():
        return float((layer(tgt, boxes, scores) - dense_forward(layer, tgt, boxes, scores)).abs().max())


def mem_available_gb():
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024 ** 2
    return 4.0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, nargs="+", default=[500, 1000, 2000])
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per point (3; median reported)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--mem-cap-gb", type=float, help="skip dense points estimated above this (default: half of "
                                                         "MemAvailable)")
    parser.add_argument("--note", help="a line printed in bold at the top of the RESULTS.md section")
    parser.add_argument("--point", nargs=3, metavar=("FORM", "N", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.point:
        form, n, mode = args.point
        return run_point(form, int(n), mode, args.repeats, args.threads)
    argv = sys.argv[1:] if argv is None else argv
    from detrt.bench.device import device_facts
    from detrt.ops.msda import _cpu_kernels

    load = common.load_average()
    cap = args.mem_cap_gb or 0.5 * mem_available_gb()
    agreement = check_agreement()
    kernel = "compiled CPU kernel" if _cpu_kernels() is not None else "dense PyTorch reference (no compiled kernel)"
    rows = []
    for n in args.queries:
        for mode in ("inference", "training"):
            for form in ("ours", "dense"):
                row = {"form": form, "queries": n, "mode": mode}
                need = DENSE_TENSORS[mode] * B * n * n * C * 4 / 1e9 if form == "dense" else 0.0
                if need > cap:
                    row.update(skipped=f"estimated {need:.0f} GB > cap {cap:.1f} GB", estimated_gb=need)
                    common.log(f"dcg_layer.py: {form} N={n} {mode}: skipped ({row['skipped']})")
                    rows.append(row)
                    continue
                common.log(f"dcg_layer.py: {form} N={n} {mode}")
                cmd = [sys.executable, __file__, "--point", form, str(n), mode, "--repeats", str(args.repeats)]
                cmd += ["--threads", str(args.threads)] if args.threads else []
                out = subprocess.run(cmd, capture_output=True, text=True, check=False)
                if out.returncode != 0:
                    row.update(failed=f"exit {out.returncode}: {out.stderr.strip().splitlines()[-1:] or ''}")
                else:
                    row.update(json.loads(out.stdout.strip().splitlines()[-1]))
                rows.append(row)
    facts = device_facts(args.threads)
    result = {"device": facts, "batch": B, "hidden": C, "k": K, "neighbour_selection": kernel,
              "max_abs_difference_at_200": agreement, "mem_cap_gb": cap, "points": rows}
    lines = common.header("one DCG layer, gathered neighbours vs dense [B, N, N, 256] (CPU)", "dcg_layer.py", argv,
                          facts, f"DeHomoCodingGenerator, hidden {C}, k {K}, batch {B}, random weights", args.note,
                          load)
    lines += [f"Ours: neighbours by `dcg_neighbors` ({kernel}), codes gathered from [B, N, 256]. Dense: the reference "
              "code's N x N IoU + argsort and [B, N, N, 256] differences. Same weights and inputs (queries clustered "
              f"on N/10 persons); outputs agree to {agreement:.1e} at N = 200. Each point in its own process; time = "
              f"median of {args.repeats} calls after a warm-up; memory = peak resident during the calls - resident "
              f"before. Dense points estimated above {cap:.1f} GB were not run.  ", "",
              "| N | mode | ours ms | dense ms | dense / ours time | ours MB | dense MB | dense / ours memory |",
              "|---|---|---|---|---|---|---|---|"]
    by = {(r["form"], r["queries"], r["mode"]): r for r in rows}
    for n in args.queries:
        for mode in ("inference", "training"):
            o, d = by[("ours", n, mode)], by[("dense", n, mode)]
            if "median_ms" in d and "median_ms" in o:
                lines.append(f"| {n} | {mode} | {o['median_ms']:.1f} | {d['median_ms']:.0f} | "
                             f"{d['median_ms'] / o['median_ms']:.0f}x | {o['memory_mb']:.1f} | {d['memory_mb']:.0f} | "
                             f"{d['memory_mb'] / max(o['memory_mb'], 0.1):.0f}x |")
            else:
                why = d.get("skipped") or d.get("failed")
                lines.append(f"| {n} | {mode} | {o.get('median_ms', float('nan')):.1f} | not run ({why}) | | "
                             f"{o.get('memory_mb', float('nan')):.1f} | | |")
    print("\n".join(lines))
    common.write_outputs("dcg_layer", result, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
