"""CQ-DINO trains on COCO-format data: the data's vocabulary becomes the model's classes, the checkpoint
keeps it, COCO AP is evaluated, resume continues exactly, an embedding table starts the category queries."""

import json

import numpy as np
import pytest

from detrt.data.synthetic_vocab import VocabConfig, write_vocab_set
from detrt.data.vocabulary import Vocabulary, save_embeddings
from detrt.errors import InputError
from detrt.models import get_config
from detrt.models.checkpoint import model_from_checkpoint
from detrt.training.loop import fit
from detrt.training.options import Augment, TrainOptions

SMALL = dict(input_size=(128, 160), num_queries=30, num_categories_selected=8, dn_queries=8)


@pytest.fixture(scope="module")
def vocab_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("vocab")
    write_vocab_set(root / "train", 4, seed=1, cfg=VocabConfig(objects=(1, 3)), progress=False)
    write_vocab_set(root / "val", 2, seed=2, cfg=VocabConfig(objects=(1, 3)), progress=False)
    return root


def options(root, out, **kw):
    base = dict(config=get_config("cqdino_tiny", **SMALL), data=str(root / "train" / "annotations.json"),
                images=str(root / "train" / "images"), batch_size=2, output=str(out), seed=3, workers=0,
                log_every=1, progress=False, augment=Augment(scale_min=0.8))
    return TrainOptions(**{**base, **kw})


def losses(out):
    return [r["loss"] for r in map(json.loads, (out / "log.jsonl").read_text().splitlines()) if r["event"] == "train"]


def test_trains_with_the_data_vocabulary_evaluates_and_resumes(vocab_data, tmp_path):
    vocab = Vocabulary.load(vocab_data / "train" / "vocabulary.json")
    val = dict(val_data=str(vocab_data / "val" / "annotations.json"), val_images=str(vocab_data / "val" / "images"))
    summary = fit(options(vocab_data, tmp_path / "full", max_steps=3, **val))
    metrics = summary["metrics"]
    assert metrics["categories"] == len(vocab) and 0.0 <= metrics["AP@100"] <= metrics["AP@300"] <= 1.0
    model, cfg = model_from_checkpoint(tmp_path / "full" / "last")
    assert cfg.class_names == vocab.names and cfg.class_parents == vocab.parents and cfg.class_ids == vocab.ids
    assert model.categories.queries.shape == (len(vocab), cfg.category_dim)
    # resume after step 2 of 3 gives the same losses (denoising noise included)
    fit(options(vocab_data, tmp_path / "part", max_steps=2))
    fit(options(vocab_data, tmp_path / "part", max_steps=3, resume=str(tmp_path / "part" / "last")))
    assert losses(tmp_path / "part") == losses(tmp_path / "full")


def test_embedding_table_starts_the_queries_and_bad_tables_are_refused(vocab_data, tmp_path):
    vocab = Vocabulary.load(vocab_data / "train" / "vocabulary.json")
    table = np.random.default_rng(0).normal(size=(len(vocab), 128)).astype(np.float32)
    save_embeddings(tmp_path / "emb.safetensors", vocab.names[::-1], table[::-1])  # rows matched by name
    fit(options(vocab_data, tmp_path / "run", max_steps=1, embeddings=str(tmp_path / "emb.safetensors"),
                lr=1e-12))
    model, _ = model_from_checkpoint(tmp_path / "run" / "last")
    np.testing.assert_allclose(model.categories.queries.detach().numpy(), table, atol=1e-5)
    save_embeddings(tmp_path / "narrow.safetensors", vocab.names, table[:, :64])
    with pytest.raises(InputError, match="narrow.safetensors: embeddings of width 64"):
        fit(options(vocab_data, tmp_path / "bad", max_steps=1, embeddings=str(tmp_path / "narrow.safetensors")))
    save_embeddings(tmp_path / "short.safetensors", vocab.names[:10], table[:10])
    with pytest.raises(InputError, match="short.safetensors: no embedding for"):
        fit(options(vocab_data, tmp_path / "bad2", max_steps=1, embeddings=str(tmp_path / "short.safetensors")))
