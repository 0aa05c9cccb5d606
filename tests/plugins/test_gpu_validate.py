"""The CUDA kernels and TensorRT plugins against the CPU kernels on a GPU (detrt/bench/gpu_validate.py).

Marked gpu: it skips with the reason (no cuda-python, no GPU, no CPU extension) everywhere else.
"""

from pathlib import Path

import pytest

from detrt.bench import gpu_validate

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.gpu
def test_cuda_and_tensorrt_match_cpu_kernels(tmp_path):
    reason = gpu_validate.unavailable_reason()
    if reason:
        pytest.skip(reason)
    assert gpu_validate.main(["--json", str(tmp_path / "gpu_validate.json")], root=ROOT) == 0
