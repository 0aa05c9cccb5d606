"""Where each CPU backend spends its time: backbone, encoder, decoder, MSDA, DCG, from the runtimes' own profilers.

    .venv/bin/python benchmarks/stages.py                      # the bundled model; --checkpoint DIR for another

Each artifact of model.py (ONNX Runtime portable FP32 and plugin form; OpenVINO FP32, BF16, INT8 where openvino
is installed) runs --runs times on one synthetic frame at --batch with its profiler on (ONNX Runtime's
enable_profiling, OpenVINO's PERF_COUNT); each node's time goes to the first stage its name matches: MSDA (the
MSDeformAttn node), DCG, backbone, encoder, decoder, else other (input projections, heads, top-k). ONNX Runtime
inlines the portable form's local functions into nodes without a scope in their names (GridSample_267): they
count as MSDA, DCG's dense function included (small at 100 queries). The shares are of the profiled node time,
which leaves out the runtimes' scheduling; the ms are per image. Writes benchmarks/results/stages.json and its
RESULTS.md section.
"""

import argparse
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

STAGES = ("backbone", "encoder", "decoder", "MSDA", "DCG", "other")
ROLES = {"fp32": "ORT FP32 (portable)", "plugin": "ORT FP32 plugin form", "ov_fp32": "OpenVINO FP32",
         "ov_mixed": "OpenVINO mixed (BF16 backbone)", "ov_bf16": "OpenVINO BF16", "ov_int8": "OpenVINO INT8"}


def stage_of(name):
    for key, stage in (("MSDeformAttn", "MSDA"), ("DCGNeighbors", "DCG"), ("backbone", "backbone"),
                       ("encoder", "encoder"), ("decoder", "decoder")):
        if key in name:
            return stage
    return "other"


def profile_ort(path, x, runs, threads):
    import onnxruntime as ort

    from detrt.manifest import load_manifest
    from detrt.ops.ort import InferenceSession

    with tempfile.TemporaryDirectory() as tmp:
        so = ort.SessionOptions()
        so.enable_profiling, so.profile_file_prefix = True, str(Path(tmp) / "ort")
        so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        plugin = load_manifest(path).form == "plugin"
        session = (InferenceSession if plugin else ort.InferenceSession)(str(path), so,
                                                                         providers=["CPUExecutionProvider"])
        feed = common.full_image_feed([i.name for i in session.get_inputs()], x)
        session.run(None, feed)  # warm-up, in the profile too: dropped below by run count
        for _ in range(runs):
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
    totals = Counter()
    node_events = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    for e in node_events[len(node_events) // (runs + 1):]:  # the measured runs, not the warm-up
        name = e["name"].removesuffix("_kernel_time")
        inlined = "/" not in name and not name.startswith("Reorder")  # a node of an inlined local function
        totals["MSDA" if inlined else stage_of(name)] += e["dur"] / 1000
    return {k: v / runs for k, v in totals.items()}


def profile_ov(path, x, runs, threads):
    from detrt.manifest import load_manifest
    from detrt.ops.openvino import openvino_core

    core = openvino_core()
    hint = "bf16" if load_manifest(path).precision == "bf16" else "f32"
    compiled = core.compile_model(core.read_model(str(path)), "CPU", {
        "INFERENCE_PRECISION_HINT": hint, "PERF_COUNT": True, "INFERENCE_NUM_THREADS": threads,
        "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1})
    request = compiled.create_infer_request()
    feed = common.full_image_feed(load_manifest(path).inputs, x)
    request.infer(feed)
    totals = Counter()
    for _ in range(runs):
        request.infer(feed)
        for p in request.get_profiling_info():
            totals[stage_of(p.node_name)] += p.real_time.total_seconds() * 1000
    return {k: v / runs for k, v in totals.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="trained checkpoint dir (default: the bundled dhdetr_r18_tiny)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--threads", type=int, help="CPU threads (default: usable cores, at most 8)")
    parser.add_argument("--note", help="a line printed in bold at the top of the RESULTS.md section")
    args = parser.parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv

    from detrt.bench.device import device_facts
    from detrt.bench.frames import load_frames
    from detrt.data.preprocess import Preprocessor
    from detrt.manifest import load_manifest
    from detrt.runtime.base import default_threads

    load = common.load_average()
    threads = args.threads or default_threads()
    ckpt, what = common.model_source(args.checkpoint)
    video = common.synthetic_video()
    arts = common.artifacts(ckpt, video, max_batch=4, openvino=common.openvino_here())
    roles = {k: arts[k] for k in ROLES if k in arts}
    images, _ = load_frames(str(video), count=args.batch, notice=common.log)
    x = Preprocessor.from_manifest(load_manifest(roles["fp32"]))(list(images[:args.batch]))[0].astype(np.float32)
    rows = {}
    for role, path in roles.items():
        common.log(f"stages.py: {ROLES[role]}")
        ms = (profile_ov if path.endswith(".xml") else profile_ort)(path, x, args.runs, threads)
        rows[role] = {s: ms.get(s, 0.0) / args.batch for s in STAGES}
    facts = device_facts(args.threads)
    lines = common.header("per-stage profile of each CPU backend", "stages.py", argv, facts, what, args.note, load)
    lines += [f"Batch {args.batch}, {args.runs} profiled runs, {threads} threads; ms per image of profiled node "
              "time (each node counted once: MSDA and DCG are not in encoder/decoder), share of the total.  ", "",
              "| backend | " + " | ".join(STAGES) + " | total ms |", "|---|" + "---|" * (len(STAGES) + 1)]
    for role, r in rows.items():
        total = sum(r.values())
        cells = " | ".join(f"{r[s]:.1f} ({100 * r[s] / total:.0f}%)" for s in STAGES)
        lines.append(f"| {ROLES[role]} | {cells} | {total:.1f} |")
    print("\n".join(lines))
    common.write_outputs("stages", {"model": what, "device": facts, "batch": args.batch, "rows": rows},
                         "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
