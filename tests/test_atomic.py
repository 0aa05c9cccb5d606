"""Atomic writes: complete at the final path or absent, with ordinary permissions; stale temporaries; outputs."""

import os
import stat
import subprocess
import sys

import pytest

from detrt.atomic import atomic_dir, atomic_open, check_outputs
from detrt.errors import InputError


def test_written_file_appears_with_umask_permissions(tmp_path):
    with atomic_open(tmp_path / "a.json") as f:
        f.write("{}")
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "a.json").read_text() == "{}"
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o666 & ~mask


def test_failure_leaves_nothing_and_keeps_the_old_file(tmp_path):
    target = tmp_path / "a.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_open(target) as f:
            f.write("half")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["a.json"]


def test_unwritable_directory_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(InputError, match="cannot write here"):
        with atomic_open(blocker / "sub" / "a.json") as f:
            f.write("x")


def test_temporaries_of_dead_writers_are_removed_and_only_those(tmp_path):
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)
    stale = [f".a.json.{dead}.abcd_123.tmp", f".a.json.{dead}.k2j4h5g6.tmp.json"]  # .tmp + the suffix: videos
    kept = [f".a.json.{os.getpid()}.abcd1234.tmp",  # a live writer's
            f".b.json.{dead}.abcd1234.tmp", f".a.json.{dead}.abcd1234.tmp.mp4", ".a.json.keep", "a.json.1.x.tmp"]
    for name in stale + kept:
        (tmp_path / name).write_text("x")
    (tmp_path / f".a.json.{dead}.dir00000.tmp").mkdir()  # not a file we write
    with atomic_open(tmp_path / "a.json") as f:
        f.write("{}")
    assert sorted(os.listdir(tmp_path)) == sorted([*kept, f".a.json.{dead}.dir00000.tmp", "a.json"])


def test_directory_replaced_whole_or_kept_and_stale_staging_removed(tmp_path):
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)
    target = tmp_path / "last"
    with atomic_dir(target) as d:
        (d / "a").write_text("1")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o777 & ~mask  # not mkdtemp's 0700
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as d:
            (d / "a").write_text("half")
            raise RuntimeError("crash mid-write")
    assert (target / "a").read_text() == "1" and os.listdir(tmp_path) == ["last"]
    stale = [f".last.{dead}.abcd_123.tmp", f".last.{dead}.abcd_123_old.tmp"]  # a killed writer's new and old
    kept = [f".last.{os.getpid()}.abcd1234.tmp", f".lost.{dead}.abcd1234.tmp"]  # a live writer's, another's
    for name in stale + kept:
        (tmp_path / name).mkdir()
        (tmp_path / name / "a").write_text("x")
    (tmp_path / f".last.{dead}.file0000.tmp").write_text("x")  # not a directory we write
    with atomic_dir(target) as d:
        (d / "b").write_text("2")
    assert sorted(os.listdir(target)) == ["b"]
    assert sorted(os.listdir(tmp_path)) == sorted([*kept, f".last.{dead}.file0000.tmp", "last"])
    # killed between the two renames: the target is gone and its staging directories are the only copies
    (tmp_path / "gone").mkdir()
    (tmp_path / "gone" / f".last.{dead}.abcd_123_old.tmp").mkdir()
    with atomic_dir(tmp_path / "gone" / "last"):
        pass
    assert sorted(os.listdir(tmp_path / "gone")) == [f".last.{dead}.abcd_123_old.tmp", "last"]
    (tmp_path / "file").write_text("")
    with pytest.raises(InputError, match="file: exists and is not a directory"):
        with atomic_dir(tmp_path / "file"):
            pass


def test_outputs_checked_up_front(tmp_path):
    src = tmp_path / "in.mp4"
    src.write_text("")
    (tmp_path / "d").mkdir()
    check_outputs([tmp_path / "new" / "deeper" / "o.json", None], [src, "rtsp://cam/live", None],
                  directories=[tmp_path / "d", tmp_path / "new2"])
    assert not (tmp_path / "new").exists()  # checked, not made
    for outputs, dirs, match in [([src], [], "is also an input"), ([tmp_path / "x", tmp_path / "d" / ".." / "x"], [],
                                 "given as two outputs"), ([tmp_path / "d"], [], "is a directory, not a file"),
                                 ([], [src.with_name("in.mp4")], "is also an input"),
                                 ([], [tmp_path / "f"], "is a file, not a directory")]:
        (tmp_path / "f").write_text("")
        with pytest.raises(InputError, match=match):
            check_outputs(outputs, [src], directories=dirs)
