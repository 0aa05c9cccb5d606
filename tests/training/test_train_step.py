"""A few optimizer steps on one fixed batch lower the loss; a NaN loss raises before the weights change;
the optimizer's parameter groups."""

import math

import pytest
import torch

from detrt.models import build_criterion, build_model
from detrt.training.optim import build_optimizer, build_scheduler, lr_factor, param_groups
from detrt.training.step import NonFiniteLoss, train_step
from tests.helpers.tiny_training import NaNCriterion, fixed_batch, tiny_config


def comparable_loss(losses, criterion, cfg):
    """The weighted loss without the DCG layers' terms: those count only queries whose previous-layer score
    passes 0.05 (none at initialization), so their sum grows as queries wake up."""
    kinds = cfg.decoder_kinds
    suffixes = {"" if i == len(kinds) - 1 else f"_{i}" for i, kind in enumerate(kinds) if kind == "dcg"}
    dcg_keys = {base + s for base in ("loss_ce", "loss_bbox", "loss_giou") for s in suffixes}
    return sum(losses[k] * w for k, w in criterion.weight_dict.items() if k not in dcg_keys)


@pytest.mark.parametrize("name", ["dhdetr_r18_tiny", "deformable_detr_r18_tiny"])
def test_steps_on_a_fixed_batch_lower_the_loss(name):
    torch.manual_seed(0)
    cfg = tiny_config(name)
    model, criterion = build_model(cfg), build_criterion(cfg)
    optimizer = build_optimizer(model, cfg, lr=3e-3)
    images, targets = fixed_batch()
    steps = [train_step(model, criterion, optimizer, images, targets, clip_max_norm=0.1, step=i) for i in range(16)]
    assert all(math.isfinite(total) for total, _ in steps)
    first, last = (comparable_loss(steps[i][1], criterion, cfg) for i in (0, -1))
    assert last < 0.7 * first, [round(comparable_loss(s[1], criterion, cfg), 2) for s in steps]
    if name == "deformable_detr_r18_tiny":  # no DCG: the whole training loss is comparable
        assert steps[-1][0] < 0.7 * steps[0][0]


def test_non_finite_loss_raises_with_step_and_components_and_leaves_weights():
    torch.manual_seed(0)
    cfg = tiny_config()
    model, criterion = build_model(cfg), build_criterion(cfg)
    optimizer = build_optimizer(model, cfg)
    images, targets = fixed_batch()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(NonFiniteLoss, match=r"non-finite loss at step 5 \(non-finite: loss_bbox, total\).*"
                                            r"loss_bbox=nan") as e:
        train_step(model, NaNCriterion(criterion, "loss_bbox"), optimizer, images, targets, step=4)
    assert e.value.step == 5 and math.isnan(e.value.losses["loss_bbox"]) and math.isfinite(e.value.losses["loss_ce"])
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_nan_model_outputs_stop_before_the_matcher():
    torch.manual_seed(0)
    cfg = tiny_config()
    model, criterion = build_model(cfg), build_criterion(cfg)
    optimizer = build_optimizer(model, cfg)
    images, targets = fixed_batch()
    images[0, 0, 0, 0] = float("nan")  # a corrupt input (or blown-up weights): every output is NaN
    with pytest.raises(NonFiniteLoss, match=r"non-finite loss at step 1 .*pred_boxes \(NaN output\)=nan"):
        train_step(model, criterion, optimizer, images, targets)


def test_parameter_groups_follow_the_paper():
    cfg = tiny_config(lr=2e-4, lr_backbone=2e-5, lr_linear_proj_mult=0.1)
    model = build_model(cfg)
    groups = {g["name"]: g for g in param_groups(model, cfg)}
    names = {id(p): n for n, p in model.named_parameters()}
    assert groups["main"]["lr"] == 2e-4 and groups["backbone"]["lr"] == pytest.approx(2e-5)
    assert groups["linear_proj"]["lr"] == pytest.approx(2e-5)
    assert all(names[id(p)].startswith("backbone.") for p in groups["backbone"]["params"])
    assert all("sampling_offsets" in names[id(p)] or "reference_points" in names[id(p)]
               for p in groups["linear_proj"]["params"])
    assert sum(len(g["params"]) for g in groups.values()) == sum(p.requires_grad for p in model.parameters())
    # --lr scales all three, keeping the ratios
    scaled = {g["name"]: g["lr"] for g in param_groups(model, cfg, lr=1e-3)}
    assert scaled == pytest.approx({"main": 1e-3, "backbone": 1e-4, "linear_proj": 1e-4})


def test_lr_schedule_drops_once():
    assert [lr_factor(s, 3) for s in range(5)] == [1, 1, 1, 0.1, 0.1]
    assert [lr_factor(s, 10, warmup_steps=4) for s in range(5)] == [0.25, 0.5, 0.75, 1, 1]
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([p], lr=1.0)
    sched = build_scheduler(opt, 2)
    seen = []
    for _ in range(4):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx([1, 1, 0.1, 0.1])
