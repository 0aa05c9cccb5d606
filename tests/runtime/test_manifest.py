"""detrt.manifest: round trip, validation naming file and field, artifact/engine checks with rebuild hints."""

import hashlib
import json

import pytest

from detrt.errors import InputError
from detrt.manifest import (Manifest, check_artifact, check_engine_environment, load_manifest, manifest_path,
                            save_artifact, save_manifest, sha256_file)

SHA = "a" * 64


def _manifest(**kw):
    fields = dict(family="dh-detr", config="dh_detr_r50", class_names=["person"], input_size=(640, 960),
                  onnx_sha256=SHA)
    fields.update(kw)
    return Manifest(**fields)


def test_round_trip(tmp_path):
    art = tmp_path / "model.onnx"
    art.write_bytes(b"onnx")
    m = _manifest(onnx_sha256=sha256_file(art), output_format="raw", precision="int8", max_batch=8, pad_value=114)
    path = save_manifest(m, art)
    assert path == tmp_path / "model.onnx.json" == manifest_path(art)
    back = load_manifest(art)
    assert back == m
    assert back.outputs == ("pred_logits", "pred_boxes") and back.input_size == (640, 960)
    assert json.loads(path.read_text())["input_size"] == [640, 960]
    assert check_artifact(art) == m


def test_vocabulary_round_trip(tmp_path):
    art = tmp_path / "model.onnx"
    art.write_bytes(b"onnx")
    m = _manifest(family="cq-dino", class_names=["animal", "dog", "cat"], class_parents=[-1, 0, 0],
                  class_ids=[10, 20, 30], onnx_sha256=sha256_file(art))
    save_manifest(m, art)
    v = load_manifest(art).vocabulary
    assert (v.names, v.parents, v.ids) == (("animal", "dog", "cat"), (-1, 0, 0), (10, 20, 30))
    assert _manifest().vocabulary.is_flat and _manifest().vocabulary.ids == (1,)


def test_save_artifact_writes_manifest_first_with_the_artifacts_sha256(tmp_path, monkeypatch):
    import os

    art = tmp_path / "model.engine"
    renamed = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: (renamed.append(os.path.basename(dst)), real_replace(src, dst)))
    m = _manifest(tensorrt_version="10.3.0", compute_capability="8.7")
    saved = save_artifact(art, lambda tmp: tmp.write_bytes(b"engine bytes"), m, digest="engine_sha256")
    assert renamed == ["model.engine.json", "model.engine"]  # a crash between the two leaves no bare artifact
    assert saved.engine_sha256 == sha256_file(art) == hashlib.sha256(b"engine bytes").hexdigest()
    assert saved.onnx_sha256 == SHA and check_artifact(art) == saved


def test_save_artifact_failure_leaves_nothing(tmp_path):
    art = tmp_path / "model.onnx"
    with pytest.raises(InputError, match="field 'precision'"):  # the manifest is refused after the bytes are written
        save_artifact(art, lambda tmp: tmp.write_bytes(b"onnx"), _manifest(precision="fp8"))
    with pytest.raises(OSError):
        save_artifact(art, lambda tmp: (_ for _ in ()).throw(OSError("writer failed")), _manifest())
    assert list(tmp_path.iterdir()) == []


def test_derive_changes_only_what_the_step_changed():
    parent = _manifest(toolkit_version="0.0.1", max_batch=4)
    child = parent.derive(precision="int8", form="plugin", parent="model.onnx")
    assert (child.precision, child.form, child.parent, child.max_batch) == ("int8", "plugin", "model.onnx", 4)
    assert child.class_names == parent.class_names and child.input_size == parent.input_size
    from detrt import __version__

    assert child.toolkit_version == __version__ and parent.precision == "fp32"  # the parent is left as it was
    with pytest.raises(InputError, match="field 'form'"):
        parent.derive(form="tensorrt")


def test_for_config_reads_the_model_config():
    from detrt.models.configs import get_config

    cfg = get_config("dhdetr_r18_tiny", num_select=37, score_floor=0.125, std=(0.5, 0.25, 0.125))  # not defaults
    m = Manifest.for_config(cfg, onnx_sha256=SHA, form="plugin", max_batch=2)
    assert (m.family, m.config, m.input_size, m.form, m.max_batch) == ("dh-detr", cfg.name, tuple(cfg.input_size),
                                                                        "plugin", 2)
    assert m.class_names == list(cfg.class_names) and m.mean == tuple(cfg.mean)
    assert (m.num_select, m.score_floor, m.std) == (37, 0.125, (0.5, 0.25, 0.125))
    m.validate()
    assert Manifest.for_config(get_config("deformable_detr_r18_tiny"), onnx_sha256=SHA).family == "deformable-detr"


def test_sha256_file(tmp_path):
    p = tmp_path / "f.bin"
    data = bytes(range(256)) * 5000
    p.write_bytes(data)
    assert sha256_file(p, chunk=4096) == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("field, value, words", [
    ("input_size", [640, 950], "multiples of 32"),
    ("input_size", [640], "[H, W]"),
    ("mean", [0.5, 0.5], "3 numbers"),
    ("std", [0.2, 0.0, 0.2], "positive"),
    ("resize", "crop", "'letterbox' or 'stretch'"),
    ("pad_value", 300, "0..255"),
    ("output_format", "boxes", "'topk' or 'raw'"),
    ("outputs", ["scores", "boxes"], "must be"),
    ("precision", "int4", "'fp32'"),
    ("max_batch", 0, "positive integer"),
    ("num_select", 0, "null or a positive integer"),
    ("score_floor", 1.0, "in [0, 1)"),
    ("score_floor", "0.05", "in [0, 1)"),
    ("onnx_sha256", "xyz", "sha256"),
    ("class_names", [], "non-empty list"),
    ("class_names", ["person", "person"], "duplicate name 'person'"),
    ("class_parents", [0], "is its own parent"),
    ("class_parents", 3, "null or a list of 1 integers"),
    ("class_ids", [1, 2], "'ids' must be a list of 1 integers"),
    ("format", 2, "reads format 1"),
    ("inputs", ["image_sizes"], "must be one of ['images', 'image_sizes'] or ['images']"),
])
def test_bad_field_names_file_and_field(tmp_path, field, value, words):
    d = _manifest().to_dict()
    d[field] = value
    path = tmp_path / "model.onnx.json"
    path.write_text(json.dumps(d))
    with pytest.raises(InputError) as e:
        load_manifest(tmp_path / "model.onnx")
    msg = str(e.value)
    assert str(path) in msg and repr(field) in msg and words in msg, msg


def test_manifest_from_before_image_sizes_loads_as_an_images_only_graph(tmp_path):
    d = _manifest(inputs=("images", "image_sizes")).to_dict()
    assert d["inputs"] == ["images", "image_sizes"] and _manifest(**{**d, "inputs": d["inputs"]}).masks_padding
    del d["inputs"]
    (tmp_path / "model.onnx.json").write_text(json.dumps(d))
    old = load_manifest(tmp_path / "model.onnx")
    assert old.inputs == ("images",) and not old.masks_padding


def test_missing_unknown_and_broken(tmp_path):
    art = tmp_path / "m.onnx"
    with pytest.raises(InputError, match=r"m\.onnx\.json: manifest not found.*detrt export"):
        load_manifest(art)
    (tmp_path / "m.onnx.json").write_text("{not json")
    with pytest.raises(InputError, match=r"m\.onnx\.json: not valid JSON \(line 1"):
        load_manifest(art)
    d = _manifest().to_dict()
    del d["class_names"]
    d["colour"] = "red"
    (tmp_path / "m.onnx.json").write_text(json.dumps(d))
    with pytest.raises(InputError, match="unknown field.*colour"):
        load_manifest(art)
    del d["colour"]
    (tmp_path / "m.onnx.json").write_text(json.dumps(d))
    with pytest.raises(InputError, match="missing field.*class_names"):
        load_manifest(art)


def test_engine_needs_its_fields():
    with pytest.raises(InputError, match="'tensorrt_version' is required for an engine"):
        _manifest(engine_sha256=SHA).validate()
    with pytest.raises(InputError, match="compute_capability"):
        _manifest(engine_sha256=SHA, tensorrt_version="10.3.0", compute_capability="sm87").validate()


def test_changed_onnx_is_refused_with_export_hint(tmp_path):
    art = tmp_path / "model.onnx"
    art.write_bytes(b"exported")
    ckpt = tmp_path / "runs" / "dh" / "best.safetensors"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"weights")
    save_manifest(_manifest(onnx_sha256=sha256_file(art), parent=str(ckpt)), art)
    art.write_bytes(b"edited by hand")
    with pytest.raises(InputError) as e:
        check_artifact(art)
    assert "does not match its manifest" in str(e.value)
    assert f"re-export with: detrt export {ckpt} -o {art}" in str(e.value)


def test_manifest_records_no_absolute_path(tmp_path, monkeypatch):
    """A manifest travels with its artifact: the parent is relative to the artifact's folder, else its name."""
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "model.onnx").write_bytes(b"onnx")
    monkeypatch.chdir(tmp_path)
    cases = [(tmp_path / "models" / "model.onnx", "model.onnx"),  # absolute, beside the artifact
             ("models/model.onnx", "model.onnx"),  # relative to the working directory
             (tmp_path / "models" / "sub" / "best.safetensors", "sub/best.safetensors"),
             ("/opt/elsewhere/runs/best", "best"),  # outside the artifact's folder: its name only
             (None, None)]
    for parent, recorded in cases:
        art = tmp_path / "models" / "model.engine"
        save_manifest(_manifest(engine_sha256=SHA, tensorrt_version="10.3.0", compute_capability="8.7",
                                parent=None if parent is None else str(parent)), art)
        text = manifest_path(art).read_text()
        assert json.loads(text)["parent"] == recorded
        assert str(tmp_path) not in text
    m = load_manifest(art)
    m.parent = "model.onnx"  # found beside the artifact: the hint names it from the working directory
    assert m.rebuild_hint("models/model.engine").startswith("rebuild with: detrt build models/model.onnx ")


def test_old_manifest_with_absolute_parent_still_loads(tmp_path):
    art = tmp_path / "model.onnx"
    art.write_bytes(b"onnx")
    d = _manifest(onnx_sha256=sha256_file(art), parent="/home/someone/runs/tiny").to_dict()
    manifest_path(art).write_text(json.dumps(d))
    assert load_manifest(art).parent == "/home/someone/runs/tiny"
    assert check_artifact(art).rebuild_hint(art) == f"re-export with: detrt export /home/someone/runs/tiny -o {art}"
    assert _manifest().rebuild_hint(art) == f"re-export with: detrt export CHECKPOINT -o {art}"  # no parent recorded
    assert _manifest(engine_sha256=SHA).rebuild_hint(tmp_path / "m.engine") == (
        f"rebuild with: detrt build model.onnx --precision fp32 -o {tmp_path / 'm.engine'}")


def test_changed_engine_is_refused_with_build_hint(tmp_path):
    art = tmp_path / "model.engine"
    art.write_bytes(b"engine bytes")
    m = _manifest(engine_sha256=sha256_file(art), tensorrt_version="10.3.0", compute_capability="8.7",
                  precision="fp16", parent="model.onnx")
    save_manifest(m, art)
    check_artifact(art)
    art.write_bytes(b"other engine")
    with pytest.raises(InputError, match=r"rebuild with: detrt build model\.onnx --precision fp16 -o .*model\.engine"):
        check_artifact(art)


def test_cpu_artifact_hint_names_onnxruntime_build(tmp_path):
    art = tmp_path / "model.int8.onnx"
    art.write_bytes(b"x")
    save_manifest(_manifest(onnx_sha256=SHA, precision="int8", parent="model.onnx"), art)
    with pytest.raises(InputError, match="rebuild with: detrt build model.onnx --backend onnxruntime --precision int8"):
        check_artifact(art)


def test_missing_artifact(tmp_path):
    with pytest.raises(InputError, match="no such model file"):
        check_artifact(tmp_path / "nope.onnx")


def test_engine_environment():
    m = _manifest(engine_sha256=SHA, tensorrt_version="10.3.0.26", compute_capability="8.7", gpu_name="Orin",
                  plugin_sha256="b" * 64, parent="model.onnx")
    check_engine_environment(m, "model.engine", tensorrt_version="10.3.0", compute_capability="8.7",
                             plugin_sha256="b" * 64)
    with pytest.raises(InputError, match=r"built by TensorRT 10\.3\.0\.26, this machine has TensorRT 11\.1\.0.*"
                                         r"rebuild with: detrt build model\.onnx"):
        check_engine_environment(m, "model.engine", tensorrt_version="11.1.0", compute_capability="8.7",
                                 plugin_sha256="b" * 64)
    for other in ("10.3.1", "10.4.0", "10.3"):  # TensorRT refuses a plan of another patch release too
        with pytest.raises(InputError, match=rf"built by TensorRT 10\.3\.0\.26, this machine has TensorRT {other}"):
            check_engine_environment(m, "model.engine", tensorrt_version=other, compute_capability="8.7",
                                     plugin_sha256="b" * 64)
    with pytest.raises(InputError, match=r"compute capability 8\.7 \(Orin\), this GPU is 9\.0"):
        check_engine_environment(m, "model.engine", tensorrt_version="10.3.0", compute_capability="9.0",
                                 plugin_sha256="b" * 64)
    with pytest.raises(InputError, match="plugin library differs"):
        check_engine_environment(m, "model.engine", tensorrt_version="10.3.0", compute_capability="8.7",
                                 plugin_sha256="c" * 64)
    with pytest.raises(InputError, match="no plugin library was found"):
        check_engine_environment(m, "model.engine", tensorrt_version="10.3.0", compute_capability="8.7")
