"""detrt export-triton: the repository's files and configs, and its pre/post steps against the runtime's own."""

import json
import re

import numpy as np
import pytest

from detrt.cli import main
from detrt.manifest import load_manifest
from detrt.runtime.detector import Detector
from detrt.serving.repository import export_triton
from detrt.serving.steps import Postprocess, Preprocess
from tests.helpers.probe_models import gradient_frames, make_raw_model, make_topk_model


def _config(repo, model):
    return (repo / model / "config.pbtxt").read_text()


def test_repository_layout_and_configs_come_from_the_manifest(tmp_path):
    manifest = make_topk_model(tmp_path / "m.onnx", class_names=("person", "head"), max_batch=4)
    repo = tmp_path / "repo"
    files = export_triton(tmp_path / "m.onnx", repo, preferred=[2, 4], queue_delay_us=500, instances=2)
    assert files == sorted(["README.md", "detector/1/model.onnx", "detector/1/model.onnx.json",
                            "detector/config.pbtxt", "detrt/config.pbtxt", "postprocess/1/model.py",
                            "postprocess/config.pbtxt", "preprocess/1/model.py", "preprocess/config.pbtxt"])
    assert (repo / "detector/1/model.onnx").read_bytes() == (tmp_path / "m.onnx").read_bytes()
    assert load_manifest(repo / "detector/1/model.onnx").class_names == ["person", "head"]
    detector = _config(repo, "detector")
    assert 'platform: "onnxruntime_onnx"' in detector and "max_batch_size: 4" in detector
    assert "preferred_batch_size: [ 2, 4 ] max_queue_delay_microseconds: 500" in detector
    assert "instance_group [ { count: 2 kind: KIND_CPU } ]" in detector
    assert '{ name: "images" data_type: TYPE_FP32 dims: [ 3, 64, 96 ] }' in detector
    assert '{ name: "labels" data_type: TYPE_INT64 dims: [ -1 ] }' in detector  # no num_select: any K
    # Every config carries the manifest: class names travel with the repository.
    for model in ("detector", "preprocess", "postprocess", "detrt"):
        text = _config(repo, model)
        assert text.startswith(f'name: "{model}"\n')
        literal = re.search(r'key: "detrt_manifest" value: \{ string_value: (".*") \}', text).group(1)
        assert json.loads(json.loads(literal)) == manifest.to_dict()
    ensemble = _config(repo, "detrt")
    assert 'platform: "ensemble"' in ensemble and '{ name: "names" data_type: TYPE_STRING dims: [ -1 ] }' in ensemble
    assert ensemble.count("model_name:") == 3
    assert "tritonserver --model-repository=" in (repo / "README.md").read_text()


def test_raw_outputs_are_declared_from_the_class_count(tmp_path):
    make_raw_model(tmp_path / "r.onnx", class_names=("a", "b", "c"))
    export_triton(tmp_path / "r.onnx", tmp_path / "repo")
    detector = _config(tmp_path / "repo", "detector")
    assert '{ name: "pred_logits" data_type: TYPE_FP32 dims: [ -1, 3 ] }' in detector
    assert '{ name: "pred_boxes" data_type: TYPE_FP32 dims: [ -1, 4 ] }' in detector


@pytest.mark.parametrize("make", [make_topk_model, make_raw_model])
def test_steps_give_the_detections_of_the_runtime(tmp_path, make):
    """preprocess -> network -> postprocess as the ensemble runs them == Detector.detect_batch, padded."""
    make(tmp_path / "m.onnx")
    net = Detector(tmp_path / "m.onnx", threshold=0.0)
    frames = np.stack(gradient_frames(3, h=72, w=128))
    pre = Preprocess(net.manifest)(frames)
    outputs = net.backend.infer(pre["images"])
    post = Postprocess(net.manifest)(pre["transform"], **outputs)
    want = net.detect_batch(list(frames))
    for i, dets in enumerate(want):
        n = len(dets)
        assert n > 0
        np.testing.assert_allclose(post["boxes"][i, :n], dets.boxes, atol=1e-4)
        np.testing.assert_allclose(post["scores"][i, :n], dets.scores, atol=1e-6)
        assert post["labels"][i, :n].tolist() == dets.labels.tolist()
        assert [b.decode() for b in post["names"][i, :n]] == dets.names
        assert (post["scores"][i, n:] == 0).all() and (post["labels"][i, n:] == -1).all()


def test_bad_repositories_and_artifacts(tmp_path, capsys):
    make_topk_model(tmp_path / "m.onnx")
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "keep.txt").write_text("mine")
    assert main(["export-triton", str(tmp_path / "m.onnx"), "--repo", str(repo)]) == 2
    assert "exists and is not empty (pass --force" in capsys.readouterr().err
    assert (repo / "keep.txt").read_text() == "mine"
    assert main(["export-triton", str(tmp_path / "m.onnx"), "--repo", str(repo), "--force"]) == 0
    assert not (repo / "keep.txt").exists() and (repo / "detrt/config.pbtxt").is_file()
    capsys.readouterr()
    for argv, words in [(["--max-batch", "5"], "--max-batch 5: must be 1..4"),
                        (["--preferred-batch", "8"], "--preferred-batch 8: sizes must be 1..4"),
                        (["--preferred-batch", "x"], "--preferred-batch 'x': expected"),
                        (["--instances", "0"], "--instances must be >= 1")]:
        assert main(["export-triton", str(tmp_path / "m.onnx"), "--repo", str(tmp_path / "r2"), *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0], err
    assert not (tmp_path / "r2").exists()
