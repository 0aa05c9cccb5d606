"""Synthetic crowds: determinism, labels, density and overlap control, video identities, atomic output, CLI."""

import json
from dataclasses import replace

import cv2
import numpy as np
import pytest

from detrt.cli import main
from detrt.data.crowdhuman import read_gt
from detrt.data.synthetic import SynthConfig, synth_image
from detrt.data.synthetic_set import crowd_stats, synthesize
from detrt.errors import InputError

SMALL = SynthConfig(width=256, height=160, persons=(4, 12))


def test_deterministic_by_seed_and_index():
    img, obj = synth_image(3, 7, SMALL)
    img2, obj2 = synth_image(3, 7, SMALL)
    assert np.array_equal(img, img2) and obj == obj2
    other, _ = synth_image(4, 7, SMALL)
    assert not np.array_equal(img, other)
    assert img.shape == (160, 256, 3) and img.dtype == np.uint8


def test_labels_are_crowdhuman_and_sane():
    cfg = SynthConfig()
    for i in range(10):
        img, obj = synth_image(0, i, cfg)
        assert obj["ID"] == f"{i:06d}" and (obj["width"], obj["height"]) == (512, 320)
        for b in obj["gtboxes"]:
            x, y, w, h = b["fbox"]
            assert w > 0 and h > 0
            if b["tag"] == "person":
                assert cfg.min_height * 0.85 <= h <= cfg.max_height * 1.25  # body height, plus raised arms/hats
                assert 0.1 <= b["extra"]["visible"] <= 1 and b["extra"]["ignore"] == int(b["extra"]["visible"] < 0.2)
                hx, hy, hw, hh = b["hbox"]
                assert x - 1 <= hx and hx + hw <= x + w + 1 and y - 1 <= hy < y + 0.3 * h  # the head is on top
                vx, vy, vw, vh = b["vbox"]
                assert 0 <= vx and vx + vw <= 512 and 0 <= vy and vy + vh <= 320  # visible part: inside the image
            else:
                assert b["tag"] == "mask" and b["extra"]["ignore"] == 1


def test_density_tracks_the_setting():
    def stats(cfg, n=12):
        return crowd_stats([synth_image(1, i, cfg)[1] for i in range(n)])

    sparse = stats(replace(SynthConfig(), persons=(3, 5)))
    dense = stats(replace(SynthConfig(), persons=(40, 50)))
    for s, mean in ((sparse, 4), (dense, 45)):
        drawn = s["persons_per_image"] + s["ignored_persons_per_image"]
        assert 0.55 * mean <= drawn <= 1.0 * mean + 0.5  # some persons end up hidden (< 10% visible)
    assert dense["persons_per_image"] > 5 * sparse["persons_per_image"]


def test_overlap_raises_pairs_above_iou_half():
    def pairs(overlap):
        cfg = replace(SynthConfig(), persons=(20, 20), overlap=overlap)
        return crowd_stats([synth_image(2, i, cfg)[1] for i in range(12)])["pairs_iou50_per_image"]

    assert pairs(0.8) > 2 * pairs(0.0) + 1


def test_synthesize_writes_index_and_video(tmp_path):
    out = tmp_path / "set"
    stats = synthesize(out, num=6, frames=40, seed=5, cfg=SMALL, fps=10, progress=False)
    records = read_gt(out / "annotations.odgt", out / "images")
    assert [r.image_id for r in records] == [f"{i:06d}" for i in range(6)]
    assert all(r.image_path.suffix == ".jpg" and r.width == 256 for r in records)
    assert cv2.imread(str(records[0].image_path)).shape == (160, 256, 3)
    meta = json.loads((out / "synth.json").read_text())
    assert meta["stats"]["images"]["images"] == 6 and stats["video"]["images"] == 40
    cap = cv2.VideoCapture(str(out / "video.mp4"))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 40 and cap.get(cv2.CAP_PROP_FRAME_WIDTH) == 256

    frames = [json.loads(line) for line in (out / "video.odgt").read_text().splitlines()]
    assert [f["ID"] for f in frames] == [f"frame_{i:06d}" for i in range(40)]
    seen = {}  # track id -> list of (frame, box centre, height)
    for k, f in enumerate(frames):
        ids = [b["extra"]["track_id"] for b in f["gtboxes"] if b["tag"] == "person"]
        assert len(ids) == len(set(ids))  # one box per identity per frame
        for b in f["gtboxes"]:
            if b["tag"] == "person":
                x, y, w, h = b["fbox"]
                seen.setdefault(b["extra"]["track_id"], []).append((k, x + w / 2, y + h, h))
    assert sum(len(v) >= 20 for v in seen.values()) >= 3  # identities persist across frames
    for track in seen.values():
        for (k0, x0, y0, h0), (k1, x1, y1, h1) in zip(track, track[1:]):
            gap = k1 - k0
            # walking speed is at most ~1.1 body heights/s at 10 fps; the box also changes with the pose
            assert abs(x1 - x0) <= 0.35 * max(h0, h1) * gap + 2 and abs(y1 - y0) <= 0.1 * h0 * gap + 3
            assert abs(h1 - h0) <= 0.25 * h0 * gap + 3


def test_output_is_all_or_nothing(tmp_path, monkeypatch):
    out = tmp_path / "set"

    def broken(*a, **k):
        raise RuntimeError("boom")

    monkeypatch.setattr("detrt.data.synthetic_set.write_video", broken)
    with pytest.raises(RuntimeError):
        synthesize(out, num=2, frames=5, cfg=SMALL, progress=False)
    assert list(tmp_path.iterdir()) == []  # no images, no staging directory left
    monkeypatch.undo()
    synthesize(out, num=2, cfg=SMALL, progress=False)
    with pytest.raises(InputError, match="exists and is not empty"):
        synthesize(out, num=2, cfg=SMALL, progress=False)
    synthesize(out, num=3, cfg=SMALL, overwrite=True, progress=False)
    assert len(list((out / "images").iterdir())) == 3
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(InputError, match="not a `detrt synth` output"):
        synthesize(tmp_path / "mine", num=1, cfg=SMALL, overwrite=True, progress=False)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"


def test_cli_synth(tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["synth", str(out), "--num", "3", "--size", "128x96", "--persons", "2-4", "--seed", "1"]) == 0
    text = capsys.readouterr().out
    assert "3 images" in text and "persons/image" in text and "IoU > 0.5" in text
    for argv, expect in [(["--size", "big"], "--size"), (["--persons", "9-2"], "--persons"),
                         (["--overlap", "2"], "--overlap"), (["--num", "0"], "nothing to generate"),
                         (["--size", "20000x20000"], "--size must be from 64x64 to 8192x8192, got 20000x20000")]:
        assert main(["synth", str(tmp_path / "t"), *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert expect in err and "\n" not in err
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["synth", str(blocker / "x"), "--num", "1"]) == 2
    assert "cannot write here" in capsys.readouterr().err
    assert not (tmp_path / "t").exists()


def test_output_directory_gets_the_usual_permissions(tmp_path):
    synthesize(tmp_path / "s", num=1, cfg=SMALL, progress=False)
    (tmp_path / "ref").mkdir()  # what mkdir gives under this umask (the staging dir starts as 0700)
    assert (tmp_path / "s").stat().st_mode == (tmp_path / "ref").stat().st_mode
