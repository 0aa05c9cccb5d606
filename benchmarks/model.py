"""Model speed: PyTorch eager vs ONNX Runtime FP32 / INT8 / plugin form vs OpenVINO FP32 / BF16 / INT8, on the CPU.

    .venv/bin/python benchmarks/model.py                       # the bundled model; --checkpoint DIR for another
    .venv/bin/python benchmarks/model.py --checkpoint runs/tiny --duration 10s
    .venv/bin/python benchmarks/model.py --gpu     # + TensorRT FP32/FP16/INT8, NVIDIA's MSDA plugin vs ours

All artifacts are measured in one `detrt bench` run (detrt.bench.run.run_bench), interleaved, on the
same synthetic crowd frames, at batch 1 and the artifacts' max batch; ratios are against PyTorch eager.
With --gpu and a GPU with TensorRT, a second run measures engines built by `detrt build` (plugin form):
FP32, FP16, INT8 with our MSDA plugin, and FP16 with NVIDIA's MultiscaleDeformableAttnPlugin_TRT; ratios
against the FP32 engine. Without a GPU it says so once and runs the CPU part.
Writes benchmarks/results/model.json and the section of benchmarks/RESULTS.md.
"""

import argparse
import sys
from pathlib import Path

from detrt.ops.tensorrt import tensorrt_here

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

ROLES = {"eager": "PyTorch eager", "fp32": "ORT FP32 (portable)", "int8": "ORT INT8 (QDQ)",
         "plugin": "ORT FP32 plugin form (detrt CPU kernels)", "ov_fp32": "OpenVINO FP32 (detrt extension ops)",
         "ov_mixed": "OpenVINO mixed: BF16 backbone, FP32 transformer", "ov_bf16": "OpenVINO BF16",
         "ov_int8": "OpenVINO INT8 (QDQ)", "trt_fp32": "TensorRT FP32", "trt_fp16": "TensorRT FP16",
         "trt_int8": "TensorRT INT8",
         "trt_fp16_nvidia": "TensorRT FP16, NVIDIA MSDA plugin"}


def gpu_engines(export_plugin, export_nvidia, calib, workdir):
    """Engines built with detrt build from the plugin-form export (ours), and FP16 with NVIDIA's MSDA plugin."""
    from detrt.compile.build import build

    out = {}
    for name, src, precision, msda in (("trt_fp32", export_plugin, "fp32", "detrt"),
                                       ("trt_fp16", export_plugin, "fp16", "detrt"),
                                       ("trt_int8", export_plugin, "int8", "detrt"),
                                       ("trt_fp16_nvidia", export_nvidia, "fp16", "nvidia")):
        path = workdir / f"{name}.engine"
        build(src, path, precision=precision, backend="tensorrt", calib=str(calib), calib_frames=32,
              msda_plugin=msda, log=common.log)
        out[name] = str(path)
    return out


def table(report, roles, baseline):
    """Markdown rows per batch: latency percentiles, images/s, ratio to the first, roofline."""
    from detrt.bench.report import roofline_text

    by_spec = {spec: role for role, spec in roles.items()}
    lines = []
    for batch in report["settings"]["batches"]:
        rows = [r for r in report["results"] if r["batch"] == batch]
        lines += ["", f"Batch {batch}:", "",
                  f"| artifact | p50 ms | p90 ms | p99 ms | images/s | speed vs {baseline} "
                  "| GPU compute / H2D / D2H ms |",
                  "|---|---|---|---|---|---|---|"]
        for r in rows:
            role = ROLES.get(by_spec.get(r["path"]), r["artifact"]) + (" +CUDA graph" if r.get("cuda_graph") else "")
            lat, g = r["latency_ms"], r.get("gpu_ms") or {}
            gpu = " / ".join(f"{g[k]:.3f}" for k in ("compute_ms", "h2d_ms", "d2h_ms") if k in g) or \
                (f"{g['total_ms']:.3f} (whole graph)" if g else "")
            lines.append(f"| {role} | {lat['p50']:.1f} | {lat['p90']:.1f} | {lat['p99']:.1f} | "
                         f"{r['images_per_s']:.2f} | {r['vs_first']:.2f}x | {gpu} |")
        lines.append("")
        for r in rows:
            if r.get("roofline"):
                role = ROLES.get(by_spec.get(r["path"]), r["artifact"])
                lines.append(f"- roofline, {role}{' +CUDA graph' if r.get('cuda_graph') else ''}: "
                             f"{roofline_text(r['roofline'])}")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="trained checkpoint dir (default: the bundled dhdetr_r18_tiny)")
    parser.add_argument("--max-batch", type=int, default=4, help="the artifacts' max batch, measured with 1 (4)")
    parser.add_argument("--warmup", default="1s")
    parser.add_argument("--duration", default="8s", help="measured time per artifact and batch (8s)")
    parser.add_argument("--threads", type=int, help="CPU threads (default: usable cores, at most 8)")
    parser.add_argument("--frames", help="video or images to feed (default: the cached synthetic crowd video)")
    parser.add_argument("--gpu", action="store_true", help="also TensorRT engines, where a GPU and TensorRT exist")
    parser.add_argument("--note", help="a line printed in bold at the top of the RESULTS.md section")
    args = parser.parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv

    from detrt.bench.measure import parse_duration
    from detrt.bench.run import run_bench

    load = common.load_average()
    ckpt, what = common.model_source(args.checkpoint)
    video = common.synthetic_video()
    frames = args.frames or str(video)
    arts = common.artifacts(ckpt, video, max_batch=args.max_batch, openvino=common.openvino_here())
    batches = sorted({1, args.max_batch})
    warmup, duration = parse_duration(args.warmup, "--warmup", bare="ms"), parse_duration(args.duration)
    roles = {k: arts[k] for k in ("eager", "fp32", "int8", "plugin", *common.OPENVINO) if k in arts}
    common.log(f"model.py: {what}; CPU run over {', '.join(ROLES[k] for k in roles)}")
    cpu = run_bench(list(roles.values()), batches, warmup, duration, frames=frames, threads=args.threads,
                    notice=common.log, command="benchmarks/model.py")
    result = {"model": what, "cpu": cpu, "gpu": None}
    gpu_roles = None
    if args.gpu:
        ok, why = tensorrt_here()
        if not ok:
            common.log(f"model.py: no GPU part: {why}; the CPU part above is the whole result")
            result["gpu"] = {"skipped": why}
        else:
            from detrt.compile.export import export_checkpoint

            workdir = Path(arts["fp32"]).parent
            nvidia = workdir / "export_plugin_nvidia.onnx"
            if not nvidia.is_file():
                export_checkpoint(ckpt, nvidia, form="plugin", msda_plugin="nvidia", max_batch=args.max_batch,
                                  log=common.log)
            gpu_roles = gpu_engines(workdir / "export_plugin.onnx", nvidia, video, workdir)
            result["gpu"] = run_bench(list(gpu_roles.values()), batches, warmup, duration, frames=frames,
                                      threads=args.threads, notice=common.log, command="benchmarks/model.py --gpu")

    lines = common.header("PyTorch eager vs ONNX Runtime and OpenVINO (CPU)", "model.py", argv,
                          cpu["device"], what, args.note, load)
    lines += [f"Inputs: {cpu['settings']['frames']}; warm-up {warmup:g} s, {duration:g} s measured per artifact "
              f"and batch, all artifacts interleaved in one run; {cpu['settings']['threads']} threads. "
              "Speed = PyTorch eager's p50 / the artifact's p50 (same run, same frames).  "]
    peak = (cpu.get("peak") or {}).get("cpu")
    if peak:
        lines.append(f"Roofline peak (measured): {peak['matmul_gflops']:.0f} GFLOP/s float32 matmul, "
                     f"{peak['copy_gbps']:.1f} GB/s copy.  ")
    lines += table(cpu, roles, "PyTorch eager")
    if isinstance(result["gpu"], dict) and "results" in result["gpu"]:
        lines += ["", "TensorRT (engines from `detrt build`, plugin form; GPU time from CUDA events):"]
        lines += table(result["gpu"], gpu_roles, "TensorRT FP32")
    else:
        ok, here = tensorrt_here()
        why = (result["gpu"] or {}).get("skipped") or ("--gpu not given" if ok else here)
        lines += ["", f"TensorRT: not measured here ({why}). `make bench-gpu` on a machine with a GPU and "
                      "TensorRT adds FP32/FP16/INT8 engines and NVIDIA's MSDA plugin vs ours."]
    print("\n".join(lines))
    common.write_outputs("model", result, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
