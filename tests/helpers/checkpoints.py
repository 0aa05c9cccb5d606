"""A model's weights written as a checkpoint directory, for the tests that export or run one."""

import json


def write_checkpoint(model, directory, config="dhdetr_r18_tiny"):
    """directory/checkpoint.safetensors + checkpoint.json of `model`, as training writes a checkpoint."""
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(directory / "checkpoint.safetensors"))
    (directory / "checkpoint.json").write_text(json.dumps({"config": config, "epoch": 1}))
    return directory
