"""COCO-format ground truth: ids remapped to indices, crowd boxes as ignore regions, the hierarchy from `parent`
or a names file, and one error naming the file and the entry for each kind of bad input."""

import json

import numpy as np
import pytest

from detrt.data.coco import read_coco, result_entries, write_results
from detrt.data.vocabulary import Vocabulary
from detrt.errors import InputError


def dataset(**changes):
    d = {
        "images": [{"id": 7, "file_name": "a.jpg", "width": 100, "height": 80},
                   {"id": 3, "file_name": "b.jpg", "width": 50, "height": 50}],
        "categories": [{"id": 90, "name": "toothbrush", "supercategory": "indoor"},
                       {"id": 1, "name": "person", "supercategory": "person"}],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 90, "bbox": [10, 20, 30, 40], "iscrowd": 0},
            {"id": 2, "image_id": 7, "category_id": 1, "bbox": [0, 0, 100.5, 80], "iscrowd": 0},  # rounding: clipped
            {"id": 3, "image_id": 7, "category_id": 1, "bbox": [50, 50, 10, 10], "iscrowd": 1},
            {"id": 4, "image_id": 3, "category_id": 1, "bbox": [1, 2, 3, 4]},  # LVIS: no iscrowd
        ],
    }
    d.update(changes)
    return d


def write(tmp_path, d, name="gt.json"):
    (tmp_path / name).write_text(json.dumps(d))
    return tmp_path / name


def test_read_coco_remaps_ids_and_keeps_crowd_apart(tmp_path):
    records, vocab = read_coco(write(tmp_path, dataset()))
    assert vocab.names == ("person", "toothbrush") and vocab.ids == (1, 90) and vocab.is_flat
    a, b = records
    assert (a.image_id, a.width, a.height, b.image_id) == ("7", 100, 80, "3")
    np.testing.assert_array_equal(a.boxes, [[10, 20, 40, 60], [0, 0, 100, 80]])
    np.testing.assert_array_equal(a.labels, [1, 0])
    np.testing.assert_array_equal(a.ignore, [[50, 50, 60, 60]])
    np.testing.assert_array_equal(b.labels, [0])
    assert a.labels.dtype == np.int64 and a.image_path is None


def test_hierarchy_from_parent_field_and_from_a_names_file(tmp_path):
    cats = [{"id": 1, "name": "animal"}, {"id": 2, "name": "dog", "parent": 1}, {"id": 5, "name": "puppy", "parent": 2}]
    d = dataset(categories=cats, annotations=[{"id": 1, "image_id": 3, "category_id": 5, "bbox": [0, 0, 5, 5]}])
    _, vocab = read_coco(write(tmp_path, d))
    assert vocab.parents == (-1, 0, 1) and vocab.ids == (1, 2, 5)
    given = Vocabulary(("puppy", "dog", "animal", "cat"), (1, 2, -1, 2), (5, 2, 1, 9))
    records, v = read_coco(write(tmp_path, d), vocabulary=given)
    assert v is given and records[1].labels.tolist() == [0]
    with pytest.raises(InputError, match=r"'dog' has id 2 here and id 4 in names.json"):
        read_coco(write(tmp_path, d), vocabulary=Vocabulary(("animal", "dog", "puppy"), None, (1, 4, 5), "names.json"))
    with pytest.raises(InputError, match=r"'animal' \(id 1\) is not in names.json"):
        read_coco(write(tmp_path, d), vocabulary=Vocabulary.flat(["dog", "puppy"], [2, 5], "names.json"))


def test_images_resolved(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.jpg").write_bytes(b"x")
    path = write(tmp_path, dataset())
    with pytest.raises(InputError, match=rf"^{path}: image 'b.jpg' \(id 3\) not found in {tmp_path / 'img'}$"):
        read_coco(path, tmp_path / "img")
    (tmp_path / "img" / "b.jpg").write_bytes(b"x")
    records, _ = read_coco(path, tmp_path / "img")
    assert [r.image_path for r in records] == [tmp_path / "img" / "a.jpg", tmp_path / "img" / "b.jpg"]
    lvis = dataset(images=[{"id": 7, "coco_url": "http://images.cocodataset.org/val2017/a.jpg", "width": 100,
                            "height": 80}, {"id": 3, "file_name": "b.jpg", "width": 50, "height": 50}])
    records, _ = read_coco(write(tmp_path, lvis), tmp_path / "img")
    assert records[0].image_path == tmp_path / "img" / "a.jpg"


def _ann(**kw):
    return {"annotations": [{"id": 11, "image_id": 7, "category_id": 1, "bbox": [10, 10, 5, 5], **kw}]}


@pytest.mark.parametrize("changes,message", [
    (_ann(category_id=2), r"annotations\[0\] \(id 11\): category_id 2 is not in 'categories'"),
    (_ann(image_id=8), r"annotations\[0\] \(id 11\): image_id 8 is not in 'images'"),
    (_ann(bbox=[90, 10, 20, 5]), r"annotations\[0\] \(id 11\).bbox \[90, 10, 20, 5\] is outside the 100x80 image"),
    (_ann(bbox=[10, -3, 20, 5]), r"annotations\[0\] \(id 11\).bbox \[10, -3, 20, 5\] is outside"),
    (_ann(bbox=[10, 10, 0, 5]), r"annotations\[0\] \(id 11\).bbox has zero size"),
    (_ann(bbox=[10, 10, 5]), r"annotations\[0\] \(id 11\).bbox must be a list of 4 numbers"),
    ({"categories": [{"id": 1, "name": "a"}, {"id": 1, "name": "b"}]}, r"categories\[1\] repeats id 1"),
    ({"categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "a"}]}, r"duplicate name 'a'"),
    ({"categories": [{"id": 1, "name": ""}]}, r"names\[0\] is empty"),
    ({"categories": [{"id": 1, "name": "a", "parent": 4}]}, r"category 'a' \(id 1\): parent 4 is not a category id"),
    ({"categories": [{"id": 1, "name": "a", "parent": 2}, {"id": 2, "name": "b", "parent": 1}]},
     r"the hierarchy has no root"),
    ({"categories": []}, r"'categories' is empty"),
    ({"images": [{"id": 7, "file_name": "a.jpg", "width": 100}]}, r"images\[0\] \(id 7\).height must be an integer"),
    ({"images": None}, r"missing list 'images'"),
])
def test_errors_name_the_file_and_entry(tmp_path, changes, message):
    path = write(tmp_path, dataset(**changes))
    with pytest.raises(InputError, match=rf"^{path}: {message}"):
        read_coco(path)


def test_degenerate_boxes_dropped_on_request(tmp_path):
    records, _ = read_coco(write(tmp_path, dataset(**_ann(bbox=[10, 10, 0, 5]))), drop_degenerate=True)
    assert len(records[0].boxes) == 0


@pytest.mark.parametrize("content,message", [("", "empty file"), ("[]", "expected a JSON object"),
                                             ("{", "not valid JSON")])
def test_bad_json(tmp_path, content, message):
    (tmp_path / "gt.json").write_text(content)
    with pytest.raises(InputError, match=f"{tmp_path / 'gt.json'}: {message}"):
        read_coco(tmp_path / "gt.json")


def test_result_entries_and_writer(tmp_path):
    entries = result_entries(7, np.array([[10, 20, 40, 60.123]], np.float32), np.array([0.87654321]), [90])
    assert entries == [{"image_id": 7, "category_id": 90, "bbox": [10.0, 20.0, 30.0, 40.12], "score": 0.87654}]
    assert write_results(tmp_path / "r.json", entries) == 1
    assert json.loads((tmp_path / "r.json").read_text()) == entries
