"""`detrt demo`: a synthetic crowd video through the bundled DH-DETR model on the CPU.

What `make demo` runs on a fresh machine: render a walking-crowd video with its ground truth, export
the bundled checkpoint to a portable ONNX model (the embedded default backend: ONNX Runtime on the
CPU), stream the video through detrt.runtime into an annotated MP4, JSONL and .odgt, then score the
detections against the ground truth. Exporting needs torch; everything after it is torch-free.
"""

from pathlib import Path

from detrt.assets import bundled_model_path
from detrt.atomic import make_dirs
from detrt.data.synthetic_video import write_video
from detrt.errors import InputError
from detrt.eval.crowdhuman import evaluate_files, format_table
from detrt.runtime.pipeline import run
from detrt.runtime.sinks import JsonlSink, OdgtSink, VideoSink


def run_demo(out="out/demo", frames=150, seed=7, checkpoint=None, threads=None, log=print):
    """Run the demo into `out`; return (run Summary, metrics dict)."""
    from detrt.compile.export import export_checkpoint

    out = Path(out)
    if checkpoint is not None and not Path(checkpoint).exists():  # before `out` is made: nothing left behind
        raise InputError(f"{checkpoint}: no such checkpoint")
    make_dirs(out)  # before any work: a file in the way fails here, in one line
    clip = out / "clip"
    log(f"[1/4] rendering {frames} frames of a synthetic walking crowd (seed {seed}) -> {clip}/video.mp4")
    write_video(clip, frames, seed, progress=False)  # a few seconds; the detection bar follows
    model = out / "model.onnx"
    if checkpoint is None:
        checkpoint = bundled_model_path()
    log(f"[2/4] exporting {checkpoint} -> {model} (portable ONNX for ONNX Runtime on the CPU)")
    export_checkpoint(checkpoint, model, form="portable", max_batch=4, log=log)
    log(f"[3/4] detecting: {out}/demo.mp4, demo.jsonl, demo.odgt")
    summary = run(clip / "video.mp4", model, [VideoSink(out / "demo.mp4"), JsonlSink(out / "demo.jsonl"),
                                              OdgtSink(out / "demo.odgt")],
                  backend="onnxruntime", threads=threads, progress=True)
    log(summary.format())
    log("[4/4] scoring the detections against the video's ground truth")
    metrics = evaluate_files(clip / "video.odgt", out / "demo.odgt")
    log(format_table(metrics))
    return summary, metrics
