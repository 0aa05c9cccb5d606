"""CPU speed of the two special ops: compiled kernels (plugins/cpu) against the PyTorch references.

    .venv/bin/python benchmarks/ops_cpu.py            # writes benchmarks/results/ops_cpu.json + a RESULTS.md section

MSDA at the encoder shape of a 640x384 input (4 levels, strides 8..64: 80x48, 40x24, 20x12, 10x6; 8 heads,
D=32, P=4, Lq = S = 5040), on 1 and 2 threads (torch.set_num_threads for the reference, the kernel's
num_threads argument), with achieved GFLOP/s against this CPU's measured float32 matmul peak.
FLOPs counted as the reference does the work: 10 per (q, m, l, p, d) (4 taps x mul+add, weight mul+add).
dcg_neighbors: exact sub-quadratic kernel against the dense reference on crowd-like boxes, 1 thread.
All ratios in one run; each time is the fastest of repeated runs after a warm-up (the machine may be shared).
--clock thread times with the calling thread's CPU time instead of the wall clock (one thread only): on a
machine other jobs load, time spent waiting for a core is then not counted (their cache traffic still is).
DETRT_CPU_ISA=avx2 (or baseline) runs a narrower variant of the kernel than this CPU's widest.
"""

import argparse
import datetime
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from detrt.bench.device import device_facts
from detrt.ops import cpu
from detrt.ops.dcg import dcg_neighbors_reference
from detrt.ops.msda import ms_deform_attn_reference

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
import common  # noqa: E402
ENCODER_SHAPES = [[80, 48], [40, 24], [20, 12], [10, 6]]  # 640x384 input, strides 8, 16, 32, 64 (H, W)


CLOCK = time.perf_counter  # --clock thread: time.thread_time


def timed(fn, repeats, min_time=0.0):
    """Fastest of the repeated timings after a warm-up: on a shared machine other processes only add time."""
    fn()  # warm-up
    times = []
    start = time.perf_counter()
    while len(times) < repeats or time.perf_counter() - start < min_time:
        t0 = CLOCK()
        fn()
        times.append(CLOCK() - t0)
    return min(times)


def matmul_peak(threads, n=2048):
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n**3 / timed(lambda: a @ b, 5) / 1e9


def msda_inputs(dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    shapes = np.array(ENCODER_SHAPES, np.int64)
    sizes = shapes[:, 0] * shapes[:, 1]
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    s, m, d, p = int(sizes.sum()), 8, 32, 4
    value = rng.standard_normal((1, s, m, d)).astype(dtype)
    # encoder queries sample around their own reference point with small offsets
    ref = rng.uniform(0, 1, (1, s, 1, 1, 1, 2))
    loc = np.clip(ref + 0.05 * rng.standard_normal((1, s, m, len(shapes), p, 2)), -0.05, 1.05).astype(dtype)
    attn = rng.dirichlet(np.ones(len(shapes) * p), (1, s, m)).reshape(1, s, m, len(shapes), p).astype(dtype)
    return value, shapes, starts, loc, attn


def bench_msda(threads_list, repeats):
    args = msda_inputs()
    _, s, m, d = args[0].shape
    _, lq, _, num_levels, p, _ = args[3].shape
    gflop = 10 * lq * m * num_levels * p * d / 1e9
    targs = [torch.from_numpy(a) for a in args]
    half = [a.astype(np.float16) if a.dtype == np.float32 else a for a in args]
    rows = []
    for threads in tqdm(threads_list, desc="msda threads"):
        torch.set_num_threads(threads)
        with torch.no_grad():
            t_ref = timed(lambda: ms_deform_attn_reference(*targs), repeats)
        t_cpu = timed(lambda: cpu.ms_deform_attn(*args, num_threads=threads), repeats, min_time=0.5)
        t_f16 = timed(lambda: cpu.ms_deform_attn(*half, num_threads=threads), repeats, min_time=0.5)
        peak = matmul_peak(threads)
        rows.append(dict(threads=threads, reference_ms=1e3 * t_ref, kernel_ms=1e3 * t_cpu, kernel_fp16_ms=1e3 * t_f16,
                         speedup=t_ref / t_cpu, kernel_gflops=gflop / t_cpu, reference_gflops=gflop / t_ref,
                         matmul_peak_gflops=peak, fraction_of_peak=gflop / t_cpu / peak))
    return dict(shape=dict(N=1, S=s, Lq=lq, M=m, D=d, L=num_levels, P=p, levels=ENCODER_SHAPES), gflop=gflop,
                rows=rows)


def crowd_boxes(n, seed=0, per_person=6, fixed_size=False):
    """DETR-style predictions on a crowd: n/6 people (aspect ~0.41, log-uniform heights 3%..50% of the image),
    each predicted by ~6 queries with jittered boxes; uniform scores. Beyond N=2000 the people shrink as
    1/sqrt(N) (more people in the same image are smaller), unless fixed_size (ever denser overlap)."""
    rng = np.random.default_rng(seed)
    people = max(1, n // per_person)
    shrink = 1.0 if fixed_size else min(1.0, (2000 / n) ** 0.5)
    h = shrink * np.exp(rng.uniform(np.log(0.03), np.log(0.5), people))
    w = h * rng.normal(0.41, 0.08, people).clip(0.2, 0.8)
    cx, cy = rng.uniform(0, 1, people), rng.uniform(0.2, 0.8, people)
    c = rng.integers(0, people, n)
    boxes = np.stack([cx[c] + 0.1 * w[c] * rng.standard_normal(n), cy[c] + 0.1 * h[c] * rng.standard_normal(n),
                      w[c] * np.exp(0.1 * rng.standard_normal(n)), h[c] * np.exp(0.1 * rng.standard_normal(n))], -1)
    return boxes[None].astype(np.float32), rng.uniform(0, 1, (1, n)).astype(np.float32)


def bench_dcg(sizes, repeats, k=10, t=0.4, low=0.1):
    torch.set_num_threads(1)
    rows = []
    # up to N=2000 both kinds are the same boxes: fixed size is only run beyond
    cases = [(n, False) for n in sizes] + [(n, True) for n in sizes if n > 2000]
    for n, fixed in tqdm(cases, desc="dcg N"):
        boxes, scores = crowd_boxes(n, fixed_size=fixed)
        tb, ts = torch.from_numpy(boxes), torch.from_numpy(scores)
        dense_repeats = 2 if n >= 5000 else repeats
        t_dense = timed(lambda: dcg_neighbors_reference(tb, ts, k, t, low), dense_repeats)
        t_fast = timed(lambda: cpu.dcg_neighbors(boxes, scores, k, t, low, num_threads=1), repeats, min_time=0.3)
        idx, valid = cpu.dcg_neighbors(boxes, scores, k, t, low, num_threads=1)
        ridx, rvalid = dcg_neighbors_reference(tb, ts, k, t, low)
        same = all(set(idx[0, i][valid[0, i]].tolist()) == set(ridx[0, i][rvalid[0, i]].tolist()) or
                   valid[0, i].sum() == k for i in range(n))  # rows with k valid may differ only by IoU ties
        rows.append(dict(N=n, boxes="fixed size" if fixed else "shrinking", dense_ms=1e3 * t_dense,
                         kernel_ms=1e3 * t_fast, speedup=t_dense / t_fast,
                         mean_valid_neighbours=float(valid.sum(-1).mean()), same_sets=same))
    return dict(k=k, iou_threshold=t, low_score=low, threads=1, rows=rows)


def markdown(result, argv):
    m, g = result["msda"], result["dcg"]
    lines = common.header("CPU kernels vs PyTorch references", "ops_cpu.py", argv, result["device"],
                          load=result["load_average"])
    clock = "the thread's CPU time" if result.get("clock") == "thread" else "wall clock"
    lines += [
        f"Kernel variant {result['kernel']['msda_isa']}; times: fastest of repeats, {clock}.  ",
        "",
        f"MSDA, encoder shape of a 640x384 input (levels {m['shape']['levels']}, M=8, D=32, P=4, Lq=S="
        f"{m['shape']['Lq']}; {m['gflop']:.3f} GFLOP counted as 10 per (q, m, l, p, d)); float32 unless noted:",
        "",
        "| threads | reference ms | kernel ms | speedup | kernel fp16-I/O ms | kernel GFLOP/s | matmul peak GFLOP/s "
        "| of peak |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in m["rows"]:
        lines.append(f"| {r['threads']} | {r['reference_ms']:.1f} | {r['kernel_ms']:.2f} | {r['speedup']:.0f}x | "
                     f"{r['kernel_fp16_ms']:.2f} | {r['kernel_gflops']:.1f} | {r['matmul_peak_gflops']:.0f} | "
                     f"{100 * r['fraction_of_peak']:.0f}% |")
    lines += [
        "",
        f"dcg_neighbors, crowd-like boxes (k={g['k']}, iou_threshold={g['iou_threshold']}, "
        f"low_score={g['low_score']}), "
        "1 thread, dense reference vs exact sub-quadratic kernel:",
        "",
        "| N | people | dense ms | kernel ms | speedup | mean valid neighbours | same sets as dense |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in g["rows"]:
        lines.append(f"| {r['N']} | {r['boxes']} | {r['dense_ms']:.1f} | {r['kernel_ms']:.3f} | {r['speedup']:.0f}x | "
                     f"{r['mean_valid_neighbours']:.2f} | {r['same_sets']} |")
    lines += ["", "Goals (issue 4): MSDA >= 10x at equal threads; dcg_neighbors >= 30x at N=2000, >= 300x at N=10000. "
              "'shrinking': people shrink as 1/sqrt(N) beyond N=2000 (same crowd coverage); 'fixed size': ever "
              "denser overlap, so the exact neighbour work itself grows with N."]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 1000, 2000, 5000, 10000])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", help="JSON path (default: benchmarks/results/ops_cpu.json)")
    parser.add_argument("--no-markdown", action="store_true", help="do not update benchmarks/RESULTS.md")
    parser.add_argument("--clock", choices=["wall", "thread"], default="wall",
                        help="thread: the calling thread's CPU time (needs --threads 1)")
    args = parser.parse_args(argv)
    if args.clock == "thread":
        if args.threads != [1]:
            sys.exit("error: --clock thread measures one thread: add --threads 1")
        global CLOCK
        CLOCK = time.thread_time
    if not cpu.available():
        sys.exit(f"error: {cpu.unavailable_reason()}")
    result = dict(date=datetime.datetime.now().isoformat(timespec="seconds"), device=device_facts(),
                  kernel=cpu.info(), clock=args.clock, load_average=common.load_average(),
                  msda=bench_msda(args.threads, args.repeats), dcg=bench_dcg(args.sizes, args.repeats))
    section = markdown(result, sys.argv[1:] if argv is None else argv)
    print(section)
    common.write_outputs("ops_cpu", result, section, out=args.out, markdown=not args.no_markdown)


if __name__ == "__main__":
    main()
