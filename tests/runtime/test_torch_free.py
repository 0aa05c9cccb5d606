"""detrt.runtime never imports torch (nor onnx, which the runtime-only install lacks), not even indirectly.

A child interpreter blocks both with a meta-path hook, imports every runtime module, and runs
`detrt run` end to end on a probe model.
"""

import subprocess
import sys
import textwrap

from tests.helpers.probe_models import gradient_frames, make_topk_model, write_video

CHILD = textwrap.dedent("""
    import importlib, importlib.abc, pkgutil, sys

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "onnx", "torchvision"):
                raise ImportError(f"blocked by test: {name}")

    sys.meta_path.insert(0, Block())
    import detrt.runtime, detrt.manifest, detrt.cli
    for m in pkgutil.iter_modules(detrt.runtime.__path__):
        try:
            importlib.import_module("detrt.runtime." + m.name)
        except ImportError as e:  # allowed only for a missing optional extension, never for torch/onnx
            assert "blocked by test" not in str(e), (m.name, e)
    model, clip, out = sys.argv[1:4]
    rc = detrt.cli.main(["run", clip, "--model", model, "--jsonl", out, "--odgt", out + ".odgt", "--out", out + ".mp4"])
    assert rc == 0, rc
    bad = sorted(k for k in sys.modules if k.split(".")[0] in ("torch", "onnx"))
    assert not bad, bad
    print("TORCH-FREE OK", len(open(out).readlines()))
""")


def test_runtime_imports_and_runs_without_torch(tmp_path):
    make_topk_model(tmp_path / "m.onnx")
    write_video(tmp_path / "c.mp4", gradient_frames(6))
    r = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "m.onnx"), str(tmp_path / "c.mp4"),
                        str(tmp_path / "d.jsonl")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "TORCH-FREE OK 6" in r.stdout
