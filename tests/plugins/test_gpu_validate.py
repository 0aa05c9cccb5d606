"""The CUDA kernels and TensorRT plugins against the CPU kernels on a GPU (detrt/bench/gpu_validate.py,
`make gpu-check`).

Marked gpu: the full run skips with the reason (no cuda-python, no GPU, no CPU extension) everywhere else.
On the CPU: the script's CPU half runs and it reports "no GPU" cleanly, and its RESULTS.md section is checked.
"""

from pathlib import Path

import numpy as np
import pytest

from detrt.bench import gpu_validate
from detrt.ops import cpu
from detrt.ops.tensorrt import gpu_here

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.gpu
def test_cuda_and_tensorrt_match_cpu_kernels(tmp_path):
    reason = gpu_validate.unavailable_reason()
    if reason:
        pytest.skip(reason)
    assert gpu_validate.main(["--json", str(tmp_path / "gpu_validate.json"), "--no-markdown"], root=ROOT) == 0


@pytest.mark.skipif(not cpu.available(), reason=f"{cpu.unavailable_reason()}")
@pytest.mark.skipif(gpu_here()[0], reason="a GPU is here: test_cuda_and_tensorrt_match_cpu_kernels runs instead")
def test_without_a_gpu_the_cpu_half_runs_and_says_no_gpu(tmp_path, capsys):
    missing = str(tmp_path / "missing.so")  # given paths: no CMake build in the test suite
    out = tmp_path / "gpu_validate.json"
    assert gpu_validate.main(["--cuda-lib", missing, "--plugin-lib", missing, "--json", str(out)], root=ROOT) == 0
    text = capsys.readouterr().out
    cases = len(gpu_validate.MSDA_CASES + gpu_validate.DCG_CASES) * 2
    assert "no GPU (" in text and f"CPU half ran ({cases} cases)" in text and "not built" in text
    assert not out.exists()


def test_cpu_half_feeds_float32_locations_with_float16_value():
    if not cpu.available():
        pytest.skip(cpu.unavailable_reason())
    case = next(c for c in gpu_validate.cpu_cases(0) if c["op"] == "ms_deform_attn" and c["dtype"] == "float16")
    value, _, _, loc, attn = case["inputs"]
    assert value.dtype == attn.dtype == case["want"].dtype == np.float16 and loc.dtype == np.float32


def test_results_section_names_failures_and_timings():
    report = dict(date="2026-01-01T00:00:00", machine="m", gpu="NVIDIA H100 (sm 9.0)", tensorrt=None,
                  results=[dict(op="ms_deform_attn", backend="cuda", case="odd_d", dtype="float16", ok=False),
                           dict(op="dcg_neighbors", backend="cuda", case="tiny", dtype="float32", ok=True)],
                  timing=dict(torch="2.11", repeats=20, rows=[dict(op="ms_deform_attn", case="ops_encoder",
                                                                   dtype="float32", kernel_ms=0.05, torch_ms=1.0,
                                                                   speedup=20.0)]))
    text = gpu_validate.markdown(report, [])
    assert text.startswith("## benchmarks/gpu_validate.py: ") and "NVIDIA H100 (sm 9.0)" in text
    assert "1/2 passed" in text and "FAILED cuda odd_d float16" in text and "not installed" in text
    assert "| ms_deform_attn | ops_encoder | float32 | 0.0500 | 1.0000 | 20.0x |" in text
