"""Data-parallel training under torchrun: one process per device, gloo on CPU, nccl on GPUs.

    torchrun --nproc_per_node 4 -m detrt.cli train --config dhdetr_r18_tiny --data gt.odgt --images imgs/

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; without them training runs in one process and every
helper here is a no-op. Each process reads its shard of every epoch (DistributedSampler, same seed on all
ranks), DistributedDataParallel averages the gradients, and only rank 0 evaluates, logs and writes
checkpoints. The batch size is per process.
"""

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler

from detrt.errors import InputError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"

    @property
    def is_main(self):
        return self.rank == 0

    @property
    def distributed(self):
        return self.world_size > 1


def init_distributed(device=None):
    """Join the torchrun process group if the environment describes one; returns this process's DistInfo.

    device: "cpu", "cuda" or None (cuda when available). The backend follows it: nccl on CUDA, gloo on CPU.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
        raise InputError(f"--device cuda: no usable CUDA GPU here (torch {torch.__version__}, {build}); "
                         f"use --device cpu")
    if device == "cuda":
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo", rank=rank, world_size=world)
    return DistInfo(rank, world, local, device)


def wrap_model(model, info):
    """DistributedDataParallel around the model when running distributed (the model itself otherwise)."""
    if not info.distributed:
        return model
    ids = [info.local_rank] if info.device.startswith("cuda") else None
    return DistributedDataParallel(model, device_ids=ids)


def make_sampler(dataset, info, seed, shuffle=True):
    """DistributedSampler over the dataset (also in one process: its per-epoch permutation is seeded, so
    runs and resumes are reproducible). drop_last keeps every rank's batches equal in number."""
    return DistributedSampler(dataset, num_replicas=info.world_size, rank=info.rank, shuffle=shuffle, seed=seed,
                              drop_last=info.distributed)


def barrier(info):
    if info.distributed:
        dist.barrier()


def any_true(flag, info):
    """True on every rank if `flag` is True on any (so all ranks stop together)."""
    if not info.distributed:
        return bool(flag)
    t = torch.tensor([1.0 if flag else 0.0], device=info.device)
    dist.all_reduce(t)
    return bool(t.item() > 0)


def cleanup(info):
    if info.distributed and dist.is_initialized():
        dist.destroy_process_group()
