"""Benchmark output: the terminal table, JSON, the plot, and a script's section of benchmarks/RESULTS.md.

The table has one row per artifact and batch: latency min/p50/p90/p99/max (ms per call), images/s,
and "vs first" = the first artifact's p50 / this p50 at the same batch (2.00x: twice as fast as the
first). Below it: TensorRT's GPU time split (CUDA events, p50 ms) and one roofline line per row.
"""

import json

from detrt.atomic import atomic_open
from detrt.bench.device import describe
from detrt.optional import require

COLUMNS = ("min", "p50", "p90", "p99", "max")


def format_table(report):
    s = report["settings"]
    lines = [f"device: {describe(report['device'])}",
             f"inputs: {s['frames']}; warm-up {s['warmup_s']:g} s, then {s['duration_s']:g} s measured per "
             f"artifact and batch, interleaved",
             ""]
    rows = report["results"]
    width = max([len("artifact")] + [len(r["artifact"]) for r in rows])
    head = (f"{'artifact':<{width}}  {'backend':<11} {'prec':<4} {'batch':>5}  "
            + "".join(f"{c + ' ms':>9}" for c in COLUMNS) + f"{'img/s':>9}{'vs first':>10}")
    lines += [head, "-" * len(head)]
    for r in rows:
        lat = r["latency_ms"]
        lines.append(f"{r['artifact']:<{width}}  {r['backend']:<11} {r['precision']:<4} {r['batch']:>5}  "
                     + "".join(f"{lat[c]:>9.2f}" for c in COLUMNS)
                     + f"{r['images_per_s']:>9.1f}{r['vs_first']:>9.2f}x")
    gpu = [r for r in rows if r.get("gpu_ms")]
    if gpu:
        lines += ["", "TensorRT GPU time (CUDA events, p50 ms per call; a replayed CUDA graph is timed whole):"]
        for r in gpu:
            g = r["gpu_ms"]
            parts = [f"{k[:-3]} {g[k]:.3f}" for k in ("h2d_ms", "compute_ms", "d2h_ms", "total_ms") if k in g]
            lines.append(f"  {r['artifact']} batch {r['batch']}: " + ", ".join(parts))
    roof = [r for r in rows if r.get("roofline")]
    if roof:
        lines += ["", "roofline (FLOPs and bytes counted from the ONNX graph; peak measured on this machine):"]
        for key, p in (report.get("peak") or {}).items():
            if p:
                lines.append(f"  {key} peak: {p['matmul_gflops']:.0f} GFLOP/s matmul, {p['copy_gbps']:.1f} GB/s copy "
                             f"({p['how']})")
        for r in roof:
            lines.append(f"  {r['artifact']} batch {r['batch']}: {roofline_text(r['roofline'])}")
    missing = [r["artifact"] for r in rows if not r.get("roofline") and r["batch"] == rows[0]["batch"]]
    if roof and missing:
        lines.append(f"  no roofline for {', '.join(missing)} (no ONNX graph to count)")
    return "\n".join(lines)


def roofline_text(r):
    """'9.44 GFLOP, 54 MB (628 MB unfused) | bound 72.6 ms (compute) | latency p50 117 ms = 62% of roof, ...'."""
    mb = r["mb_compulsory"]
    unf = r["mb_unfused"]
    return (f"{r['gflop']:.3g} GFLOP, {_size(mb)} ({_size(unf)} unfused) | bound {r['bound_ms']:.3g} ms "
            f"({r['limited_by']}) | {r.get('timed', 'p50')} {r['bound_ms'] / r['fraction_of_roof']:.3g} ms = "
            f"{100 * r['fraction_of_roof']:.0f}% of roof, {r['achieved_gflops']:.1f} GFLOP/s")


def _size(mb):
    return f"{mb / 1e3:.2f} GB" if mb >= 1e3 else f"{mb:.3g} MB"


def write_json(path, report):
    with atomic_open(path, "w") as f:
        json.dump(report, f, indent=1)
        f.write("\n")


def check_plot_available():
    """An InputError before any measuring when --plot is asked for and matplotlib is missing."""
    require("matplotlib", "--plot")


def plot(path, report):
    """Two panels: per-call latency distribution (box per artifact and batch), throughput vs batch."""
    require("matplotlib", "--plot").use("Agg")
    plt = require("matplotlib.pyplot", "--plot")

    rows = report["results"]
    labels = list(dict.fromkeys(r["artifact"] for r in rows))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5))
    data = [r["samples_ms"] for r in rows]
    ax1.boxplot(data, whis=(1, 99), showfliers=True, flierprops={"markersize": 2})
    ax1.set_xticks(range(1, len(rows) + 1), [f"{r['artifact']}\nb={r['batch']}" for r in rows],
                   rotation=30, ha="right", fontsize=8)
    ax1.set_ylabel("latency per call (ms)")
    ax1.set_title("latency distribution (box: quartiles, whiskers: p1-p99)")
    for label in labels:
        pts = sorted((r["batch"], r["images_per_s"]) for r in rows if r["artifact"] == label)
        ax2.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=label)
    ax2.set_xlabel("batch")
    ax2.set_ylabel("images / s")
    ax2.set_xticks(sorted({r["batch"] for r in rows}))
    ax2.set_title("throughput vs batch")
    ax2.legend(fontsize=8)
    ax2.grid(alpha=0.3)
    fig.suptitle(describe(report["device"]), fontsize=8)
    fig.tight_layout()
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format=str(path).rsplit(".", 1)[-1].lower() if "." in str(path) else "png", dpi=110)
    plt.close(fig)


def update_results_md(path, section):
    """Replace the section of RESULTS.md whose heading starts like `section`'s ('## benchmarks/x.py'), or append.

    A section runs from its '## ' heading to the next '## ' heading; other scripts' sections are untouched.
    """
    from pathlib import Path

    path = Path(path)
    heading = section.splitlines()[0]
    key = heading.split(":")[0]
    text = path.read_text() if path.exists() else "# Benchmark results\n\nOne section per benchmark script.\n"
    lines = text.split("\n")
    start = next((i for i, line in enumerate(lines) if line.startswith(key) and line.startswith("## ")), None)
    body = section.rstrip("\n").split("\n")
    if start is None:
        lines = [*(lines[:-1] if lines and lines[-1] == "" else lines), "", *body, ""]
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        tail = lines[end:]
        lines = [*lines[:start], *body, "", *tail] if tail else [*lines[:start], *body, ""]
    with atomic_open(path, "w") as f:
        f.write("\n".join(lines))
