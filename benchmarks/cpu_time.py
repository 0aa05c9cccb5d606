"""CPU time per image of ONNX artifacts and PyTorch eager on one thread, interleaved (for a shared machine).

    .venv/bin/python benchmarks/cpu_time.py torch:detrt/assets/dhdetr_r18_tiny a.onnx b.onnx [--rounds 30]

`detrt bench` times latency on the wall clock: on a machine that other jobs load, every artifact waits for
a core, and multithreaded runtimes lose most to spinning threads. Here each model runs on the calling
thread only (ONNX Runtime intra_op_num_threads=1, torch.set_num_threads(1)) and is timed with that
thread's CPU time, so waiting is not counted (other jobs' cache traffic still is). The artifacts take
turns, one image each per round (A B C A B C ...), on the same synthetic crowd frame at batch 1.
The first artifact is PyTorch eager (torch:DIR: its config sizes the input); ratios = its median / each
one's. The label=path form names a row.
Writes benchmarks/results/cpu_time.json and this script's section of benchmarks/RESULTS.md.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from detrt.bench.device import device_facts
from detrt.compile.surgery import form_of
from detrt.compile.onnx_io import load_onnx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


def runner(spec, images):
    """A no-argument function that runs `spec` (torch:DIR or an ONNX file) on `images` on this thread."""
    if spec.startswith("torch:"):
        from detrt.models.checkpoint import model_from_checkpoint

        model = model_from_checkpoint(spec[len("torch:"):])[0].eval()
        batch = torch.from_numpy(images)
        sizes = torch.from_numpy(common.full_image_feed(["image_sizes"], images)["image_sizes"])

        def run():  # with sizes, as the exported graph runs (the masked path)
            with torch.no_grad():
                model(batch, sizes)
        return run
    so = ort.SessionOptions()
    so.intra_op_num_threads = so.inter_op_num_threads = 1
    if form_of(load_onnx(spec)) == "plugin":
        from detrt.ops.ort import InferenceSession
    else:
        InferenceSession = ort.InferenceSession
    session = InferenceSession(spec, so, providers=["CPUExecutionProvider"])
    feed = common.full_image_feed([i.name for i in session.get_inputs()], images)
    return lambda: session.run(None, feed)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifacts", nargs="+", help="torch:DIR or model.onnx, optionally label=...")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--no-markdown", action="store_true", help="do not update benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    from detrt.data.preprocess import Preprocessor
    from detrt.data.synthetic import synth_image
    from detrt.models.checkpoint import model_from_checkpoint

    first = args.artifacts[0].rpartition("=")[2]
    if not first.startswith("torch:"):
        sys.exit("error: the first artifact is the baseline: torch:CHECKPOINT_DIR (its config sizes the input)")
    cfg = model_from_checkpoint(first[len("torch:"):])[1]
    size = cfg.input_size
    images = Preprocessor(size, cfg.mean, cfg.std)([synth_image(seed=0, index=0)[0]])[0].astype(np.float32)
    load = common.load_average()
    rows = []
    for spec in args.artifacts:
        label, _, path = spec.rpartition("=")
        rows.append({"label": label or path, "path": path, "run": runner(path, images), "ms": []})
    for row in rows:
        row["run"]()  # warm-up
    for _ in range(args.rounds):
        for row in rows:
            t0 = time.thread_time()
            row["run"]()
            row["ms"].append(1e3 * (time.thread_time() - t0))
    base = statistics.median(rows[0]["ms"])
    result = {"device": device_facts(), "load_average": load, "rounds": args.rounds, "input_size": list(size),
              "results": [{"label": r["label"], "path": r["path"], "median_ms": statistics.median(r["ms"]),
                           "min_ms": min(r["ms"]), "vs_first": base / statistics.median(r["ms"]), "ms": r["ms"]}
                          for r in rows]}
    argv_text = sys.argv[1:] if argv is None else argv
    lines = common.header("CPU time per image on one thread, interleaved (shared machine)", "cpu_time.py", argv_text,
                          result["device"], load=load)
    lines += [f"Batch 1, {size[0]}x{size[1]}, {args.rounds} rounds (artifacts in turn), thread CPU time.  ", "",
              f"| artifact | median ms | min ms | speed vs {result['results'][0]['label']} |", "|---|---|---|---|"]
    lines += [f"| {r['label']} | {r['median_ms']:.1f} | {r['min_ms']:.1f} | {r['vs_first']:.2f}x |"
              for r in result["results"]]
    section = "\n".join(lines) + "\n"
    print(section)
    common.write_outputs("cpu_time", result, section, markdown=not args.no_markdown)


if __name__ == "__main__":
    main()
