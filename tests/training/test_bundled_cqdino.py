"""The bundled CQ-DINO: documented, its names file is its vocabulary, and it finds shapes in unseen images."""

import json

import numpy as np
import pytest

from detrt.assets import bundled_model_path
from detrt.box_ops import box_iou
from detrt.data.synthetic_vocab import synthesize_vocab
from detrt.data.vocabulary import Vocabulary
from detrt.errors import InputError
from detrt.models import build_postprocess
from detrt.models.checkpoint import model_from_checkpoint
from detrt.training.dataset import eval_loader, read_records
from detrt.training.release import evaluate_checkpoint
from detrt.training.step import predict


def test_bundled_cqdino_is_documented_and_ships_its_names_file():
    path = bundled_model_path("cqdino_tiny")
    assert (path / "checkpoint.safetensors").stat().st_size < 50e6
    info = json.loads((path / "checkpoint.json").read_text())
    assert info["config"]["name"] == "cqdino_tiny" and info["weights_dtype"] == "float16"
    assert info["step"] > 0 and info["data"]["train_seed"] != info["data"]["val_seed"]
    assert {"AP@100", "AP@300", "APr@100"} <= set(info["metrics"])
    vocab = Vocabulary.load(path / "vocabulary.json")
    assert len(vocab) == 1608 and vocab.names[:2] == ("circle", "red circle")
    assert list(vocab.names) == info["config"]["class_names"]
    assert list(vocab.parents) == info["config"]["class_parents"]


def test_an_unknown_bundled_model_is_refused_by_name():
    with pytest.raises(InputError, match="no bundled model 'cqdino'; bundled: dhdetr_r18_tiny, cqdino_tiny"):
        bundled_model_path("cqdino")


def test_bundled_cqdino_finds_shapes_in_unseen_images(tmp_path):
    # seed 99: neither the training (1) nor the validation (2) set
    synthesize_vocab(tmp_path, num=16, seed=99, progress=False, overwrite=True)
    model, cfg = model_from_checkpoint(bundled_model_path("cqdino_tiny"))
    records = read_records(tmp_path / "annotations.json", tmp_path / "images", "test",
                           vocabulary=cfg.vocabulary)[0]
    loader = eval_loader(records, cfg, batch_size=8)
    found = [box_iou(gt.boxes, det.boxes[np.argsort(-det.scores)[:10]])[0].max(1) >= 0.5
             for gt, (det, _) in zip(records, predict(model, build_postprocess(cfg), loader, progress=False))]
    recall = np.concatenate(found).mean()  # whatever the class: where objects are, the ten best boxes
    assert recall > 0.25, recall  # 0.41 when shipped; random weights 0.02


def test_bundled_cqdino_metrics_are_those_of_its_weights(tmp_path):
    path = bundled_model_path("cqdino_tiny")
    info = json.loads((path / "checkpoint.json").read_text())
    data = info["data"]
    synthesize_vocab(tmp_path, num=data["val_images"], seed=data["val_seed"], progress=False, overwrite=True)
    metrics = evaluate_checkpoint(path, tmp_path / "annotations.json", tmp_path / "images", progress=False)
    for key in ("AP@100", "AP50@100", "AP@300"):  # the rare/common/frequent split needs the training file
        assert metrics[key] == pytest.approx(info["metrics"][key], rel=0.02, abs=1e-5), key
