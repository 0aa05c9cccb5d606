"""The PyTorch-eager benchmark backend: same outputs as the exported model on ONNX Runtime, same interface."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from detrt.bench.run import open_artifact  # noqa: E402
from detrt.bench.torch_backend import TorchBackend, is_checkpoint  # noqa: E402
from detrt.errors import InputError  # noqa: E402


@pytest.fixture(scope="module")
def checkpoint_and_onnx(tmp_path_factory):
    from safetensors.torch import save_file

    from detrt.compile.export import export_model_to
    from detrt.models.checkpoint import model_from_checkpoint
    from detrt.models import build_model

    d = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    overrides = {"input_size": [128, 192]}
    model = build_model("dhdetr_r18_tiny", input_size=(128, 192)).eval()
    with torch.no_grad():  # at init every score is below DCG's floor (all -inf logits, all ties): spread them
        for name, p in model.named_parameters():
            if name.startswith("class_embed"):
                p.normal_(0, 0.5)
    save_file(model.state_dict(), str(d / "checkpoint.safetensors"))
    (d / "checkpoint.json").write_text(json.dumps({"config": "dhdetr_r18_tiny", "config_overrides": overrides}))
    model, cfg = model_from_checkpoint(d)
    onnx_path = d / "model.onnx"
    export_model_to(model, cfg, onnx_path, form="portable", max_batch=2, log=None)
    return d, onnx_path


def test_same_outputs_as_onnxruntime(checkpoint_and_onnx):
    from detrt.bench.frames import input_batches, synthetic_frames

    ckpt, onnx_path = checkpoint_and_onnx
    eager, kind = open_artifact(f"torch:{ckpt}", threads=2, max_batch=2)
    ort, _ = open_artifact(str(onnx_path), threads=2)
    assert kind == "torch" and isinstance(eager, TorchBackend)
    assert eager.input_shape == (2, 3, 128, 192) and eager.manifest.input_size == ort.manifest.input_size
    x = input_batches(synthetic_frames(4), ort.manifest, 2)[0]
    want, got = ort.infer(x), eager.infer(x)
    assert set(got) == set(want) == {"scores", "labels", "boxes"}
    assert got["labels"].dtype == np.int64 and got["boxes"].shape == want["boxes"].shape
    np.testing.assert_allclose(np.sort(got["scores"]), np.sort(want["scores"]), atol=1e-4)
    # detections whose score is clear of its neighbours must match one for one (ties may swap places)
    s = want["scores"]
    gap = np.minimum(np.abs(np.diff(s, prepend=np.inf)), np.abs(np.diff(s, append=-np.inf))) > 1e-3
    assert gap.sum() > 10
    np.testing.assert_array_equal(got["labels"][gap], want["labels"][gap])
    np.testing.assert_allclose(got["boxes"][gap], want["boxes"][gap], atol=1e-2)  # pixels
    eager.close()
    ort.close()


def test_checkpoint_conventions(checkpoint_and_onnx, tmp_path):
    ckpt, onnx_path = checkpoint_and_onnx
    assert is_checkpoint(f"torch:{ckpt}") and is_checkpoint(ckpt) and is_checkpoint(ckpt / "checkpoint.safetensors")
    assert not is_checkpoint(onnx_path) and not is_checkpoint(tmp_path)
    with pytest.raises(InputError, match="no such checkpoint"):
        TorchBackend.from_checkpoint(f"torch:{tmp_path / 'nothing'}")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"junk")
    (tmp_path / "bad.json").write_text('{"config": "dhdetr_r18_tiny"}')
    with pytest.raises(InputError, match="bad.safetensors"):
        open_artifact(str(bad))
