"""The compile verbs end to end (detrt export / surgery / build / doctor) and their bad-input lines."""

import contextlib

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from detrt.cli import main
from detrt.compile import build, tensorrt
from detrt.errors import InputError
from detrt.manifest import load_manifest, sha256_file
from detrt.ops.tensorrt import find_plugin_library, import_tensorrt
from tests.helpers.checkpoints import write_checkpoint
from tests.helpers.tensorrt_or_skip import require_tensorrt


def run_cli(capsys, *argv):
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture(scope="module")
def exported_files(tiny, tmp_path_factory):
    """A checkpoint exported with the verb, portable form, postprocessed."""
    root = tmp_path_factory.mktemp("cli")
    ckpt = write_checkpoint(tiny, root / "ckpt")
    assert main(["export", str(ckpt), "-o", str(root / "model.onnx")]) == 0
    return root


def test_export_verb_writes_model_and_manifest(exported_files):
    model = exported_files / "model.onnx"
    manifest = load_manifest(model)
    assert manifest.onnx_sha256 == sha256_file(model) and manifest.output_format == "topk"
    assert not [p for p in exported_files.iterdir() if p.name.startswith(".")]  # no temporaries left


def test_surgery_verb_prints_each_pass(exported_files, capsys):
    out = exported_files / "plugin.onnx"
    rc, text, _ = run_cli(capsys, "surgery", exported_files / "model.onnx", "-o", out, "--print")
    assert rc == 0
    assert "to_plugins" in text and "detrt::MSDeformAttn x6 (" in text
    assert load_manifest(out).form == "plugin"
    assert {n.domain for n in onnx.load(out).graph.node} >= {"detrt"}
    rc, text, _ = run_cli(capsys, "surgery", exported_files / "model.onnx", "-o", exported_files / "quiet.onnx")
    assert rc == 0 and "to_plugins" not in text  # each pass's line only with --print


def test_build_onnxruntime_fp32_and_int8(exported_files, capsys, feed):
    import cv2

    calib = exported_files / "calib"
    calib.mkdir()
    for i in range(2):
        cv2.imwrite(str(calib / f"{i}.png"), np.random.default_rng(i).integers(0, 255, (320, 512, 3), np.uint8))
    for precision in ("fp32", "int8"):
        out = exported_files / f"cpu.{precision}.onnx"
        args = ["build", exported_files / "model.onnx", "--backend", "onnxruntime", "--precision", precision, "-o", out]
        rc, text, err = run_cli(capsys, *args, *(["--calib", calib] if precision == "int8" else []))
        assert rc == 0, err
        assert f"ONNX Runtime CPU artifact ({precision}, portable) -> {out}" in text + err
        m = load_manifest(out)
        assert m.precision == precision and m.onnx_sha256 == sha256_file(out)
        scores, labels, boxes = ort.InferenceSession(str(out)).run(None, feed)
        assert scores.shape == (2, 100) and np.isfinite(boxes).all()


def test_build_onnxruntime_fp16_says_why_not(exported_files, capsys):
    out = exported_files / "cpu.fp16.onnx"
    rc, _, err = run_cli(capsys, "build", exported_files / "model.onnx", "--backend", "onnxruntime", "--precision",
                         "fp16", "-o", out)
    assert rc == 2 and "--backend onnxruntime builds fp32, int8 (the CPU computes FP16 in float anyway)" in err


def test_build_onnxruntime_names_the_file_and_node_it_cannot_run(exported_files, capsys):
    import shutil

    model = onnx.load(exported_files / "model.onnx")
    model.graph.node.append(onnx.helper.make_node("Bar", [model.graph.output[0].name], ["extra"], name="bar0",
                                                  domain="foo.bar"))
    model.graph.output.append(onnx.helper.make_tensor_value_info("extra", onnx.TensorProto.FLOAT, None))
    model.opset_import.append(onnx.helper.make_opsetid("foo.bar", 1))
    odd = exported_files / "odd.onnx"
    onnx.save(model, odd)
    shutil.copy(exported_files / "model.onnx.json", exported_files / "odd.onnx.json")
    rc, _, err = run_cli(capsys, "build", odd, "--backend", "onnxruntime", "-o", exported_files / "odd.cpu.onnx")
    assert rc == 2 and err.strip() == f"detrt build: error: {odd}: node bar0: op foo.bar::Bar runs on no ONNX Runtime " \
                                      "backend here"


def test_build_without_tensorrt_is_one_line(exported_files, capsys):
    pytest.importorskip("onnx")
    with contextlib.suppress(InputError):
        import_tensorrt()
        pytest.skip("TensorRT is installed here")
    out = exported_files / "model.engine"
    rc, _, err = run_cli(capsys, "build", exported_files / "model.onnx", "-o", out)
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert "TensorRT is not installed" in err and "--backend onnxruntime" in err
    assert not out.exists()


@pytest.mark.parametrize("case", ["not_onnx", "missing_json", "no_manifest", "calib_empty"])
def test_bad_input_is_one_line_exit_2_no_artifact(case, exported_files, tmp_path, capsys, tiny):
    out = tmp_path / "out.onnx"
    if case == "not_onnx":
        bad = tmp_path / "bad.onnx"
        bad.write_text("hello")
        (tmp_path / "bad.onnx.json").write_text((exported_files / "model.onnx.json").read_text())
        argv, want = ["build", bad, "--backend", "onnxruntime", "-o", out], "not an ONNX model"
    elif case == "missing_json":
        ckpt = write_checkpoint(tiny, tmp_path / "ckpt")
        (ckpt / "checkpoint.json").unlink()
        argv, want = ["export", ckpt, "-o", out], "checkpoint.json: missing"
    elif case == "no_manifest":
        plain = tmp_path / "plain.onnx"
        plain.write_bytes((exported_files / "model.onnx").read_bytes())
        argv, want = ["build", plain, "--backend", "onnxruntime", "-o", out], "manifest not found"
    else:
        empty = tmp_path / "empty"
        empty.mkdir()
        argv = ["build", exported_files / "model.onnx", "--backend", "onnxruntime", "--precision", "int8",
                "--calib", empty, "-o", out]
        want = "no readable frames"
    rc, _, err = run_cli(capsys, *argv)
    assert rc == 2 and want in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists() and not list(tmp_path.glob(".out.onnx*"))


@pytest.mark.parametrize("verb", ["export", "surgery", "build"])
def test_full_disk_is_one_line_and_no_artifact(verb, exported_files, tmp_path, on_full_disk):
    full = tmp_path / "full"
    argv = {"export": ["export", exported_files / "ckpt", "-o", full / "m.onnx"],
            "surgery": ["surgery", exported_files / "model.onnx", "-o", full / "m.onnx"],
            "build": ["build", exported_files / "model.onnx", "--backend", "onnxruntime", "-o", full / "m.onnx"]}
    on_full_disk(argv[verb], full)  # build: ONNX Runtime's "Protobuf serialization failed" named for what it is


def test_outputs_are_refused_before_any_work(exported_files, tmp_path, capsys):
    model = exported_files / "model.onnx"
    before = sha256_file(model)
    (tmp_path / "dir").mkdir()
    cases = [(["surgery", model, "-o", model], "model.onnx: is also an input"),
             (["build", model, "--backend", "onnxruntime", "-o", model], "model.onnx: is also an input"),
             (["export", exported_files / "ckpt", "-o", tmp_path / "dir"], "dir: is a directory, not a file"),
             (["build", exported_files / "plain.plugin.onnx", "-o", exported_files / "plain.engine"],
              "plain.plugin.onnx: is also an input")]  # the graph kept beside an engine
    (exported_files / "plain.plugin.onnx").write_bytes(b"")
    for argv, want in cases:
        rc, _, err = run_cli(capsys, *argv)
        assert rc == 2 and want in err and len(err.strip().splitlines()) == 1, (argv, err)
    assert sha256_file(model) == before


def test_unsupported_op_is_named_with_its_node():
    node = onnx.helper.make_node("MultiscaleDeformableAttnPlugin_TRT", ["a"], ["b"], name="enc0_msda", domain="trt")
    graph = onnx.helper.make_graph([node], "g", [], [])
    model = onnx.helper.make_model(graph)
    with pytest.raises(InputError, match="enc0_msda.*trt::MultiscaleDeformableAttnPlugin_TRT"):
        build.check_ops(model, "onnxruntime")
    grid = onnx.helper.make_node("GridSample", ["x", "g"], ["y"], name="gs0")
    with pytest.raises(InputError, match="gs0.*NVIDIA/TensorRT#4813"):
        build.check_ops(onnx.helper.make_model(onnx.helper.make_graph([grid], "g", [], [])), "tensorrt")


def test_profile_shapes_and_cache_key(exported_files):
    m = load_manifest(exported_files / "model.onnx")
    h, w = m.input_size
    shapes = tensorrt.profile_shapes(m, None, "images:2x3x%dx%d" % (h, w), "images:4x3x%dx%d" % (h, w))
    assert shapes == [(1, 3, h, w), (2, 3, h, w), (4, 3, h, w)]
    with pytest.raises(InputError, match="takes"):
        tensorrt.profile_shapes(m, "images:1x3x32x32")
    with pytest.raises(InputError, match="BxCxHxW"):
        tensorrt.parse_shape("1x3x4", "--minShapes")
    a = tensorrt.engine_cache_key("a" * 64, "fp16", "10.3.0", "8.7", "b" * 64)
    assert a != tensorrt.engine_cache_key("a" * 64, "fp16", "10.3.0", "8.9", "b" * 64)
    assert a != tensorrt.engine_cache_key("a" * 64, "fp16", "11.1.0", "8.7", "b" * 64)
    assert a == tensorrt.engine_cache_key("a" * 64, "fp16", "10.3.0", "8.7", "b" * 64)


def test_export_opset_out_of_range_is_one_line(tiny, tmp_path, capsys):
    ckpt = write_checkpoint(tiny, tmp_path / "ckpt")
    rc, _, err = run_cli(capsys, "export", ckpt, "-o", tmp_path / "m.onnx", "--opset", "99")
    assert rc == 2 and err.strip().splitlines() == [
        "detrt export: error: --opset 99: supported are 17 to 21 (from 17: LayerNormalization as one node; "
        "21: GroupNormalization as one node)"]
    assert not (tmp_path / "m.onnx").exists()


def test_build_refuses_an_output_named_for_the_other_backend(exported_files, tmp_path, capsys):
    model = exported_files / "model.onnx"
    rc, _, err = run_cli(capsys, "build", model, "--backend", "onnxruntime", "-o", tmp_path / "x.engine")
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert "x.engine: --backend onnxruntime writes an ONNX model; name the output .onnx" in err
    rc, _, err = run_cli(capsys, "build", model, "-o", tmp_path / "x.onnx")
    assert rc == 2 and "x.onnx: --backend tensorrt writes an engine; name the output .engine" in err
    assert not list(tmp_path.iterdir())


def test_build_refuses_tensorrt_only_flags_with_onnxruntime(exported_files, tmp_path, capsys):
    trt_only = {"--minShapes": "images:1x3x320x512", "--optShapes": "images:1x3x320x512",
                "--maxShapes": "images:4x3x320x512", "--workspace": "64", "--timingCacheFile": "t.cache",
                "--dla": "0", "--plugins": "lib.so"}
    for flag, value in trt_only.items():
        rc, _, err = run_cli(capsys, "build", exported_files / "model.onnx", "--backend", "onnxruntime", flag, value,
                             "-o", tmp_path / "x.onnx")
        assert rc == 2 and err.strip().splitlines() == [
            f"detrt build: error: {flag}: TensorRT only, not used by --backend onnxruntime "
            "(drop it, or use --backend tensorrt)"], flag
    assert not list(tmp_path.iterdir())


def test_doctor_refuses_a_model_that_is_missing_or_not_an_artifact(exported_files, tmp_path, capsys):
    rc, out, err = run_cli(capsys, "doctor", "--model", tmp_path / "missing.onnx")
    assert rc == 2 and err.strip().splitlines() == [f"detrt doctor: error: {tmp_path / 'missing.onnx'}: no such "
                                                    "model file"]
    assert "is an ONNX model" not in out
    text = tmp_path / "notes.onnx"
    text.write_text("not a model")
    rc, out, err = run_cli(capsys, "doctor", "--model", text)
    assert rc == 2 and "notes.onnx.json: manifest not found" in err and "is an ONNX model" not in out
    (tmp_path / "notes.onnx.json").write_text((exported_files / "model.onnx.json").read_text())
    rc, out, err = run_cli(capsys, "doctor", "--model", text)
    assert rc == 2 and "notes.onnx: sha256" in err and "does not match its manifest" in err
    assert len(err.strip().splitlines()) == 1 and "is an ONNX model" not in out


def test_doctor_runs_and_names_the_backend(exported_files, capsys):
    rc, text, _ = run_cli(capsys, "doctor", "--model", exported_files / "model.onnx")
    assert rc == 0
    for topic in ("tensorrt", "onnxruntime", "cpu extension", "runnable verbs", "detrt run"):
        assert topic in text
    assert "--backend onnxruntime" in text


@pytest.mark.trt
def test_tensorrt_engine_build(exported_files, tmp_path):
    require_tensorrt()
    if find_plugin_library() is None:
        pytest.skip("libdetrt_plugins.so not built here")
    out = tmp_path / "model.engine"
    m = build.build(exported_files / "model.onnx", out, precision="fp16", log=None)
    assert m.engine_sha256 == sha256_file(out) and m.tensorrt_version
