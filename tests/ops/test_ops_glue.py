"""The Python glue of detrt.ops with values that could be wrong: the lazy attributes, the extension's build facts,
where the plugin library is looked for, which creators TensorRT's registry lacks (its stand-in here), what
gpu_here/tensorrt_here say, signals deferred around ONNX Runtime, and where the OpenVINO extension is found."""

import signal
import sys

import pytest

import detrt.ops
from detrt.ops import cpu
from detrt.ops import tensorrt as ops_tensorrt
from tests.helpers import fake_trt


def test_lazy_attributes_are_the_torch_entry_points():
    from detrt.ops.dcg import dcg_neighbors
    from detrt.ops.msda import ms_deform_attn

    assert detrt.ops.ms_deform_attn is ms_deform_attn
    assert detrt.ops.dcg_neighbors is dcg_neighbors
    with pytest.raises(AttributeError, match="'detrt.ops' has no attribute 'nms'"):
        detrt.ops.nms


def test_cpu_info_states_the_build():
    info = cpu.info()
    assert set(info) == {"openmp", "max_threads", "msda_isa"}
    assert isinstance(info["openmp"], bool) and info["max_threads"] >= 1 and info["msda_isa"]


def test_plugin_library_env_then_package_lib_then_build_tree(monkeypatch, tmp_path):
    monkeypatch.setenv("DETRT_PLUGINS", str(tmp_path / "mine.so"))
    assert ops_tensorrt.find_plugin_library() == tmp_path / "mine.so"
    monkeypatch.delenv("DETRT_PLUGINS")
    # the module as if installed at tmp_path/pkg/detrt: its lib/ is searched before ../build
    monkeypatch.setattr(ops_tensorrt, "__file__", str(tmp_path / "pkg" / "detrt" / "ops" / "tensorrt.py"))
    assert ops_tensorrt.find_plugin_library() is None
    built = tmp_path / "pkg" / "build" / "plugins" / "libdetrt_plugins.so"
    built.parent.mkdir(parents=True)
    built.touch()
    assert ops_tensorrt.find_plugin_library() == built
    shipped = tmp_path / "pkg" / "detrt" / "lib" / "libdetrt_plugins.so"
    shipped.parent.mkdir(parents=True)
    shipped.touch()
    assert ops_tensorrt.find_plugin_library() == shipped


def test_plugin_creators_names_what_the_registry_lacks(monkeypatch, tmp_path):
    trt, _ = fake_trt.install(monkeypatch)
    missing, nvidia = ops_tensorrt.plugin_creators(trt)
    assert missing == ["detrt::MSDeformAttn", "detrt::DCGNeighbors"] and nvidia
    ops_tensorrt.register_plugins(trt, fake_trt.plugin_library(trt, tmp_path))
    assert ops_tensorrt.plugin_creators(trt) == ([], True)


def test_libnvinfer_plugin_is_initialized_once_per_process(monkeypatch, tmp_path):
    trt, _ = fake_trt.install(monkeypatch)
    calls = []
    init = trt.init_libnvinfer_plugins
    monkeypatch.setattr(trt, "init_libnvinfer_plugins", lambda *a: calls.append(a) or init(*a))
    ops_tensorrt.register_plugins(trt)
    ops_tensorrt.register_plugins(trt, fake_trt.plugin_library(trt, tmp_path))
    assert len(calls) == 1


@pytest.mark.parametrize("raw, name", [(b"Orin\x00\x00junk", "Orin"), ("Thor", "Thor")])
def test_gpu_properties_of_the_asked_device(monkeypatch, raw, name):
    _, rt = fake_trt.install(monkeypatch, major=11, minor=0, name=raw)
    asked = []
    props = rt.cudaGetDeviceProperties
    monkeypatch.setattr(rt, "cudaGetDeviceProperties", lambda dev: asked.append(dev) or props(dev))
    assert ops_tensorrt.gpu_properties(1) == (name, "11.0") and asked == [1]


def test_gpu_and_tensorrt_here_say_what_they_found(monkeypatch):
    monkeypatch.setattr(ops_tensorrt, "tensorrt_available", lambda: (True, "10.3.0"))
    monkeypatch.setattr(ops_tensorrt, "gpu_properties", lambda: ("Orin", "8.7"))
    assert ops_tensorrt.gpu_here() == (True, "Orin (sm 8.7)")
    assert ops_tensorrt.tensorrt_here() == (True, "TensorRT 10.3.0 on Orin (sm 8.7)")

    def no_device():
        raise RuntimeError("cudaErrorNoDevice\nno CUDA-capable device is detected")

    monkeypatch.setattr(ops_tensorrt, "gpu_properties", no_device)
    assert ops_tensorrt.gpu_here() == (False, "no usable GPU (cudaErrorNoDevice)")
    assert ops_tensorrt.tensorrt_here() == (False, "no usable GPU (cudaErrorNoDevice)")
    monkeypatch.setattr(ops_tensorrt, "tensorrt_available", lambda: (False, "ImportError: no tensorrt"))
    assert ops_tensorrt.tensorrt_here() == (False, "TensorRT/cuda-python do not import (ImportError: no tensorrt)")


def test_a_signal_during_an_onnxruntime_run_reaches_its_handler_after_it():
    from detrt.ops.ort import _DeferredSignals

    got = []
    saved = signal.signal(signal.SIGTERM, lambda sig, frame: got.append(sig))
    try:
        with _DeferredSignals():
            signal.raise_signal(signal.SIGTERM)
            assert got == []  # recorded, not run, while the op runs
        assert got == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, saved)


def test_openvino_extension_from_the_environment_then_beside_the_cpu_extension(monkeypatch, tmp_path):
    import importlib.util
    from types import SimpleNamespace

    from detrt.ops import openvino as ops_openvino

    monkeypatch.setenv("DETRT_OPENVINO_EXTENSION", str(tmp_path / "mine.so"))
    assert ops_openvino.extension_library() == tmp_path / "mine.so"
    monkeypatch.delenv("DETRT_OPENVINO_EXTENSION")
    (tmp_path / ops_openvino.LIBRARY).write_bytes(b"")
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, package=None: SimpleNamespace(
        origin=str(tmp_path / "_cpu.so")) if name == "detrt.ops._cpu" else find_spec(name, package))
    assert ops_openvino.extension_library() == tmp_path / ops_openvino.LIBRARY


def test_openvino_core_is_one_per_process_and_names_what_needs_openvino(monkeypatch):
    pytest.importorskip("openvino")
    from detrt.errors import InputError
    from detrt.ops import openvino as ops_openvino

    if ops_openvino.extension_library() is not None:  # a second call returns the first Core (add_extension once)
        assert ops_openvino.openvino_core() is ops_openvino.openvino_core()
    monkeypatch.setitem(sys.modules, "openvino", None)  # import fails as for a missing package
    with pytest.raises(InputError, match=r"^the OpenVINO backend needs openvino: pip install 'detrt\[openvino\]'$"):
        ops_openvino.openvino_core()


def test_without_the_cpu_extension_the_error_and_the_warning_say_what_to_do(monkeypatch):
    from detrt.ops import msda

    monkeypatch.setattr(cpu, "_cpu", None)
    with pytest.raises(RuntimeError, match=r"; reinstall with `pip install -e \.` and a C\+\+ compiler$"):
        cpu.dcg_neighbors(None, None)
    monkeypatch.setattr(msda, "_warned_fallback", False)
    with pytest.warns(RuntimeWarning, match="use the slow PyTorch reference on the CPU"):
        assert msda._cpu_kernels() is None
    assert msda._cpu_kernels() is None  # warned once
