"""The checkpoint format: save/load round trip (identical outputs), export's loader reads it, float16 copies, a
checkpoint of another config names what differs."""

import json

import pytest
import torch

from detrt.errors import InputError
from detrt.models import build_model
from detrt.models import checkpoint as ckpt
from detrt.models.checkpoint import model_from_checkpoint
from tests.helpers.tiny_training import tiny_config, trained_model


def outputs(model, seed=1):
    images = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        out = model.eval()(images)
    return out["pred_logits"], out["pred_boxes"]


def test_round_trip_gives_identical_outputs(tmp_path):
    model = trained_model()
    meta = {"epoch": 3, "step": 120, "metrics": {"AP": 0.5, "MR2": float("nan")}}
    ckpt.save_checkpoint(tmp_path / "last", model, meta)
    info = json.loads((tmp_path / "last" / ckpt.META).read_text())  # strict JSON: NaN written as null
    assert info["step"] == 120 and info["metrics"] == {"AP": 0.5, "MR2": None}
    assert info["config"]["name"] == "dhdetr_r18_tiny" and info["config"]["input_size"] == [64, 96]
    assert "detrt_version" in info
    fresh = build_model(tiny_config())
    ckpt.load_weights(tmp_path / "last", fresh)
    for a, b in zip(outputs(model), outputs(fresh)):
        assert torch.equal(a, b)
    # export's loader builds the same model from checkpoint.json alone
    exported, cfg = model_from_checkpoint(tmp_path / "last")
    assert cfg == model.config
    for a, b in zip(outputs(model), outputs(exported)):
        assert torch.equal(a, b)


def test_float16_copy_loads_as_float32(tmp_path):
    model = trained_model()
    ckpt.save_checkpoint(tmp_path / "half", model, {}, half=True)
    from safetensors.torch import load_file

    assert load_file(str(tmp_path / "half" / ckpt.WEIGHTS))["class_embed.0.weight"].dtype == torch.float16
    for loader in (lambda: (ckpt.load_weights(tmp_path / "half", m := build_model(tiny_config())), m)[1],
                   lambda: model_from_checkpoint(tmp_path / "half")[0]):
        loaded = loader()
        assert loaded.class_embed[0].weight.dtype == torch.float32
        for a, b in zip(outputs(model), outputs(loaded)):
            torch.testing.assert_close(a, b, atol=2e-2, rtol=2e-2)


def test_checkpoint_of_another_config_names_what_differs(tmp_path):
    ckpt.save_checkpoint(tmp_path / "dh", trained_model("dhdetr_r18_tiny"), {})
    other = build_model(tiny_config("deformable_detr_r18_tiny"))
    with pytest.raises(InputError) as e:
        ckpt.load_weights(tmp_path / "dh", other)
    msg = str(e.value)
    assert "checkpoint of config 'dhdetr_r18_tiny' does not fit config 'deformable_detr_r18_tiny'" in msg
    assert "dcg_layers (2 vs 0)" in msg and "decoder_self_attn (False vs True)" in msg
    assert "missing keys: bbox_embed.2.layers.* (6), bbox_embed.3.layers.* (6), " in msg
    assert "transformer.decoder.1.self_attn.* (4)" in msg
    assert "unexpected keys: transformer.decoder.1.dcg.* (12), transformer.decoder.2.dcg.* (12)" in msg
    assert "description" not in msg
    # another width: keys of another shape, and the field that explains it
    with pytest.raises(InputError, match=r"hidden_dim \(32 vs 64\).*keys of another shape"):
        ckpt.load_weights(tmp_path / "dh", build_model(tiny_config(hidden_dim=64)))


def test_missing_or_broken_checkpoint_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="checkpoint not found"):
        ckpt.load_weights(tmp_path / "nope", build_model(tiny_config()))
    (tmp_path / "bad").mkdir()
    with pytest.raises(InputError, match="no checkpoint.safetensors"):
        ckpt.load_weights(tmp_path / "bad", build_model(tiny_config()))
    (tmp_path / "bad" / ckpt.WEIGHTS).write_bytes(b"")
    (tmp_path / "bad" / ckpt.META).write_text("{}")
    with pytest.raises(InputError, match="needs a \"config\" key"):
        ckpt.load_weights(tmp_path / "bad", build_model(tiny_config()))
