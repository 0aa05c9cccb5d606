"""Training checkpoints: safetensors and JSON only (never pickle), each directory replaced atomically.

A checkpoint directory holds
- `checkpoint.safetensors`: the model's state dict (what `detrt export` and
  `detrt.models.checkpoint.model_from_checkpoint` load; float16 tensors are cast back to float32 on load);
- `checkpoint.json`: {"config": the DetrConfig as a dict, "epoch", "step", "metrics", "seed",
  "detrt_version", ...};
- for `--resume` only: `train_state.safetensors` (optimizer tensors, flattened as optimizer.state.<i>.<name>,
  and the torch RNG state) and `train_state.json` (optimizer scalars and param groups, the LR schedule,
  Python/numpy RNG states, the position in the epoch).
The directory is written beside its final place and renamed onto it, so a crash leaves the previous
checkpoint whole.
"""

import json
import math
import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch

from detrt.atomic import _umask
from detrt.errors import InputError
from detrt.models import checkpoint as model_checkpoint
from detrt.models.checkpoint import META, WEIGHTS

STATE, STATE_META = "train_state.safetensors", "train_state.json"


def unwrap(model):
    """The model inside a DistributedDataParallel wrapper (or the model itself)."""
    return model.module if hasattr(model, "module") else model


def _json_safe(value):
    """NaN/inf -> None (strict JSON), tuples -> lists, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        return _json_safe(value.item())
    return value


def model_tensors(model, half=False):
    """{name: contiguous CPU tensor} of the model's state dict; half: floating tensors as float16."""
    out = {}
    for k, v in unwrap(model).state_dict().items():
        v = v.detach().cpu()
        out[k] = (v.half() if half and v.is_floating_point() else v).contiguous()
    return out


def save_checkpoint(directory, model, meta, optimizer=None, scheduler=None, train_meta=None, half=False):
    """Write a checkpoint directory (see the module docstring); meta is merged into checkpoint.json after
    the config and version. With an optimizer, the resume state is written too."""
    from safetensors.torch import save_file

    import detrt

    directory = Path(directory)
    tmp = directory.parent / f".{directory.name}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
    except OSError as e:
        raise InputError(f"{directory}: cannot write a checkpoint here ({e.strerror or e})") from None
    try:
        save_file(model_tensors(model, half), str(tmp / WEIGHTS), metadata={"format": "pt"})
        info = {"config": unwrap(model).config.to_dict(), "detrt_version": detrt.__version__, **meta}
        (tmp / META).write_text(json.dumps(_json_safe(info), indent=1) + "\n")
        if optimizer is not None:
            tensors, state_meta = optimizer_tensors(optimizer.state_dict())
            tensors["rng.torch"] = torch.get_rng_state()
            state_meta.update(scheduler=scheduler.state_dict() if scheduler is not None else None,
                              rng=rng_states(), **(train_meta or {}))
            save_file(tensors, str(tmp / STATE))
            (tmp / STATE_META).write_text(json.dumps(_json_safe(state_meta)) + "\n")
        mode = 0o666 & ~_umask()  # safetensors creates 0600 files; a checkpoint gets the usual permissions
        for f in tmp.iterdir():
            os.chmod(f, mode)
        old = directory.parent / f".{directory.name}.old{os.getpid()}"
        if directory.exists():
            os.replace(directory, old)
        os.replace(tmp, directory)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return directory


def optimizer_tensors(state_dict):
    """optimizer.state_dict() -> ({flat name: tensor}, JSON-able rest)."""
    tensors, scalars = {}, {}
    for index, state in state_dict["state"].items():
        for name, value in state.items():
            if torch.is_tensor(value):
                tensors[f"optimizer.state.{index}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(index), {})[name] = value
    return tensors, {"optimizer": {"scalars": scalars, "param_groups": state_dict["param_groups"]}}


def optimizer_state_dict(tensors, state_meta):
    """Inverse of optimizer_tensors."""
    state = {}
    for key, value in tensors.items():
        if key.startswith("optimizer.state."):
            index, name = key[len("optimizer.state."):].split(".", 1)
            state.setdefault(int(index), {})[name] = value
    for index, values in state_meta["optimizer"]["scalars"].items():
        state.setdefault(int(index), {}).update(values)
    # JSON turned tuples (betas) into lists; "params" is a list of indices
    groups = [{k: tuple(v) if isinstance(v, list) and k != "params" else v for k, v in g.items()}
              for g in state_meta["optimizer"]["param_groups"]]
    return {"state": state, "param_groups": groups}


def rng_states():
    py = random.getstate()
    npy = np.random.get_state()
    return {"python": [py[0], list(py[1]), py[2]],
            "numpy": [npy[0], npy[1].tolist(), int(npy[2]), int(npy[3]), float(npy[4])]}


def set_rng_states(states, torch_state=None):
    py = states["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    npy = states["numpy"]
    np.random.set_state((npy[0], np.asarray(npy[1], dtype=np.uint32), npy[2], npy[3], npy[4]))
    if torch_state is not None:
        torch.set_rng_state(torch_state)


def load_weights(path, model):
    """Load a checkpoint's weights into `model` (DDP-wrapped or not); returns checkpoint.json as a dict."""
    return model_checkpoint.load_weights(path, unwrap(model))


def read_state_meta(path):
    """train_state.json of a checkpoint directory, checked to hold what resuming reads."""
    path = Path(path)
    if not (path / STATE).is_file() or not (path / STATE_META).is_file():
        raise InputError(f"{path}: no {STATE}/{STATE_META} to resume from (a bundled or fp16 copy?)")
    try:
        state_meta = json.loads((path / STATE_META).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{path / STATE_META}: not valid JSON, truncated? ({e})") from None
    missing = [k for k in ("optimizer", "rng", "step", "epoch", "batch_in_epoch")
               if not isinstance(state_meta, dict) or k not in state_meta]
    if missing:
        raise InputError(f"{path / STATE_META}: resume state lacks {', '.join(missing)}")
    return state_meta


def load_train_state(path, optimizer, scheduler):
    """Restore optimizer, scheduler and RNG states of a checkpoint directory; returns train_state.json."""
    path = Path(path)
    state_meta = read_state_meta(path)
    tensors = model_checkpoint.read_safetensors(path / STATE)
    try:
        optimizer.load_state_dict(optimizer_state_dict(tensors, state_meta))
    except (ValueError, KeyError) as e:
        raise InputError(f"{path}: optimizer state does not fit this model ({e})") from None
    if scheduler is not None and state_meta.get("scheduler"):
        sched = dict(state_meta["scheduler"])
        sched.pop("lr_lambdas", None)  # functions are rebuilt, not stored
        scheduler.load_state_dict({**scheduler.state_dict(), **sched})
    set_rng_states(state_meta["rng"], tensors.get("rng.torch"))
    return state_meta
