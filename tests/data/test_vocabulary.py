"""Vocabulary: hierarchy queries on a hand-made tree, every validation error naming its file, the names file and
embedding table round trips, and rows matched by name."""

import json

import numpy as np
import pytest

from detrt.data.vocabulary import Vocabulary, load_embeddings, save_embeddings
from detrt.errors import InputError

# animal(0) -> dog(1) -> puppy(3); animal -> cat(2); vehicle(4) -> car(5)
TREE = Vocabulary(("animal", "dog", "cat", "puppy", "vehicle", "car"), (-1, 0, 0, 1, -1, 4))


def test_tree_queries():
    assert TREE.ancestors(3) == (1, 0) and TREE.ancestors(0) == () and TREE.ancestors(5) == (4,)
    assert TREE.depths.tolist() == [0, 1, 1, 2, 0, 1] and TREE.depth == 3
    assert TREE.leaves().tolist() == [2, 3, 5]
    assert TREE.children == ((1, 2), (3,), (), (), (5,), ())
    assert TREE.ids == (1, 2, 3, 4, 5, 6) and TREE.index["puppy"] == 3 and not TREE.is_flat
    mask = TREE.ancestor_mask()
    want = np.zeros((6, 6), bool)
    for i, js in {0: [0], 1: [1, 0], 2: [2, 0], 3: [3, 1, 0], 4: [4], 5: [5, 4]}.items():
        want[i, js] = True
    np.testing.assert_array_equal(mask, want)
    np.testing.assert_array_equal(TREE.ancestor_mask([3, 5, 3]), want[[3, 5, 3]])  # rows of a batch's positives


def test_flat():
    v = Vocabulary.flat(["a", "b"], ids=[7, 3])
    assert v.is_flat and v.depth == 1 and v.leaves().tolist() == [0, 1] and v.parents == (-1, -1)
    np.testing.assert_array_equal(v.ancestor_mask(), np.eye(2, dtype=bool))
    assert v.to_dict() == {"names": ["a", "b"], "parents": [-1, -1], "ids": [7, 3]}
    assert Vocabulary.flat(["a"]) == Vocabulary(("a",), (-1,), (1,))


@pytest.mark.parametrize("names,parents,message", [
    (["a", "b", "a"], None, "duplicate name 'a' (names[0] and names[2])"),
    (["a", " "], None, "names[1] is empty"),
    (["a", 3], None, "names[1] is not a string"),
    ([], None, "'names' must be a non-empty list"),
    (["a", "b", "c"], [-1, 2, 1], "cycle: 'b' -> 'c' -> 'b'"),
    (["a", "b"], [1, 0], "no root"),
    (["a", "b"], [-1, 5], "'b' (names[1]) has unknown parent 5"),
    (["a", "b"], [-1, 1], "'b' (names[1]) is its own parent"),
    (["a", "b"], [-1], "'parents' must be a list of 2 integers"),
    (["a", "b"], [-1, 0.5], "parents[1] must be an integer"),
])
def test_bad_vocabularies_name_the_file(tmp_path, names, parents, message):
    path = tmp_path / "v.json"
    path.write_text(json.dumps({"names": names, **({"parents": parents} if parents is not None else {})}))
    with pytest.raises(InputError) as e:
        Vocabulary.load(path)
    assert str(e.value).startswith(f"{path}: ") and message in str(e.value)


@pytest.mark.parametrize("content,message", [
    ("", "empty file"), ("{nope", "not valid JSON"), ('{"names": ["a"], "colours": 1}', "unknown key(s) colours"),
    ("[1, 2]", "expected a JSON object with 'names'"), ('{"names": ["a", "b"], "ids": [4, 4]}', "duplicate id 4"),
])
def test_bad_files(tmp_path, content, message):
    path = tmp_path / "v.json"
    path.write_text(content)
    with pytest.raises(InputError, match=f"^{path}: .*{message}".replace("(", r"\(").replace(")", r"\)")):
        Vocabulary.load(path)
    with pytest.raises(InputError, match="cannot read"):
        Vocabulary.load(tmp_path / "absent.json")


def test_names_file_round_trip_and_text_form(tmp_path):
    TREE.save(tmp_path / "v.json")
    assert Vocabulary.load(tmp_path / "v.json") == TREE
    assert json.loads((tmp_path / "v.json").read_text()) == {"names": list(TREE.names),
                                                             "parents": list(TREE.parents)}  # default ids left out
    (tmp_path / "names.txt").write_text("person\nbicycle\ncar\n\n")
    assert Vocabulary.load(tmp_path / "names.txt") == Vocabulary.flat(["person", "bicycle", "car"])
    for text, message in (("a\n\nb\n", ":2: empty name"), ("a\nb\na\n", ":3: duplicate name 'a' (line 1)")):
        (tmp_path / "bad.txt").write_text(text)
        with pytest.raises(InputError) as e:
            Vocabulary.load(tmp_path / "bad.txt")
        assert str(e.value).startswith(f"{tmp_path / 'bad.txt'}{message}")


def test_embeddings_matched_by_name(tmp_path):
    table = np.arange(12, dtype=np.float32).reshape(4, 3)
    save_embeddings(tmp_path / "e.safetensors", ["cat", "dog", "extra", "animal"], table)
    v = Vocabulary(("animal", "dog", "cat"), (-1, 0, 0))
    got = load_embeddings(tmp_path / "e.safetensors", v)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, table[[3, 1, 0]])  # the vocabulary's order, the extra row unused


def test_embedding_errors(tmp_path):
    path = tmp_path / "e.safetensors"
    save_embeddings(path, ["cat", "dog"], np.ones((2, 3)))
    with pytest.raises(InputError, match=rf"^{path}: no embedding for 1 of the 3 names of vocabulary: 'bird'"):
        load_embeddings(path, Vocabulary.flat(["cat", "dog", "bird"]))
    save_embeddings(path, ["cat", "cat"], np.ones((2, 3)))
    with pytest.raises(InputError, match=r"duplicate name 'cat' .*metadata 'names'"):
        load_embeddings(path, Vocabulary.flat(["cat"]))
    save_embeddings(path, ["cat", "dog"], np.array([[1, 2], [np.nan, 0]]))
    with pytest.raises(InputError, match=r"row 1 \('dog'\) of 'embeddings' is not finite"):
        load_embeddings(path, Vocabulary.flat(["cat"]))
    from safetensors.numpy import save_file

    save_file({"embeddings": np.ones((3, 2), np.float32)}, str(path), metadata={"names": '["a", "b"]'})
    with pytest.raises(InputError, match="has 2 names for 3 rows"):
        load_embeddings(path, Vocabulary.flat(["a"]))
    save_file({"table": np.ones((3, 2), np.float32)}, str(path))
    with pytest.raises(InputError, match="no tensor 'embeddings' \\(has 'table'\\)"):
        load_embeddings(path, Vocabulary.flat(["a"]))
    path.write_bytes(b"not a safetensors file at all")
    with pytest.raises(InputError, match=f"^{path}: not a readable safetensors file"):
        load_embeddings(path, Vocabulary.flat(["a"]))
    with pytest.raises(InputError, match="no such embedding table"):
        load_embeddings(tmp_path / "absent.safetensors", Vocabulary.flat(["a"]))
