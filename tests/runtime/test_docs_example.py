"""docs/runtime.md's Python loop runs as written, against a probe model and a generated clip."""

import re
import subprocess
import sys
from pathlib import Path

import cv2

from tests.helpers.probe_models import gradient_frames, make_topk_model, write_video

DOC = Path(__file__).resolve().parents[2] / "docs" / "runtime.md"


def test_python_loop_example(tmp_path):
    code = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S).group(1)
    assert 12 <= len(code.strip().splitlines()) <= 20
    make_topk_model(tmp_path / "model.onnx", bias=[5.0, 4.0, -6.0])
    write_video(tmp_path / "clip.mp4", gradient_frames(8), fps=15)
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stdout.splitlines()
    assert len(lines) == 8 and all(line.startswith("2 people | network ") for line in lines)
    out = cv2.VideoCapture(str(tmp_path / "out.mp4"))
    assert out.get(cv2.CAP_PROP_FRAME_COUNT) == 8
    assert out.get(cv2.CAP_PROP_FPS) == 15  # open_sink was told no rate: it takes the clip's from its frames
