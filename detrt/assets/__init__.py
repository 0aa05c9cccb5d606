"""Files shipped inside the package: the bundled models (torch-free accessor).

    from detrt.assets import bundled_model_path
    detrt export $(python -c "from detrt.assets import bundled_model_path; print(bundled_model_path())") -o m.onnx

Each model directory holds `checkpoint.safetensors` (float16 tensors; loading casts them to float32) and
`checkpoint.json` (config with the class names, data seeds, steps, validation metrics):
`dhdetr_r18_tiny/`, the demo's DH-DETR trained on synthetic crowds, and `cqdino_tiny/`, a CQ-DINO trained on
the synthetic vast vocabulary, with `vocabulary.json` (its 1,608 class names and their hierarchy, the file
`detrt synth --kind vocab` writes). How they were trained: docs/training.md.
"""

from pathlib import Path

from detrt.errors import InputError

BUNDLED_MODEL = "dhdetr_r18_tiny"
BUNDLED_MODELS = (BUNDLED_MODEL, "cqdino_tiny")


def bundled_model_path(name=BUNDLED_MODEL):
    """The directory of a bundled checkpoint (checkpoint.safetensors + checkpoint.json), the demo's by default."""
    if name not in BUNDLED_MODELS:
        raise InputError(f"no bundled model {name!r}; bundled: {', '.join(BUNDLED_MODELS)}")
    path = Path(__file__).resolve().parent / name
    if not (path / "checkpoint.safetensors").is_file() or not (path / "checkpoint.json").is_file():
        raise InputError(f"{path}: the bundled model is missing from this install")
    return path
