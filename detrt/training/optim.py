"""AdamW with Deformable DETR's parameter groups, and the step LR schedule.

Groups (reference main.py): the backbone at `lr_backbone`; parameters named *sampling_offsets* or
*reference_points* at lr x `lr_linear_proj_mult` (0.1: the sampling positions move slowly); the rest at
lr. Weight decay applies to all of them, as in the reference.
"""

import torch

LINEAR_PROJ_NAMES = ("sampling_offsets", "reference_points")


def param_groups(model, cfg, lr=None):
    """Three AdamW groups of the trainable parameters. `lr` overrides cfg.lr; the backbone's rate keeps
    its ratio to it (cfg.lr_backbone / cfg.lr)."""
    lr = cfg.lr if lr is None else lr
    groups = {"main": [], "backbone": [], "linear_proj": []}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if any(k in name for k in LINEAR_PROJ_NAMES):
            groups["linear_proj"].append(p)
        elif name.startswith("backbone.") or ".backbone." in name:
            groups["backbone"].append(p)
        else:
            groups["main"].append(p)
    rates = {"main": lr, "backbone": lr * cfg.lr_backbone / cfg.lr, "linear_proj": lr * cfg.lr_linear_proj_mult}
    return [{"params": ps, "lr": rates[k], "name": k} for k, ps in groups.items() if ps]


def build_optimizer(model, cfg, lr=None):
    return torch.optim.AdamW(param_groups(model, cfg, lr), lr=cfg.lr if lr is None else lr,
                             weight_decay=cfg.weight_decay)


def lr_factor(step, drop_step, warmup_steps=0):
    """Multiplier of every group's rate at optimizer step `step` (0-based): a linear warm-up over
    warmup_steps, 1 until drop_step, then 0.1."""
    factor = 0.1 if drop_step is not None and step >= drop_step else 1.0
    if warmup_steps and step < warmup_steps:
        factor *= (step + 1) / warmup_steps
    return factor


def build_scheduler(optimizer, drop_step, warmup_steps=0):
    """LambdaLR stepped once per optimizer step (its state_dict is plain JSON: last_epoch is the step)."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, drop_step, warmup_steps))
