"""The accuracy gate of a CPU artifact: AP and MR-2 against the FP32 graph it was built from, and the speed of both.

    detrt build model.onnx --backend openvino --precision bf16 -o model.bf16.xml --gate val/
    # val/annotations.odgt and val/images/ (detrt synth writes such a folder)

Both run the runtime's own path (detrt.runtime.detector.Detector, score threshold 0 so every top-k detection
is scored) over the same images, one image per inference, timed on this machine; metrics by
detrt.eval.crowdhuman (CrowdDet's AP and MR-2). The result goes into the artifact's manifest (`gate`), where
`detrt run --backend auto` on the FP32 model reads it (detrt.runtime.backend.gated_sibling).
"""

import time
from pathlib import Path

import cv2
import numpy as np

from detrt.data.crowdhuman import OdgtDetections, read_gt
from detrt.errors import InputError
from detrt.eval.crowdhuman import evaluate
from detrt.manifest import load_manifest, manifest_path, save_manifest
from detrt.progress import progress_bar
from detrt.runtime.backend import open_backend
from detrt.runtime.detector import Detector

MAX_AP_DROP = 0.003  # AP may drop by at most 0.3 points ...
MAX_MR2_RISE = 0.010  # ... and MR-2 (lower is better) rise by at most 1.0 point


def detect_all(backend, records, batch=1):
    """Run an open backend over the records' images -> ({image_id: OdgtDetections}, seconds in the detector)."""
    out, seconds = {}, 0.0
    with Detector(backend, threshold=0.0) as det:
        person = det.class_names.index("person") if "person" in det.class_names else 0
        batch = min(batch, backend.max_batch)
        for i in progress_bar(range(0, len(records), batch), desc=Path(str(backend.artifact)).name, unit="batch",
                              leave=False):
            chunk = records[i:i + batch]
            images = [cv2.imread(str(r.image_path), cv2.IMREAD_COLOR) for r in chunk]
            t0 = time.perf_counter()
            dets = det.detect_batch(images)
            seconds += time.perf_counter() - t0
            for r, d, img in zip(chunk, dets, images):
                keep = d.labels == person
                out[r.image_id] = OdgtDetections(r.image_id, d.boxes[keep].astype(np.float64),
                                                 d.scores[keep].astype(np.float64), img.shape[1], img.shape[0])
    return out, seconds


def check_gate_data(data):
    """DIR/annotations.odgt, or InputError naming what --gate lacks."""
    gt = Path(data) / "annotations.odgt"
    if not gt.is_file():
        raise InputError(f"--gate {data}: expected {gt} and {Path(data) / 'images'} (as detrt synth writes them)")
    return gt


def run_gate(artifact, reference, data, threads=None, log=print):
    """Gate `artifact` against the FP32 `reference` on `data` (a folder with annotations.odgt and images/);
    write the result into the artifact's manifest and return it."""
    gt = check_gate_data(data)
    records = read_gt(gt, Path(data) / "images")
    metrics, ms = {}, {}
    for path in (reference, artifact):
        with open_backend(path, threads=threads, gated=False, notice=log) as backend:
            backend.warmup(iterations=1, batch=1)
            dets, seconds = detect_all(backend, records)
        metrics[path] = evaluate(records, dets, gt_path=str(gt))
        ms[path] = 1000 * seconds / len(records)
    got, ref = metrics[artifact], metrics[reference]
    gate = {"images": len(records), "data": Path(data).name, "ap": got["AP"], "mr2": got["MR2"],
            "ap_delta": got["AP"] - ref["AP"], "mr2_delta": got["MR2"] - ref["MR2"],
            "ms_per_image": ms[artifact], "reference_ms_per_image": ms[reference]}
    gate["passed"] = bool(gate["ap_delta"] >= -MAX_AP_DROP and gate["mr2_delta"] <= MAX_MR2_RISE)
    manifest = load_manifest(artifact)
    manifest.gate = gate
    if manifest.parent:  # recorded relative to the artifact's folder; save_manifest takes it from the cwd
        manifest.parent = str(Path(artifact).parent / manifest.parent)
    save_manifest(manifest, artifact)
    if log:
        log(f"accuracy gate {'passed' if gate['passed'] else 'FAILED'}: AP {100 * got['AP']:.2f} "
            f"({100 * gate['ap_delta']:+.2f}), MR-2 {100 * got['MR2']:.2f} ({100 * gate['mr2_delta']:+.2f}) vs "
            f"{Path(reference).name} on {len(records)} images (limits -{100 * MAX_AP_DROP:.1f} / "
            f"+{100 * MAX_MR2_RISE:.1f}); {gate['ms_per_image']:.1f} vs {gate['reference_ms_per_image']:.1f} "
            f"ms/image -> {manifest_path(artifact)}")
    return gate
