"""Accuracy of each precision: AP / MR-2 / JI on the synthetic validation set, through the runtime pipeline.

    .venv/bin/python benchmarks/accuracy.py                    # the bundled model; --checkpoint DIR for another
    .venv/bin/python benchmarks/accuracy.py --checkpoint runs/tiny --num 200

Each artifact runs the runtime's own path, `detrt.runtime.detector.Detector` (preprocess from the manifest,
backend, postprocess to source pixels, score threshold 0 so every top-k detection is scored), over the held-out
synthetic validation set (detrt.data.synthetic, seed 2: the bundled model trained on seed 1); metrics by
`detrt.eval.crowdhuman.evaluate` (CrowdDet's AP, MR-2, JI). Precisions: PyTorch eager (the reference), ONNX Runtime FP32 (portable), INT8
(QDQ), the plugin-form FP32 graph on the detrt CPU kernels, the FP16 graph TensorRT would build, run here by
ONNX Runtime's CPU (its Casts and FP32 islands as built; TensorRT's own FP16 kernels may round differently), and
where openvino is installed the OpenVINO artifacts (FP32, mixed, BF16, INT8) on detrt's extension ops.
Deltas are against ONNX Runtime FP32. A random model's metrics are near zero: they check the machinery only.
Writes benchmarks/results/accuracy.json and the section of benchmarks/RESULTS.md.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

ROLES = {"eager": "PyTorch eager (FP32)", "fp32": "ORT FP32 (portable)", "int8": "ORT INT8 (QDQ)",
         "plugin": "ORT FP32 plugin form", "fp16": "FP16 graph (ORT CPU)", "ov_fp32": "OpenVINO FP32",
         "ov_mixed": "OpenVINO mixed (BF16 backbone)", "ov_bf16": "OpenVINO BF16", "ov_int8": "OpenVINO INT8 (QDQ)"}


def detect_all(spec, records, threads, batch):
    """Run one artifact over the records' images -> ({image_id: OdgtDetections for evaluate}, seconds)."""
    from detrt.bench.gate import detect_all as detect
    from detrt.bench.run import open_artifact

    backend, _ = open_artifact(spec, threads=threads, max_batch=batch)
    return detect(backend, records, batch)


def agreement(ref, other, iou=0.9):
    """Fraction of ref's detections that `other` reproduces (IoU >= iou), and the mean |score difference|
    of those pairs: how faithful a precision is to FP32, meaningful even for an untrained model."""
    from detrt.box_ops import box_iou

    found, total, diffs = 0, 0, []
    for image_id, r in ref.items():
        o = other.get(image_id)
        total += len(r.scores)
        if o is None or not len(r.scores) or not len(o.scores):
            continue
        with np.errstate(invalid="ignore", divide="ignore"):
            m = np.nan_to_num(box_iou(r.boxes, o.boxes)[0])  # zero-area boxes: IoU 0 ...
        m[(r.boxes[:, None] == o.boxes[None]).all(-1)] = 1.0  # ... unless identical
        best = m.argmax(1)
        hit = m[np.arange(len(best)), best] >= iou
        found += int(hit.sum())
        diffs += np.abs(r.scores[hit] - o.scores[best[hit]]).tolist()
    return (found / total if total else float("nan")), (float(np.mean(diffs)) if diffs else float("nan"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="trained checkpoint dir (default: the bundled dhdetr_r18_tiny)")
    parser.add_argument("--num", type=int, default=100, help="validation images (100; seed 2, held out)")
    parser.add_argument("--batch", type=int, default=4, help="frames per inference (4)")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--only", nargs="+", choices=sorted(ROLES), help="a subset of the precisions")
    parser.add_argument("--note", help="a line printed in bold at the top of the RESULTS.md section")
    args = parser.parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv

    from detrt.bench.device import device_facts
    from detrt.data.crowdhuman import read_gt
    from detrt.eval.crowdhuman import evaluate

    load = common.load_average()
    ckpt, what = common.model_source(args.checkpoint)
    video = common.synthetic_video()
    arts = common.artifacts(ckpt, video, max_batch=args.batch, fp16=True, openvino=common.openvino_here())
    gt_path, images = common.synthetic_val(args.num)
    records = read_gt(gt_path, images)
    rows, all_dts = {}, {}
    for role in args.only or [r for r in ROLES if r in arts]:
        common.log(f"accuracy.py: {ROLES[role]} over {len(records)} images")
        dts, seconds = detect_all(arts[role], records, args.threads, args.batch)
        metrics = evaluate(records, dts, gt_path=str(gt_path))
        all_dts[role] = dts
        rows[role] = {"artifact": arts[role], "AP": metrics["AP"], "MR2": metrics["MR2"], "JI": metrics["JI"],
                      "JI_dhdetr": metrics["JI_dhdetr"], "detections": metrics["detections"],
                      "images_per_s": len(records) / seconds if seconds else None}
    for role, r in rows.items():
        r["agree_vs_fp32"], r["score_diff_vs_fp32"] = agreement(all_dts["fp32"], all_dts[role]) \
            if "fp32" in all_dts else (None, None)
    facts = device_facts(args.threads)
    result = {"model": what, "validation": {"gt": str(gt_path), "images": len(records), "seed": 2},
              "device": facts, "rows": rows}
    ref = rows.get("fp32")
    lines = common.header("AP / MR-2 / JI of each precision (synthetic validation set)", "accuracy.py", argv,
                          facts, what, args.note, load)
    lines += [f"Validation: {len(records)} synthetic crowd images (detrt.data.synthetic, seed 2, held out), "
              f"{result_persons(rows, records)}; detections through detrt.runtime.detector.Detector at score "
              f"threshold 0, metrics by detrt.eval.crowdhuman (CrowdDet's definitions). Deltas vs ORT FP32.  ", "",
              "Agreement = share of ORT FP32's top-k detections that the precision reproduces (IoU >= 0.9), "
              "with the mean |score difference| of those pairs.  ", "",
              "| precision | AP % | MR-2 % | JI % | ΔAP | ΔMR-2 | ΔJI | agreement with FP32 | mean abs score diff |",
              "|---|---|---|---|---|---|---|---|---|"]
    for role, r in rows.items():
        d = [100 * (r[k] - ref[k]) if ref else float("nan") for k in ("AP", "MR2", "JI")]
        lines.append(f"| {ROLES[role]} | {100 * r['AP']:.2f} | {100 * r['MR2']:.2f} | {100 * r['JI']:.2f} | "
                     f"{d[0]:+.2f} | {d[1]:+.2f} | {d[2]:+.2f} | {_pct(r['agree_vs_fp32'])} | "
                     f"{_num(r['score_diff_vs_fp32'])} |")
    if "random" in what:
        lines += ["", "The model is untrained: these metrics only show that every precision runs end to end "
                      "and how far each drifts from FP32 on the same detections (many of its boxes are degenerate, "
                      "zero-area at the image border, which IoU matches only when identical); rerun with --checkpoint."]
    print("\n".join(lines))
    common.write_outputs("accuracy", result, "\n".join(lines) + "\n")


def _pct(v):
    return "" if v is None or v != v else f"{100 * v:.1f}%"


def _num(v):
    return "" if v is None or v != v else f"{v:.2g}"


def result_persons(rows, records):
    return f"{sum(len(r.boxes) for r in records)} persons"


if __name__ == "__main__":
    main()
