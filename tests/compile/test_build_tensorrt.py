"""`detrt build`, the TensorRT backend and `doctor` through the TensorRT stand-in (tests/helpers/fake_trt.py),
which models TensorRT's plugin registry, builder flags and timing-cache checks as TensorRT documents them."""

import numpy as np
import pytest

from detrt import doctor
from detrt.compile.build import build
from detrt.errors import InputError
from detrt.runtime.backend import open_backend
from tests.helpers import fake_trt
from tests.helpers.probe_models import make_raw_model


@pytest.fixture
def fakes(monkeypatch, tmp_path):
    monkeypatch.setenv("DETRT_CACHE", str(tmp_path / "cache"))
    return fake_trt.install(monkeypatch)


@pytest.fixture
def plugin_onnx(tmp_path):
    """The plugin-form probe: its detrt::DCGNeighbors node needs the plugin library's creator in TensorRT."""
    path = tmp_path / "probe.onnx"
    make_raw_model(path, plugin=True)
    return path


@pytest.fixture
def lib(fakes, tmp_path):
    (tmp_path / "lib").mkdir()
    return fake_trt.plugin_library(fakes[0], tmp_path / "lib")


def test_build_registers_the_plugins_and_the_engine_runs(plugin_onnx, lib, fakes, tmp_path):
    """The parser finds the detrt node's creator only once the library is registered with load_library (it does
    not register itself when dlopened); the engine then deserializes and runs like ONNX Runtime."""
    trt, _ = fakes
    outputs = []
    for i in range(2):  # twice in one process: TensorRT's registry refuses a second load_library of a library
        out = tmp_path / f"probe{i}.engine"
        build(plugin_onnx, out, precision="fp32", plugins=lib, log=None)
        outputs.append(out)
    assert len(trt.builds) == 1  # the second came from the engine cache
    x = np.random.default_rng(0).normal(size=(2, 3, 64, 96)).astype(np.float32)
    with open_backend(plugin_onnx) as ref, open_backend(outputs[1], plugins=lib) as be:
        want, got = ref.infer(x), be.infer(x)
    for k in want:
        np.testing.assert_array_equal(got[k], want[k])


def test_build_without_registered_plugins_names_the_node(plugin_onnx, fakes, tmp_path):
    trt, _ = fakes
    (tmp_path / "lib").mkdir()
    not_plugins = fake_trt.plugin_library(trt, tmp_path / "lib", creators=[])  # registers no creator
    with pytest.raises(InputError, match=r"cannot parse it at node .* \(DCGNeighbors\): Plugin not found"):
        build(plugin_onnx, tmp_path / "probe.engine", plugins=not_plugins, log=None)


def test_fp32_builds_are_ieee_fp32(plugin_onnx, lib, fakes, tmp_path):
    """TensorRT enables TF32 by default; --precision fp32 clears it."""
    trt, _ = fakes
    build(plugin_onnx, tmp_path / "probe.engine", precision="fp32", plugins=lib, log=None)
    config = trt.builds[-1].config
    assert not config.get_flag(trt.BuilderFlag.TF32)


def test_timing_cache_is_checked(plugin_onnx, lib, fakes, tmp_path, monkeypatch):
    trt, rt = fakes
    cache = tmp_path / "timing.cache"
    build(plugin_onnx, tmp_path / "a.engine", plugins=lib, timing_cache=cache, log=None)
    assert trt.builds[-1].config.get_timing_cache() is not None
    assert cache.read_bytes().endswith(b"\n8.7")  # written back after the build
    other_gpu = fake_trt.make_cudart(major=9, minor=0)  # the same cache on another GPU
    monkeypatch.setattr(rt, "cudaGetDeviceProperties", other_gpu.cudaGetDeviceProperties)
    monkeypatch.setattr(trt, "device", "9.0")
    with pytest.raises(InputError, match="timing.cache: TensorRT refused it"):
        build(plugin_onnx, tmp_path / "b.engine", plugins=lib, timing_cache=cache, log=None)
    cache.write_bytes(b"not a timing cache")
    with pytest.raises(InputError, match="timing.cache: TensorRT cannot read it as a timing cache"):
        build(plugin_onnx, tmp_path / "c.engine", plugins=lib, timing_cache=cache, log=None)


def test_doctor_registers_and_finds_the_creators(lib, fakes, tmp_path):
    lines = dict(doctor.report(plugins=lib))
    assert lines["plugins"].startswith(f"{lib} registered; detrt::MSDeformAttn and detrt::DCGNeighbors found")
    assert lines["plugins"].endswith("NVIDIA MultiscaleDeformableAttnPlugin_TRT present")
    (tmp_path / "other").mkdir()
    other = fake_trt.plugin_library(fakes[0], tmp_path / "other", creators=None)
    assert "plugin registry refused it" in dict(doctor.report(plugins=other))["plugins"]
