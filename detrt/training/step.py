"""One optimizer step, one pass over the training batches, and evaluation with the CrowdHuman or COCO metrics.

The training loss is `criterion.total(losses)`: the weighted sum of focal, L1 and GIoU terms of every
decoder layer and the encoder proposals. A non-finite loss stops training with `NonFiniteLoss` before the
optimizer touches the weights, so the weights in memory and the last checkpoint stay good.
"""

import dataclasses
import math

import numpy as np
import torch

from detrt.data.coco import is_coco, result_entries
from detrt.data.crowdhuman import OdgtDetections
from detrt.eval.coco import evaluate as coco_metrics
from detrt.eval.coco import frequency_groups as coco_groups
from detrt.eval.coco import ground_truth as coco_ground_truth
from detrt.eval.coco import image_counts as coco_image_counts
from detrt.eval.crowdhuman import evaluate as crowdhuman_metrics
from detrt.eval.duplicates import duplicate_rate
from detrt.progress import progress_bar

SHOWN = (("loss_ce", "ce"), ("loss_bbox", "l1"), ("loss_giou", "giou"), ("loss_ce_enc", "ce_enc"))


class NonFiniteLoss(RuntimeError):
    """The training loss became NaN or inf: `step` is the optimizer step it happened at (1-based) and
    `losses` the unweighted loss components of that step."""

    def __init__(self, step, losses, note=None):
        self.step, self.losses, self.note = step, losses, note
        bad = [k for k, v in losses.items() if not math.isfinite(v)]
        parts = ", ".join(f"{k}={v:.4g}" for k, v in sorted(losses.items()))
        super().__init__(f"non-finite loss at step {step} (non-finite: {', '.join(bad) or 'the weighted sum'}); "
                         f"loss components: {parts}" + (f"; {note}" if note else ""))


def image_sizes(targets):
    """[B, 2] (h, w) of each image inside its padded input (the dataset's target "size"): the model's `sizes`."""
    return torch.stack([t["size"] for t in targets])


def to_device(targets, device):
    return [{k: v.to(device) for k, v in t.items()} for t in targets]


def train_step(model, criterion, optimizer, images, targets, clip_max_norm=0.0, step=0, check=None):
    """Forward, loss, backward, clip, optimizer step. Returns (total loss, {component: float}).

    Raises NonFiniteLoss (with step + 1) without changing the weights when the loss is not finite.
    check: optional function(flag) -> bool combining the finiteness flag across processes.
    """
    # a denoising model (CQ-DINO) sees the ground truth in training: its noised copies become extra queries
    sizes = image_sizes(targets)
    outputs = model(images, sizes, targets) if criterion.denoising else model(images, sizes)
    bad_outputs = _nan_outputs(outputs)
    if bad_outputs:  # the Hungarian matcher cannot even run on NaN costs
        losses, total = {f"{name} (NaN output)": float("nan") for name in bad_outputs}, torch.tensor(float("nan"))
    else:
        losses = criterion(outputs, targets)
        total = criterion.total(losses)
    finite = bool(torch.isfinite(total))
    if check is not None:
        finite = not check(not finite)
    if not finite:
        values = {k: float(v.detach()) if torch.is_tensor(v) else v for k, v in losses.items()}
        values["total"] = float(total.detach())
        raise NonFiniteLoss(step + 1, values)
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    if clip_max_norm > 0:
        torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], clip_max_norm)
    optimizer.step()
    return float(total.detach()), {k: float(v.detach()) for k, v in losses.items()}


def _nan_outputs(outputs, prefix=""):
    """Names of the model outputs holding NaN (-inf logits of dropped queries are fine)."""
    bad = []
    for key, value in outputs.items():
        if torch.is_tensor(value) and value.is_floating_point() and bool(torch.isnan(value.detach()).any()):
            bad.append(prefix + key)
        elif isinstance(value, dict):
            bad += _nan_outputs(value, f"{prefix}{key}.")
        elif isinstance(value, list):
            for i, v in enumerate(value):
                bad += _nan_outputs(v, f"{prefix}{key}[{i}].")
    return bad


def train_one_epoch(model, criterion, loader, optimizer, scheduler, step, clip_max_norm=0.0, max_steps=None,
                    should_stop=None, on_step=None, check=None, progress=True, desc="train"):
    """Train over the loader's batches from optimizer step `step` (the number of steps done so far).

    Stops before the end at max_steps (total steps done) or when should_stop() says so (checked before each
    step). on_step(step, total, losses, lr) is called after each step (step = steps done).
    Returns (steps done, batches consumed, interrupted: True if it stopped before the loader's end).
    """
    model.train()
    device = next(model.parameters()).device
    bar = progress_bar(loader, show=progress, desc=desc, dynamic_ncols=True, leave=False)
    consumed, interrupted = 0, False
    for images, targets, _ in bar:
        if (max_steps is not None and step >= max_steps) or (should_stop is not None and should_stop()):
            interrupted = True
            break
        total, losses = train_step(model, criterion, optimizer, images.to(device), to_device(targets, device),
                                   clip_max_norm, step, check)
        scheduler.step()
        step += 1
        consumed += 1
        lr = optimizer.param_groups[0]["lr"]
        bar.set_postfix_str(f"loss {total:.3f} " + " ".join(f"{short} {losses[k]:.3f}" for k, short in SHOWN
                                                             if k in losses) + f" lr {lr:.1e}", refresh=False)
        if on_step is not None:
            on_step(step, total, losses, lr)
    bar.close()
    return step, consumed, interrupted


@torch.no_grad()
def predict(model, postprocess, loader, progress=True):
    """(OdgtDetections, labels) in source-image pixels, every detection scoring > 0, for each image of an
    eval loader."""
    model.eval()
    device = next(model.parameters()).device
    out = []
    for images, _, metas in progress_bar(loader, show=progress, desc="eval", dynamic_ncols=True, leave=False):
        # each image's size inside the input, from the letterbox that put it there
        sizes = torch.tensor([[m["transform"].new_h, m["transform"].new_w] for m in metas], dtype=torch.float32,
                             device=device)
        det = postprocess(model(images.to(device), sizes), sizes)
        for i, meta in enumerate(metas):
            scores = det["scores"][i].float().cpu().numpy()
            keep = scores > 0  # queries a DCG layer dropped have logit -inf
            boxes = meta["transform"].to_source(det["boxes"][i].float().cpu().numpy()[keep])
            sh, sw = meta["size"]
            out.append((OdgtDetections(meta["image_id"], boxes.astype(np.float64),
                                       scores[keep].astype(np.float64), width=sw, height=sh),
                        det["labels"][i].cpu().numpy()[keep]))
    return out


def evaluate(model, postprocess, loader, records, progress=True):
    """AP, MR-2, JI (CrowdHuman definitions) and the duplicate rate of the model on an eval loader whose
    dataset holds `records`. Returns a flat dict of floats and counts (+ "detections", the list)."""
    dets = [d for d, _ in predict(model, postprocess, loader, progress)]
    sizes = {d.image_id: (d.width, d.height) for d in dets}
    # the metrics clip to the image: records without a size get the one the dataset read from the file
    records = [r if r.width and r.height else dataclasses.replace(r, width=sizes[r.image_id][0],
                                                                  height=sizes[r.image_id][1])
               for r in records]
    metrics = crowdhuman_metrics(records, dets)
    result = {k: metrics[k] for k in ("AP", "MR2", "JI", "JI_dhdetr", "images", "persons")}
    result.update(duplicate_rate(records, dets))
    result["detections"] = dets
    return result


def evaluate_coco(model, postprocess, loader, gt_path, train_gt=None, progress=True):
    """COCO AP (detrt.eval.coco) of the model on an eval loader over the COCO-format file `gt_path`:
    "AP" (at 100 detections per image, COCO's standard) and every metric at 100 and 300; rare, common and
    frequent categories by their image counts in `train_gt` (the training set's COCO JSON)."""
    gt, vocabulary = coco_ground_truth(gt_path)
    ids = {str(im["id"]): im["id"] for im in gt["images"]}
    entries = []
    for det, labels in predict(model, postprocess, loader, progress):
        entries += result_entries(ids[det.image_id], det.boxes, det.scores, [vocabulary.ids[k] for k in labels])
    groups = coco_groups(gt, coco_image_counts(train_gt) if train_gt is not None else None)
    result = coco_metrics(gt, entries, groups)
    return {"AP": result["AP@100"], **result, "detections": entries}


def validate(model, postprocess, loader, val_data, train_data=None, progress=True):
    """The validation metrics training reports, by the format of `val_data` (the file `loader` reads): COCO AP
    (`evaluate_coco`; rare/common/frequent by the image counts of `train_data`, a COCO .json, when given) or
    CrowdHuman's AP, MR-2, JI and duplicate rate (`evaluate`)."""
    if is_coco(val_data):
        return evaluate_coco(model, postprocess, loader, val_data, train_data, progress)
    return evaluate(model, postprocess, loader, loader.dataset.records, progress)


def metrics_line(m):
    """One line of an evaluation's metrics: CrowdHuman's, or COCO's at 100 and 300 detections per image."""
    if "MR2" in m:
        return (f"AP {100 * m['AP']:.2f} MR-2 {100 * m['MR2']:.2f} JI {100 * m['JI']:.2f} "
                f"duplicate rate {100 * m['duplicate_rate']:.2f}%")
    def pct(v):
        return f"{100 * v:.2f}" if v is not None else "-"

    return (f"AP {pct(m['AP@100'])} / {pct(m['AP@300'])} at 100 / 300 detections, rare AP "
            f"{pct(m['APr@100'])} / {pct(m['APr@300'])}")
