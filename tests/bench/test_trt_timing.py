"""TrtBackend's CUDA-event timing hooks (used by detrt bench), through the CPU stand-ins of tests/runtime.

The stand-in events get a timestamp when the stream reaches them; the stand-in "clock" counts the work
the stream has executed, weighted: H2D copy 1, inference 10, each D2H copy 100. So the times read back
say exactly which operations each pair of events enclosed. Real GPU timing is unverified here.
"""

import numpy as np
import pytest

from detrt.manifest import Manifest, load_manifest, save_manifest, sha256_file
from detrt.runtime import trt_backend
from detrt.runtime.backend import open_backend
from tests.helpers import fake_trt
from tests.helpers.probe_models import gradient_frames, make_topk_model


@pytest.fixture
def engine(tmp_path):
    onnx_path = tmp_path / "model.onnx"
    make_topk_model(onnx_path, max_batch=4)  # 3 outputs: scores, labels, boxes
    eng = tmp_path / "model.engine"
    eng.write_bytes(onnx_path.read_bytes())
    m = load_manifest(onnx_path).to_dict()
    m.update(engine_sha256=sha256_file(eng), tensorrt_version="10.3.0", compute_capability="8.7", precision="fp16")
    save_manifest(Manifest.from_dict(m), eng)
    return eng


@pytest.fixture
def timed_fakes(monkeypatch):
    monkeypatch.setattr(trt_backend, "find_plugin_library", lambda: None)
    trt, rt = fake_trt.install(monkeypatch)
    record = rt.cudaEventRecord

    def work_done():
        copies = [e[1] for e in rt.log if e[0] == "copy"]
        runs = sum(len(e.runs) for e in trt.engines)
        return copies.count(1) * 1 + runs * 10 + copies.count(2) * 100

    def event_record(event, stream):
        def stamp():
            event.t = work_done()

        (stream.capture if stream.capture is not None else stream.ops).append(stamp)
        return record(event, stream)

    monkeypatch.setattr(rt, "cudaEventRecord", event_record)
    monkeypatch.setattr(rt, "cudaEventElapsedTime", lambda a, b: (fake_trt._Err.cudaSuccess, float(b.t - a.t)),
                        raising=False)
    return trt, rt


def test_split_times_enclose_the_right_operations(engine, timed_fakes):
    x = np.random.default_rng(0).normal(size=(2, 3, 64, 96)).astype(np.float32)
    with open_backend(engine) as be:
        be.timing = True
        for _ in range(3):
            be.infer(x)
            assert be.last_gpu_times == {"h2d_ms": 1.0, "compute_ms": 10.0, "d2h_ms": 300.0, "total_ms": 311.0}


def test_cuda_graph_is_timed_whole(engine, timed_fakes):
    x = np.random.default_rng(0).normal(size=(1, 3, 64, 96)).astype(np.float32)
    with open_backend(engine, cuda_graph=True) as be:
        be.timing = True
        kinds = []
        for _ in range(6):
            be.infer(x)
            kinds.append(set(be.last_gpu_times))
        # ordinary runs first (one per buffer slot), then replays: one total for the whole graph
        assert kinds[0] == {"h2d_ms", "compute_ms", "d2h_ms", "total_ms"}
        assert kinds[-1] == {"total_ms"} and be.last_gpu_times["total_ms"] == 311.0
    _, rt = timed_fakes
    assert any(e[0] == "graph" for e in rt.log)


def test_timing_off_records_nothing(engine, timed_fakes):
    x = np.zeros((1, 3, 64, 96), np.float32)
    with open_backend(engine) as be:
        be.infer(x)
        assert be.last_gpu_times is None and all(s.marks is None for s in be._slots)


def test_bench_measures_engines_with_and_without_cuda_graphs(engine, timed_fakes, tmp_path):
    import cv2

    from detrt.bench.report import format_table
    from detrt.bench.run import run_bench

    frames = tmp_path / "frames"
    frames.mkdir()
    for i, f in enumerate(gradient_frames(4)):
        cv2.imwrite(str(frames / f"{i}.png"), f)
    report = run_bench([str(engine)], [1, 2], warmup_s=0.01, duration_s=0.05, frames=str(frames), roofline=False,
                       progress=False, notice=None)
    rows = report["results"]
    assert [(r["artifact"], r["batch"], r["cuda_graph"]) for r in rows] == [
        ("model.engine", 1, False), ("model.engine +cudagraph", 1, True),
        ("model.engine", 2, False), ("model.engine +cudagraph", 2, True)]
    assert rows[0]["gpu_ms"] == {"h2d_ms": 1.0, "compute_ms": 10.0, "d2h_ms": 300.0, "total_ms": 311.0}
    assert rows[1]["gpu_ms"] == {"total_ms": 311.0}  # median over measured calls: replays only
    assert "TensorRT GPU time" in format_table(report)
