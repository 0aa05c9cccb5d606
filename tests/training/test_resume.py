"""The resume state: optimizer, schedule and RNG survive flattening into safetensors + JSON; the directory is
replaced whole."""

import torch

from detrt.models.checkpoint import read_meta
from detrt.training.optim import build_optimizer, build_scheduler
from detrt.training.resume import load_train_state, save_resumable
from tests.helpers.tiny_training import trained_model


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
    position = {"step": 2, "epoch": 0, "batch_in_epoch": 2}
    save_resumable(tmp_path / "last", model, {"step": 1}, opt, sched, position)
    save_resumable(tmp_path / "last", model, {"step": 2}, opt, sched, position)
    assert read_meta(tmp_path / "last")["step"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]  # no temporary directories left
    opt2 = build_optimizer(model, cfg)
    sched2 = build_scheduler(opt2, 5)
    torch.manual_seed(123)  # the RNG state comes back too
    state = load_train_state(tmp_path / "last", opt2, sched2)
    assert state["batch_in_epoch"] == 2 and sched2.last_epoch == sched.last_epoch == 2
    a, b = opt.state_dict(), opt2.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for index, values in a["state"].items():
        for k, v in values.items():
            assert torch.equal(v, b["state"][index][k]), (index, k)
