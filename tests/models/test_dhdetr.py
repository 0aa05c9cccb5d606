"""DH-DETR end to end on small inputs: outputs, DCG rules at model level, a training step, save/load, configs."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from detrt.errors import InputError
from detrt.models import DetrConfig, build_criterion, build_model, build_postprocess, get_config, list_configs
from detrt.models.dhdetr import PostProcess

SIZE = (128, 160)  # 16x20 + 8x10 + 4x5 + 2x3 = 426 tokens >= queries


def small(name, **kw):
    torch.manual_seed(0)
    return build_model(name, input_size=SIZE, num_queries=50, **kw)


def batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(2, 3, *SIZE, generator=g)
    targets = [
        {"boxes": torch.tensor([[0.3, 0.4, 0.1, 0.3], [0.34, 0.42, 0.1, 0.3], [0.7, 0.5, 0.2, 0.4]]),
         "labels": torch.zeros(3, dtype=torch.int64), "ignore_boxes": torch.tensor([[0.9, 0.15, 0.15, 0.2]])},
        {"boxes": torch.tensor([[0.5, 0.5, 0.2, 0.5]]), "labels": torch.zeros(1, dtype=torch.int64),
         "ignore_boxes": torch.zeros(0, 4)},
    ]
    return images, targets


@pytest.mark.parametrize("name", ["dhdetr_r18_tiny", "deformable_detr_r18_tiny"])
def test_output_contract(name):
    model = small(name).eval()
    images, _ = batch()
    with torch.no_grad():
        out = model(images)
    assert out["pred_logits"].shape == (2, 50, 1) and out["pred_boxes"].shape == (2, 50, 4)
    assert len(out["aux_outputs"]) == 2
    assert out["enc_outputs"]["pred_logits"].shape == (2, 426, 1)
    boxes = out["pred_boxes"]
    assert ((boxes >= 0) & (boxes <= 1)).all()
    dcg = name.startswith("dhdetr")
    assert ("query_mask" in out) == dcg
    if dcg:
        # DCG layers keep the boxes of decoder layer 0; dropped queries get -inf logits
        torch.testing.assert_close(out["pred_boxes"], out["aux_outputs"][0]["pred_boxes"])
        assert torch.equal(torch.isinf(out["pred_logits"][..., 0]), ~out["query_mask"])
        layer0_scores = out["aux_outputs"][0]["pred_logits"].sigmoid().amax(-1)
        assert torch.equal(out["aux_outputs"][1]["query_mask"], layer0_scores > 0.05)
    else:
        assert all(hasattr(layer, "self_attn") for layer in model.transformer.decoder)


def test_postprocess_sorted_and_scaled():
    model = small("deformable_detr_r18_tiny").eval()
    images, _ = batch()
    with torch.no_grad():
        out = model(images)
        det = build_postprocess("deformable_detr_r18_tiny", num_select=10)(out, torch.tensor([SIZE, SIZE]))
    assert det["scores"].shape == (2, 10) and det["labels"].dtype == torch.int64 and det["boxes"].shape == (2, 10, 4)
    assert (det["scores"][:, :-1] >= det["scores"][:, 1:]).all()
    best = out["pred_logits"][0, :, 0].argmax()
    cx, cy, w, h = out["pred_boxes"][0, best].tolist()
    H, W = SIZE
    expected = torch.tensor([(cx - w / 2) * W, (cy - h / 2) * H, (cx + w / 2) * W, (cy + h / 2) * H])
    torch.testing.assert_close(det["boxes"][0, 0], expected)


def test_postprocess_score_floor_zeroes_lower_scores():
    logits = torch.logit(torch.tensor([[[0.9], [0.04], [0.3], [0.06], [0.01]]]))
    boxes = torch.full((1, 5, 4), 0.5)
    det = PostProcess(num_select=4, score_floor=0.05)({"pred_logits": logits, "pred_boxes": boxes},
                                                      torch.tensor([[10, 10]]))
    # kept: the top 4 of 5 (0.01 is gone); 0.04 is under the floor and scores 0, its box and label stay
    torch.testing.assert_close(det["scores"][0], torch.tensor([0.9, 0.3, 0.06, 0.0]))
    assert det["labels"][0].tolist() == [0, 0, 0, 0]
    assert det["labels"].shape == (1, 4) and det["boxes"].shape == (1, 4, 4)


def test_paper_protocol_in_the_crowdhuman_configs():
    for name, kept in (("dhdetr_r50_crowdhuman", 500), ("deformable_detr_r50_crowdhuman", 1000)):
        cfg = get_config(name)
        assert (cfg.num_select, cfg.score_floor) == (kept, 0.05) and cfg.num_select == cfg.num_queries
        assert (build_postprocess(name).num_select, build_postprocess(name).score_floor) == (kept, 0.05)
    for name in ("dhdetr_r18_tiny", "deformable_detr_r18_tiny"):
        assert (get_config(name).num_select, get_config(name).score_floor) == (100, 0.0)


def test_config_dict_without_a_newer_field_takes_the_named_configs_value():
    d = get_config("dhdetr_r18_tiny").to_dict()
    del d["score_floor"]  # a checkpoint written before the field existed (the bundled model's)
    assert DetrConfig.from_dict(d).score_floor == 0.0
    d = get_config("dhdetr_r50_crowdhuman").to_dict()
    del d["score_floor"], d["num_select"]
    assert (DetrConfig.from_dict(d).num_select, DetrConfig.from_dict(d).score_floor) == (500, 0.05)
    with pytest.raises(InputError, match="score_floor 1.5 must be in"):
        get_config("dhdetr_r18_tiny", score_floor=1.5)


@pytest.mark.parametrize("name", ["dhdetr_r18_tiny", "deformable_detr_r18_tiny"])
def test_optimizer_step_decreases_loss_on_a_fixed_batch(name):
    model = small(name).train()
    criterion = build_criterion(name)
    images, targets = batch()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def loss():
        losses = criterion(model(images), targets)
        assert all(torch.isfinite(v) for v in losses.values()), losses
        return criterion.total(losses)

    before = loss()
    optimizer.zero_grad()
    before.backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if n.startswith("transformer.encoder."))
    optimizer.step()
    with torch.no_grad():
        after = loss()
    assert after.item() < before.item()


def test_safetensors_round_trip(tmp_path):
    model = small("dhdetr_r18_tiny").eval()
    path = tmp_path / "model.safetensors"
    save_file(model.state_dict(), str(path))
    torch.manual_seed(123)
    fresh = build_model("dhdetr_r18_tiny", input_size=SIZE, num_queries=50).eval()
    missing, unexpected = fresh.load_state_dict(load_file(str(path)))
    assert not missing and not unexpected
    images, _ = batch()
    with torch.no_grad():
        a, b = model(images), fresh(images)
    assert torch.equal(a["pred_logits"], b["pred_logits"]) and torch.equal(a["pred_boxes"], b["pred_boxes"])


def test_configs():
    assert set(list_configs()) >= {"dhdetr_r50_crowdhuman", "deformable_detr_r50_crowdhuman", "dhdetr_r18_tiny",
                                   "deformable_detr_r18_tiny"}
    with pytest.raises(InputError, match="valid: .*dhdetr_r18_tiny"):
        build_model("dhdetr_r99")
    with pytest.raises(InputError, match="unknown config field"):
        get_config("dhdetr_r18_tiny", hidden=3)
    with pytest.raises(InputError, match="multiples of 32"):
        get_config("dhdetr_r18_tiny", input_size=(100, 128))
    with pytest.raises(InputError, match="num_queries"):
        get_config("dhdetr_r18_tiny", input_size=(64, 64))
    cfg = get_config("dhdetr_r50_crowdhuman")
    assert cfg.decoder_kinds == ("plain", "dcg", "dcg") and cfg.num_queries == 500 and cfg.dim_feedforward == 512
    assert get_config("deformable_detr_r18_tiny").decoder_kinds == ("self_attn",) * 3
    assert get_config("dhdetr_r18_tiny").from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(InputError, match="unknown field"):
        cfg.from_dict({**cfg.to_dict(), "foo": 1})
    small_cfg = cfg.replace(name="x", backbone="resnet18", hidden_dim=64, nheads=2, enc_layers=1)
    assert build_model(small_cfg).config.name == "x"


def test_dcg_layers_train_when_active():
    # At initialization every score is ~0.01 < 0.05, so DCG layers drop all queries (as in the reference).
    # With the floor and thresholds at 0 every query and neighbour counts, and DCG weights get gradients.
    model = small("dhdetr_r18_tiny", dcg_floor_score=0.0, dcg_low_score=0.0, dcg_iou_threshold=0.0).train()
    criterion = build_criterion("dhdetr_r18_tiny")
    images, targets = batch()
    out = model(images)
    assert out["query_mask"].all() and torch.isfinite(out["pred_logits"]).all()
    losses = criterion(out, targets)
    assert losses["loss_ce"] > 0 and losses["loss_bbox"] > 0
    criterion.total(losses).backward()
    for i in (1, 2):
        dcg = model.transformer.decoder[i].dcg
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in dcg.parameters()), i
