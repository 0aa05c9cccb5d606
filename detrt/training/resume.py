"""The resume state of a training checkpoint: what `--resume` needs beyond the model checkpoint.

A training run's last/ is a model checkpoint (detrt/models/checkpoint.py: checkpoint.safetensors +
checkpoint.json) plus
- `train_state.safetensors`: optimizer tensors, flattened as optimizer.state.<i>.<name>, and the torch RNG state;
- `train_state.json`: optimizer scalars and param groups, the LR schedule, Python/numpy RNG states, the position
  in the run (step, epoch, batch_in_epoch), the best metrics so far and the LR drop step.
Safetensors and JSON only, never pickle. The directory is written whole (detrt.atomic.atomic_dir), so a crash
leaves the previous checkpoint.
"""

import json
import random
from pathlib import Path

import numpy as np
import torch

from detrt.atomic import atomic_dir
from detrt.errors import InputError
from detrt.models.checkpoint import json_safe, read_safetensors, write_checkpoint, write_safetensors

STATE, STATE_META = "train_state.safetensors", "train_state.json"


def save_resumable(directory, model, meta, optimizer, scheduler, position):
    """Write checkpoint directory `directory` whole: the model checkpoint (checkpoint.json gets `meta`) and the
    resume state, with `position` ({"step", "epoch", "batch_in_epoch", ...}) in train_state.json."""
    with atomic_dir(directory) as tmp:
        write_checkpoint(tmp, model, meta)
        tensors, state_meta = optimizer_tensors(optimizer.state_dict())
        tensors["rng.torch"] = torch.get_rng_state()
        state_meta.update(scheduler=scheduler.state_dict(), rng=rng_states(), **position)
        write_safetensors(tensors, tmp / STATE)
        (tmp / STATE_META).write_text(json.dumps(json_safe(state_meta)) + "\n")
    return Path(directory)


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
    tensors = read_safetensors(path / STATE)
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
