"""Pipelining: end-to-end FPS of `detrt run` on a file against the backend's pure inference FPS (same batch).

    .venv/bin/python benchmarks/pipeline.py --model model.onnx [--video clip.mp4] [--batch 4]
        # writes benchmarks/results/pipeline.json + a RESULTS.md section

One process, one backend: the model is loaded and warmed up once; pure inference (backend.infer
on a preprocessed batch, nothing else) is timed before and after the pipeline run and averaged, and
the pipeline is `detrt.runtime.pipeline.run` (what `detrt run` calls) decoding the file,
preprocessing, inferring, postprocessing and writing the annotated MP4 and the JSONL. Goal:
ratio = pipeline FPS / inference FPS >= 0.9 (decode, pre/post-processing and writing hidden behind
inference). Without --video a synthetic clip (moving boxes on texture, --size, --frames) is
rendered first. On a CPU backend every stage shares the same cores, so the ratio there measures
contention as much as overlap; the goal is stated for a GPU backend.
"""

import argparse
import datetime
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from detrt.bench.device import device_facts
from detrt.data.preprocess import Preprocessor
from detrt.runtime.backend import open_backend
from detrt.runtime.pipeline import run
from detrt.runtime.sources import open_source

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
import common  # noqa: E402


def synthetic_clip(path, frames, size, fps=30.0, seed=0):
    """Boxes drifting over a textured background: decodes like real footage (not a flat frame)."""
    w, h = size
    rng = np.random.default_rng(seed)
    background = cv2.resize(rng.integers(0, 255, (h // 16, w // 16, 3), dtype=np.uint8), (w, h))
    people = rng.uniform([0, 0, 20, 50], [w, h, 60, 160], (40, 4))
    speed = rng.uniform(-3, 3, (40, 2))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for i in range(frames):
        img = background.copy()
        for (x, y, bw, bh), (vx, vy) in zip(people, speed):
            x0, y0 = int((x + vx * i) % w), int((y + vy * i) % h)
            cv2.rectangle(img, (x0, y0), (x0 + int(bw), y0 + int(bh)), (40, 90, 200), -1)
        writer.write(img)
    writer.release()
    return path


def inference_fps(backend, batch_array, frames):
    """Frames per second of backend.infer alone, over `frames` frames at this batch."""
    b = len(batch_array)
    calls = max(1, frames // b)
    t0 = time.perf_counter()
    for _ in range(calls):
        backend.infer(batch_array)
    return calls * b / (time.perf_counter() - t0)


def bench(args):
    load = common.load_average()
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(args.video) if args.video else synthetic_clip(
            Path(tmp) / "clip.mp4", args.frames, tuple(int(v) for v in args.size.split("x")))
        with open_backend(args.model, args.backend, threads=args.threads, plugins=args.plugins,
                          cuda_graph=args.useCudaGraph) as be:
            batch = args.batch or be.max_batch
            with open_source(video) as src:
                first = [src.capture().image for _ in range(batch)]
                total = src.frame_count or args.frames
            x, _ = Preprocessor.from_manifest(be.manifest)(first)
            for _ in range(args.warmUp):
                be.infer(x)
            before = inference_fps(be, x, total)
            sinks = [] if args.no_sinks else [Path(tmp) / "out.mp4", Path(tmp) / "dets.jsonl"]
            summary = run(video, be, sinks, batch=batch, threshold=args.threshold, warmup=False)
            after = inference_fps(be, x, total)
            infer = (before + after) / 2
            return dict(date=datetime.datetime.now().isoformat(timespec="seconds"), device=device_facts(args.threads),
                        model=str(args.model), backend=be.name, precision=be.manifest.precision,
                        input_size=list(be.manifest.input_size), batch=batch,
                        video=str(args.video or f"synthetic {args.size}, {args.frames} frames"),
                        frames=summary.frames, sinks=[Path(s).suffix for s in sinks],
                        inference_fps=infer, inference_fps_before=before, inference_fps_after=after,
                        pipeline_fps=summary.fps, ratio=summary.fps / infer, goal=0.9,
                        stages_ms={k: list(v) for k, v in summary.stages.items()},
                        end_to_end_ms=list(summary.end_to_end), load_average=load)


def markdown(r, argv):
    model = f"`{r['model']}` ({r['backend']}, {r['precision']}, input {r['input_size'][0]}x{r['input_size'][1]})"
    lines = common.header("detrt run end to end vs pure inference", "pipeline.py", argv, r["device"], model,
                          load=r["load_average"])
    lines += [
        f"Video: {r['video']}; sinks: {', '.join(r['sinks']) or 'none'}.  ",
        "",
        "| batch | inference FPS (before / after) | pipeline FPS | ratio | goal |",
        "|---|---|---|---|---|",
        f"| {r['batch']} | {r['inference_fps']:.1f} ({r['inference_fps_before']:.1f} / {r['inference_fps_after']:.1f}) "
        f"| {r['pipeline_fps']:.1f} | {r['ratio']:.2f} | >= {r['goal']} |",
        "",
        "Per-stage latency per frame, ms (p50 / p95 / p99): "
        + "; ".join(f"{k} {v[0]:.2f} / {v[1]:.2f} / {v[2]:.2f}" for k, v in r["stages_ms"].items())
        + (f"; end-to-end {r['end_to_end_ms'][0]:.1f} / {r['end_to_end_ms'][1]:.1f} / {r['end_to_end_ms'][2]:.1f}"
           if r["end_to_end_ms"] else ""),
    ]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="model.onnx or model.engine (manifest beside it)")
    parser.add_argument("--video", help="a video file (default: render a synthetic clip)")
    parser.add_argument("--frames", type=int, default=300, help="synthetic clip length (300)")
    parser.add_argument("--size", default="1280x720", help="synthetic clip size WxH (1280x720)")
    parser.add_argument("--backend", default="auto", choices=("auto", "tensorrt", "onnxruntime"))
    parser.add_argument("--batch", type=int, help="default: the artifact's max batch")
    parser.add_argument("--threads", type=int, help="ONNX Runtime threads")
    parser.add_argument("--plugins", help="TensorRT plugin library")
    parser.add_argument("--useCudaGraph", action="store_true")
    parser.add_argument("--warmUp", type=int, default=5, help="warm-up inferences before timing (5)")
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--no-sinks", action="store_true", help="time the pipeline without writing outputs")
    parser.add_argument("--out", help="JSON path (default: benchmarks/results/pipeline.json)")
    parser.add_argument("--no-markdown", action="store_true", help="do not update benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    result = bench(args)
    section = markdown(result, sys.argv[1:] if argv is None else argv)
    print(section)
    common.write_outputs("pipeline", result, section, out=args.out, markdown=not args.no_markdown)


if __name__ == "__main__":
    main()
