"""ONNX files in and out of compile: read with one clear error, write with the manifest beside."""

from pathlib import Path

import onnx

from detrt.errors import InputError
from detrt.manifest import save_artifact


def load_onnx(path):
    """Read an ONNX file; InputError if it is missing or not ONNX."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such ONNX file")
    try:
        model = onnx.load(str(path))
    except Exception as e:  # protobuf's DecodeError and friends
        raise InputError(f"{path}: not an ONNX model ({type(e).__name__})") from None
    if not model.graph.node:
        raise InputError(f"{path}: not an ONNX model (no graph nodes)")
    return model


def save_onnx(model, path, manifest=None):
    """Write `model` atomically with `manifest` beside it (its onnx_sha256 set from the bytes); return it."""
    return save_artifact(path, lambda tmp: onnx.save(model, str(tmp)), manifest)
