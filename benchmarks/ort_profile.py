"""Where ONNX Runtime spends its time on a model, by block (ONNX Runtime's own profiler, CPU).

    .venv/bin/python benchmarks/ort_profile.py model.onnx [other.onnx ...] [--runs 20] [--threads 2]

Each model (an exported ONNX, portable or plugin form) has its local functions inlined first
(detrt.compile.onnx_io.inline_functions), so that every node of the MSDA and DCG bodies carries its call's
name; ONNX Runtime then runs it at ORT_ENABLE_EXTENDED, as `detrt build --backend onnxruntime` optimizes,
on one synthetic crowd frame (batch 1) with profiling on. Kernel times are summed per block of the model by
node name: backbone, input projection, MSDA (every deformable-attention node), DCG, the rest of the encoder
and decoder, other (postprocess, fused nodes ONNX Runtime renamed). MSDA is also split by operator.
Writes benchmarks/results/ort_profile.json and this script's section of benchmarks/RESULTS.md.
"""

import argparse
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import onnxruntime as ort

from detrt.bench.device import device_facts
from detrt.compile.onnx_io import inline_functions, load_onnx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

BLOCKS = ("backbone", "input_proj", "MSDA", "DCG", "encoder", "decoder", "other")


def block_of(node_name):
    """The model block a node belongs to, from the scope the exporter (or inline_functions) named it by."""
    if "/MSDeformAttn" in node_name:
        return "MSDA"
    if "/DCGNeighbors" in node_name:
        return "DCG"
    for block in ("backbone", "input_proj", "encoder", "decoder"):
        if node_name.startswith(f"/model/{block}"):
            return block
    return "other"


def profile(path, runs, threads):
    """{"blocks": {block: share}, "msda_ops": {op: share}, "ms_per_run": summed kernel ms per run}."""
    model = inline_functions(load_onnx(path))
    with tempfile.TemporaryDirectory(prefix="detrt-profile-") as tmp:
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        so.intra_op_num_threads = threads
        so.enable_profiling = True
        so.profile_file_prefix = str(Path(tmp) / "ort")
        if any(n.domain == "detrt" for n in model.graph.node):
            from detrt.ops.ort import InferenceSession
        else:
            InferenceSession = ort.InferenceSession
        session = InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        shape = [d if isinstance(d, int) else 1 for d in session.get_inputs()[0].shape]
        images = np.random.default_rng(0).random(shape, dtype=np.float32)
        for _ in range(runs + 1):
            session.run(None, common.full_image_feed([i.name for i in session.get_inputs()], images))
        events = common.kernel_events(session, runs + 1, warmup=1)
    blocks, msda = Counter(), Counter()
    for e in events:
        block = block_of(e["name"][: -len("_kernel_time")])
        blocks[block] += e["dur"]
        if block == "MSDA":
            msda[e["args"]["op_name"]] += e["dur"]
    total = sum(blocks.values())
    return {"model": str(path), "blocks": {b: blocks[b] / total for b in BLOCKS},
            "msda_ops": {op: t / total for op, t in msda.most_common()}, "ms_per_run": total / runs / 1e3}


def markdown(result, argv):
    lines = common.header("ONNX Runtime's profile by model block (CPU, batch 1)", "ort_profile.py", argv,
                          result["device"], load=result["load_average"])
    lines += [f"{result['runs']} profiled runs after one warm-up, {result['threads']} thread(s); share of the summed "
              "kernel time (ONNX Runtime's profiler, ORT_ENABLE_EXTENDED, local functions inlined).  ", "",
              "| model | " + " | ".join(BLOCKS) + " | MSDA by operator | kernel ms per run |",
              "|---|" + "---|" * (len(BLOCKS) + 2)]
    for r in result["models"]:
        ops = ", ".join(f"{op} {100 * v:.1f}%" for op, v in r["msda_ops"].items() if v >= 0.001)
        lines.append(f"| {r['label']} | " + " | ".join(f"{100 * r['blocks'][b]:.1f}%" for b in BLOCKS) +
                     f" | {ops} | {r['ms_per_run']:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="exported ONNX models (label=path to name a row)")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-markdown", action="store_true", help="do not update benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    result = {"device": device_facts(), "load_average": common.load_average(), "runs": args.runs,
              "threads": args.threads, "models": []}
    for spec in args.models:
        label, _, path = spec.rpartition("=")
        common.log(f"ort_profile.py: {path}")
        result["models"].append({"label": label or Path(path).name, **profile(path, args.runs, args.threads)})
    section = markdown(result, sys.argv[1:] if argv is None else argv)
    print(section)
    common.write_outputs("ort_profile", result, section, markdown=not args.no_markdown)


if __name__ == "__main__":
    main()
