"""Atomic writes of files and directories: an artifact is either complete at its final path or absent.

A crash, a full disk or Ctrl-C half-way through leaves at most a hidden temporary file or directory beside
the artifact, `.NAME.PID.RANDOM.tmp`, removed on the way out; one left by a killed process is removed
by the next write of the same artifact. Readers never see a truncated artifact. A full disk is one
InputError naming the artifact, "no space left on device", whichever library was writing: Python
says ENOSPC, but ONNX Runtime calls it a protobuf error and OpenCV's video writer says nothing.

check_outputs refuses an output that cannot be written, or that is also an input, before any work.
"""

import contextlib
import errno
import os
import re
import shutil
import tempfile
from pathlib import Path

from detrt.errors import InputError

NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
FULL_BELOW = 1 << 20  # free bytes under which a failed write is put down to a full disk (ONNX Runtime, OpenCV)


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


def no_space(path):
    return InputError(f"{path}: cannot write here (no space left on device)")


def disk_full(directory):
    """Whether the file system holding `directory` is (nearly) out of space."""
    try:
        return shutil.disk_usage(directory).free < FULL_BELOW
    except OSError:
        return False


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: someone else's live process
        return True
    return True


def remove_stale_temps(path, directories=False):
    """Remove the temporary files of `path` (our pattern only) whose writing process is gone; with
    directories=True its temporary directories instead (atomic_dir), but only while `path` exists: a
    process killed between atomic_dir's two renames leaves the only copies in them."""
    path = Path(path)
    if directories and not path.is_dir():
        return
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(\d+)\.[a-z0-9_]+\.tmp({re.escape(path.suffix)})?")
    with contextlib.suppress(OSError):
        for entry in os.scandir(path.parent):
            m = pattern.fullmatch(entry.name)
            is_ours = entry.is_dir(follow_symlinks=False) if directories else entry.is_file(follow_symlinks=False)
            if m and is_ours and not _alive(int(m.group(1))):
                if directories:
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)


def _cannot_write(path, e):
    return no_space(path) if e.errno in NO_SPACE else InputError(f"{path}: cannot write here ({e.strerror or e})")


def _raise_write_failure(e, path, tmp):
    """Raise exception `e` of writing `path` again, a full disk as one InputError (checked before the temporary
    is removed, which may be what filled the disk)."""
    if isinstance(e, InputError) or not (getattr(e, "errno", None) in NO_SPACE or disk_full(tmp.parent)):
        raise e
    raise no_space(path) from None


def temp_path(path, suffix=".tmp"):
    """Create an empty hidden file beside `path` to write its next version into; return its Path."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=suffix, dir=path.parent)
    except OSError as e:
        raise _cannot_write(path, e) from None
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; an artifact gets the usual permissions
    return Path(tmp)


@contextlib.contextmanager
def atomic_path(path, suffix=".tmp"):
    """Yield a temporary path in the same directory; rename it onto `path` only on success."""
    path = Path(path)
    tmp = temp_path(path, suffix)
    try:
        yield tmp
        os.replace(tmp, path)
    except Exception as e:
        _raise_write_failure(e, path, tmp)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path):
    """Yield a new empty directory beside `path` to fill; only when the block succeeds it replaces `path`
    (absent or a directory), so a crash leaves the previous version whole and no half-written one."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"{path}: exists and is not a directory")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(path, directories=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent))
    except OSError as e:
        raise _cannot_write(path, e) from None
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it private; the result should look like any new directory
    old = tmp.with_name(tmp.name.removesuffix(".tmp") + "_old.tmp")  # the pattern remove_stale_temps knows
    try:
        yield tmp
        if path.is_dir():
            os.replace(path, old)
        os.replace(tmp, path)
    except Exception as e:
        _raise_write_failure(e, path, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_open(path, mode="w", **kwargs):
    """open() whose result appears at `path` only once the block finishes without error."""
    with atomic_path(path) as tmp:
        with open(tmp, mode, **kwargs) as f:
            yield f


class AtomicVideo:
    """An OpenCV video writer whose file takes `path` only once it reads back with every frame written.

    cv2.VideoWriter fails silently: on a full disk it leaves an MP4 of a few KB without its index,
    which nothing can play. commit() therefore reopens the temporary file: it must report the frame
    count written and decode the last frame (a truncated AVI still reports the count).
    """

    def __init__(self, path, fourcc, fps, size):
        import cv2

        self.path = Path(path)
        self.frames = 0
        self._tmp = temp_path(self.path, suffix=".tmp" + self.path.suffix)  # the extension picks the container
        self._writer = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter_fourcc(*fourcc), float(fps), size)
        if not self._writer.isOpened():
            error = self._failure("OpenCV cannot open a video writer here")
            self.discard()
            raise error

    def write(self, image):
        self._writer.write(image)
        self.frames += 1

    def commit(self):
        """Finish the file and move it to `path`; InputError (and no file) if it does not read back."""
        self._writer.release()
        try:
            if not _reads_back(self._tmp, self.frames):
                raise self._failure(f"the video writer failed ({self.frames} frames written, the file does not "
                                    f"read back)")
            os.replace(self._tmp, self.path)
        finally:
            self._tmp.unlink(missing_ok=True)

    def discard(self):
        self._writer.release()
        self._tmp.unlink(missing_ok=True)

    def _failure(self, what):
        return no_space(self.path) if disk_full(self._tmp.parent) else InputError(f"{self.path}: {what}")


def _reads_back(path, frames):
    import cv2

    if frames < 1:
        return False
    api = cv2.CAP_FFMPEG if cv2.videoio_registry.hasBackend(cv2.CAP_FFMPEG) else cv2.CAP_ANY
    with _quiet_stderr():  # FFmpeg prints "moov atom not found" for the very files this rejects
        cap = cv2.VideoCapture(str(path), api)
        try:
            return (cap.isOpened() and cap.get(cv2.CAP_PROP_FRAME_COUNT) == frames
                    and cap.set(cv2.CAP_PROP_POS_FRAMES, frames - 1) and cap.read()[0])
        finally:
            cap.release()


@contextlib.contextmanager
def _quiet_stderr():
    """Send file descriptor 2 to /dev/null (native libraries write there directly)."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def check_outputs(outputs, inputs=(), directories=()):
    """Refuse, before any work, an output that cannot be written here or that is also an input.

    outputs: file paths to be written; directories: directory paths to be written into; inputs:
    paths read (those that do not exist, e.g. camera URIs, are ignored). None entries are skipped.
    """
    sources = {os.path.realpath(p): p for p in inputs if p is not None and os.path.exists(p)}
    written = set()
    for out, is_dir in [(o, False) for o in outputs if o is not None] + [(d, True) for d in directories if d]:
        real = os.path.realpath(out)
        if real in sources:
            raise InputError(f"{out}: is also an input ({sources[real]}); write the output elsewhere")
        if real in written:
            raise InputError(f"{out}: given as two outputs")
        written.add(real)
        _check_writable(Path(out), is_dir)


def _check_writable(path, is_dir):
    if path.is_dir() and not is_dir:
        raise InputError(f"{path}: is a directory, not a file")
    if path.exists() and not path.is_dir() and is_dir:
        raise InputError(f"{path}: is a file, not a directory")
    parent = path if is_dir else path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"{path}: cannot write here ({parent} is a file)")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"{path}: cannot write here ({parent} is not writable)")
