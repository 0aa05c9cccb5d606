"""Atomic writes: complete at the final path or absent, with ordinary permissions."""

import os
import stat

import pytest

from detrt.atomic import atomic_open
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
