"""`detrt VERB ...`: the command line.

One function per verb; its docstring is the help. Each verb imports what it needs inside itself, so
`detrt run` works on a runtime-only install (no torch) and a verb whose extra is missing says which
extra to install. Bad input ends with one line on stderr and exit status 2.
"""

import argparse
import sys

from detrt.errors import InputError

# Verbs register here as (function, add_flags, extra it needs or None). Order is the help order.
VERBS = []


def verb(add_flags, extra=None):
    def register(fn):
        VERBS.append((fn, add_flags, extra))
        return fn

    return register


def _run_flags(p):
    p.add_argument("source", metavar="SOURCE",
                   help="video file, image folder or glob, camera index, v4l2:///dev/video0, csi://0, "
                        "rtsp://host/path, http(s) stream, or a GStreamer pipeline string")
    p.add_argument("sink", metavar="SINK", nargs="?",
                   help="optional output: out.mp4, dets.jsonl, dets.odgt or display://0")
    p.add_argument("--model", required=True, help="model.onnx or model.engine, with its manifest beside it")
    p.add_argument("--out", help="annotated video (.mp4/.avi/.mkv/.mov)")
    p.add_argument("--jsonl", help="detections per frame, one JSON line each, flushed every frame")
    p.add_argument("--odgt", help="CrowdHuman .odgt detections, every score (for detrt eval)")
    p.add_argument("--backend", choices=("auto", "tensorrt", "onnxruntime"), default="auto",
                   help="default: chosen from the artifact and this machine (detrt doctor explains)")
    p.add_argument("--threshold", type=float, default=0.5, help="score threshold for video/JSONL/window (0.5)")
    p.add_argument("--batch", type=int, help="frames per inference for files (default: the artifact's max batch)")
    p.add_argument("--threads", type=int, help="ONNX Runtime CPU threads (default: usable cores, at most 8)")
    p.add_argument("--plugins", help="TensorRT plugin library (default: found beside the package or $DETRT_PLUGINS)")
    p.add_argument("--useCudaGraph", action="store_true", help="TensorRT: replay a captured CUDA graph per batch size")
    p.add_argument("--show", action="store_true", help="also show a window (needs opencv-python, not -headless)")
    p.add_argument("--summary", metavar="JSON", help="also write the end-of-run summary as JSON")


@verb(_run_flags)
def run(args):
    """Run a model over a video, camera, stream or images: annotated video, JSONL, .odgt, window.

    examples:
      detrt run clip.mp4 --model model.onnx --out out.mp4 --jsonl dets.jsonl
      detrt run csi://0 display://0 --model model.engine
      detrt run rtsp://cam.local:8554/live --model model.onnx --jsonl dets.jsonl
    Prints a summary: frames, dropped frames, FPS, per-stage latency p50/p95/p99, end-to-end latency.
    """
    import json

    from detrt.atomic import atomic_open
    from detrt.runtime.pipeline import run as run_pipeline
    from detrt.runtime.sinks import JsonlSink, OdgtSink, SinkError, VideoSink, open_sink

    if args.threshold < 0 or args.threshold > 1:
        raise InputError(f"--threshold must be in [0, 1], got {args.threshold}")
    if args.batch is not None and args.batch < 1:
        raise InputError(f"--batch must be >= 1, got {args.batch}")
    sinks = []
    try:
        if args.sink:
            sinks.append(open_sink(args.sink))
        if args.out:
            sinks.append(VideoSink(args.out))
        if args.jsonl:
            sinks.append(JsonlSink(args.jsonl))
        if args.odgt:
            sinks.append(OdgtSink(args.odgt))
        if args.show:
            sinks.append(open_sink("display://0"))
    except BaseException:
        for s in sinks:
            s.close()
        raise
    try:
        summary = run_pipeline(args.source, args.model, sinks, backend=args.backend, threshold=args.threshold,
                               batch=args.batch, threads=args.threads, plugins=args.plugins,
                               cuda_graph=args.useCudaGraph, progress=True)
    except SinkError as e:
        if getattr(e, "summary", None) is not None:
            print(e.summary.format())
        raise
    print(summary.format())
    if args.summary:
        with atomic_open(args.summary, "w") as f:
            json.dump(summary.to_dict(), f, indent=2)
    return 130 if summary.interrupted else 0


def build_parser():
    parser = argparse.ArgumentParser(prog="detrt", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    sub.required = True
    for fn, add_flags, _ in VERBS:
        doc = (fn.__doc__ or "").strip()
        p = sub.add_parser(fn.__name__, help=doc.splitlines()[0] if doc else None, description=doc,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        add_flags(p)
        p.set_defaults(_fn=fn)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    extra = next(e for fn, _, e in VERBS if fn is args._fn)
    try:
        return args._fn(args) or 0
    except InputError as e:
        print(f"detrt {args.verb}: error: {e}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as e:
        if extra is None:
            raise
        print(f"detrt {args.verb}: error: needs {e.name!r}; install it with: pip install 'detrt[{extra}]'",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"detrt {args.verb}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
