"""The model checkpoint format: `checkpoint.safetensors` (the state dict) + `checkpoint.json` (its config).

    save_checkpoint("runs/tiny/best", model, {"step": 6000, "metrics": {...}})
    model, cfg = model_from_checkpoint("runs/tiny/best")    # a directory, or the .safetensors / .json file

checkpoint.json holds at least "config": a config name (with optional "config_overrides"), or a dict of
DetrConfig fields with "name"; what training writes adds "detrt_version", "epoch", "step", "metrics", "seed"...
Weights are safetensors, never pickle; float16 tensors (the bundled copy) are cast to the model's dtype.
Training writes checkpoints through this module (detrt/training/resume.py adds the optimizer state for
--resume to the same directory); export, benchmarks and the demo read them through it.
"""

import json
import math
import os
from pathlib import Path

import numpy as np

from detrt import __version__
from detrt.atomic import _umask, atomic_dir
from detrt.errors import InputError
from detrt.models.configs import CONFIGS, DetrConfig, build_model, get_config
from detrt.optional import require

WEIGHTS, META = "checkpoint.safetensors", "checkpoint.json"


def json_safe(value):
    """NaN/inf -> None (strict JSON), tuples -> lists, numpy scalars -> Python, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        return json_safe(value.item())
    return value


def write_safetensors(tensors, path):
    """{name: tensor} -> a safetensors file with the usual permissions (safetensors creates it 0600)."""
    # torch through safetensors only here: the format's names and files are readable without it (the benchmark's
    # argument parsing, `detrt run` on a runtime-only install)
    require("safetensors.torch", "a PyTorch checkpoint").save_file(tensors, str(path), metadata={"format": "pt"})
    os.chmod(path, 0o666 & ~_umask())


def write_checkpoint(directory, model, meta, half=False):
    """Write a model's checkpoint files into `directory` (an existing, new directory: see save_checkpoint);
    `meta` is merged into checkpoint.json after the config and version. half: floating tensors as float16."""
    directory = Path(directory)
    tensors = {}
    for k, v in model.state_dict().items():
        v = v.detach().cpu()
        tensors[k] = (v.half() if half and v.is_floating_point() else v).contiguous()
    write_safetensors(tensors, directory / WEIGHTS)
    info = {"config": model.config.to_dict(), "detrt_version": __version__, **meta}
    (directory / META).write_text(json.dumps(json_safe(info), indent=1) + "\n")


def save_checkpoint(directory, model, meta, half=False):
    """Write checkpoint directory `directory` whole (write_checkpoint, then renamed into place: a crash leaves
    the previous checkpoint there)."""
    with atomic_dir(directory) as tmp:
        write_checkpoint(tmp, model, meta, half)
    return Path(directory)


def checkpoint_files(path):
    """(weights, json) paths of a checkpoint directory or file; InputError naming what is missing."""
    path = Path(path)
    if path.is_dir():
        weights, meta = path / WEIGHTS, path / META
    elif path.suffix == ".json":
        weights, meta = path.with_suffix(".safetensors"), path
    else:
        weights, meta = path, path.with_suffix(".json")
    if not weights.is_file():
        raise InputError(f"{path}: checkpoint not found" if not path.exists()
                         else f"{path}: no {weights.name} (a checkpoint is .safetensors + .json)")
    if not meta.is_file():
        raise InputError(f"{meta}: missing; a checkpoint needs its JSON (config name and fields) beside "
                         f"{weights.name}, as `detrt train` writes it")
    return weights, meta


def read_meta(path):
    """The checkpoint.json of a checkpoint as a dict (with a "config" key)."""
    _, meta = checkpoint_files(path)
    try:
        info = json.loads(meta.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f"{meta}: not a readable checkpoint description ({e})") from None
    if not isinstance(info, dict) or not isinstance(info.get("config"), (str, dict)):
        raise InputError(f"{meta}: needs a \"config\" key (a config name or a dict of config fields)")
    return info


def config_of(info):
    """The DetrConfig a checkpoint.json describes.

    A dict naming a built-in config starts from that config, so fields a checkpoint lacks keep that config's
    values rather than the paper defaults.
    """
    config = info["config"]
    if isinstance(config, str):
        return get_config(config, **(info.get("config_overrides") or {}))
    if config.get("name") in CONFIGS:
        fields = {k: tuple(v) if isinstance(v, list) else v for k, v in config.items() if k != "name"}
        return get_config(config["name"], **fields)
    return DetrConfig.from_dict(config, where="checkpoint config")


def config_differences(a, b):
    """Fields whose values differ between two DetrConfigs, as 'field (a vs b)' strings."""
    da, db = a.to_dict(), b.to_dict()
    return [f"{k} ({da[k]!r} vs {db[k]!r})" for k in da if da[k] != db.get(k) and k not in ("name", "description")]


def _key_groups(keys, limit=6):
    """State-dict keys summarized by module (first four name parts, three before an index): 'a.b.c.d.*' (n)."""
    groups = {}
    for k in keys:
        parts = k.split(".")
        n = 3 if len(parts) > 3 and parts[3].isdigit() else 4
        g = ".".join(parts[:n]) + ".*" if len(parts) > n else k
        groups[g] = groups.get(g, 0) + 1
    shown = [f"{g} ({n})" if n > 1 else g for g, n in list(groups.items())[:limit]]
    return ", ".join(shown) + (f", ... ({len(keys)} keys in all)" if len(groups) > limit else "")


def read_safetensors(path):
    """{name: torch tensor} of a safetensors file; InputError naming it when it is cut short or not one."""
    try:
        return require("safetensors.torch", "a PyTorch checkpoint").load_file(str(path))
    except InputError:
        raise
    except Exception as e:  # safetensors has its own error types for bad files
        raise InputError(f"{path}: not a readable safetensors file ({str(e).splitlines()[0]})") from None


def load_weights(path, model):
    """Load a checkpoint's weights into `model` (a plain module with `.config`); returns checkpoint.json.

    InputError when the weights do not fit, naming the config fields that differ and the state-dict keys
    that are missing, unexpected or of another shape.
    """
    weights, _ = checkpoint_files(path)
    info = read_meta(path)
    state = read_safetensors(weights)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shaped = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    if missing or unexpected or shaped:
        try:
            fields = config_differences(config_of(info), model.config)
        except InputError:
            fields = []
        kinds = (("missing keys", missing), ("unexpected keys", unexpected), ("keys of another shape", shaped))
        parts = [f"{what}: {_key_groups(keys)}" for what, keys in kinds if keys]
        name = info["config"] if isinstance(info["config"], str) else info["config"].get("name")
        if fields:
            raise InputError(f"{path}: checkpoint of config {name!r} does not fit config {model.config.name!r}; "
                             f"config fields differ: {', '.join(fields)}; " + "; ".join(parts))
        raise InputError(f"{weights}: weights do not fit config {model.config.name!r}; " + "; ".join(parts))
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()})
    return info


def model_from_checkpoint(path):
    """A checkpoint -> (model in eval mode, DetrConfig)."""
    cfg = config_of(read_meta(path))
    model = build_model(cfg)
    load_weights(path, model)
    return model.eval(), cfg
