"""The pieces `detrt demo` wires together: synthetic crowd video -> pipeline -> .odgt scored against its truth."""

import math

from detrt.data.crowdhuman import read_dt, read_gt
from detrt.data.synthetic_video import write_video
from detrt.eval.crowdhuman import evaluate_files
from detrt.runtime.pipeline import run
from detrt.runtime.sinks import JsonlSink, OdgtSink, VideoSink
from tests.helpers.probe_models import make_topk_model


def test_video_run_scores_against_its_ground_truth(tmp_path):
    write_video(tmp_path, 6, progress=False)  # tmp_path/video.mp4 + video.odgt, IDs frame_000000...
    make_topk_model(tmp_path / "m.onnx", input_hw=(320, 512), boxes=[[100, 50, 160, 200], [0, 0, 64, 160]])
    out = tmp_path / "out"
    summary = run(tmp_path / "video.mp4", tmp_path / "m.onnx",
                  [VideoSink(out / "demo.mp4"), JsonlSink(out / "demo.jsonl"), OdgtSink(out / "demo.odgt")],
                  backend="onnxruntime")
    assert summary.frames == 6
    gt, dt = read_gt(tmp_path / "video.odgt"), read_dt(out / "demo.odgt")
    assert [d.image_id for d in dt] == [g.image_id for g in gt]
    result = evaluate_files(tmp_path / "video.odgt", out / "demo.odgt")
    assert 0.0 <= result["AP"] <= 1.0 and not math.isnan(result["MR2"])
    assert (out / "demo.mp4").stat().st_size > 0 and len((out / "demo.jsonl").read_text().splitlines()) == 6
