"""A release copy of a trained checkpoint: float16 weights (half the size; loading casts to float32) and a
checkpoint.json with the validation metrics measured on exactly those weights.

    from detrt.training.release import release_checkpoint
    release_checkpoint("runs/tiny/last", "detrt/assets/dhdetr_r18_tiny", "val/annotations.odgt", "val/images",
                       notes={"data": {...}})
    release_checkpoint("runs/cq/last", "detrt/assets/cqdino_tiny", "val/annotations.json", "val/images",
                       train_data="train/annotations.json")  # COCO AP; rare classes by training image counts
"""

from detrt.models import build_postprocess
from detrt.models.checkpoint import model_from_checkpoint, read_meta, save_checkpoint
from detrt.training.dataset import eval_loader, read_records
from detrt.training.step import validate


def evaluate_checkpoint(path, val_data, val_images, train_data=None, batch_size=4, workers=0, progress=True):
    """A checkpoint's validation metrics (letterbox only, as at runtime), as training reports them: AP, MR-2,
    JI and the duplicate rate on CrowdHuman .odgt; COCO AP at 100 and 300 detections on COCO .json, rare,
    common and frequent classes by the image counts of `train_data` (the training set's .json) when given."""
    model, cfg = model_from_checkpoint(path)
    records = read_records(val_data, val_images, "validation", vocabulary=cfg.vocabulary)[0]
    loader = eval_loader(records, cfg, batch_size, workers)
    result = validate(model, build_postprocess(cfg), loader, val_data, train_data, progress)
    return {k: v for k, v in result.items() if k != "detections"}


def release_checkpoint(src, dst, val_data=None, val_images=None, half=True, notes=None, train_data=None):
    """Write `dst` (checkpoint.safetensors + checkpoint.json, no resume state) from checkpoint `src`.

    With a validation set, the copy is evaluated after the float16 rounding and its metrics replace
    "metrics" in checkpoint.json (the run's own float32 figures stay under "metrics_float32").
    Returns the written checkpoint.json as a dict.
    """
    info = read_meta(src)
    model, _ = model_from_checkpoint(src)
    meta = {k: v for k, v in info.items() if k not in ("config", "detrt_version")}
    meta["metrics_float32"] = meta.pop("metrics", None)
    meta.update(weights_dtype="float16" if half else "float32", **(notes or {}))
    save_checkpoint(dst, model, meta, half=half)
    if val_data:
        metrics = evaluate_checkpoint(dst, val_data, val_images, train_data)
        meta["metrics"] = metrics
        meta["metrics_data"] = str(val_data)
        save_checkpoint(dst, model, meta, half=half)
    return read_meta(dst)
