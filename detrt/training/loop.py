"""The training run behind `detrt train`: data, model, optimizer, epochs, evaluation, checkpoints, resume.

    from detrt.training.loop import TrainOptions, fit
    summary = fit(TrainOptions("dhdetr_r18_tiny", "train/annotations.odgt", "train/images",
                               val_data="val/annotations.odgt", val_images="val/images", max_steps=6000))

Output directory: `last/` (after every epoch, every `save_every` steps and at the end; with the resume
state), `best/` (highest validation AP so far), `log.jsonl` (losses every `log_every` steps, evaluations,
the end). Budgets: `epochs`, `max_steps` (optimizer steps) and `time_budget` (minutes), whichever ends
first. The LR drops to 0.1x at `lr_drop_step`; by default at the config's lr_drop/epochs fraction of the
run (of max_steps when given, else of the epochs).

Reproducible with `seed`: model init, the epoch permutation (DistributedSampler), each sample's
augmentation (seeded by seed, epoch and index) and the deterministic CPU kernels. Resuming from `last/`
continues with the same batches, RNG and optimizer state as an uninterrupted run.
"""

import json
import os
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from detrt.atomic import make_dirs
from detrt.errors import InputError
from detrt.models.checkpoint import read_meta
from detrt.training import checkpoint as ckpt
from detrt.training.dataset import Augment, CrowdHumanDataset, collate
from detrt.training.distributed import any_true, barrier, cleanup, init_distributed, make_sampler, wrap_model
from detrt.training.optim import build_optimizer, build_scheduler
from detrt.training.step import NonFiniteLoss, evaluate, train_one_epoch


@dataclass
class TrainOptions:
    """Everything a training run reads; `detrt train` maps its flags onto these fields one to one."""

    config: object  # a config name or a DetrConfig
    data: str  # training ground truth (.odgt)
    images: str  # its images directory
    val_data: str = None
    val_images: str = None
    epochs: int = None  # default: the config's
    batch_size: int = None  # per process; default: the config's
    lr: float = None  # default: the config's (the backbone and sampling-offset rates keep their ratios)
    output: str = "runs/train"
    resume: str = None  # a checkpoint directory written by a previous run (its last/)
    seed: int = 0
    eval_every: int = 1  # epochs between evaluations (and always at the end)
    workers: int = 2
    max_steps: int = None
    time_budget: float = None  # minutes
    backbone_weights: str = None
    lr_drop_step: int = None
    warmup_steps: int = 0
    save_every: int = 0  # steps between extra saves of last/ (0: per epoch only)
    log_every: int = 20
    augment: Augment = field(default_factory=Augment)
    progress: bool = True
    device: str = None  # None: cuda if available
    notes: dict = field(default_factory=dict)  # copied into checkpoint.json (e.g. data seeds)


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _worker_init(worker_id):
    import cv2

    cv2.setNumThreads(1)
    s = torch.initial_seed() % 2**32
    random.seed(s)
    np.random.seed(s)


class SkipSampler(Sampler):
    """The first `skip` indices of an epoch's sampler left out (resuming mid-epoch)."""

    def __init__(self, sampler, skip=0):
        self.sampler, self.skip = sampler, skip

    def __iter__(self):
        it = iter(self.sampler)
        for _ in range(self.skip):
            next(it, None)
        return it

    def __len__(self):
        return max(0, len(self.sampler) - self.skip)


def _loader(dataset, sampler, batch_size, workers, seed):
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers, collate_fn=collate,
                      worker_init_fn=_worker_init, generator=torch.Generator().manual_seed(seed),
                      persistent_workers=False)


def check_options(opts):
    """Refuse values torch would reject with a traceback, or that would train silently wrong, naming the flag."""
    if opts.lr is not None and not 0 < opts.lr < float("inf"):
        raise InputError(f"--lr must be a positive number, got {opts.lr}")
    if opts.time_budget is not None and not opts.time_budget > 0:
        raise InputError(f"--time-budget must be > 0 minutes, got {opts.time_budget}")
    for flag, value, low in (("--epochs", opts.epochs, 1), ("--batch-size", opts.batch_size, 1),
                             ("--eval-every", opts.eval_every, 1), ("--workers", opts.workers, 0),
                             ("--max-steps", opts.max_steps, 1), ("--lr-drop-step", opts.lr_drop_step, 0),
                             ("--warmup-steps", opts.warmup_steps, 0), ("--save-every", opts.save_every, 0),
                             ("--log-every", opts.log_every, 1)):
        if value is not None and value < low:
            raise InputError(f"{flag} must be >= {low}, got {value}")


def worker_error(e):
    """The one line an InputError had in a DataLoader worker: torch raises it again in this process with the
    worker's traceback as its message, whose last line is `detrt.errors.InputError: <the line>`."""
    last = str(e).strip().splitlines()[-1] if str(e).strip() else ""
    prefix = f"{InputError.__module__}.{InputError.__name__}: "
    return InputError(last[len(prefix):]) if last.startswith(prefix) else e


def _read_records(data, images, what, head_ignore=False):
    from detrt.data.crowdhuman import read_gt

    if data is None or images is None:
        raise InputError(f"{what}: give both the annotation file and the images directory")
    if not Path(data).exists():
        raise InputError(f"{data}: {what} annotation file not found")
    records = read_gt(data, images, head_ignore=head_ignore)
    if not records:
        raise InputError(f"{data}: no images in the {what} annotation file")
    return records


def _set_determinism(device):
    # CPU kernels are deterministic; on CUDA grid_sample's backward is not, so only warn there.
    if device.startswith("cuda"):
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=device.startswith("cuda"))


class _Log:
    """log.jsonl writer (rank 0 only): one JSON object per line, flushed."""

    def __init__(self, path, enabled):
        self.f = open(path, "a") if enabled else None

    def write(self, **record):
        if self.f:
            self.f.write(json.dumps(ckpt._json_safe(record)) + "\n")
            self.f.flush()

    def close(self):
        if self.f:
            self.f.close()


def fit(opts):
    """Run training as `opts` says; returns a summary dict (steps, epochs, wall time, final/best metrics)."""
    from detrt.models import build_criterion, build_model, build_postprocess, get_config
    from detrt.models.backbone import load_backbone_weights, scratch_warning

    check_options(opts)
    info = init_distributed(opts.device)
    try:
        cfg = get_config(opts.config)
        records = _read_records(opts.data, opts.images, "training", head_ignore=True)  # the official loader's ignores
        val_records = None
        if opts.val_data or opts.val_images:
            val_records = _read_records(opts.val_data, opts.val_images, "validation")
        out = Path(opts.output)
        if opts.resume is None and (out / "last" / ckpt.META).exists():
            raise InputError(f"{out}: holds a previous run's checkpoint; use --resume {out / 'last'} or another "
                             "--output")
        batch_size = opts.batch_size or cfg.batch_size
        epochs = opts.epochs or cfg.epochs
        _set_determinism(info.device)
        seed_everything(opts.seed)

        model = build_model(cfg).to(info.device)
        if opts.backbone_weights:
            report = load_backbone_weights(model.backbone, opts.backbone_weights)
            if info.is_main:
                print(report)
        elif opts.resume is None and info.is_main and scratch_warning(cfg):
            print(scratch_warning(cfg), file=sys.stderr)
        criterion = build_criterion(cfg)
        optimizer = build_optimizer(model, cfg, opts.lr)

        dataset = CrowdHumanDataset(records, cfg.input_size, cfg.mean, cfg.std, opts.augment, opts.seed)
        sampler = make_sampler(dataset, info, opts.seed)
        steps_per_epoch = -(-len(sampler) // batch_size)
        resumed = {}
        if opts.resume:
            ckpt.load_weights(opts.resume, model)
            resumed = read_meta(opts.resume)
        drop_step = opts.lr_drop_step
        if drop_step is None and opts.resume:
            drop_step = ckpt.read_state_meta(opts.resume).get("drop_step")
        if drop_step is None:
            drop_step = (round(opts.max_steps * cfg.lr_drop / cfg.epochs) if opts.max_steps
                         else cfg.lr_drop * steps_per_epoch)
        scheduler = build_scheduler(optimizer, drop_step, opts.warmup_steps)
        step = epoch = skip = 0
        best = None
        if opts.resume:
            state = ckpt.load_train_state(opts.resume, optimizer, scheduler)
            step, epoch, skip, best = state["step"], state["epoch"], state["batch_in_epoch"], state.get("best")
        model = wrap_model(model, info)
        net = ckpt.unwrap(model)

        val_loader = None
        if val_records is not None:
            val_set = CrowdHumanDataset(val_records, cfg.input_size, cfg.mean, cfg.std, None, opts.seed)
            val_loader = DataLoader(val_set, batch_size=2 * batch_size, num_workers=opts.workers, collate_fn=collate,
                                    worker_init_fn=_worker_init)
        postprocess = build_postprocess(cfg)
        _mkdir(out, info)
        log = _Log(out / "log.jsonl", info.is_main)
        start = time.monotonic()
        wall_before = float(resumed.get("wall_s", 0.0))
        deadline = start + 60 * opts.time_budget if opts.time_budget else None
        history = {"since": step, "sums": {}, "n": 0}

        def meta(metrics):
            return {"epoch": epoch, "step": step, "batch_size": batch_size, "world_size": info.world_size,
                    "seed": opts.seed, "metrics": metrics, "best_metrics": best,
                    "wall_s": wall_before + time.monotonic() - start, "lr_drop_step": drop_step,
                    "data": {"train": str(opts.data), "train_images": len(records),
                             "val": str(opts.val_data) if opts.val_data else None,
                             "val_images": len(val_records) if val_records else 0},
                    "augment": asdict(opts.augment), **opts.notes}

        def save(metrics, position):
            if info.is_main:
                train_meta = {"step": step, "epoch": position[0], "batch_in_epoch": position[1], "best": best,
                              "drop_step": drop_step}
                ckpt.save_checkpoint(out / "last", model, meta(metrics), optimizer, scheduler, train_meta)
            barrier(info)

        def run_eval():
            nonlocal best
            metrics = None
            if val_loader is not None and info.is_main:
                result = evaluate(net, postprocess, val_loader, val_records, opts.progress)
                metrics = {k: v for k, v in result.items() if k != "detections"}
                metrics["step"], metrics["epoch"] = step, epoch
                log.write(event="eval", **metrics)
                if best is None or (metrics["AP"], -_nan_big(metrics["MR2"])) > (best["AP"], -_nan_big(best["MR2"])):
                    best = metrics
                    ckpt.save_checkpoint(out / "best", net, meta(metrics))
                if opts.progress:
                    print(f"step {step} epoch {epoch}: AP {100 * metrics['AP']:.2f} MR-2 {100 * metrics['MR2']:.2f} "
                          f"JI {100 * metrics['JI']:.2f} duplicate rate {100 * metrics['duplicate_rate']:.2f}%",
                          flush=True)
            barrier(info)
            return metrics

        epoch_start = {"step": step, "skip": skip}

        def on_step(s, total, losses, lr):
            sums = history["sums"]
            for k, v in (("loss", total), *losses.items()):
                sums[k] = sums.get(k, 0.0) + v
            history["n"] += 1
            if s % opts.log_every == 0 and log is not None:
                log.write(event="train", step=s, epoch=epoch, lr=lr, time_s=round(time.monotonic() - start, 2),
                          **{k: v / history["n"] for k, v in sums.items()})
                history["sums"], history["n"] = {}, 0
            if opts.save_every and s % opts.save_every == 0:
                save(None, (epoch, epoch_start["skip"] + s - epoch_start["step"]))

        should_stop = (lambda: any_true(time.monotonic() > deadline, info)) if deadline else None
        metrics, evaluated_at = None, None
        try:
            while epoch < epochs and not (opts.max_steps is not None and step >= opts.max_steps):
                sampler.set_epoch(epoch)
                dataset.set_epoch(epoch)
                loader = _loader(dataset, SkipSampler(sampler, skip * batch_size), batch_size, opts.workers,
                                 opts.seed + epoch)
                epoch_start.update(step=step, skip=skip)
                step, consumed, interrupted = train_one_epoch(
                    model, criterion, loader, optimizer, scheduler, step, cfg.clip_max_norm, opts.max_steps,
                    should_stop, on_step, (lambda bad: any_true(bad, info)) if info.distributed else None,
                    opts.progress and info.is_main, desc=f"epoch {epoch + 1}/{epochs}")
                if interrupted:
                    skip += consumed
                    break
                epoch, skip = epoch + 1, 0
                finished = epoch >= epochs or (opts.max_steps is not None and step >= opts.max_steps)
                if not finished and epoch % opts.eval_every == 0:
                    metrics, evaluated_at = run_eval(), step
                if not finished:
                    save(metrics, (epoch, 0))
        except NonFiniteLoss as e:
            last = out / "last"
            kept = (f"last good checkpoint: {last} (step {read_meta(last).get('step')})"
                    if (last / ckpt.META).exists() else "no checkpoint was written before it")
            if log is not None:
                log.write(event="non_finite_loss", step=e.step, losses=e.losses)
            raise NonFiniteLoss(e.step, e.losses, kept) from None
        if evaluated_at != step:
            metrics = run_eval()
        save(metrics, (epoch, skip))
        summary = {"step": step, "epoch": epoch, "batch_in_epoch": skip,
                   "wall_s": wall_before + time.monotonic() - start, "metrics": metrics, "best_metrics": best,
                   "output": str(out), "lr_drop_step": drop_step, "rank": info.rank}
        if log is not None:
            log.write(event="end", **summary)
            log.close()
        return summary
    except InputError as e:
        raise worker_error(e) from None
    finally:
        cleanup(info)


def _nan_big(x):
    return float("inf") if x is None or x != x else x


def _mkdir(out, info):
    if info.is_main:
        make_dirs(out)
    barrier(info)
