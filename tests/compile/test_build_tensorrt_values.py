"""`detrt build` through the TensorRT stand-in, on values that could be wrong: the engine's max batch and parent in
its manifest, a DLA core passed on to the builder, a second engine in an existing cache, the default cache path."""

import re
from types import SimpleNamespace

import pytest

from detrt.compile import tensorrt
from detrt.compile.build import build
from detrt.errors import InputError
from detrt.manifest import sha256_file
from tests.compile.test_build_tensorrt import fakes, lib, plugin_onnx  # noqa: F401 - the stand-in's fixtures


def test_engine_manifest_takes_the_max_batch_and_its_graph(plugin_onnx, lib, tmp_path):  # noqa: F811
    out = tmp_path / "probe.engine"
    m = build(plugin_onnx, out, precision="fp32", plugins=lib, max_shape="images:5x3x64x96", log=None)
    assert m.max_batch == 5 and m.parent == "probe.plugin.onnx"  # beside the engine
    # another profile: another engine, cached beside the first in the existing cache folder
    build(plugin_onnx, tmp_path / "b.engine", precision="fp32", plugins=lib, max_shape="images:4x3x64x96",
          log=None)
    assert len(list((tmp_path / "cache" / "engines").glob("*.engine"))) == 2


def test_dla_core_reaches_the_builder(plugin_onnx, lib, tmp_path):  # noqa: F811
    with pytest.raises(InputError, match=r"--dla 0: this device has 0 DLA core\(s\)"):
        build(plugin_onnx, tmp_path / "probe.engine", plugins=lib, dla=0, log=None)


def test_default_engine_cache_is_under_home(monkeypatch, tmp_path):
    monkeypatch.delenv("DETRT_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert tensorrt.cache_dir() == tmp_path / ".cache" / "detrt" / "engines"


def test_progress_monitor_one_bar_per_phase(monkeypatch, fakes):  # noqa: F811
    bars = []

    class Bar:
        def __init__(self, **kw):
            self.kw, self.n, self.closed = kw, 0, False
            bars.append(self)

        def update(self, k):
            self.n += k

        def close(self):
            self.closed = True

    monkeypatch.setattr(tensorrt, "progress_bar", Bar)
    monitor = tensorrt._progress_monitor(fakes[0])
    monitor.phase_start("Building engine", None, 3)
    monitor.phase_start("Tactics", "Building engine", 2)  # a sub-phase: its bar does not stay on screen
    assert monitor.step_complete("Tactics", 1) is True
    monitor.phase_finish("Tactics")
    outer, inner = bars
    assert outer.kw == {"total": 3, "desc": "Building engine", "leave": True}
    assert inner.kw == {"total": 2, "desc": "Tactics", "leave": False}
    assert (inner.n, inner.closed, outer.closed) == (2, True, False) and list(monitor.bars) == ["Building engine"]


def test_network_is_strongly_typed_and_the_parser_logs(monkeypatch, plugin_onnx, lib, fakes, tmp_path):  # noqa: F811
    trt = fakes[0]
    seen = {}
    create, parser = trt.Builder.create_network, trt.OnnxParser

    def create_network(self, flags):
        seen["flags"] = flags
        return create(self, flags)

    def onnx_parser(network, logger):
        seen["logger"] = logger
        return parser(network, logger)

    monkeypatch.setattr(trt.Builder, "create_network", create_network)
    monkeypatch.setattr(trt, "OnnxParser", onnx_parser)
    build(plugin_onnx, tmp_path / "probe.engine", precision="fp32", plugins=lib, log=None)
    assert seen["flags"] == 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    assert isinstance(seen["logger"], trt.Logger)


def test_workspace_plugin_digest_and_the_log_of_a_build(monkeypatch, plugin_onnx, lib, fakes, tmp_path):  # noqa: F811
    trt = fakes[0]
    configs, lines = [], []
    create = trt.Builder.create_builder_config
    monkeypatch.setattr(trt.Builder, "create_builder_config", lambda self: configs.append(create(self)) or configs[-1])
    m = build(plugin_onnx, tmp_path / "probe.engine", precision="fp32", plugins=lib, workspace=64, log=lines.append)
    assert configs[-1].pools == {trt.MemoryPoolType.WORKSPACE: 64 << 20}
    assert m.plugin_sha256 == sha256_file(lib)
    assert any(re.fullmatch(r"built in \d+ s", line) for line in lines), lines


def test_a_parse_failure_without_a_parser_error_says_so(monkeypatch, plugin_onnx, lib, fakes, tmp_path):  # noqa: F811
    trt = fakes[0]
    parser = trt.OnnxParser

    def silent_failure(network, logger):
        p = parser(network, logger)
        p.parse_from_file = lambda path: False  # and no error recorded
        return p

    monkeypatch.setattr(trt, "OnnxParser", silent_failure)
    with pytest.raises(InputError, match=r"probe\.plugin\.onnx: TensorRT cannot parse it: unknown error$"):
        build(plugin_onnx, tmp_path / "probe.engine", precision="fp32", plugins=lib, log=None)


def test_profile_names_the_flag_at_fault_and_orders_the_batches():
    m = SimpleNamespace(input_size=(64, 96), max_batch=2)  # non-square: H and W must not swap
    assert tensorrt.profile_shapes(m) == [(1, 3, 64, 96), (1, 3, 64, 96), (2, 3, 64, 96)]
    for flag, key in (("--minShapes", "min_shape"), ("--optShapes", "opt_shape"), ("--maxShapes", "max_shape")):
        with pytest.raises(InputError, match=rf"^{flag}: the model takes \[B, 3, 64, 96\], got \[1, 3, 96, 64\]$"):
            tensorrt.profile_shapes(m, **{key: "images:1x3x96x64"})
        with pytest.raises(InputError, match=rf"^{flag} 'images:1x3x64': expected images:BxCxHxW"):
            tensorrt.profile_shapes(m, **{key: "images:1x3x64"})
    with pytest.raises(InputError, match=r"1 <= min <= opt <= max, got \[1, 8, 4\]"):
        tensorrt.profile_shapes(m, opt_shape="images:8x3x64x96", max_shape="images:4x3x64x96")


def test_a_plugin_library_that_is_not_there_is_named(fakes, tmp_path):  # noqa: F811
    m = SimpleNamespace(input_size=(64, 96), max_batch=2)
    with pytest.raises(InputError, match=r"missing\.so: plugin library not found \(--plugins PATH"):
        tensorrt.Target(m, plugins=tmp_path / "missing.so")
