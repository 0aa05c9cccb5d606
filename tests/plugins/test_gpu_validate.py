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
    ok, why = gpu_here()
    if not ok:
        pytest.skip(why)
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


def test_tensorrt_without_the_plugin_library_fails(monkeypatch, tmp_path, capsys):
    """Where TensorRT imports, the plugins are part of what is validated: a missing library is a failure."""
    monkeypatch.setattr(gpu_validate, "find_or_build", lambda *a: (tmp_path / "libdetrt_cuda.so", None))
    monkeypatch.setattr(gpu_validate, "load_cuda_lib", lambda path: object())
    monkeypatch.setattr(gpu_validate, "cpu_cases", lambda seed: [])
    monkeypatch.setattr(gpu_validate, "gpu_here", lambda: (True, "Fake GPU (sm 8.7)"))
    monkeypatch.setattr(gpu_validate, "run_cuda", lambda lib, cases: [])
    monkeypatch.setattr(gpu_validate, "time_against_torch", lambda lib, cases: None)
    monkeypatch.setattr(gpu_validate, "tensorrt_available", lambda: (True, "10.3.0"))
    args = ["--json", str(tmp_path / "out.json"), "--no-markdown"]
    assert gpu_validate.main(args, root=tmp_path) == 1
    assert "FAIL: TensorRT imports but libdetrt_plugins.so is missing" in capsys.readouterr().out


def test_kernels_run_on_a_created_stream_never_the_legacy_default(monkeypatch):
    """Through the cuda-python stand-in (which has no synchronous cudaMemcpy or cudaDeviceSynchronize): every
    copy and kernel goes to one stream made by cudaStreamCreateWithFlags. The stand-in kernels compute nothing,
    so only where the work went is asserted."""
    from types import SimpleNamespace

    from tests.helpers import fake_trt

    trt, rt = fake_trt.install(monkeypatch)
    monkeypatch.setattr(gpu_validate, "MSDA_CASES", gpu_validate.MSDA_CASES[-1:])
    monkeypatch.setattr(gpu_validate, "DCG_CASES", gpu_validate.DCG_CASES[-1:])
    streams = []

    def kernel(*args):
        streams.append(args[-1])
        return 0

    lib = SimpleNamespace(detrt_cuda_ms_deform_attn=kernel, detrt_cuda_dcg_neighbors=kernel)
    results = gpu_validate.run_cuda(lib, gpu_validate.cpu_cases(0))
    assert len(results) == 4 and len(streams) == 4
    assert set(streams) == set(trt.streams) and None not in streams and 0 not in streams
    assert rt.log and all(e[1] in (1, 2) for e in rt.log)  # the copies ran, on that stream
    assert not rt.live_allocations
