"""Checkpoints: save/load round trip (identical outputs), export's loader reads them, float16 copies, a checkpoint
of another config names what differs, optimizer state survives flattening."""

import json

import pytest
import torch

from detrt.models.checkpoint import model_from_checkpoint, read_meta
from detrt.errors import InputError
from detrt.models import build_model
from detrt.training import checkpoint as ckpt
from detrt.training.optim import build_optimizer, build_scheduler
from tests.helpers.tiny_training import tiny_config


def trained_model(name="dhdetr_r18_tiny", seed=0):
    """A tiny model whose weights differ from initialization (so loading is visible)."""
    torch.manual_seed(seed)
    model = build_model(tiny_config(name))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return model.eval()


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


def test_optimizer_state_round_trip_and_directory_replaced(tmp_path):
    model = trained_model()
    cfg = model.config
    opt = build_optimizer(model, cfg)
    sched = build_scheduler(opt, 5)
    images = torch.randn(1, 3, 64, 96)
    for _ in range(2):
        loss = model.train()(images)["pred_boxes"].sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    ckpt.save_checkpoint(tmp_path / "last", model, {"step": 1}, opt, sched, {"step": 2, "epoch": 0,
                                                                             "batch_in_epoch": 2})
    ckpt.save_checkpoint(tmp_path / "last", model, {"step": 2}, opt, sched, {"step": 2, "epoch": 0,
                                                                             "batch_in_epoch": 2})
    assert read_meta(tmp_path / "last")["step"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]  # no temporary directories left
    opt2 = build_optimizer(model, cfg)
    sched2 = build_scheduler(opt2, 5)
    torch.manual_seed(123)  # the RNG state comes back too
    state = ckpt.load_train_state(tmp_path / "last", opt2, sched2)
    assert state["batch_in_epoch"] == 2 and sched2.last_epoch == sched.last_epoch == 2
    a, b = opt.state_dict(), opt2.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for index, values in a["state"].items():
        for k, v in values.items():
            assert torch.equal(v, b["state"][index][k]), (index, k)
