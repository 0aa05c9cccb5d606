"""The optional third-party packages: which pip extra of pyproject.toml brings each, and one way to import one.

    plt = require("matplotlib.pyplot", "--plot")   # the module, or InputError naming the extra to install

The base install is the runtime (numpy, OpenCV, ONNX Runtime, tqdm). A module of detrt that needs an extra
throughout imports it at the top and is itself imported only by code that needs that extra; a function that
needs one where the rest of its module does not imports it through `require`.
"""

import importlib

from detrt.errors import InputError

EXTRAS = {  # extra -> the top-level modules it brings
    "train": ("torch", "scipy", "safetensors"),
    "compile": ("onnx", "onnxscript", "onnx_graphsurgeon"),
    "cpu-plugins": ("onnxruntime_extensions",),
    "openvino": ("openvino",),
    "trt": ("tensorrt", "cuda"),
    "bench": ("matplotlib",),
    "eval": ("faster_coco_eval",),
    "triton": ("tritonclient", "grpc"),
    "serve": ("pytriton",),
}


def extra_for(module):
    """The extra that brings `module` ("torch.onnx" counts as torch), or None when no extra does."""
    top = module.split(".")[0]
    return next((extra for extra, modules in EXTRAS.items() if top in modules), None)


def require(module, purpose):
    """Import `module`; where an optional package is missing, InputError: `purpose` needs it, and the pip
    command that installs it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        extra = extra_for(e.name or "")
        if extra is None:
            raise
        raise InputError(f"{purpose} needs {e.name}: pip install 'detrt[{extra}]'") from None
