"""TrtBackend: on a GPU with TensorRT (skipped here), and through CPU stand-ins everywhere.

The stand-ins (tests/helpers/fake_trt.py) expose only TensorRT / cuda-python names checked against NVIDIA's
bindings, queue stream work until a synchronization point, and run the "engine" (an ONNX file) with
ONNX Runtime, so the buffer slots, double buffering, events and CUDA-graph replay are exercised.
"""

import json

import numpy as np
import pytest

from detrt.errors import InputError
from detrt.manifest import Manifest, load_manifest, save_manifest, sha256_file
from detrt.runtime import trt_backend
from detrt.runtime.backend import open_backend
from detrt.runtime.pipeline import run
from tests.helpers import fake_trt
from tests.helpers.probe_models import gradient_frames, make_raw_model, make_topk_model, write_video
from tests.helpers.tensorrt_or_skip import require_tensorrt


@pytest.fixture
def engine(tmp_path):
    """model.onnx (the probe) and model.engine (its bytes) with an engine manifest."""
    onnx_path = tmp_path / "model.onnx"
    make_topk_model(onnx_path, gain=3.0, bias=[1.0, 0.0, -1.0], max_batch=4)
    eng = tmp_path / "model.engine"
    eng.write_bytes(onnx_path.read_bytes())
    m = load_manifest(onnx_path).to_dict()
    m.update(engine_sha256=sha256_file(eng), tensorrt_version="10.3.0", compute_capability="8.7",
             gpu_name="Fake GPU", precision="fp16", parent=str(onnx_path))
    save_manifest(Manifest.from_dict(m), eng)
    return eng


@pytest.fixture
def fakes(monkeypatch):
    monkeypatch.setattr(trt_backend, "find_plugin_library", lambda: None)
    return fake_trt.install(monkeypatch)


def _batches():
    rng = np.random.default_rng(0)
    return [rng.normal(size=(b, 3, 64, 96)).astype(np.float32) for b in (1, 4, 4, 2, 4, 4, 4, 1, 3, 4)]


@pytest.mark.parametrize("cuda_graph", [False, True])
def test_matches_onnxruntime(engine, fakes, cuda_graph):
    trt, rt = fakes
    with open_backend(engine.with_suffix(".onnx")) as ref, open_backend(engine, cuda_graph=cuda_graph) as be:
        assert be.name == "tensorrt" and be.max_batch == 4 and be.gpu_name == "Fake GPU"
        assert be.compute_capability == "8.7"
        for x in _batches():
            want = ref.infer(x)
            got = be.infer(x)
            for k in want:
                np.testing.assert_array_equal(got[k], want[k])
    graphs = [e for e in rt.log if e[0] == "graph"]
    assert bool(graphs) == cuda_graph
    assert not rt.live_allocations  # every buffer freed on close


def test_cuda_graphs_follow_shape_changes(engine, fakes):
    """One graph per context at its shape: a batch of another size drops the graph (the stand-in refuses a
    replay after its context's shape changed), the context runs once ordinarily, then a new graph is captured
    (thread-local mode) and replayed."""
    trt, rt = fakes
    rng = np.random.default_rng(1)
    sizes = [4] * 6 + [2] * 6 + [4] * 6 + [3, 1] * 4
    with open_backend(engine.with_suffix(".onnx")) as ref, open_backend(engine, cuda_graph=True) as be:
        for b in sizes:
            x = rng.normal(size=(b, 3, 64, 96)).astype(np.float32)
            got, want = be.infer(x), ref.infer(x)
            for k in want:
                np.testing.assert_array_equal(got[k], want[k])
        assert be.cuda_graph  # no capture failed
    # Each slot (context) gets every other batch. Per slot, a run of 6 is 3 batches: ordinary, capture +
    # replay, replay; [3, 1] * 4 keeps slot 0 at 3 and slot 1 at 1: ordinary, capture + replay, 2 replays.
    captures = [e[1] for e in rt.log if e[0] == "capture"]
    assert captures == [rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal] * (3 * 2 + 2)
    assert sum(e[0] == "graph" for e in rt.log) == 3 * 2 * 2 + 2 * 3


def test_only_the_batch_rows_are_copied(engine, fakes):
    """A batch of 1 on an engine of max batch 4 copies one image in (plainly, then in the captured graph's
    replays), not the whole buffer."""
    _, rt = fakes
    x = np.random.default_rng(3).normal(size=(1, 3, 64, 96)).astype(np.float32)
    with open_backend(engine, cuda_graph=True) as be:
        for _ in range(6):  # each of the two contexts: an ordinary run, a capture and replay, a replay
            be.infer(x)
        assert be.cuda_graph
    h2d = [e[2] for e in rt.log if e[0] == "copy" and e[1] == 1]
    assert h2d and set(h2d) == {x.nbytes}


def test_a_failed_capture_destroys_its_graph_and_runs_without_graphs(engine, fakes, monkeypatch):
    """cudaGraphInstantiate refuses (an engine that is not stream-capturable): the captured graph is destroyed,
    a warning names the artifact, and the batches run as plain enqueues with the same results."""
    _, rt = fakes
    destroyed = []
    monkeypatch.setattr(rt, "cudaGraphInstantiate", lambda graph, flags: (fake_trt._Err.cudaErrorInvalidValue, None))
    monkeypatch.setattr(rt, "cudaGraphDestroy", lambda graph: destroyed.append(graph) or (fake_trt._Err.cudaSuccess,))
    x = np.random.default_rng(2).normal(size=(4, 3, 64, 96)).astype(np.float32)
    with open_backend(engine.with_suffix(".onnx")) as ref, open_backend(engine, cuda_graph=True) as be:
        with pytest.warns(UserWarning, match=r"model\.engine: CUDA graph capture failed \(cudaGraphInstantiate "
                                             r"failed: cudaErrorInvalidValue\); running without graphs"):
            for _ in range(3):
                got = be.infer(x)
        assert not be.cuda_graph and len(destroyed) == 1
        want = ref.infer(x)
    for k in want:
        np.testing.assert_array_equal(got[k], want[k])


def test_double_buffering_keeps_two_batches_in_flight(engine, fakes):
    trt, rt = fakes
    with open_backend(engine.with_suffix(".onnx")) as ref, open_backend(engine) as be:
        xs = _batches()
        # submit t+1 before collecting t, the pipeline's pattern; results must not mix
        pending = [be.submit(xs[0])]
        outs = []
        for x in xs[1:]:
            pending.append(be.submit(x))
            outs.append(pending.pop(0)())
        outs.append(pending.pop(0)())
        for x, got in zip(xs, outs):
            np.testing.assert_array_equal(got["scores"], ref.infer(x)["scores"])
        # a third submit reuses slot 0 while its result is uncollected: it must wait, not overwrite
        a = be.submit(xs[1])
        be.submit(xs[2])
        be.submit(xs[3])
        np.testing.assert_array_equal(a()["scores"], ref.infer(xs[1])["scores"])


def test_pipeline_on_tensorrt_equals_onnxruntime(tmp_path, engine, fakes):
    clip = write_video(tmp_path / "clip.mp4", gradient_frames(23))
    s1 = run(clip, engine.with_suffix(".onnx"), [tmp_path / "ort.jsonl"], threshold=0.0)
    s2 = run(clip, engine, [tmp_path / "trt.jsonl"], threshold=0.0, cuda_graph=True)
    assert s1.frames == s2.frames == 23 and s2.backend == "tensorrt" and s2.batch == 4
    a = [json.loads(x)["detections"] for x in (tmp_path / "ort.jsonl").read_text().splitlines()]
    b = [json.loads(x)["detections"] for x in (tmp_path / "trt.jsonl").read_text().splitlines()]
    assert a == b


def test_engine_for_another_gpu_is_refused(engine, monkeypatch):
    monkeypatch.setattr(trt_backend, "find_plugin_library", lambda: None)
    fake_trt.install(monkeypatch, major=9, minor=0)
    with pytest.raises(InputError, match=r"compute capability 8\.7 \(Fake GPU\), this GPU is 9\.0; "
                                         r"rebuild with: detrt build .*model\.onnx --precision fp16"):
        open_backend(engine)


def test_changed_engine_is_refused(engine, fakes):
    engine.write_bytes(engine.read_bytes() + b"\0")
    with pytest.raises(InputError, match="does not match its manifest.*rebuild with: detrt build"):
        open_backend(engine)


def test_undeserializable_engine(engine, fakes):
    engine.write_bytes(b"garbage")
    m = load_manifest(engine)
    m.engine_sha256 = sha256_file(engine)
    save_manifest(m, engine)
    with pytest.raises(InputError, match="could not deserialize the engine"):
        open_backend(engine)


@pytest.fixture
def plugin_engine(tmp_path):
    """A plugin-form probe (a detrt::DCGNeighbors node, as surgery leaves it for TensorRT) as an engine."""
    import onnx

    onnx_path = tmp_path / "plugin.onnx"
    make_raw_model(onnx_path, plugin=True)
    model = onnx.load(str(onnx_path))
    for node in model.graph.node:
        if node.domain == "detrt":
            node.attribute.extend([onnx.helper.make_attribute("plugin_namespace", "detrt"),
                                   onnx.helper.make_attribute("plugin_version", "1")])
    eng = tmp_path / "plugin.engine"
    eng.write_bytes(model.SerializeToString())
    m = load_manifest(onnx_path).to_dict()
    m.update(engine_sha256=sha256_file(eng), tensorrt_version="10.3.0", compute_capability="8.7",
             parent=str(onnx_path))
    save_manifest(Manifest.from_dict(m), eng)
    return eng


def test_plugins_are_registered_before_deserializing(plugin_engine, fakes, tmp_path):
    """The library does not register itself when opened: the backend registers it with TensorRT's registry,
    once per process (a second load_library of it returns None), so an engine with detrt plugin layers loads,
    twice in one process, and runs like ONNX Runtime with the CPU kernels."""
    trt, rt = fakes
    lib = fake_trt.plugin_library(trt, tmp_path)
    x = np.random.default_rng(2).normal(size=(3, 3, 64, 96)).astype(np.float32)
    with open_backend(plugin_engine.with_suffix(".onnx")) as ref:
        want = ref.infer(x)
    for _ in range(2):
        with open_backend(plugin_engine, plugins=lib) as be:
            got = be.infer(x)
        for k in want:
            np.testing.assert_array_equal(got[k], want[k])
    registry = trt.get_plugin_registry()
    assert registry.get_creator("DCGNeighbors", "1", "detrt") is not None
    assert registry.load_library(str(lib)) is None  # TensorRT's answer to a second load


def test_engine_with_plugins_needs_them_registered(plugin_engine, fakes):
    with pytest.raises(InputError, match="could not deserialize the engine"):
        open_backend(plugin_engine)  # no plugin library: nothing registers DCGNeighbors
    trt, _ = fakes
    assert "Cannot find plugin: DCGNeighbors, version: 1, namespace: detrt" in trt.log[-1]


def test_engine_with_nvidia_msda_plugin_loads(plugin_engine, fakes):
    """--msda-plugin nvidia engines need libnvinfer_plugin's creators: the backend initializes it first."""
    import onnx

    model = onnx.load(str(plugin_engine))
    node = next(n for n in model.graph.node if n.domain == "detrt")
    node.domain, node.op_type = "trt", "MultiscaleDeformableAttnPlugin_TRT"
    del node.attribute[:]
    node.attribute.extend([onnx.helper.make_attribute("plugin_namespace", ""),
                           onnx.helper.make_attribute("plugin_version", "1")])
    plugin_engine.write_bytes(model.SerializeToString())
    m = load_manifest(plugin_engine)
    m.engine_sha256 = sha256_file(plugin_engine)
    save_manifest(m, plugin_engine)
    with open_backend(plugin_engine) as be:  # the stand-in only deserializes it: it cannot run NVIDIA's kernel
        assert be.engine is not None


def test_plugin_library_problems(engine, fakes, tmp_path):
    with pytest.raises(InputError, match="no such plugin library"):
        open_backend(engine, plugins=tmp_path / "libnope.so")
    bad = tmp_path / "libdetrt_plugins.so"
    bad.write_bytes(b"not an ELF file")
    with pytest.raises(InputError, match="plugin library does not load"):
        open_backend(engine, plugins=bad)
    trt, _ = fakes
    (tmp_path / "other").mkdir()
    other = fake_trt.plugin_library(trt, tmp_path / "other", creators=None)  # loads, but TensorRT refuses it
    with pytest.raises(InputError, match="plugin registry refused it"):
        open_backend(engine, plugins=other)


def test_engine_built_with_plugins_needs_them(engine, fakes):
    m = load_manifest(engine)
    m.plugin_sha256 = "b" * 64
    save_manifest(m, engine)
    with pytest.raises(InputError, match="no plugin library was found.*rebuild with"):
        open_backend(engine)


@pytest.mark.gpu
@pytest.mark.trt
def test_real_engine_matches_onnxruntime(tmp_path):
    """Builds an engine from the probe ONNX with TensorRT's builder and compares with ONNX Runtime."""
    require_tensorrt()
    import tensorrt as trt

    from cuda.bindings import runtime as cudart

    onnx_path = tmp_path / "probe.onnx"
    make_topk_model(onnx_path, max_batch=4)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    assert parser.parse(onnx_path.read_bytes())
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    profile.set_shape("images", (1, 3, 64, 96), (2, 3, 64, 96), (4, 3, 64, 96))
    config.add_optimization_profile(profile)
    eng = tmp_path / "probe.engine"
    eng.write_bytes(bytes(builder.build_serialized_network(network, config)))
    props = cudart.cudaGetDeviceProperties(0)[1]
    m = load_manifest(onnx_path).to_dict()
    m.update(engine_sha256=sha256_file(eng), tensorrt_version=trt.__version__,
             compute_capability=f"{props.major}.{props.minor}", parent=str(onnx_path))
    save_manifest(Manifest.from_dict(m), eng)
    with open_backend(onnx_path) as ref, open_backend(eng, cuda_graph=True) as be:
        for x in _batches():
            want, got = ref.infer(x), be.infer(x)
            for k in want:
                np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-5)
