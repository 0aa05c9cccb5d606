"""The training run behind `detrt train`: data, model, optimizer, epochs, evaluation, checkpoints, resume.

    from detrt.training.loop import fit
    from detrt.training.options import TrainOptions
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

`fit` builds a `Run` once (what every step works with) and trains it epoch by epoch (`train_one_epoch`);
`Run.state` is what advances: position, best metrics, time, the losses since the last log line.
"""

import dataclasses
import functools
import json
import os
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from detrt import models
from detrt.atomic import make_dirs
from detrt.data.vocabulary import load_embeddings
from detrt.errors import InputError
from detrt.models import DetrConfig
from detrt.models.backbone import load_backbone_weights, scratch_warning
from detrt.models.checkpoint import META, json_safe, load_weights, read_meta, save_checkpoint
from detrt.training.dataset import CrowdHumanDataset, collate, read_records
from detrt.training.distributed import DistInfo, any_true, barrier, cleanup, init_distributed, make_sampler, wrap_model
from detrt.training.optim import build_optimizer, build_scheduler
from detrt.training.options import TrainOptions, check_options
from detrt.training.resume import load_train_state, read_state_meta, save_resumable
from detrt.training.step import NonFiniteLoss, metrics_line, train_one_epoch, validate


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _worker_init(worker_id):
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


def worker_error(e):
    """The one line an InputError had in a DataLoader worker: torch raises it again in this process with the
    worker's traceback as its message, whose last line is `detrt.errors.InputError: <the line>`."""
    last = str(e).strip().splitlines()[-1] if str(e).strip() else ""
    prefix = f"{InputError.__module__}.{InputError.__name__}: "
    return InputError(last[len(prefix):]) if last.startswith(prefix) else e


def with_vocabulary(cfg, vocabulary):
    """The config with the data's classes (names, hierarchy, dataset ids)."""
    parents = () if vocabulary.is_flat else vocabulary.parents
    return cfg.replace(class_names=vocabulary.names, class_parents=parents, class_ids=vocabulary.ids)


def _set_determinism(device):
    # CPU kernels are deterministic; on CUDA grid_sample's backward is not, so only warn there.
    if device.startswith("cuda"):
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=device.startswith("cuda"))


class Log:
    """log.jsonl writer (rank 0 only): one JSON object per line, flushed."""

    def __init__(self, path, enabled):
        self.f = open(path, "a") if enabled else None

    def write(self, **record):
        if self.f:
            self.f.write(json.dumps(json_safe(record)) + "\n")
            self.f.flush()

    def close(self):
        if self.f:
            self.f.close()


@dataclass
class RunState:
    """Where a run stands: what the loop advances, last/ stores and --resume restores."""

    step: int = 0  # optimizer steps done
    epoch: int = 0  # epochs done
    batch_in_epoch: int = 0  # batches of the current epoch done
    best: dict = None  # metrics of best/
    wall_before: float = 0.0  # seconds spent by the runs this one resumes
    start: float = 0.0  # time.monotonic() when this run began training
    loss_sums: dict = field(default_factory=dict)  # since the last log line
    loss_count: int = 0

    def wall_s(self):
        return self.wall_before + time.monotonic() - self.start


@dataclass
class Run:
    """What a training run works with, built once by `start_run`."""

    opts: TrainOptions  # epochs, batch_size and lr_drop_step filled in from the config
    cfg: DetrConfig
    info: DistInfo
    model: torch.nn.Module  # in DistributedDataParallel when distributed
    net: torch.nn.Module  # the model itself
    criterion: object
    optimizer: torch.optim.Optimizer
    scheduler: object
    dataset: CrowdHumanDataset
    sampler: Sampler
    val_loader: DataLoader  # None without validation data
    postprocess: object
    data: dict  # what checkpoint.json says about the data
    out: Path
    log: Log
    state: RunState


def start_run(opts, info):
    """Read the data, build model, optimizer and schedule (from --resume's last/ when given); a Run."""
    cfg = models.get_config(opts.config)
    # head_ignore: the official CrowdHuman loader's ignores
    records, vocabulary = read_records(opts.data, opts.images, "training", head_ignore=True)
    if vocabulary is not None:
        cfg = models.get_config(with_vocabulary(cfg, vocabulary))
    val_records = None
    if opts.val_data or opts.val_images:
        val_records, val_vocabulary = read_records(opts.val_data, opts.val_images, "validation",
                                                   vocabulary=vocabulary)
        if (val_vocabulary is None) != (vocabulary is None):
            raise InputError(f"{opts.val_data}: validation data in another format than the training data "
                             f"{opts.data} (both .odgt or both COCO .json)")
    embeddings = None
    if opts.embeddings:
        if not cfg.is_cqdino:
            raise InputError(f"--embeddings: config {cfg.name} has no category queries (a CQ-DINO config has)")
        embeddings = load_embeddings(opts.embeddings, cfg.vocabulary)
        if embeddings.shape[1] != cfg.category_dim:
            raise InputError(f"{opts.embeddings}: embeddings of width {embeddings.shape[1]}; config {cfg.name} "
                             f"takes category_dim {cfg.category_dim}")
    out = Path(opts.output)
    if opts.resume is None and (out / "last" / META).exists():
        raise InputError(f"{out}: holds a previous run's checkpoint; use --resume {out / 'last'} or another "
                         "--output")
    augment = dataclasses.replace(opts.augment, scheme=opts.augment.scheme or cfg.augment)
    opts = dataclasses.replace(opts, batch_size=opts.batch_size or cfg.batch_size, epochs=opts.epochs or cfg.epochs,
                               augment=augment)
    _set_determinism(info.device)
    seed_everything(opts.seed)

    model = models.build_model(cfg, embeddings=embeddings).to(info.device)
    if opts.backbone_weights:
        report = load_backbone_weights(model.backbone, opts.backbone_weights)
        if info.is_main:
            print(report)
    elif opts.resume is None and info.is_main and scratch_warning(cfg):
        print(scratch_warning(cfg), file=sys.stderr)
    criterion = models.build_criterion(cfg).to(info.device)  # its buffers (the class tree) beside the outputs
    optimizer = build_optimizer(model, cfg, opts.lr)

    dataset = CrowdHumanDataset(records, cfg.input_size, cfg.mean, cfg.std, opts.augment, opts.seed)
    sampler = make_sampler(dataset, info, opts.seed)
    steps_per_epoch = -(-len(sampler) // opts.batch_size)
    resumed = {}
    if opts.resume:
        resumed = load_weights(opts.resume, model)
    drop_step = opts.lr_drop_step
    if drop_step is None and opts.resume:
        drop_step = read_state_meta(opts.resume).get("drop_step")
    if drop_step is None:
        drop_step = (round(opts.max_steps * cfg.lr_drop / cfg.epochs) if opts.max_steps
                     else cfg.lr_drop * steps_per_epoch)
    opts = dataclasses.replace(opts, lr_drop_step=drop_step)
    scheduler = build_scheduler(optimizer, drop_step, opts.warmup_steps)
    state = RunState(wall_before=float(resumed.get("wall_s", 0.0)))
    if opts.resume:
        saved = load_train_state(opts.resume, optimizer, scheduler)
        state.step, state.epoch, state.batch_in_epoch = saved["step"], saved["epoch"], saved["batch_in_epoch"]
        state.best = saved.get("best")

    val_loader = None
    if val_records is not None:
        val_set = CrowdHumanDataset(val_records, cfg.input_size, cfg.mean, cfg.std, None, opts.seed)
        # its own generator: iterating would otherwise draw from the global RNG, which CQ-DINO's denoising
        # queries use, and an evaluation between epochs would make a resumed run differ
        val_loader = DataLoader(val_set, batch_size=2 * opts.batch_size, num_workers=opts.workers,
                                collate_fn=collate, worker_init_fn=_worker_init,
                                generator=torch.Generator().manual_seed(opts.seed))
    data = {"train": str(opts.data), "train_images": len(records),
            "val": str(opts.val_data) if opts.val_data else None, "val_images": len(val_records) if val_records else 0}
    if info.is_main:
        make_dirs(out)
    barrier(info)
    state.start = time.monotonic()  # the clocks of wall_s and time_budget start here
    return Run(opts, cfg, info, wrap_model(model, info), model, criterion, optimizer, scheduler, dataset, sampler,
               val_loader, models.build_postprocess(cfg), data, out, Log(out / "log.jsonl", info.is_main), state)


def checkpoint_meta(run, metrics):
    """What checkpoint.json records besides the config."""
    opts, state = run.opts, run.state
    return {"epoch": state.epoch, "step": state.step, "batch_size": opts.batch_size,
            "world_size": run.info.world_size, "seed": opts.seed, "metrics": metrics, "best_metrics": state.best,
            "wall_s": state.wall_s(), "lr_drop_step": opts.lr_drop_step, "data": run.data,
            "augment": asdict(opts.augment), **opts.notes}


def save_last(run, metrics):
    """Write last/ with the resume state (rank 0); every rank waits for it."""
    state = run.state
    if run.info.is_main:
        position = {"step": state.step, "epoch": state.epoch, "batch_in_epoch": state.batch_in_epoch,
                    "best": state.best, "drop_step": run.opts.lr_drop_step}
        save_resumable(run.out / "last", run.net, checkpoint_meta(run, metrics), run.optimizer, run.scheduler,
                       position)
    barrier(run.info)


def _better(metrics, best):
    """Higher AP; at equal AP, lower MR-2 (NaN counts as the worst)."""
    def mr2(m):  # COCO-format data has none: AP decides
        return float("inf") if m.get("MR2") is None or m["MR2"] != m["MR2"] else m["MR2"]

    return best is None or (metrics["AP"], -mr2(metrics)) > (best["AP"], -mr2(best))


def evaluate_and_keep_best(run):
    """Evaluate on the validation data (rank 0), log it, write best/ when better; the metrics or None."""
    state, metrics = run.state, None
    if run.val_loader is not None and run.info.is_main:
        result = validate(run.net, run.postprocess, run.val_loader, run.opts.val_data, run.opts.data,
                          run.opts.progress)
        metrics = {k: v for k, v in result.items() if k != "detections"}
        metrics["step"], metrics["epoch"] = state.step, state.epoch
        run.log.write(event="eval", **metrics)
        if _better(metrics, state.best):
            state.best = metrics
            save_checkpoint(run.out / "best", run.net, checkpoint_meta(run, metrics))
        if run.opts.progress:
            print(f"step {state.step} epoch {state.epoch}: {metrics_line(metrics)}", flush=True)
    barrier(run.info)
    return metrics


def after_step(run, step, total, losses, lr):
    """Advance the position, log the mean losses every log_every steps, save last/ every save_every steps."""
    state, opts = run.state, run.opts
    state.step, state.batch_in_epoch = step, state.batch_in_epoch + 1
    for k, v in (("loss", total), *losses.items()):
        state.loss_sums[k] = state.loss_sums.get(k, 0.0) + v
    state.loss_count += 1
    if step % opts.log_every == 0:
        run.log.write(event="train", step=step, epoch=state.epoch, lr=lr,
                      time_s=round(time.monotonic() - state.start, 2),
                      **{k: v / state.loss_count for k, v in state.loss_sums.items()})
        state.loss_sums, state.loss_count = {}, 0
    if opts.save_every and step % opts.save_every == 0:
        save_last(run, None)


def _finished(run):
    opts, state = run.opts, run.state
    return state.epoch >= opts.epochs or (opts.max_steps is not None and state.step >= opts.max_steps)


def train(run):
    """Train epoch by epoch until a budget ends (evaluating every eval_every epochs and saving last/ after
    each); then evaluate unless that just happened, and save last/. Returns the last metrics."""
    opts, state, info = run.opts, run.state, run.info
    deadline = state.start + 60 * opts.time_budget if opts.time_budget else None
    should_stop = (lambda: any_true(time.monotonic() > deadline, info)) if deadline else None
    metrics, evaluated_at = None, None
    while not _finished(run):
        run.sampler.set_epoch(state.epoch)
        run.dataset.set_epoch(state.epoch)
        loader = _loader(run.dataset, SkipSampler(run.sampler, state.batch_in_epoch * opts.batch_size),
                         opts.batch_size, opts.workers, opts.seed + state.epoch)
        _, _, interrupted = train_one_epoch(
            run.model, run.criterion, loader, run.optimizer, run.scheduler, state.step, run.cfg.clip_max_norm,
            opts.max_steps, should_stop, functools.partial(after_step, run),
            (lambda bad: any_true(bad, info)) if info.distributed else None, opts.progress and info.is_main,
            desc=f"epoch {state.epoch + 1}/{opts.epochs}")
        if interrupted:
            break
        state.epoch, state.batch_in_epoch = state.epoch + 1, 0
        if not _finished(run):
            if state.epoch % opts.eval_every == 0:
                metrics, evaluated_at = evaluate_and_keep_best(run), state.step
            save_last(run, metrics)
    if evaluated_at != state.step:
        metrics = evaluate_and_keep_best(run)
    save_last(run, metrics)
    return metrics


def fit(opts):
    """Run training as `opts` says; returns a summary dict (steps, epochs, wall time, final/best metrics)."""
    check_options(opts)
    info = init_distributed(opts.device)
    try:
        run = start_run(opts, info)
        try:
            metrics = train(run)
        except NonFiniteLoss as e:
            last = run.out / "last"
            kept = (f"last good checkpoint: {last} (step {read_meta(last).get('step')})"
                    if (last / META).exists() else "no checkpoint was written before it")
            run.log.write(event="non_finite_loss", step=e.step, losses=e.losses)
            raise NonFiniteLoss(e.step, e.losses, kept) from None
        state = run.state
        summary = {"step": state.step, "epoch": state.epoch, "batch_in_epoch": state.batch_in_epoch,
                   "wall_s": state.wall_s(), "metrics": metrics, "best_metrics": state.best,
                   "output": str(run.out), "lr_drop_step": run.opts.lr_drop_step, "rank": info.rank}
        run.log.write(event="end", **summary)
        run.log.close()
        return summary
    except InputError as e:
        raise worker_error(e) from None
    finally:
        cleanup(info)
