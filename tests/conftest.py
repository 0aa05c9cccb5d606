"""Shared by every test directory: a terminal-like stderr, and the `detrt` CLI run in a subprocess onto a full
disk."""

import io
import os
import shutil
import subprocess
import sys

import pytest


class TerminalStream(io.StringIO):
    """A stream that says it is an interactive terminal, as a console's stderr does."""

    def isatty(self):
        return True


@pytest.fixture
def terminal_stderr(monkeypatch):
    """Call it in a test to make sys.stderr a terminal (progress bars draw into the stream it returns); pytest's
    own stderr, like a log, is none. A call, not a patch at setup: pytest reinstates its capture before the test."""

    def install():
        stream = TerminalStream()
        monkeypatch.setattr(sys, "stderr", stream)
        return stream

    return install


# Each way to get a mount of our own: a private mount namespace (root, as in CI), or one inside a user
# namespace (where unprivileged user namespaces are allowed).
UNSHARE = (["unshare", "-m"], ["unshare", "-rm"])
TMPFS_KB = 64


def _unshare_that_mounts(probe_dir):
    if shutil.which("unshare") is None:
        return None
    for cmd in UNSHARE:
        probe = subprocess.run([*cmd, "sh", "-c", f'mount -t tmpfs -o size={TMPFS_KB}k tmpfs "$0"', probe_dir],
                               capture_output=True)
        if probe.returncode == 0:
            return cmd
    return None


@pytest.fixture(scope="session")
def _unshare(tmp_path_factory):
    cmd = _unshare_that_mounts(str(tmp_path_factory.mktemp("probe")))
    if cmd is None:
        pytest.skip("no full-disk test: neither `unshare -m` nor `unshare -rm` may mount a tmpfs here")
    return cmd


@pytest.fixture
def on_full_disk(_unshare, tmp_path_factory):
    """run(args, directory, free_kb=0): `python -m detrt.cli *args` with `directory` a full disk; returns its stdout.

    For that process only, `directory` is a 64 KiB tmpfs filled up to `free_kb` KiB of free space.
    Asserts the contract for a full disk: exit status 2, stderr exactly one line `detrt VERB: error:`
    naming a file in `directory` and "no space left on device", and no file left in `directory`
    (checked before the tmpfs goes away). Progress bars are turned off, so stderr holds errors only.
    """

    def run(args, directory, free_kb=0):
        os.makedirs(directory, exist_ok=True)
        listing = tmp_path_factory.mktemp("listing") / "files"
        script = ('mount -t tmpfs -o size={kb}k tmpfs "$0" || exit 99\n'
                  'dd if=/dev/zero of="$0/.fill" bs=1k count={fill} 2>/dev/null\n'
                  '"$@"; rc=$?; cd "$0" && find . -type f ! -name .fill > {listing}; exit $rc'
                  ).format(kb=TMPFS_KB, fill=TMPFS_KB - free_kb, listing=listing)
        argv = [*_unshare, "sh", "-c", script, str(directory), sys.executable, "-m", "detrt.cli", *map(str, args)]
        proc = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
        assert proc.returncode != 99, proc.stderr
        err = proc.stderr.splitlines()
        assert proc.returncode == 2, proc.stderr
        assert len(err) == 1 and err[0].startswith(f"detrt {args[0]}: error: {directory}/"), proc.stderr
        assert "no space left on device" in err[0], err
        assert listing.read_text().split() == [], f"left in {directory}: {listing.read_text()}"
        return proc.stdout

    return run
