"""CrowdHuman .odgt I/O: round trips, ignore semantics, image resolution, one-line errors with file and line."""

import json

import numpy as np
import pytest

from detrt.data import crowdhuman as ch
from detrt.errors import InputError


def lines(path, *objs):
    path.write_text("".join((o if isinstance(o, str) else json.dumps(o)) + "\n" for o in objs))
    return path


def test_read_gt_ignore_semantics_and_xyxy(tmp_path):
    p = lines(tmp_path / "gt.odgt", {"ID": "x", "width": 100, "height": 80, "gtboxes": [
        {"tag": "person", "fbox": [1, 2, 10, 20], "hbox": [1, 2, 3, 3], "vbox": [1, 2, 5, 5], "extra": {"ignore": 0}},
        {"tag": "person", "fbox": [5, 5, 10, 10], "extra": {"ignore": 1}},
        {"tag": "mask", "fbox": [50, 0, 30, 30]},
        {"tag": "person", "fbox": [-5, 40, 20, 60]},  # no extra: counts; may reach past the image
    ]}, "", {"ID": "y", "gtboxes": []})
    a, b = ch.read_gt(p)
    np.testing.assert_array_equal(a.boxes, [[1, 2, 11, 22], [-5, 40, 15, 100]])
    np.testing.assert_array_equal(a.ignore, [[5, 5, 15, 15], [50, 0, 80, 30]])
    assert (a.image_id, a.width, a.height, a.line) == ("x", 100, 80, 1)
    assert b.boxes.shape == (0, 4) and b.ignore.shape == (0, 4) and b.width is None and b.line == 3


def test_head_attr_ignore_counts_for_training_only(tmp_path):
    p = lines(tmp_path / "gt.odgt", {"ID": "x", "gtboxes": [
        {"tag": "person", "fbox": [0, 0, 10, 20], "extra": {"box_id": 0}, "head_attr": {"ignore": 1}},
        {"tag": "person", "fbox": [20, 0, 10, 20], "extra": {"box_id": 1}, "head_attr": {"ignore": 0}},
        {"tag": "person", "fbox": [40, 0, 10, 20], "extra": {"ignore": 0}, "head_attr": {"ignore": 1}},  # extra wins
        {"tag": "person", "fbox": [60, 0, 10, 20], "extra": {"ignore": 1}, "head_attr": {"ignore": 0}},
        {"tag": "person", "fbox": [80, 0, 10, 20]},
    ]})
    (train,) = ch.read_gt(p, head_ignore=True)
    np.testing.assert_array_equal(train.boxes[:, 0], [20, 40, 80])
    np.testing.assert_array_equal(train.ignore[:, 0], [0, 60])
    (val,) = ch.read_gt(p)  # evaluation: extra.ignore alone
    np.testing.assert_array_equal(val.boxes[:, 0], [0, 20, 40, 80])
    np.testing.assert_array_equal(val.ignore[:, 0], [60])
    bad = lines(tmp_path / "bad.odgt", {"ID": "x", "gtboxes": [
        {"tag": "person", "fbox": [0, 0, 10, 20], "head_attr": {"ignore": "1"}}]})
    with pytest.raises(InputError, match=r"bad\.odgt:1: gtboxes\[0\]\.head_attr\.ignore must be a number"):
        ch.read_gt(bad, head_ignore=True)


def test_round_trips(tmp_path):
    g = ch.GroundTruth("im,1", np.array([[1.5, 2.25, 30, 40]]), np.array([[0, 0, 5, 5]]), 64, 48)
    ch.write_gt(tmp_path / "gt.odgt", [g])
    (back,) = ch.read_gt(tmp_path / "gt.odgt")
    np.testing.assert_allclose(back.boxes, g.boxes)
    np.testing.assert_allclose(back.ignore, g.ignore)
    assert (back.width, back.height) == (64, 48)
    boxes = np.array([[0.123456789, 1, 2.5, 3.75], [10, 10, 10, 30]])  # a zero-width detection is allowed
    d = ch.OdgtDetections("im,1", boxes, np.array([0.987654321, 0.1]), 64, 48)
    ch.write_dt(tmp_path / "dt.odgt", [d])
    (dback,) = ch.read_dt(tmp_path / "dt.odgt")
    np.testing.assert_allclose(dback.boxes, boxes, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(dback.scores, d.scores)
    obj = json.loads((tmp_path / "dt.odgt").read_text())
    assert obj["dtboxes"][0]["tag"] == 1 and set(obj) == {"ID", "width", "height", "dtboxes"}


GOOD_BOX = {"tag": "person", "fbox": [1, 1, 5, 5]}


@pytest.mark.parametrize("kind, line, expect", [
    ("gt", '{"ID": "a", "gtboxes": [', "not valid JSON"),
    ("gt", "[1, 2]", "expected a JSON object"),
    ("gt", {"gtboxes": []}, "missing string key 'ID'"),
    ("gt", {"ID": "a"}, "missing list 'gtboxes'"),
    ("gt", {"ID": "a", "gtboxes": [{"tag": "person"}]}, "gtboxes[0] has no 'fbox'"),
    ("gt", {"ID": "a", "gtboxes": [{"fbox": [1, 1, 5, 5]}]}, "gtboxes[0] has no string 'tag'"),
    ("gt", {"ID": "a", "gtboxes": [GOOD_BOX, {"tag": "person", "fbox": [1, 1, 5]}]}, "gtboxes[1].fbox must be"),
    ("gt", {"ID": "a", "gtboxes": [{"tag": "person", "fbox": [1, 1, 0, 5]}]}, "zero size"),
    ("gt", {"ID": "a", "gtboxes": [{"tag": "mask", "fbox": [1, 1, 5, -2]}]}, "negative size"),
    ("gt", '{"ID": "a", "gtboxes": [{"tag": "person", "fbox": [1, NaN, 5, 5]}]}', "not finite"),
    ("gt", {"ID": "a", "width": -3, "height": 5, "gtboxes": []}, "'width' must be a positive integer"),
    ("gt", {"ID": "a", "gtboxes": [{"tag": "person", "fbox": [1, 1, 5, 5], "extra": {"ignore": "yes"}}]},
     "extra.ignore must be a number"),
    ("dt", {"ID": "a", "dtboxes": [{"box": [1, 1, 5, 5], "score": float("nan")}]}, "score must be a finite"),
    ("dt", '{"ID": "a", "dtboxes": [{"box": [1, 1, 5, 5], "score": Infinity}]}', "score must be a finite"),
    ("dt", {"ID": "a", "dtboxes": [{"box": [1, 1, 5, 5], "score": "0.9"}]}, "score must be a finite"),
    ("dt", {"ID": "a", "dtboxes": [{"box": [1, 1, -5, 5], "score": 0.5}]}, "negative size"),
    ("dt", {"ID": "a", "dtboxes": [{"box": [1, 1, 5, 5]}]}, "needs 'box' and 'score'"),
])
def test_malformed_lines_name_file_and_line(tmp_path, kind, line, expect):
    first = {"ID": "ok", "gtboxes": [GOOD_BOX]} if kind == "gt" else {"ID": "ok", "dtboxes": []}
    p = lines(tmp_path / f"{kind}.odgt", first, "   ", line)
    with pytest.raises(InputError) as e:
        (ch.read_gt if kind == "gt" else ch.read_dt)(p)
    msg = str(e.value)
    assert msg.startswith(f"{p}:3: ") and expect in msg and "\n" not in msg


def test_empty_missing_and_duplicate(tmp_path):
    for text in ("", "\n  \n"):
        (tmp_path / "e.odgt").write_text(text)
        with pytest.raises(InputError, match="e.odgt: empty file"):
            ch.read_gt(tmp_path / "e.odgt")
    with pytest.raises(InputError, match="nope.odgt: cannot read"):
        ch.read_dt(tmp_path / "nope.odgt")
    p = lines(tmp_path / "d.odgt", {"ID": "a", "gtboxes": []}, {"ID": "b", "gtboxes": []}, {"ID": "a", "gtboxes": []})
    with pytest.raises(InputError, match=r"d.odgt:3: ID 'a' repeats line 1"):
        ch.read_gt(p)


def test_drop_degenerate(tmp_path):
    p = lines(tmp_path / "g.odgt", {"ID": "a", "gtboxes": [GOOD_BOX, {"tag": "person", "fbox": [1, 1, 0, 5]}]})
    (r,) = ch.read_gt(p, drop_degenerate=True)
    assert len(r.boxes) == 1


def test_images_resolved_and_missing_named(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.jpg").write_bytes(b"x")
    (tmp_path / "img" / "b.png").write_bytes(b"x")
    p = lines(tmp_path / "g.odgt", *({"ID": i, "gtboxes": []} for i in ("a", "b")))
    a, b = ch.read_gt(p, tmp_path / "img")
    assert a.image_path.name == "a.jpg" and b.image_path.name == "b.png"
    p = lines(tmp_path / "g2.odgt", *({"ID": i, "gtboxes": []} for i in ("a", "c", "d")))
    with pytest.raises(InputError, match=r"g2.odgt:2: image 'c' not found in .*img \(and 1 more\)"):
        ch.read_gt(p, tmp_path / "img")
    with pytest.raises(InputError, match="images directory does not exist"):
        ch.read_gt(p, tmp_path / "nodir")


def test_writes_are_atomic(tmp_path):
    target = tmp_path / "out.odgt"
    target.write_text("old\n")

    def objects():
        yield {"ID": "a", "dtboxes": []}
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        ch.write_odgt(target, objects())
    assert target.read_text() == "old\n" and sorted(p.name for p in tmp_path.iterdir()) == ["out.odgt"]
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(InputError, match="cannot write here"):
        ch.write_dt(blocker / "sub" / "x.odgt", [])
