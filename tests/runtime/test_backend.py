"""open_backend / choose_backend and the ONNX Runtime backend on probe models; bad artifacts refused."""

import sys
import json

import numpy as np
import pytest

from detrt.errors import InputError
from detrt.ops.tensorrt import tensorrt_available
from detrt.runtime.backend import choose_backend, open_backend
from tests.helpers.probe_models import make_raw_model, make_topk_model


@pytest.fixture
def topk_model(tmp_path):
    path = tmp_path / "probe.onnx"
    make_topk_model(path, input_hw=(64, 96), gain=2.0, bias=[1.0, 0.0, -1.0], max_batch=4)
    return path


def test_ort_runs_probe(topk_model):
    with open_backend(topk_model, threads=1) as be:
        assert be.name == "onnxruntime" and be.max_batch == 4 and be.input_shape == (4, 3, 64, 96)
        assert be.output_names == ("scores", "labels", "boxes")
        x = np.stack([np.full((3, 64, 96), v, np.float32) for v in (0.0, 0.5)])
        out = be.infer({"images": x})
        z = 2.0 * np.array([[0.0], [0.5]]) + np.array([1.0, 0.0, -1.0])
        np.testing.assert_allclose(out["scores"], 1 / (1 + np.exp(-z)), rtol=1e-6)
        assert out["boxes"].shape == (2, 3, 4) and out["labels"].dtype == np.int64
        np.testing.assert_allclose(be.submit(x[:1])()["scores"], out["scores"][:1])


def test_raw_model(tmp_path):
    make_raw_model(tmp_path / "raw.onnx")
    with open_backend(tmp_path / "raw.onnx") as be:
        out = be.infer(np.zeros((3, 3, 64, 96), np.float32))
        assert out["pred_logits"].shape == (3, 4, 2) and out["pred_boxes"].shape == (3, 4, 4)


def test_input_checked_at_the_edge(topk_model):
    with open_backend(topk_model) as be:
        with pytest.raises(InputError, match=r"must be \[B, 3, 64, 96\], got \[1, 3, 64, 64\]"):
            be.infer(np.zeros((1, 3, 64, 64), np.float32))
        with pytest.raises(InputError, match=r"batch 5 outside 1\.\.4"):
            be.infer(np.zeros((5, 3, 64, 96), np.float32))


def test_model_path_that_does_not_exist(tmp_path):
    with pytest.raises(InputError, match=r"nope\.onnx: no such model file"):
        open_backend(tmp_path / "nope.onnx")
    with pytest.raises(InputError, match="a directory"):
        open_backend(tmp_path)


def test_manifest_mismatch_refused_with_rebuild_hint(topk_model):
    data = bytearray(topk_model.read_bytes())
    data[-1] ^= 1  # the model changed after its manifest was written
    topk_model.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"does not match its manifest.*re-export with: detrt export"):
        open_backend(topk_model)


def test_manifest_missing(topk_model):
    topk_model.with_name(topk_model.name + ".json").unlink()
    with pytest.raises(InputError, match="manifest not found"):
        open_backend(topk_model)


def test_manifest_promises_other_outputs(topk_model):
    mpath = topk_model.with_name(topk_model.name + ".json")
    d = json.loads(mpath.read_text())
    d.update(output_format="raw", outputs=None)
    mpath.write_text(json.dumps(d))
    with pytest.raises(InputError, match=r"lack \['pred_logits', 'pred_boxes'\].*re-export"):
        open_backend(topk_model)


def _set_manifest(model, **fields):
    mpath = model.with_name(model.name + ".json")
    d = {k: v for k, v in {**json.loads(mpath.read_text()), **fields}.items() if v is not None}
    mpath.write_text(json.dumps(d))


def test_graph_from_before_image_sizes_runs_on_images_alone(topk_model):
    # its manifest predates the field: the runtime feeds images only, whatever image_sizes a caller passes
    _set_manifest(topk_model, inputs=None)
    x = np.full((2, 3, 64, 96), 0.5, np.float32)
    with open_backend(topk_model) as be:
        assert be.input_names == ("images",)
        got = be.infer({"images": x, "image_sizes": np.float32([[10, 20], [64, 96]])})
        np.testing.assert_array_equal(got["scores"], be.infer(x)["scores"])


def test_manifest_promising_image_sizes_the_graph_lacks_is_refused(topk_model):
    _set_manifest(topk_model, inputs=["images", "image_sizes"])
    with pytest.raises(InputError, match=r"inputs are \['images'\], its manifest says \['images', 'image_sizes'\]; "
                                         r"re-export with: detrt export"):
        open_backend(topk_model)


def test_image_sizes_checked_at_the_edge(topk_model):
    from detrt.manifest import load_manifest
    from detrt.runtime.base import Backend

    be = Backend(topk_model, load_manifest(topk_model).derive(inputs=("images", "image_sizes")))
    x = np.zeros((2, 3, 64, 96), np.float32)
    feed = be.check_input(x)  # no sizes given: every image fills the input
    assert feed["image_sizes"].dtype == np.float32 and feed["image_sizes"].tolist() == [[64, 96]] * 2
    assert be.check_input({"images": x, "image_sizes": [[48, 96], [64, 50]]})["image_sizes"].tolist() == \
        [[48, 96], [64, 50]]
    for bad in ([[48, 96]], [[0, 96], [64, 96]], [[64, 97], [64, 96]]):
        with pytest.raises(InputError, match=r"input 'image_sizes' must be \[2, 2\] sizes \(h, w\) within the 64x96"):
            be.check_input({"images": x, "image_sizes": np.float32(bad)})


def test_not_onnx(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"definitely not protobuf")
    make_topk_model(tmp_path / "ok.onnx")
    d = json.loads((tmp_path / "ok.onnx.json").read_text())
    from detrt.manifest import sha256_file

    d["onnx_sha256"] = sha256_file(bad)
    (tmp_path / "bad.onnx.json").write_text(json.dumps(d))
    with pytest.raises(InputError, match="ONNX Runtime cannot load it"):
        open_backend(bad)


def test_choose_backend(tmp_path):
    name, why = choose_backend(tmp_path / "m.onnx")
    assert name == "onnxruntime" and "ONNX Runtime" in why
    with pytest.raises(InputError, match="build one for this GPU with: detrt build"):
        choose_backend(tmp_path / "m.onnx", "tensorrt")
    with pytest.raises(InputError, match="ONNX Runtime runs the .onnx artifact"):
        choose_backend(tmp_path / "m.engine", "onnxruntime")
    with pytest.raises(InputError, match="unknown model type"):
        choose_backend(tmp_path / "m.pt")
    with pytest.raises(InputError, match="--backend must be one of"):
        choose_backend(tmp_path / "m.onnx", "cuda")


@pytest.mark.skipif(tensorrt_available()[0], reason="TensorRT is installed here")
def test_engine_without_tensorrt_says_what_to_do(tmp_path):
    with pytest.raises(InputError, match=r"TensorRT engine, but TensorRT/cuda-python do not import.*"
                                         r"--backend onnxruntime"):
        choose_backend(tmp_path / "m.engine")


def _ort_import_error():
    try:
        import detrt.ops.ort  # noqa: F401
    except ImportError as e:
        return str(e)
    return None


@pytest.mark.skipif(_ort_import_error() is not None, reason=f"detrt.ops.ort does not import: {_ort_import_error()}")
def test_plugin_form_runs_on_cpu_kernels(tmp_path):
    make_raw_model(tmp_path / "portable.onnx")
    make_raw_model(tmp_path / "plugin.onnx", plugin=True)
    x = np.random.default_rng(0).normal(size=(2, 3, 64, 96)).astype(np.float32)
    with open_backend(tmp_path / "portable.onnx") as a, open_backend(tmp_path / "plugin.onnx") as b:
        ya, yb = a.infer(x), b.infer(x)
    for k in ya:
        np.testing.assert_allclose(yb[k], ya[k], rtol=1e-6)
    # A plugin-form graph whose manifest wrongly says portable is still recognised.
    mpath = tmp_path / "plugin.onnx.json"
    d = json.loads(mpath.read_text())
    d["form"] = "portable"
    mpath.write_text(json.dumps(d))
    with open_backend(tmp_path / "plugin.onnx") as c:
        np.testing.assert_allclose(c.infer(x)["pred_logits"], ya["pred_logits"], rtol=1e-6)


def test_plugin_form_without_cpu_kernels(topk_model, monkeypatch):
    # As on an install without onnxruntime-extensions or the compiled kernels: detrt.ops.ort does not import.
    monkeypatch.setitem(sys.modules, "detrt.ops.ort", None)
    mpath = topk_model.with_name(topk_model.name + ".json")
    d = json.loads(mpath.read_text())
    d["form"] = "plugin"
    mpath.write_text(json.dumps(d))
    with pytest.raises(InputError, match="plugin-form graph.*detrt.ops.ort"):
        open_backend(topk_model)
