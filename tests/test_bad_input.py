"""Every verb against a table of bad inputs: exit status 2, one line on stderr naming the file, nothing
half-written left.

The table below is the one place a verb's bad inputs are listed; a new verb joins it (the first test fails
until it does). A row is (kind, build): build(files) returns the command line and the path its error must
name. Rows of kind "full disk" run in a subprocess onto a small tmpfs (conftest's `on_full_disk`, which
asserts the same contract); the others run in-process.
"""

import shutil
import socket

import pytest

from detrt.assets import bundled_model_path
from detrt.cli import VERBS, main, verb_name
from tests.helpers.probe_models import gradient_frames, make_topk_model, write_video

KINDS = ("missing", "empty", "truncated", "wrong type", "unwritable output", "full disk", "no manifest", "not empty",
         "port in use")


class Files:
    """Good inputs made once, and bad ones derived from them, under `root`; outputs go to `out`."""

    def __init__(self, root):
        self.root, self.out = root, root / "out"
        self.model = root / "m.onnx"
        make_topk_model(self.model)
        self.clip = write_video(root / "c.mp4", gradient_frames(3))
        self.gt = self.text("gt.odgt", '{"ID": "a", "width": 96, "height": 64, "gtboxes": [{"tag": "person", '
                                       '"fbox": [8, 4, 32, 56]}]}\n')
        self.dt = self.text("dt.odgt", '{"ID": "a", "dtboxes": [{"box": [8, 4, 32, 56], "score": 0.9, "tag": 1}]}\n')
        self.coco = self.text("gt.json", '{"images": [{"id": 1, "file_name": "a.jpg", "width": 96, "height": 64}], '
                                         '"categories": [{"id": 1, "name": "square"}], "annotations": [{"id": 1, '
                                         '"image_id": 1, "category_id": 1, "bbox": [8, 4, 32, 56]}]}\n')
        self.results = self.text("dt.json", '[{"image_id": 1, "category_id": 1, "bbox": [8, 4, 32, 56], "score": 0.9}]')
        self.a_file = self.text("a_file", "a file where a directory is needed\n")
        self.checkpoint = bundled_model_path()

    def text(self, name, content):
        (self.root / name).write_text(content)
        return self.root / name

    def empty(self, name):
        return self.text(name, "")

    def truncated(self, path, name=None):
        """The first half of `path`'s bytes, with its manifest (if any) beside the copy."""
        cut = self.root / (name or f"cut_{path.name}")
        data = path.read_bytes()
        cut.write_bytes(data[:len(data) // 2])
        if path.with_name(path.name + ".json").exists():
            shutil.copy(path.with_name(path.name + ".json"), cut.with_name(cut.name + ".json"))
        return cut

    def truncated_checkpoint(self):
        cut = self.root / "cut_ckpt"
        cut.mkdir(exist_ok=True)
        self.truncated(self.checkpoint / "checkpoint.safetensors", "cut_ckpt/checkpoint.safetensors")
        shutil.copy(self.checkpoint / "checkpoint.json", cut)
        return cut

    def empty_checkpoint(self, content=""):
        """A checkpoint directory whose weights file holds `content` (nothing, or text)."""
        empty = self.root / "empty_ckpt"
        empty.mkdir(exist_ok=True)
        self.text("empty_ckpt/checkpoint.safetensors", content)
        shutil.copy(self.checkpoint / "checkpoint.json", empty)
        return empty

    def under_file(self, name):
        """An output path whose directory is a file: it cannot be written."""
        return self.a_file / name

    def full(self, name):
        return self.root / "full" / name

    def without_manifest(self):
        """A copy of the model with no manifest beside it."""
        bare = self.root / "bare.onnx"
        shutil.copy(self.model, bare)
        return bare

    def not_empty(self):
        full = self.root / "not_empty"
        full.mkdir(exist_ok=True)
        self.text("not_empty/keep.txt", "someone's file\n")
        return full

    def port_in_use(self):
        """A port this process listens on (kept open while the tests of this module run)."""
        if not hasattr(self, "_listener"):
            self._listener = socket.socket()
            self._listener.bind(("127.0.0.1", 0))
            self._listener.listen()
        return self._listener.getsockname()[1]


def _run(f, src, *extra):
    return ["run", src, "--model", f.model, *extra]


def _serve(model, grpc_port=0):
    """detrt serve on ports that are free (0: any), but for the gRPC port given."""
    return ["serve", model, "--grpc-port", str(grpc_port), "--http-port", "0", "--metrics-port", "0"]


TABLE = {
    "run": [
        ("missing", lambda f: (_run(f, f.root / "nope.mp4"), f.root / "nope.mp4")),
        ("empty", lambda f: (_run(f, f.empty("e.mp4")), f.root / "e.mp4")),
        ("truncated", lambda f: (["run", f.clip, "--model", f.truncated(f.model)], f.root / "cut_m.onnx")),
        ("wrong type", lambda f: (["run", f.clip, "--model", f.gt], f.gt)),
        ("unwritable output", lambda f: (_run(f, f.clip, "--jsonl", f.under_file("d.jsonl")), f.a_file)),
        ("unwritable output", lambda f: (_run(f, f.clip, "--coco", f.under_file("r.json")), f.a_file)),
        ("full disk", lambda f: (_run(f, f.clip, "--summary", f.full("s.json")), f.full(""))),
    ],
    "synth": [
        ("wrong type", lambda f: (["synth", f.a_file, "--num", "1"], f.a_file)),
        ("unwritable output", lambda f: (["synth", f.under_file("set"), "--num", "1"], f.a_file)),
        ("full disk", lambda f: (["synth", f.full("set"), "--num", "2", "--size", "256x256"], f.full(""))),
        ("full disk", lambda f: (["synth", f.full("vocab"), "--kind", "vocab", "--num", "2"], f.full(""))),
    ],
    "eval": [
        ("missing", lambda f: (["eval", "--gt", f.root / "nope.odgt", "--dt", f.dt], f.root / "nope.odgt")),
        ("empty", lambda f: (["eval", "--gt", f.empty("e.odgt"), "--dt", f.dt], f.root / "e.odgt")),
        ("truncated", lambda f: (["eval", "--gt", f.truncated(f.gt), "--dt", f.dt], f.root / "cut_gt.odgt")),
        ("wrong type", lambda f: (["eval", "--gt", f.gt, "--dt", f.model], f.model)),
        ("unwritable output", lambda f: (["eval", "--gt", f.gt, "--dt", f.dt, "--json", f.under_file("m.json")],
                                         f.a_file)),
        ("full disk", lambda f: (["eval", "--gt", f.gt, "--dt", f.dt, "--json", f.full("m.json")], f.full(""))),
        ("missing", lambda f: (["eval", "--gt", f.root / "nope.json", "--dt", f.results], f.root / "nope.json")),
        ("empty", lambda f: (["eval", "--gt", f.coco, "--dt", f.empty("e.json")], f.root / "e.json")),
        ("truncated", lambda f: (["eval", "--gt", f.truncated(f.coco), "--dt", f.results], f.root / "cut_gt.json")),
        ("wrong type", lambda f: (["eval", "--gt", f.coco, "--dt", f.dt], f.dt)),
        ("wrong type", lambda f: (["eval", "--gt", f.coco, "--dt", f.coco], f.coco)),
        ("missing", lambda f: (["eval", "--gt", f.coco, "--dt", f.results, "--train-gt", f.root / "nope.json"],
                               f.root / "nope.json")),
    ],
    "bench": [
        ("missing", lambda f: (["bench", f.root / "nope.onnx"], f.root / "nope.onnx")),
        ("empty", lambda f: (["bench", f.empty("e.onnx")], f.root / "e.onnx")),
        ("truncated", lambda f: (["bench", f.truncated(f.model)], f.root / "cut_m.onnx")),
        ("wrong type", lambda f: (["bench", f.gt], f.gt)),
        ("unwritable output", lambda f: (["bench", f.model, "--json", f.under_file("b.json")], f.a_file)),
    ],
    "train": [
        ("missing", lambda f: (["train", "--config", "dhdetr_r18_tiny", "--data", f.root / "nope.odgt", "--images",
                                f.root, "--output", f.out / "run"], f.root / "nope.odgt")),
        ("empty", lambda f: (["train", "--config", "dhdetr_r18_tiny", "--data", f.empty("e.odgt"), "--images",
                              f.root, "--output", f.out / "run"], f.root / "e.odgt")),
        ("truncated", lambda f: (["train", "--config", "dhdetr_r18_tiny", "--data", f.truncated(f.gt), "--images",
                                  f.root, "--output", f.out / "run"], f.root / "cut_gt.odgt")),
        ("wrong type", lambda f: (["train", "--config", "dhdetr_r18_tiny", "--data", f.gt, "--images", f.a_file,
                                   "--output", f.out / "run"], f.a_file)),
        ("unwritable output", lambda f: (["train", "--config", "dhdetr_r18_tiny", "--data", f.gt, "--images",
                                          f.root, "--output", f.under_file("run")], f.a_file)),
    ],
    "export": [
        ("missing", lambda f: (["export", f.root / "nope", "-o", f.out / "m.onnx"], f.root / "nope")),
        ("empty", lambda f: (["export", f.empty_checkpoint(), "-o", f.out / "m.onnx"],
                             f.root / "empty_ckpt/checkpoint.safetensors")),
        ("truncated", lambda f: (["export", f.truncated_checkpoint(), "-o", f.out / "m.onnx"],
                                 f.root / "cut_ckpt/checkpoint.safetensors")),
        ("wrong type", lambda f: (["export", f.empty_checkpoint(f.gt.read_text()), "-o", f.out / "m.onnx"],
                                  f.root / "empty_ckpt/checkpoint.safetensors")),
        ("unwritable output", lambda f: (["export", f.checkpoint, "-o", f.under_file("m.onnx")], f.a_file)),
    ],
    "surgery": [
        ("missing", lambda f: (["surgery", f.root / "nope.onnx", "-o", f.out / "p.onnx"], f.root / "nope.onnx")),
        ("empty", lambda f: (["surgery", f.empty("e.onnx"), "-o", f.out / "p.onnx"], f.root / "e.onnx")),
        ("truncated", lambda f: (["surgery", f.truncated(f.model), "-o", f.out / "p.onnx"], f.root / "cut_m.onnx")),
        ("wrong type", lambda f: (["surgery", f.gt, "-o", f.out / "p.onnx"], f.gt)),
        ("unwritable output", lambda f: (["surgery", f.model, "-o", f.under_file("p.onnx")], f.a_file)),
        ("full disk", lambda f: (["surgery", f.model, "-o", f.full("p.onnx")], f.full(""))),
    ],
    "build": [
        ("missing", lambda f: (["build", f.root / "nope.onnx", "--backend", "onnxruntime", "-o", f.out / "b.onnx"],
                               f.root / "nope.onnx")),
        ("empty", lambda f: (["build", f.empty("e.onnx"), "--backend", "onnxruntime", "-o", f.out / "b.onnx"],
                             f.root / "e.onnx")),
        ("truncated", lambda f: (["build", f.truncated(f.model), "--backend", "onnxruntime", "-o",
                                  f.out / "b.onnx"], f.root / "cut_m.onnx")),
        ("wrong type", lambda f: (["build", f.gt, "--backend", "onnxruntime", "-o", f.out / "b.onnx"], f.gt)),
        ("unwritable output", lambda f: (["build", f.model, "--backend", "onnxruntime", "-o",
                                          f.under_file("b.onnx")], f.a_file)),
        ("unwritable output", lambda f: (["build", f.model, "--backend", "openvino", "-o", f.under_file("b.xml")],
                                         f.a_file)),
        ("wrong type", lambda f: (["build", f.model, "--backend", "openvino", "-o", f.out / "b.xml", "--gate",
                                   f.a_file], f.a_file)),
    ],
    "export-triton": [
        ("missing", lambda f: (["export-triton", f.root / "nope.onnx", "--repo", f.out / "r"], f.root / "nope.onnx")),
        ("empty", lambda f: (["export-triton", f.empty("e.onnx"), "--repo", f.out / "r"], f.root / "e.onnx.json")),
        ("truncated", lambda f: (["export-triton", f.truncated(f.model), "--repo", f.out / "r"],
                                 f.root / "cut_m.onnx")),
        ("wrong type", lambda f: (["export-triton", f.gt, "--repo", f.out / "r"], f.gt)),
        ("no manifest", lambda f: (["export-triton", f.without_manifest(), "--repo", f.out / "r"],
                                   f.root / "bare.onnx.json")),
        ("not empty", lambda f: (["export-triton", f.model, "--repo", f.not_empty()], f.root / "not_empty")),
        ("unwritable output", lambda f: (["export-triton", f.model, "--repo", f.under_file("r")], f.a_file)),
    ],
    "serve": [
        ("missing", lambda f: (_serve(f.root / "nope.onnx"), f.root / "nope.onnx")),
        ("wrong type", lambda f: (_serve(f.gt), f.gt)),
        ("no manifest", lambda f: (_serve(f.without_manifest()), f.root / "bare.onnx.json")),
        ("port in use", lambda f: (_serve(f.model, f.port_in_use()),
                                   f"port {f.port_in_use()} on 127.0.0.1 is in use (--grpc-port")),
    ],
    "doctor": [
        ("missing", lambda f: (["doctor", "--model", f.root / "nope.onnx"], f.root / "nope.onnx")),
        ("empty", lambda f: (["doctor", "--model", f.empty("e.onnx")], f.root / "e.onnx")),
        ("truncated", lambda f: (["doctor", "--model", f.truncated(f.model)], f.root / "cut_m.onnx")),
        ("wrong type", lambda f: (["doctor", "--model", f.gt], f.gt)),
    ],
    "demo": [
        ("missing", lambda f: (["demo", "--checkpoint", f.root / "nope", "--out", f.out / "demo"], f.root / "nope")),
        ("unwritable output", lambda f: (["demo", "--out", f.under_file("demo")], f.a_file)),
    ],
}


def test_every_verb_has_rows_of_known_kinds():
    assert set(TABLE) == {verb_name(fn) for fn, _, _ in VERBS}
    assert {kind for rows in TABLE.values() for kind, _ in rows} <= set(KINDS)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return Files(tmp_path_factory.mktemp("bad_input"))


@pytest.mark.parametrize("verb", sorted(TABLE))
def test_bad_input_is_one_line_naming_the_file(verb, files, capsys, request):
    files.out = files.root / "out" / verb  # where the rows of this verb write
    files.out.mkdir(parents=True)
    for kind, build in TABLE[verb]:
        argv, named = build(files)
        if kind == "full disk":
            request.getfixturevalue("on_full_disk")(argv, named)  # asserts the contract itself
            continue
        assert main([str(a) for a in argv]) == 2, f"{verb}, {kind}"
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 1 and err[0].startswith(f"detrt {verb}: error: "), f"{verb}, {kind}: {err}"
        assert str(named) in err[0], f"{verb}, {kind}: {err[0]!r} does not name {named}"
        assert list(files.out.iterdir()) == [], f"{verb}, {kind}: left {list(files.out.iterdir())}"
        assert files.a_file.is_file()
