"""benchmarks/pipeline.py runs on any artifact and writes its JSON (smoke test on a probe model)."""

import json
import subprocess
import sys
from pathlib import Path

from tests.helpers.probe_models import make_topk_model

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "pipeline.py"


def test_benchmark_script_smoke(tmp_path):
    make_topk_model(tmp_path / "m.onnx")
    out = tmp_path / "pipeline.json"
    r = subprocess.run([sys.executable, str(SCRIPT), "--model", str(tmp_path / "m.onnx"), "--frames", "24",
                        "--size", "160x96", "--warmUp", "1", "--no-markdown", "--out", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["frames"] == 24 and res["batch"] == 4 and res["backend"] == "onnxruntime"
    assert res["pipeline_fps"] > 0 and res["inference_fps"] > 0
    assert abs(res["ratio"] - res["pipeline_fps"] / res["inference_fps"]) < 1e-9
    assert "| batch | inference FPS" in r.stdout
