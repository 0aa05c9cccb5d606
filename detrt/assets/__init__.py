"""Files shipped inside the package: the bundled DH-DETR model (torch-free accessor).

    from detrt.assets import bundled_model_path
    detrt export $(python -c "from detrt.assets import bundled_model_path; print(bundled_model_path())") -o m.onnx

`dhdetr_r18_tiny/` holds `checkpoint.safetensors` (float16 tensors; loading casts them to float32) and
`checkpoint.json` (config, data seeds, steps, validation metrics). How it was trained: docs/training.md.
"""

from pathlib import Path

from detrt.errors import InputError

BUNDLED_MODEL = "dhdetr_r18_tiny"


def bundled_model_path():
    """The directory of the bundled checkpoint (checkpoint.safetensors + checkpoint.json)."""
    path = Path(__file__).resolve().parent / BUNDLED_MODEL
    if not (path / "checkpoint.safetensors").is_file() or not (path / "checkpoint.json").is_file():
        raise InputError(f"{path}: the bundled model is missing from this install")
    return path
