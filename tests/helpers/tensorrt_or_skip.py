"""Skip a TensorRT test only where TensorRT, cuda-python or a GPU is absent.

detrt.ops.tensorrt.tensorrt_here() folds every exception into "not usable", which is right for `detrt doctor`
but would turn a broken TensorRT install (an OSError from dlopen, an AttributeError from a changed API) into a
quiet skip. Here only a module that is not installed, or no CUDA device, skips; anything else fails the test.
"""

import importlib.util

import pytest

from detrt.errors import InputError


def installed(module):
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # its parent package (e.g. `cuda`) is absent
        return False


def require_tensorrt():
    """Skip with the reason where tensorrt or cuda-python is not installed or no CUDA device is seen; otherwise
    import them, so that an unexpected exception from the installed packages fails the calling test."""
    missing = [m for m in ("tensorrt", "cuda.bindings") if not installed(m)]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)}")
    import tensorrt  # noqa: F401 - installed: an exception here is the test's failure, not a skip

    from detrt.ops.tensorrt import gpu_properties

    try:
        gpu_properties()
    except InputError as e:  # no CUDA device (gpu_properties' own message)
        pytest.skip(str(e))
