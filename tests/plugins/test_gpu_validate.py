"""The CUDA kernels and TensorRT plugins against the CPU kernels on a GPU (benchmarks/gpu_validate.py).

Marked gpu: it skips with the reason (no cuda-python, no GPU, no CPU extension) everywhere else.
"""

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_validate.py"


def load_script():
    spec = importlib.util.spec_from_file_location("gpu_validate", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.gpu
def test_cuda_and_tensorrt_match_cpu_kernels(tmp_path):
    gpu_validate = load_script()
    reason = gpu_validate.unavailable_reason()
    if reason:
        pytest.skip(reason)
    assert gpu_validate.main(["--json", str(tmp_path / "gpu_validate.json")]) == 0
