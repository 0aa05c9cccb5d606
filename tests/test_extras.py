"""pyproject.toml's GPU extras: TensorRT and cuda-python of one CUDA major (cuda-python 13 on a CUDA 12 driver, or
TensorRT's CUDA 13 wheel beside cuda-python 12, fails at the first CUDA call)."""

import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement

tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_trt_extras_pair_tensorrt_and_cuda_python_of_one_cuda_major():
    extras = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]
    gpu = {name: [Requirement(r) for r in reqs] for name, reqs in extras.items() if name.startswith("trt")}
    assert set(gpu) == {"trt", "trt-cu13"}
    for name, reqs in gpu.items():
        by_name = {r.name: r for r in reqs}
        trt = next(n for n in by_name if n.startswith("tensorrt"))
        major = re.fullmatch(r"tensorrt-cu(\d+)", trt)  # the plain `tensorrt` wheel follows NVIDIA's newest CUDA
        assert major, f"[{name}]: {trt} does not say its CUDA major"
        cuda_python = by_name["cuda-python"].specifier
        major = int(major.group(1))
        assert f"{major}.8" in cuda_python or f"{major}.0" in cuda_python  # a release of that major is allowed
        assert f"{major - 1}.9" not in cuda_python and f"{major + 1}.0" not in cuda_python, name
    assert gpu["trt"][0].name == "tensorrt-cu12"  # the default: JetPack 6 and every driver from CUDA 12 on
