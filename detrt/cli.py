"""detrt: DETR-family detectors from PyTorch training to TensorRT engines and real-time video.

One function per verb; its docstring is the help. A verb whose code needs an optional extra (torch, onnx)
imports it inside itself, so `detrt run` works on a runtime-only install (no torch) and a verb whose extra
is missing says which extra to install. Bad input ends with one line on stderr and exit status 2.
"""

import argparse
import dataclasses
import functools
import glob
import json
import re
import signal
import sys
from pathlib import Path

from detrt import __version__
from detrt.atomic import atomic_open, check_outputs
from detrt.bench import measure
from detrt.bench import report as bench_report
from detrt.bench.gate import check_gate_data, run_gate
from detrt.bench.run import run_bench
from detrt.data.coco import is_coco
from detrt.data.synthetic import SynthConfig
from detrt.data.synthetic_set import format_stats, synthesize
from detrt.data.synthetic_vocab import VocabConfig, format_vocab_stats, synthesize_vocab
from detrt.demo import run_demo
from detrt.doctor import report as doctor_report
from detrt.errors import InputError
from detrt.eval import coco as coco_eval
from detrt.eval.crowdhuman import evaluate_files, format_table
from detrt.manifest import load_manifest, manifest_path
from detrt.optional import extra_for
from detrt.runtime.backend import open_backend
from detrt.runtime.base import check_threads
from detrt.runtime.pipeline import run as run_pipeline
from detrt.runtime.postprocess import check_threshold
from detrt.runtime.sinks import CocoSink, JsonlSink, OdgtSink, SinkError, VideoSink, open_sink
from detrt.runtime.streams import StreamMuxer, aggregate, run_streams
from detrt.runtime.triton_backend import TritonBackend
from detrt.serving.repository import DETECTOR
from detrt.serving.repository import export_triton as export_triton_repo
from detrt.serving.server import serve as serve_model
from detrt.training.options import TrainOptions

# Verbs register here as (function, add_flags, extra it needs or None). Order is the help order.
VERBS = []


def verb_name(fn):
    """The verb's name on the command line: the function's, with "-" for "_" (export_triton -> export-triton)."""
    return fn.__name__.replace("_", "-")


def verb(add_flags, extra=None):
    def register(fn):
        VERBS.append((fn, add_flags, extra))
        return fn

    return register


# Flags several verbs take, each defined once (Polygraphy's argument groups). Spelling: kebab-case; a flag trtexec
# also has keeps trtexec's camelCase name as an alias (--min-shapes, --minShapes).


def trtexec_flag(name):
    """The option strings of a flag trtexec has too: "min-shapes" -> ("--min-shapes", "--minShapes")."""
    head, *rest = name.split("-")
    return f"--{name}", f"--{head}{''.join(word.capitalize() for word in rest)}"


def _threads_flag(p):
    p.add_argument("--threads", type=int, help="CPU threads for inference (default: usable cores, at most 8)")


def _plugins_flag(p):
    p.add_argument("--plugins", help="TensorRT: plugin library (default: found beside the package or $DETRT_PLUGINS)")


def _form_flag(p, default):
    p.add_argument("--form", choices=("portable", "plugin"), default=default,
                   help="portable: standard ops (ONNX Runtime anywhere); plugin: detrt:: plugin nodes (what "
                        "TensorRT parses)")


def _msda_plugin_flag(p):
    p.add_argument("--msda-plugin", choices=("detrt", "nvidia"), default="detrt",
                   help="TensorRT: the MSDA plugin node, ours (detrt::MSDeformAttn) or NVIDIA's "
                        "MultiscaleDeformableAttnPlugin_TRT (+ Reshape)")


def _seed_flag(p, default=0):
    p.add_argument("--seed", type=int, default=default, help="random seed: same seed, same result")


def _run_flags(p):
    p.add_argument("source", metavar="SOURCE", nargs="+",
                   help="video file, image folder or glob, camera index, v4l2:///dev/video0, csi://0, "
                        "rtsp://host/path, http(s) stream, or a GStreamer pipeline string; several: one stream "
                        "each, in one process (their outputs: --jsonl/--out/--odgt/--coco/--summary names with "
                        "{stream}). Two, the second an output (display://0, dets.jsonl, dets.odgt, results.json "
                        "(COCO) or a new out.mp4) and no --server: SOURCE SINK")
    p.add_argument("--model", required=True, help="model.onnx or model.engine, with its manifest beside it; with "
                                                  "--server, the artifact the server runs (only its manifest is read)")
    p.add_argument("--out", help="annotated video (.mp4/.avi/.mkv/.mov)")
    p.add_argument("--jsonl", help="detections per frame, one JSON line each, flushed every frame")
    p.add_argument("--odgt", help="CrowdHuman .odgt detections, every score (for detrt eval); person models only")
    p.add_argument("--coco", help="COCO results .json, every score, the dataset's category ids (for detrt eval)")
    p.add_argument("--backend", choices=("auto", "tensorrt", "onnxruntime", "openvino"), default="auto",
                   help="auto: chosen from the artifact and this machine, or the fastest gated sibling artifact "
                        "(detrt doctor explains)")
    p.add_argument("--threshold", type=float, default=0.5, help="score threshold for video/JSONL/window")
    p.add_argument("--batch", type=int, help="frames per inference for files (default: the artifact's max batch)")
    _threads_flag(p)
    _plugins_flag(p)
    p.add_argument(*trtexec_flag("use-cuda-graph"), action="store_true",
                   help="TensorRT: replay a captured CUDA graph per batch size")
    p.add_argument("--show", action="store_true", help="also show a window (needs opencv-python, not -headless)")
    p.add_argument("--summary", metavar="JSON", help="also write the end-of-run summary as JSON")
    p.add_argument("--server", metavar="URL", help="infer on a Triton Inference Server's gRPC endpoint, "
                                                   "grpc://HOST:PORT (detrt serve, or an export-triton repository)")
    p.add_argument("--triton-model", default=DETECTOR, help="--server: the model's name on the server")
    p.add_argument("--timeout", type=float, default=10.0, help="--server: seconds a request may take")
    p.add_argument("--retry", type=float, default=60.0,
                   help="seconds to keep retrying a failed --server request (a server restarting), or a network "
                        "stream of several that does not open, before giving up on it")
    p.add_argument("--in-flight", type=int, default=4, help="--server: requests on the wire per stream")


def _open_sinks(sink, out, jsonl, odgt, coco, show):
    """The sinks of one stream (closed again if one of them cannot be made)."""
    sinks = []
    try:
        if sink:
            sinks.append(open_sink(sink))
        if out:
            sinks.append(VideoSink(out))
        if jsonl:
            sinks.append(JsonlSink(jsonl))
        if odgt:
            sinks.append(OdgtSink(odgt))
        if coco:
            sinks.append(CocoSink(coco))
        if show:
            sinks.append(open_sink("display://0"))
    except BaseException:
        for s in sinks:
            s.close()
        raise
    return sinks


def _per_stream(args, count):
    """The output paths of each stream: --jsonl/--out/--odgt/--coco/--summary with {stream} replaced by its
    number."""
    names = {flag: getattr(args, flag) for flag in ("out", "jsonl", "odgt", "coco", "summary")}
    for flag, name in names.items():
        if name is not None and "{stream}" not in name:
            raise InputError(f"--{flag} {name}: {count} sources write one file each: put {{stream}} in the name "
                             f"(e.g. {Path(name).stem}_{{stream}}{Path(name).suffix})")
    return [{flag: name and name.replace("{stream}", str(i)) for flag, name in names.items()} for i in range(count)]


def _run_streams(args, sources):
    """Several sources: one pipeline each, one shared backend (a StreamMuxer batching them when it is local)."""
    outputs = _per_stream(args, len(sources))
    check_outputs([p for o in outputs for p in o.values()],
                  [*sources, args.model, manifest_path(args.model), args.plugins])
    if args.show:
        raise InputError("--show: one window per stream is not supported; write --out videos instead")
    if args.server:
        backend = _server_backend(args)
    else:
        backend = StreamMuxer(open_backend(args.model, args.backend, threads=args.threads, plugins=args.plugins,
                                           cuda_graph=args.use_cuda_graph))
    make_sinks = [functools.partial(_open_sinks, None, o["out"], o["jsonl"], o["odgt"], o["coco"], False)
                  for o in outputs]
    try:
        summaries = run_streams(sources, backend, make_sinks, threshold=args.threshold, batch=args.batch,
                                progress=True, open_retry_s=args.retry, notice=_notice)
    finally:
        backend.close()
        if not args.server:
            backend.backend.close()
    for i, (source, summary) in enumerate(zip(sources, summaries)):
        print(f"stream {i}: {source}")
        print(summary.format())
        if summary.error:
            print(f"detrt run: stream {i} ({source}): error: {summary.error}", file=sys.stderr)
        if outputs[i]["summary"]:
            with atomic_open(outputs[i]["summary"], "w") as f:
                json.dump(summary.to_dict(), f, indent=2)
    print(aggregate(summaries))
    if any(s.interrupted for s in summaries):
        return 130
    return 1 if any(s.error for s in summaries) else 0


def _sources_and_sink(args):
    """SOURCE SINK where the second of two positionals (no --server) is an output: display://N, .jsonl, .odgt, or
    a path that does not exist yet; else every positional is a source (an existing video is never written over
    unless --out names it)."""
    if len(args.source) == 2 and args.server is None:
        second = args.source[1]
        path = second.removeprefix("file://")
        if (second.startswith("display://") or Path(path).suffix.lower() in (".jsonl", ".odgt", ".json")
                or not (second.isdigit() or re.match(r"^[a-z][a-z0-9+.-]*://", path) or glob.glob(path))):
            return args.source[:1], second
    return args.source, None


def _server_backend(args):
    """The Triton backend of --server, with the manifest of --model."""
    if args.timeout <= 0 or args.retry < 0 or args.in_flight < 1:
        raise InputError("--timeout must be > 0, --retry >= 0 and --in-flight >= 1")
    return TritonBackend(args.server, load_manifest(args.model), args.triton_model, timeout_s=args.timeout,
                         retry_s=args.retry, in_flight=args.in_flight, notice=_notice)


def _notice(message):
    """What detrt run tells while it goes on (a retry, a stream reconnecting): one line on stderr."""
    print(f"detrt run: {message}", file=sys.stderr, flush=True)


@verb(_run_flags)
def run(args):
    """Run a model over videos, cameras, streams or images: annotated video, JSONL, .odgt, COCO results, window.

    examples:
      detrt run clip.mp4 --model model.onnx --out out.mp4 --jsonl dets.jsonl
      detrt run csi://0 display://0 --model model.engine
      detrt run rtsp://cam.local:8554/live --model model.onnx --jsonl dets.jsonl
      detrt run data/vocab/images --model cqdino.onnx --coco results.json --out shapes.mp4
      detrt run cam0.mp4 cam1.mp4 cam2.mp4 --model model.onnx --jsonl dets_{stream}.jsonl
      detrt run rtsp://cam1/live rtsp://cam2/live --server grpc://gpu1:8001 --model model.onnx --jsonl d{stream}.jsonl
    Prints a summary: frames, dropped frames, FPS, per-stage latency p50/p95/p99, end-to-end latency; with
    several sources one per stream and the aggregate FPS. Several local streams share the model, their frames
    batched together; on a server, Triton's dynamic batching does that across every client.
    """
    if args.batch is not None and args.batch < 1:
        raise InputError(f"--batch must be >= 1, got {args.batch}")
    sources, args.sink = _sources_and_sink(args)
    if len(sources) > 1:
        return _run_streams(args, sources)
    args.source = sources[0]
    sink = args.sink.removeprefix("file://") if args.sink and not args.sink.startswith("display://") else None
    check_outputs([sink, args.out, args.jsonl, args.odgt, args.coco, args.summary],
                  [args.source, args.model, manifest_path(args.model), args.plugins])
    model = _server_backend(args) if args.server else args.model
    try:
        sinks = _open_sinks(args.sink, args.out, args.jsonl, args.odgt, args.coco, args.show)
        summary = run_pipeline(args.source, model, sinks, backend=args.backend, threshold=args.threshold,
                               batch=args.batch, threads=args.threads, plugins=args.plugins,
                               cuda_graph=args.use_cuda_graph, progress=True, notice=_notice)
    except SinkError as e:
        if getattr(e, "summary", None) is not None:
            print(e.summary.format())
        raise
    finally:
        if model is not args.model:
            model.close()
    print(summary.format())
    if args.summary:
        with atomic_open(args.summary, "w") as f:
            json.dump(summary.to_dict(), f, indent=2)
    return 128 + signal.Signals[summary.signal or "SIGINT"] if summary.interrupted else 0


def _synth_flags(p):
    p.add_argument("out", metavar="OUT", help="output directory (must be absent or empty, see --overwrite)")
    p.add_argument("--kind", choices=("crowd", "vocab"), default="crowd",
                   help="crowd: street scenes of persons, CrowdHuman .odgt; vocab: shapes of 1,152 leaf classes "
                        "(shape x colour x texture x size, a 4-level hierarchy of 1,608 categories), COCO JSON")
    p.add_argument("--num", type=int, default=1000, help="images to render; 0: none")
    p.add_argument("--frames", type=int, default=0, help="crowd: also render a video of this many frames; 0: none")
    p.add_argument("--fps", type=float, default=15.0, help="video frame rate")
    _seed_flag(p)
    p.add_argument("--size", help="image size WxH (default: 512x320 for crowd, 160x160 for vocab)")
    p.add_argument("--persons", help="crowd: persons drawn per image MIN-MAX (default 8-38: 23 on average, like "
                                     "CrowdHuman); in video, the mean is kept on screen")
    p.add_argument("--overlap", type=float,
                   help="crowd: probability that a person joins a group, standing beside another, in [0, 1] "
                        "(default 0.4: ~2.5 pairs with IoU > 0.5 per image, like CrowdHuman); more gives more")
    p.add_argument("--objects", help="vocab: objects drawn per image MIN-MAX (default 2-6)")
    p.add_argument("--format", choices=("jpg", "png"), default="jpg", help="image format")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it holds an earlier synth output")


def _parse_pair(flag, text, sep, kind=int):
    try:
        a, b = (kind(v) for v in text.lower().split(sep))
    except ValueError:
        raise InputError(f"{flag} must look like A{sep}B with numbers, got {text!r}") from None
    return a, b


def _count_range(flag, text):
    lo, hi = _parse_pair(flag, text, "-")
    if not 0 <= lo <= hi:
        raise InputError(f"{flag} must be MIN-MAX with 0 <= MIN <= MAX, got {text}")
    return lo, hi


@verb(_synth_flags)
def synth(args):
    """Render a synthetic set: a crowd (images + CrowdHuman .odgt, optionally a walking-crowd video), or with
    --kind vocab a vast vocabulary of shapes (images + COCO JSON + the names/hierarchy file).

    Crowd: OUT/images/*.jpg + OUT/annotations.odgt, OUT/video.mp4 + OUT/video.odgt (frame IDs
    "frame_000000"...). Vocab: OUT/images/*.jpg + OUT/annotations.json + OUT/vocabulary.json. Both write
    OUT/synth.json and print the statistics. Needs numpy and OpenCV only.
    examples:
      detrt synth data/synth --num 2000 --seed 1
      detrt synth data/dense --num 200 --persons 40-80 --overlap 0.7
      detrt synth data/clip --num 0 --frames 300 --fps 15
      detrt synth data/vocab --kind vocab --num 2000 --seed 1
    """
    crowd = args.kind == "crowd"
    wrong = [flag for flag, value in (("--persons", args.persons), ("--overlap", args.overlap),
                                      ("--frames", args.frames or None), ("--objects", args.objects))
             if value is not None and (flag == "--objects") == crowd]
    if wrong:
        raise InputError(f"{', '.join(wrong)}: not used by --kind {args.kind}")
    width, height = _parse_pair("--size", args.size or ("512x320" if crowd else "160x160"), "x")
    if not (64 <= width <= 8192 and 64 <= height <= 8192):  # 8192x8192 BGR is 200 MB a frame
        raise InputError(f"--size must be from 64x64 to 8192x8192, got {args.size}")
    if args.num < 0 or args.frames < 0 or args.fps <= 0:
        raise InputError("--num and --frames must be >= 0 and --fps > 0")
    if not crowd:
        cfg = VocabConfig(width=width, height=height, objects=_count_range("--objects", args.objects or "2-6"),
                          ext=f".{args.format}")
        stats = synthesize_vocab(args.out, num=args.num, seed=args.seed, cfg=cfg, overwrite=args.overwrite)
        print(format_vocab_stats(args.out, stats))
        return
    overlap = 0.4 if args.overlap is None else args.overlap
    if not 0 <= overlap <= 1:
        raise InputError(f"--overlap must be in [0, 1], got {args.overlap}")
    cfg = SynthConfig(width=width, height=height, persons=_count_range("--persons", args.persons or "8-38"),
                      overlap=overlap, ext=f".{args.format}")
    stats = synthesize(args.out, num=args.num, frames=args.frames, seed=args.seed, cfg=cfg, fps=args.fps,
                       overwrite=args.overwrite)
    for name, s in stats.items():
        print(format_stats(f"{args.out} {name}", s))


def _eval_flags(p):
    p.add_argument("--gt", required=True, help="ground truth: CrowdHuman .odgt, or COCO-format .json (COCO, LVIS, "
                                                "V3Det, detrt synth --kind vocab)")
    p.add_argument("--dt", required=True, help="detections, every score (no threshold): .odgt for CrowdHuman, "
                                                "COCO results .json for COCO (detrt run --coco)")
    p.add_argument("--images", help="CrowdHuman: images directory, sizes for records that carry no width/height")
    p.add_argument("--train-gt", help="COCO: the training set's .json, whose image counts make the rare, common "
                                      "and frequent groups (default: the categories' LVIS frequency field)")
    p.add_argument("--json", help="also write the metrics as JSON")


@verb(_eval_flags)
def eval(args):  # noqa: A001 - the verb's name
    """AP of detections against ground truth: CrowdHuman's AP, MR-2 and JI (CrowdDet's definitions) for .odgt,
    COCO's AP at 100 and 300 detections per image, and on rare classes, for COCO-format .json.

    examples:
      detrt eval --gt data/synth/annotations.odgt --dt dets.odgt --json metrics.json
      detrt eval --gt data/val/annotations.json --dt results.json --train-gt data/train/annotations.json
    """
    coco = is_coco(args.gt)
    check_outputs([args.json], [args.gt, args.dt, args.train_gt])
    if Path(args.dt).suffix.lower() != (".json" if coco else ".odgt"):
        raise InputError(f"{args.dt}: a {'COCO-format .json' if coco else 'CrowdHuman .odgt'} ground truth is "
                         f"scored against {'COCO results (.json)' if coco else '.odgt detections'}")
    wrong = "--images" if coco and args.images else "--train-gt" if not coco and args.train_gt else None
    if wrong:
        raise InputError(f"{wrong}: not used with a {'COCO' if coco else 'CrowdHuman'} ground truth")
    if coco:
        result = coco_eval.evaluate_files(args.gt, args.dt, args.train_gt)
        print(coco_eval.format_table(result))
    else:
        result = evaluate_files(args.gt, args.dt, args.images)
        print(format_table(result))
    if args.json:
        clean = json.loads(json.dumps(result), parse_constant=lambda c: None)  # NaN -> null
        with atomic_open(args.json, "w") as f:
            json.dump(clean, f, indent=1)


def _bench_flags(p):
    p.add_argument("artifacts", metavar="ARTIFACT", nargs="+",
                   help="model.onnx or model.engine (manifest beside it), or a PyTorch checkpoint for the eager "
                        "baseline: torch:DIR, a checkpoint directory, or a .safetensors file")
    p.add_argument("--batch", default="1", help="batch sizes, comma-separated, e.g. 1,4,8")
    p.add_argument(*trtexec_flag("warm-up"), default="2s",
                   help="warm-up time per artifact and batch, e.g. 2s, 500ms; a bare number is milliseconds, "
                        "as in trtexec")
    p.add_argument("--duration", default="10s",
                   help="measured time per artifact and batch, e.g. 10s, 1m; a bare number is seconds, as in trtexec")
    p.add_argument("--frames", help="video file, image folder or glob to feed (default: a synthetic crowd video)")
    _threads_flag(p)
    _plugins_flag(p)
    p.add_argument("--json", help="write every result, sample and device fact as JSON")
    p.add_argument("--plot", help="write latency distribution and throughput vs batch (PNG; needs matplotlib)")
    p.add_argument("--no-roofline", dest="roofline", action="store_false",
                   help="skip the FLOP count and the peak measurement")


@verb(_bench_flags)
def bench(args):
    """Measure latency and throughput of models on this device: several artifacts interleaved (A B A B ...).

    examples:
      detrt bench model.onnx model_int8.onnx --batch 1,4 --duration 10s
      detrt bench torch:runs/tiny model.onnx model.engine --batch 1,8 --json bench.json --plot bench.png
    Per artifact and batch: latency min/p50/p90/p99/max, images/s, speed vs the first artifact, a roofline
    line against this machine's measured peak; TensorRT: GPU compute apart from H2D/D2H copies (CUDA events),
    with and without CUDA graphs. Device facts (CPU, GPU, clocks as found, versions, Jetson power mode) go
    with every result; nothing on the machine is changed.
    """
    batches = measure.parse_batches(args.batch)
    warmup = measure.parse_duration(args.warm_up, "--warm-up", bare="ms")
    duration = measure.parse_duration(args.duration, "--duration")
    check_outputs([args.json, args.plot], [*args.artifacts, args.frames])
    if args.plot:
        bench_report.check_plot_available()
    report = run_bench(args.artifacts, batches, warmup, duration, frames=args.frames, threads=args.threads,
                       plugins=args.plugins, roofline=args.roofline, notice=lambda m: print(f"detrt bench: {m}"),
                       command="detrt " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["bench"] else None)
    print(bench_report.format_table(report))
    if args.json:
        bench_report.write_json(args.json, report)
    if args.plot:
        bench_report.plot(args.plot, report)


def _train_flags(p):
    for f in dataclasses.fields(TrainOptions):  # each flag's default and help live on its field
        if "help" in f.metadata:
            required = f.default is dataclasses.MISSING
            p.add_argument("--" + f.name.replace("_", "-"), type=f.type if f.type in (int, float) else None,
                           required=required, default=None if required else f.default, **f.metadata)


@verb(_train_flags, extra="train")
def train(args):
    """Train a DH-DETR / Deformable DETR config on CrowdHuman-format data (single process or torchrun).

    examples:
      detrt synth data/train --num 5000 --seed 1 && detrt synth data/val --num 400 --seed 2
      detrt train --config dhdetr_r18_tiny --data data/train/annotations.odgt --images data/train/images \\
          --val-data data/val/annotations.odgt --val-images data/val/images --max-steps 6000 --output runs/tiny
      torchrun --nproc_per_node 2 -m detrt.cli train --config ... (one process per GPU; gloo on CPU)
    A NaN/inf loss stops with exit status 1, naming the step, the loss components and the last good checkpoint.
    """
    from detrt.training.loop import fit
    from detrt.training.step import NonFiniteLoss, metrics_line

    check_outputs([], [args.data, args.images, args.val_data, args.val_images, args.resume, args.embeddings],
                  directories=[args.output])
    flags = [f.name for f in dataclasses.fields(TrainOptions) if "help" in f.metadata]
    opts = TrainOptions(**{name: getattr(args, name) for name in flags})
    try:
        summary = fit(opts)
    except NonFiniteLoss as e:
        print(f"detrt train: error: {e}", file=sys.stderr)
        return 1
    if summary.get("rank", 0):
        return 0  # under torchrun, rank 0 reports
    m = summary["metrics"]
    print(f"done: {summary['step']} steps, {summary['wall_s'] / 60:.1f} min; checkpoints in {summary['output']}"
          + (f"; {metrics_line(m)}" if m else ""))


def _export_flags(p):
    p.add_argument("checkpoint", metavar="CHECKPOINT",
                   help="training checkpoint: a directory with checkpoint.safetensors + checkpoint.json, or the file")
    p.add_argument("-o", "--output", required=True, help="model.onnx (its manifest is written beside it)")
    _form_flag(p, "portable")
    p.add_argument("--imgsz", nargs=2, type=int, metavar=("H", "W"), help="input size (default: the config's)")
    p.add_argument("--no-postprocess", dest="postprocess", action="store_false",
                   help="raw outputs pred_logits/pred_boxes instead of top-K scores/labels/boxes")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset, 17 to 21 (21: GroupNorm as one GroupNormalization node)")
    _msda_plugin_flag(p)


@verb(_export_flags, extra="train,compile")
def export(args):
    """Export a trained checkpoint to ONNX (fixed H x W, dynamic batch) with its manifest.

    example:
      detrt export runs/tiny/best -o model.onnx
    """
    from detrt.compile.export import export_checkpoint

    check_outputs([args.output], [args.checkpoint])
    export_checkpoint(args.checkpoint, args.output, form=args.form, input_size=args.imgsz,
                      postprocess=args.postprocess, opset=args.opset, msda_plugin=args.msda_plugin)


def _surgery_flags(p):
    p.add_argument("input", metavar="IN", help="ONNX model")
    p.add_argument("-o", "--output", required=True, help="rewritten ONNX model (manifest copied beside it)")
    _form_flag(p, "plugin")
    _msda_plugin_flag(p)
    p.add_argument("--print", dest="show", action="store_true", help="list what each pass changed")


@verb(_surgery_flags, extra="compile")
def surgery(args):
    """Rewrite an ONNX model with named graph passes (fold, plugin nodes, int32 shapes, shape inference).

    example:
      detrt surgery model.onnx -o plugin.onnx --form plugin --print
    """
    from detrt.compile.surgery import run_surgery

    check_outputs([args.output], [args.input])
    run_surgery(args.input, args.output, args.form, args.msda_plugin, show=args.show)


def _build_flags(p):
    p.add_argument("input", metavar="MODEL.onnx", help="FP32 ONNX model with its manifest beside it")
    p.add_argument("-o", "--output", required=True,
                   help="model.engine (TensorRT), model.onnx (onnxruntime) or model.xml (openvino)")
    p.add_argument("--precision", choices=("fp32", "fp16", "bf16", "mixed", "int8"), default="fp32",
                   help="precision carried by the graph (Casts / Q-DQ); the network is built strongly typed; "
                        "fp16: TensorRT only; bf16: OpenVINO only (its CPU inference precision); mixed: OpenVINO, "
                        "bf16 backbone and fp32 transformer")
    p.add_argument("--backend", choices=("tensorrt", "onnxruntime", "openvino"), default="tensorrt",
                   help="tensorrt: an engine for this GPU; onnxruntime, openvino: a CPU artifact")
    _plugins_flag(p)
    p.add_argument(*trtexec_flag("min-shapes"), metavar="SHAPES", help="TensorRT: images:BxCxHxW (default "
                                                                        "images:1x3xHxW)")
    p.add_argument(*trtexec_flag("opt-shapes"), metavar="SHAPES", help="TensorRT: images:BxCxHxW (default "
                                                                        "images:1x3xHxW)")
    p.add_argument(*trtexec_flag("max-shapes"), metavar="SHAPES",
                   help="TensorRT: images:BxCxHxW (default: the manifest's max batch)")
    p.add_argument("--workspace", type=int, metavar="MiB", help="TensorRT: builder workspace limit")
    p.add_argument(*trtexec_flag("timing-cache-file"), metavar="FILE",
                   help="TensorRT: timing cache read before and written after the build")
    p.add_argument("--dla", type=int, metavar="N", help="TensorRT: DLA core (Jetson), with GPU fallback")
    p.add_argument("--calib", help="int8: calibration video, image directory or glob")
    p.add_argument("--calib-frames", type=int, default=200, help="int8: frames sampled for calibration")
    p.add_argument("--fp16-all", action="store_true",
                   help="TensorRT: fp16 with no FP32 islands (LayerNorm, Softmax, heads)")
    _msda_plugin_flag(p)
    p.add_argument("--gate", metavar="DIR",
                   help="CPU backends: measure AP / MR-2 and speed against MODEL.onnx on DIR/annotations.odgt + "
                        "DIR/images and record them in the manifest (detrt run --backend auto on MODEL.onnx runs "
                        "the fastest that passed)")


@verb(_build_flags, extra="compile")
def build(args):
    """Build a TensorRT engine (or, with --backend onnxruntime/openvino, a CPU artifact) from an exported ONNX model.

    examples:
      detrt build model.onnx --precision fp16 -o model.engine
      detrt build model.onnx --backend onnxruntime --precision int8 --calib clip.mp4 -o model.int8.onnx
      detrt build model.onnx --backend openvino --precision bf16 -o model.bf16.xml
    """
    from detrt.compile.build import build as build_artifact

    if args.gate:
        if args.backend == "tensorrt":
            raise InputError("--gate: CPU backends only (--backend onnxruntime or openvino)")
        check_gate_data(args.gate)
    beside = {"tensorrt": ".plugin.onnx", "openvino": ".bin"}.get(args.backend)  # written beside the output
    check_outputs([args.output, beside and Path(args.output).with_suffix(beside)],
                  [args.input, args.calib, args.plugins, args.gate])
    build_artifact(args.input, args.output, precision=args.precision, backend=args.backend, plugins=args.plugins,
                   min_shape=args.min_shapes, opt_shape=args.opt_shapes, max_shape=args.max_shapes,
                   workspace=args.workspace, timing_cache=args.timing_cache_file, dla=args.dla, calib=args.calib,
                   calib_frames=args.calib_frames, fp16_all=args.fp16_all, msda_plugin=args.msda_plugin)
    if args.gate:
        run_gate(args.output, args.input, args.gate)


def _batching_flags(p):
    p.add_argument("--max-batch", type=int, help="Triton's max_batch_size (default and upper bound: the artifact's)")
    p.add_argument("--preferred-batch", help="dynamic batching's preferred batch sizes, e.g. 4,8 (default: the max "
                                             "batch)")
    p.add_argument("--max-queue-delay-us", type=int, default=2000,
                   help="dynamic batching: microseconds a request may wait for others to fill a batch")


def _batch_sizes(text):
    return measure.parse_batches(text, "--preferred-batch") if text else None


def _export_triton_flags(p):
    p.add_argument("artifact", metavar="ARTIFACT", help="model.onnx (portable form) or model.engine, its manifest "
                                                        "beside it")
    p.add_argument("--repo", required=True, help="the model repository directory to write (absent or empty)")
    p.add_argument("--force", action="store_true", help="replace a non-empty --repo")
    _batching_flags(p)
    p.add_argument("--instances", type=int, default=1, help="instances of each model (instance_group count)")
    _plugins_flag(p)


@verb(_export_triton_flags)
def export_triton(args):
    """Write a Triton Inference Server model repository: the network, pre/post steps and an ensemble.

    The network runs as onnxruntime_onnx on KIND_CPU (model.onnx) or tensorrt_plan on KIND_GPU (model.engine,
    with the plugin library and REPO/README.md saying how to load it); clients call the ensemble `detrt` with
    BGR uint8 frames and get boxes in frame pixels with class names. Every config.pbtxt carries the manifest.
    examples:
      detrt export-triton model.onnx --repo triton_repo --preferred-batch 4,8
      detrt export-triton model.engine --repo triton_repo --instances 2
    """
    check_outputs([], [args.artifact, args.plugins], directories=[args.repo])
    files = export_triton_repo(args.artifact, args.repo, force=args.force, max_batch=args.max_batch,
                               instances=args.instances, preferred=_batch_sizes(args.preferred_batch),
                               queue_delay_us=args.max_queue_delay_us, plugins=args.plugins)
    print(f"wrote {args.repo}: " + ", ".join(files))


def _serve_flags(p):
    p.add_argument("artifact", metavar="ARTIFACT", help="model.onnx or model.engine, its manifest beside it")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    p.add_argument("--grpc-port", type=int, default=8001, help="Triton's gRPC port")
    p.add_argument("--http-port", type=int, default=8000, help="Triton's HTTP port")
    p.add_argument("--metrics-port", type=int, default=8002, help="Triton's metrics port")
    p.add_argument("--triton-model", default=DETECTOR, help="the model's name on the server")
    _batching_flags(p)
    p.add_argument("--backend", choices=("auto", "tensorrt", "onnxruntime"), default="auto",
                   help="what runs the model in this process (as detrt run)")
    _threads_flag(p)
    _plugins_flag(p)


@verb(_serve_flags, extra="serve")
def serve(args):
    """Serve a model on a real Triton Inference Server through PyTriton, with dynamic batching across clients.

    For hosts without a Triton install: PyTriton ships tritonserver. Needs pip install 'detrt[serve]' in a Python
    whose libpython matches PyTriton's stub (README: Serving on Triton). Clients: detrt run --server.
    examples:
      detrt serve model.onnx --grpc-port 8001 --preferred-batch 4
      detrt run cam.mp4 --server grpc://127.0.0.1:8001 --model model.onnx       (a client, from elsewhere)
    """
    check_outputs([], [args.artifact, args.plugins])
    serve_model(args.artifact, host=args.host, grpc_port=args.grpc_port, http_port=args.http_port,
                metrics_port=args.metrics_port, model_name=args.triton_model, max_batch=args.max_batch,
                preferred=_batch_sizes(args.preferred_batch), queue_delay_us=args.max_queue_delay_us,
                backend=args.backend, threads=args.threads, plugins=args.plugins)


def _doctor_flags(p):
    p.add_argument("--model", help="an artifact: say which backend detrt run would choose for it, and why")
    _plugins_flag(p)


@verb(_doctor_flags)
def doctor(args):
    """Print what this machine can do: TensorRT, CUDA, GPU, plugins, ONNX Runtime, runnable verbs, backend.

    example:
      detrt doctor --model model.onnx
    """
    lines = doctor_report(args.model, args.plugins, verbs=[(verb_name(fn), extra) for fn, _, extra in VERBS])
    width = max(len(topic) for topic, _ in lines)
    for topic, finding in lines:
        print(f"{topic:<{width}}  {finding}")


def _demo_flags(p):
    p.add_argument("--out", default="out/demo", help="output directory")
    p.add_argument("--frames", type=int, default=150, help="frames of synthetic video, at 15 FPS")
    _seed_flag(p, 7)
    p.add_argument("--checkpoint", help="a training checkpoint instead of the bundled model")
    _threads_flag(p)


@verb(_demo_flags, extra="train,compile")
def demo(args):
    """Run a synthetic crowd video through the bundled DH-DETR model on the CPU and score it.

    Renders a walking-crowd video with ground truth, exports the bundled checkpoint to ONNX, runs it
    on ONNX Runtime (annotated MP4, JSONL, .odgt), prints the run summary and AP / MR-2 / JI.
    example:
      detrt demo --out out/demo --frames 300
    """
    if args.frames < 1:
        raise InputError(f"--frames must be >= 1, got {args.frames}")
    check_outputs([], [args.checkpoint], directories=[args.out])
    run_demo(args.out, args.frames, args.seed, args.checkpoint, args.threads)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """The verb's docstring as written, and "(default: X)" after every flag that has a value by default (a
    switch's False or a None, which the help text explains, is not shown)."""

    def _get_help_string(self, action):
        default = action.default
        if (not action.option_strings or default is None or isinstance(default, bool) or default is argparse.SUPPRESS
                or "%(default)" in (action.help or "")):
            return action.help
        return f"{action.help or ''} (default: %(default)s)"


# Flags only TensorRT reads, by argparse dest: with a CPU --backend they are refused, since ignoring them
# would hand back something other than what was asked for.
TENSORRT_ONLY = ("plugins", "use_cuda_graph", "min_shapes", "opt_shapes", "max_shapes", "workspace",
                 "timing_cache_file", "dla")


def _as_typed(dest, argv):
    """The flag of `dest` as the command line spells it (--minShapes or --min-shapes)."""
    names = trtexec_flag(dest.replace("_", "-"))
    return next((n for n in names for a in map(str, argv) if a == n or a.startswith(n + "=")), names[0])


def check_shared_flags(args, argv=()):
    """The flags several verbs take, checked the same way for each before any work starts; argv names the
    refused flags as the user typed them."""
    if getattr(args, "threshold", None) is not None:
        check_threshold(args.threshold, "--threshold")
    if getattr(args, "threads", None) is not None:
        check_threads(args.threads, "--threads")
    if getattr(args, "backend", None) in ("onnxruntime", "openvino"):
        values = {dest: getattr(args, dest, None) for dest in TENSORRT_ONLY}
        given = [_as_typed(dest, argv) for dest, value in values.items() if value is not None and value is not False]
        if given:
            raise InputError(f"{', '.join(given)}: TensorRT only, not used by --backend {args.backend} "
                             f"(drop {'them' if len(given) > 1 else 'it'}, or use --backend tensorrt)")


def build_parser():
    parser = argparse.ArgumentParser(prog="detrt", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"detrt {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    sub.required = True
    for fn, add_flags, _ in VERBS:
        doc = (fn.__doc__ or "").strip()
        p = sub.add_parser(verb_name(fn), help=doc.splitlines()[0] if doc else None, description=doc,
                           formatter_class=HelpFormatter)
        add_flags(p)
        p.set_defaults(_fn=fn)
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    try:
        check_shared_flags(args, argv)
        return args._fn(args) or 0
    except InputError as e:
        print(f"detrt {args.verb}: error: {e}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as e:
        extra = extra_for(e.name or "")
        if extra is None:  # not an optional package (our own import error, say): a bug, not an extra
            raise
        print(f"detrt {args.verb}: error: needs {e.name!r}; install it with: pip install 'detrt[{extra}]'",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"detrt {args.verb}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
