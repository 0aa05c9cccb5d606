"""The synthetic vast vocabulary: the tree's exact shape, a long tail that does not move with the seed, tight
boxes around drawn pixels, determinism, and a set on disk that read_coco reads back."""

import json

import cv2
import numpy as np
import pytest

from detrt.cli import main
from detrt.data.coco import read_coco
from detrt.data.synthetic_vocab import (LEAVES, PROBABILITIES, VOCABULARY, VocabConfig, paint_object,
                                        synth_vocab_image, synthesize_vocab)
from detrt.data.vocabulary import Vocabulary


def test_tree():
    v = VOCABULARY
    assert len(v) == 8 + 64 + 384 + 1152 and v.depth == 4
    np.testing.assert_array_equal(v.leaves(), LEAVES)
    leaf = v.index["large dotted red star"]
    assert [v.names[i] for i in v.ancestors(leaf)] == ["dotted red star", "red star", "star"]
    assert v.children[v.index["dotted red star"]] == tuple(v.index[f"{s} dotted red star"]
                                                          for s in ("small", "medium", "large"))
    assert np.bincount(v.depths).tolist() == [8, 64, 384, 1152]


def test_long_tail_is_fixed_across_seeds():
    assert PROBABILITIES.sum() == pytest.approx(1) and PROBABILITIES.max() / PROBABILITIES.min() == pytest.approx(200)
    counts = [np.zeros(len(VOCABULARY)) for _ in range(2)]
    for seed, c in enumerate(counts):
        for i in range(300):
            for _, label in synth_vocab_image(seed, i, VocabConfig(width=64, height=64, objects=(3, 3)))[1]:
                c[label] += 1
    assert set(np.flatnonzero(counts[0])) <= set(LEAVES.tolist())  # only leaves are labelled
    head = LEAVES[np.argsort(-PROBABILITIES)[:20]]
    tail = LEAVES[np.argsort(PROBABILITIES)[:300]]
    for c in counts:  # the same classes are frequent under both seeds
        assert c[head].sum() > 4 * c[tail].sum()


def test_deterministic_and_labels_tight():
    cfg = VocabConfig()
    img, objects = synth_vocab_image(5, 3, cfg)
    img2, objects2 = synth_vocab_image(5, 3, cfg)
    assert np.array_equal(img, img2) and objects == objects2 and img.shape == (160, 160, 3)
    assert not np.array_equal(img, synth_vocab_image(6, 3, cfg)[0])
    sizes = {"small": (0.08, 0.12), "medium": (0.16, 0.22), "large": (0.28, 0.36)}
    for i in range(30):
        for (x0, y0, x1, y1), label in synth_vocab_image(1, i, cfg)[1]:
            assert 0 <= x0 < x1 <= 160 and 0 <= y0 < y1 <= 160
            lo, hi = sizes[VOCABULARY.names[label].split()[0]]
            assert max(x1 - x0, y1 - y0) <= hi * 1.1 * 160 + 1  # its size class bounds the box


def test_crescent_box_is_what_was_drawn():
    img = np.zeros((60, 60, 3), np.uint8)
    x0, y0, x1, y1 = paint_object(img, (10, 10, 50, 50), "crescent", "white", "solid")
    # the horns end where the two circles cross, half the shift (8 px) right of the centre (30): x = 38
    assert (x0, y0, y1) == (10, 10, 50) and 37 <= x1 <= 39
    ys, xs = np.nonzero(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) > 60)
    assert xs.min() >= x0 and xs.max() < x1 and ys.min() >= y0 and ys.max() < y1
    ring = np.zeros((60, 60, 3), np.uint8)
    paint_object(ring, (10, 10, 50, 50), "square", "white", "outlined")
    assert ring[30, 30].max() == 0 and ring[10, 30].min() > 200  # hollow inside, a border at the box's edge


def test_set_on_disk_reads_back(tmp_path, capsys):
    assert main(["synth", str(tmp_path / "v"), "--kind", "vocab", "--num", "6", "--seed", "2", "--objects", "3-3"]) == 0
    assert "6 images" in capsys.readouterr().out
    records, vocab = read_coco(tmp_path / "v" / "annotations.json", tmp_path / "v" / "images")
    assert vocab == VOCABULARY == Vocabulary.load(tmp_path / "v" / "vocabulary.json")
    assert [r.image_path.name for r in records] == [f"{i:06d}.jpg" for i in range(6)]
    _, objects = synth_vocab_image(2, 4, VocabConfig(objects=(3, 3)))
    np.testing.assert_array_equal(records[4].boxes, [b for b, _ in objects])
    np.testing.assert_array_equal(records[4].labels, [label for _, label in objects])
    stats = json.loads((tmp_path / "v" / "synth.json").read_text())["stats"]
    assert stats["objects"] == sum(len(r.boxes) for r in records) and stats["leaves"] == 1152


def test_cli_refuses_crowd_flags(tmp_path, capsys):
    for argv, expect in [(["--persons", "2-4"], "--persons: not used by --kind vocab"),
                         (["--frames", "3"], "--frames: not used by --kind vocab"),
                         (["--objects", "4-2"], "--objects must be MIN-MAX")]:
        assert main(["synth", str(tmp_path / "t"), "--kind", "vocab", *argv]) == 2
        assert expect in capsys.readouterr().err
    assert main(["synth", str(tmp_path / "t"), "--objects", "2-3"]) == 2
    assert "--objects: not used by --kind crowd" in capsys.readouterr().err
    assert not (tmp_path / "t").exists()
    with pytest.raises(Exception, match="nothing to generate"):
        synthesize_vocab(tmp_path / "t", num=0)
