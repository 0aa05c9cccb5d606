"""Two processes, gloo, on the CPU: a DistributedDataParallel step gives identical gradients on both ranks, equal
to one process's gradient on the whole batch; a short `fit` runs under the same process group."""

import json
import os
import socket

import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from detrt.models import build_criterion, build_model
from detrt.training.loop import fit
from detrt.training.optim import build_optimizer
from detrt.training.options import TrainOptions
from detrt.training.step import train_step
from tests.helpers.tiny_training import fixed_batch, tiny_config


def fresh(seed=0):
    torch.manual_seed(seed)
    cfg = tiny_config()
    model = build_model(cfg)
    return model, build_criterion(cfg), build_optimizer(model, cfg, lr=1e-3)


def grads(model):
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def _rank(rank, world, port, tmp, data):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    from detrt.training.distributed import init_distributed, wrap_model

    info = init_distributed("cpu")
    model, criterion, optimizer = fresh()
    ddp = wrap_model(model, info)
    images, targets = fixed_batch()
    train_step(ddp, criterion, optimizer, images[rank:rank + 1], targets[rank:rank + 1], clip_max_norm=0.0)
    save_file(grads(model), os.path.join(tmp, f"grads{rank}.safetensors"))
    weights = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(weights, os.path.join(tmp, f"weights{rank}.safetensors"))
    gt, imgs = data
    fit(TrainOptions(tiny_config(), gt, imgs, val_data=gt, val_images=imgs, batch_size=1,
                     output=os.path.join(tmp, "run"), workers=0, max_steps=2, progress=False, log_every=1))


def test_two_process_gloo_step_and_fit(tiny_data, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = tuple(str(p) for p in tiny_data)
    mp.spawn(_rank, args=(2, port, str(tmp_path), data), nprocs=2, join=True)

    g0, g1 = (load_file(str(tmp_path / f"grads{r}.safetensors")) for r in (0, 1))
    assert g0.keys() == g1.keys() and len(g0) > 100
    for k in g0:
        assert torch.equal(g0[k], g1[k]), k  # DDP averaged them: bit-identical on both ranks
    w0, w1 = (load_file(str(tmp_path / f"weights{r}.safetensors")) for r in (0, 1))
    for k in w0:
        assert torch.equal(w0[k], w1[k]), k
    # one process on both images: the same gradient (the criterion normalizes by the boxes of all ranks)
    model, criterion, optimizer = fresh()
    images, targets = fixed_batch()
    train_step(model, criterion, optimizer, images, targets, clip_max_norm=0.0)
    single = grads(model)
    assert single.keys() == g0.keys()
    flat = torch.cat([single[k].flatten() for k in single])
    diff = torch.cat([(g0[k] - single[k]).flatten() for k in single])
    assert diff.norm() <= 1e-4 * flat.norm()  # up to float summation order (a wrong average is off 2x)
    assert diff.abs().max() <= 1e-3 * flat.abs().max()

    info = json.loads((tmp_path / "run" / "last" / "checkpoint.json").read_text())
    assert info["step"] == 2 and info["world_size"] == 2 and info["metrics"]["images"] == 6
