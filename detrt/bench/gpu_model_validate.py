"""GPU validation of the whole model: TensorRT engines (fp32/fp16/int8) against ONNX Runtime on the CPU.
benchmarks/gpu_model_validate.py runs it.

    python benchmarks/gpu_model_validate.py [--checkpoint DIR] [--plugins libdetrt_plugins.so] [--json OUT]

Exports the model (a checkpoint, or the randomly initialized dhdetr_r18_tiny with spread-out class scores),
builds one engine per precision with `detrt build` (plugin form, strongly typed), runs the engines and the
portable FP32 model on ONNX Runtime's CPU on the same synthetic crowd frames, and reports per precision:
max |diff| of raw logits / boxes and the fraction of top-100 detections whose box matches the CPU's
(IoU > 0.9). Bounds: fp32 logits <= 1e-3, boxes <= 1e-4; fp16 and int8 are reported, not gated, since a
random model's discrete query selection flips under rounding (see tests/compile/test_precision.py).
Engines are built by detrt.compile.build and run by detrt.runtime's TensorRT backend. Where
TensorRT, cuda-python or a GPU is absent it prints why and exits 0.
"""

import argparse
import json
import tempfile
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from detrt.data.preprocess import Preprocessor, image_sizes
from detrt.data.synthetic import synth_image
from detrt.models import build_model
from detrt.models.checkpoint import model_from_checkpoint
from detrt.ops.tensorrt import tensorrt_here
from detrt.optional import require
from detrt.runtime.backend import open_backend


def tiny_model():
    torch = require("torch", "a random model")
    torch.manual_seed(0)
    model = build_model("dhdetr_r18_tiny").eval()
    for head in model.class_embed:
        torch.nn.init.normal_(head.weight, std=0.5)
        torch.nn.init.zeros_(head.bias)
    return model, model.config


def frames(cfg, count=4):
    """The feed of `count` letterboxed synthetic frames: images and image_sizes."""
    images = [synth_image(seed=11, index=i)[0] for i in range(count)]
    x, transforms = Preprocessor(cfg.input_size, cfg.mean, cfg.std)(images)
    return {"images": x, "image_sizes": image_sizes(transforms)}


def box_iou_diag(a, b):
    lt, rb = np.maximum(a[..., :2], b[..., :2]), np.minimum(a[..., 2:], b[..., 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), -1)
    area = lambda x: np.prod(x[..., 2:] - x[..., :2], -1)  # noqa: E731
    return inter / np.maximum(area(a) + area(b) - inter, 1e-9)


def main(argv, root):
    """`benchmarks/gpu_model_validate.py ARGV` with results under the source tree `root`; the exit status."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", help="training checkpoint (default: random dhdetr_r18_tiny)")
    ap.add_argument("--plugins", help="libdetrt_plugins.so (default: found by detrt)")
    ap.add_argument("--json", default=str(root / "benchmarks" / "results" / "gpu_model_validate.json"))
    args = ap.parse_args(argv)
    ok, why = tensorrt_here()
    if not ok:
        print(f"gpu_model_validate: skipped: {why}")
        return 0
    from detrt.compile.export import export_model_to, finite_max_abs_diff
    from detrt.compile.build import build

    model, cfg = model_from_checkpoint(args.checkpoint) if args.checkpoint else tiny_model()
    feed = frames(cfg)
    results, ok = {}, True
    with tempfile.TemporaryDirectory(prefix="detrt-gpu-") as tmp:
        tmp = Path(tmp)
        calib = tmp / "calib"
        calib.mkdir()
        for i in range(8):
            cv2.imwrite(str(calib / f"{i}.png"), synth_image(seed=12, index=i)[0])
        for post in (False, True):
            onnx_path = tmp / f"model_{'post' if post else 'raw'}.onnx"
            export_model_to(model, cfg, onnx_path, form="portable", postprocess=post, max_batch=len(feed["images"]),
                            log=None)
            cpu = ort.InferenceSession(str(onnx_path)).run(None, feed)
            for precision in ("fp32", "fp16", "int8"):
                engine = tmp / f"{onnx_path.stem}.{precision}.engine"
                build(onnx_path, engine, precision=precision, plugins=args.plugins,
                      calib=calib if precision == "int8" else None, log=print)
                with open_backend(engine, "tensorrt", plugins=args.plugins) as backend:
                    gpu = backend.infer(feed)
                key = f"{precision}_{'post' if post else 'raw'}"
                if post:
                    iou = box_iou_diag(gpu["boxes"], cpu[2])
                    results[key] = {"top100_box_match": float((iou > 0.9).mean()),
                                    "labels_equal": float((gpu["labels"] == cpu[1]).mean())}
                else:
                    d_logits = finite_max_abs_diff(gpu["pred_logits"], cpu[0])
                    d_boxes = finite_max_abs_diff(gpu["pred_boxes"], cpu[1])
                    results[key] = {"logits_max_abs_diff": d_logits, "boxes_max_abs_diff": d_boxes}
                    if precision == "fp32" and not (d_logits <= 1e-3 and d_boxes <= 1e-4):
                        ok = False
                print(key, results[key])
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"results": results, "passed": ok}, indent=2) + "\n")
    return 0 if ok else 1
