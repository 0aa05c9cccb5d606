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


def test_tensorrt_without_the_plugin_library_fails(monkeypatch, tmp_path, capsys):
    """Where TensorRT imports, the plugins are part of what is validated: a missing library is a failure."""
    monkeypatch.setattr(gpu_validate, "unavailable_reason", lambda: None)
    monkeypatch.setattr(gpu_validate, "find_or_build", lambda *a: (tmp_path / "libdetrt_cuda.so", None))
    monkeypatch.setattr(gpu_validate, "load_cuda_lib", lambda path: None)
    monkeypatch.setattr(gpu_validate, "run_cuda", lambda lib, seed: [])
    monkeypatch.setattr(gpu_validate, "tensorrt_available", lambda: (True, "10.3.0"))
    monkeypatch.setattr(gpu_validate, "gpu_properties", lambda: ("Fake GPU", "8.7"))
    assert gpu_validate.main(["--json", str(tmp_path / "out.json")], root=tmp_path) == 1
    assert "FAIL: TensorRT imports but libdetrt_plugins.so was not found" in capsys.readouterr().out


def test_kernels_run_on_a_created_stream_never_the_legacy_default(monkeypatch):
    """Through the cuda-python stand-in (which has no synchronous cudaMemcpy or cudaDeviceSynchronize): every
    copy and kernel goes to one stream made by cudaStreamCreate. The stand-in kernels compute nothing, so only
    where the work went is asserted."""
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
    results = gpu_validate.run_cuda(lib, seed=0)
    assert len(results) == 4 and len(streams) == 4
    assert set(streams) == set(trt.streams) and None not in streams and 0 not in streams
    assert rt.log and all(kind in (1, 2) for _, kind in rt.log)  # the copies ran, on that stream
    assert not rt.live_allocations
