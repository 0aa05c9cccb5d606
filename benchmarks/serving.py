"""Triton: several streams through `detrt serve` (PyTriton's tritonserver) with and without dynamic batching.

    .venv/bin/python benchmarks/serving.py [--frames 24] [--sweep 1 2 4 8] [--rounds 2]
        # writes benchmarks/results/serving.json + a RESULTS.md section

Makes the serving venv (`make serve-env`) and the bundled model's ONNX Runtime artifact (max batch 8), renders
8 synthetic crowd clips (384x256, --frames each), and starts two servers on 127.0.0.1 at once: "dynamic"
(max batch 8, preferred 4 and 8, a request waits up to 5 ms for others) and "batch 1" (--max-batch 1). Every
client is `detrt run CLIPS... --server URL --batch 1 --in-flight 4` in the serving venv, one process for all its
streams, each stream a file read as fast as the server answers. Figures per run: aggregate FPS (all frames over
the longest stream's time) and each stream's request latency (the infer stage: sent to answered) p50 / p99.
1. 4 streams, dynamic vs batch 1, interleaved (--rounds pairs, A B A B): the throughput ratio (goal >= 1.3x).
2. A load sweep on the dynamic server: 1, 2, 4, 8 streams, to see where latency turns up.
3. ONNX Runtime alone in this process at batch 1, 2, 4, 8: the per-frame cost that batching changes.
Server and clients share this machine's cores, as on an edge box serving its own cameras.
"""

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from detrt.bench.device import device_facts
from detrt.data.synthetic import SynthConfig
from detrt.data.synthetic_video import write_video
from detrt.runtime.backend import open_backend
from detrt.serving.process import ServeProcess

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

SERVE_BIN = common.REPO / ".venv-serve" / "bin"
SERVERS = {"dynamic": ["--preferred-batch", "4,8", "--max-queue-delay-us", "5000"], "batch 1": ["--max-batch", "1"]}


def clients(server, clips, model, tmp, tag):
    """`detrt run` over `clips` against `server`; aggregate FPS and each stream's latencies."""
    summary = tmp / (f"{tag}_{{stream}}.json" if len(clips) > 1 else f"{tag}_0.json")
    proc = subprocess.run([str(SERVE_BIN / "detrt"), "run", *map(str, clips), "--server", server.url, "--model",
                           str(model), "--summary", str(summary), "--batch", "1", "--in-flight", "4"],
                          capture_output=True, text=True, env=server.env)
    if proc.returncode != 0:
        raise RuntimeError(f"detrt run failed: {proc.stderr[-2000:]}")
    streams = [json.loads((tmp / f"{tag}_{i}.json").read_text()) for i in range(len(clips))]
    frames = sum(s["frames"] for s in streams)
    return dict(streams=len(clips), frames=frames, fps=frames / max(s["wall_s"] for s in streams),
                infer_p50_ms=[s["stages"]["infer"][0] for s in streams],
                infer_p99_ms=[s["stages"]["infer"][2] for s in streams])


def alone(model, batches=(1, 2, 4, 8), rounds=3):
    """ONNX Runtime alone in this process, ms per frame at each batch (median of rounds, batches interleaved):
    what dynamic batching can gain or lose on this CPU."""
    times = {b: [] for b in batches}
    with open_backend(model) as be:
        inputs = {b: np.zeros((b, *be.input_shape[1:]), np.float32) for b in batches}
        be.warmup(1, max(batches))
        for _ in range(rounds):
            for b in batches:
                t0 = time.perf_counter()
                be.infer(inputs[b])
                times[b].append((time.perf_counter() - t0) * 1000 / b)
    return {b: statistics.median(t) for b, t in times.items()}


def bench(args, tmp):
    load = common.load_average()
    subprocess.run(["make", "-s", "serve-env"], cwd=common.REPO, check=True)
    ckpt, _ = common.model_source(None)
    model = common.artifacts(ckpt, common.synthetic_video(), max_batch=8, want=("fp32",))["fp32"]
    clips = []
    for seed in range(max(args.sweep + [4])):
        write_video(tmp / f"clip{seed}", args.frames, seed=seed, cfg=SynthConfig(width=384, height=256),
                    progress=False)
        clips.append(tmp / f"clip{seed}" / "video.mp4")
    env = {**os.environ, "PYTRITON_HOME": str(tmp / "pytriton"), "TQDM_DISABLE": "1"}
    servers = {name: ServeProcess(SERVE_BIN / "detrt", model, *flags, log=tmp / f"{name}.log", env=env)
               for name, flags in SERVERS.items()}
    try:
        for s in servers.values():
            s.start()
        for name, s in servers.items():  # a first run each, unmeasured: connections and caches warm
            clients(s, clips[:4], model, tmp, f"warm {name}")
        pairs = {name: [] for name in servers}
        for r in range(args.rounds):
            for name, s in servers.items():
                pairs[name].append(clients(s, clips[:4], model, tmp, f"{name} {r}"))
                common.log(f"round {r} {name}: {pairs[name][-1]['fps']:.2f} FPS")
        sweep = [clients(servers["dynamic"], clips[:n], model, tmp, f"sweep {n}") for n in args.sweep]
    finally:
        for s in servers.values():
            s.stop()
    fps = {name: statistics.median(r["fps"] for r in runs) for name, runs in pairs.items()}
    return dict(date=datetime.datetime.now().isoformat(timespec="seconds"), device=device_facts(None),
                alone_ms_per_frame=alone(model), model=str(model), frames_per_stream=args.frames, servers=SERVERS,
                rounds=pairs, median_fps=fps, ratio=fps["dynamic"] / fps["batch 1"], goal=1.3, sweep=sweep,
                load_average=load)


def _ms(values):
    return " / ".join(f"{v:.0f}" for v in values)


def markdown(r, argv):
    lines = common.header("several streams on Triton, dynamic batching vs batch 1", "serving.py", argv,
                          r["device"], f"`{r['model']}` (bundled model, ONNX Runtime FP32, max batch 8)",
                          load=r["load_average"])
    lines += [
        f"Clients: `detrt run CLIPS... --server URL --batch 1 --in-flight 4` (serving venv), synthetic 384x256 "
        f"clips, {r['frames_per_stream']} frames each. Servers: `detrt serve` "
        + "; ".join(f"{name} `{' '.join(flags) or '(defaults)'}`" for name, flags in r["servers"].items()) + ".",
        "",
        "| 4 streams | aggregate FPS per round | median | ratio to batch 1 | goal |",
        "|---|---|---|---|---|",
    ]
    for name, runs in r["rounds"].items():
        ratio = r["median_fps"][name] / r["median_fps"]["batch 1"]
        each = ", ".join(f"{x['fps']:.2f}" for x in runs)
        lines.append(f"| {name} | {each} | {r['median_fps'][name]:.2f} "
                     f"| {ratio:.2f}x | {'>= 1.3x' if name == 'dynamic' else ''} |")
    lines += ["", "ONNX Runtime alone, ms per frame at batch " + ", ".join(
        f"{b}: {ms:.0f}" for b, ms in r["alone_ms_per_frame"].items()) + " (what a batch gains or costs per frame "
              "on this CPU)."]
    last = {name: runs[-1] for name, runs in r["rounds"].items()}
    lines += ["", "Request latency per stream, last round, ms (stream 0 / 1 / 2 / 3): "
              + "; ".join(f"{name} p50 {_ms(x['infer_p50_ms'])}, p99 {_ms(x['infer_p99_ms'])}"
                          for name, x in last.items()),
              "", "| streams (dynamic) | aggregate FPS | request latency p50, ms (per stream) | p99, ms |",
              "|---|---|---|---|"]
    for x in r["sweep"]:
        lines.append(f"| {x['streams']} | {x['fps']:.2f} | {_ms(x['infer_p50_ms'])} | {_ms(x['infer_p99_ms'])} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=24, help="frames per clip (24)")
    parser.add_argument("--sweep", type=int, nargs="+", default=[1, 2, 4, 8], help="stream counts (1 2 4 8)")
    parser.add_argument("--rounds", type=int, default=2, help="A/B pairs of the 4-stream comparison (2)")
    parser.add_argument("--out", help="JSON path (default: benchmarks/results/serving.json)")
    parser.add_argument("--no-markdown", action="store_true", help="do not update benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        result = bench(args, Path(tmp))
    common.write_outputs("serving", result, markdown(result, sys.argv[1:] if argv is None else argv), out=args.out,
                         markdown=not args.no_markdown)


if __name__ == "__main__":
    main()
