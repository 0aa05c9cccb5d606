"""Atomic file writes: an artifact is either complete at its final path or absent.

A crash, a full disk or Ctrl-C half-way through leaves at most a hidden temporary file that is
removed on the way out; readers never see a truncated artifact.
"""

import contextlib
import os
import tempfile
from pathlib import Path

from detrt.errors import InputError


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def make_dirs(path):
    """mkdir -p `path`; InputError naming it when that fails (a file in the way, no permission)."""
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"{path}: cannot create the output directory ({e.strerror or e})") from None


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path in the same directory; rename it onto `path` only on success."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as e:
        raise InputError(f"{path}: cannot write here ({e.strerror or e})") from None
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; an artifact gets the usual permissions
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextlib.contextmanager
def atomic_open(path, mode="w", **kwargs):
    """open() whose result appears at `path` only once the block finishes without error."""
    with atomic_path(path) as tmp:
        with open(tmp, mode, **kwargs) as f:
            yield f
