"""The serving environment and a `detrt serve` in it, for the tests that need a real tritonserver.

PyTriton's tritonserver runs its Python-backend stub against the environment's libpython, which only a venv made
from Debian's /usr/bin/python3.11 provides here; `make serve-env` makes that venv (.venv-serve) from
requirements-serve.lock, so the tests build it themselves and skip, saying why, only where no such Python exists.
"""

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVE_PYTHON = Path("/usr/bin/python3.11")
VENV_BIN = ROOT / ".venv-serve" / "bin"


def serve_env():
    """The serving venv's bin directory, made (or brought up to date) with `make serve-env`."""
    if not SERVE_PYTHON.is_file():
        pytest.skip(f"no {SERVE_PYTHON}: PyTriton's tritonserver stub needs the libpython of Debian's Python 3.11 "
                    f"(another build of 3.11 fails in the stub, 3.12 has no matching libpython)")
    proc = subprocess.run(["make", "-s", "serve-env"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, f"make serve-env failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return VENV_BIN


def free_ports(n):
    """n ports on 127.0.0.1 that nothing listens on now."""
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def env(tmp):
    """The environment of a process in the serving venv: PyTriton's workspace under `tmp`, no progress bars."""
    return {**os.environ, "PYTRITON_HOME": str(tmp / "pytriton"), "TQDM_DISABLE": "1"}


class Server:
    """`detrt serve ARTIFACT` in the serving venv, in a process group of its own (it and its tritonserver)."""

    def __init__(self, bin_dir, artifact, tmp, *flags):
        self.bin_dir, self.artifact, self.tmp, self.flags = bin_dir, artifact, tmp, [str(f) for f in flags]
        self.grpc_port, http, metrics = free_ports(3)
        self.ports = ["--grpc-port", str(self.grpc_port), "--http-port", str(http), "--metrics-port", str(metrics)]
        self.url = f"grpc://127.0.0.1:{self.grpc_port}"
        self.proc, self.starts = None, 0

    def start(self, timeout=180):
        self.starts += 1
        self.log = self.tmp / f"serve{self.starts}.log"
        self.proc = subprocess.Popen([str(self.bin_dir / "detrt"), "serve", str(self.artifact), *self.ports,
                                      *self.flags], stdout=open(self.log, "w"), stderr=subprocess.STDOUT,
                                     start_new_session=True, env=env(self.tmp))
        deadline = time.monotonic() + timeout
        while "detrt serve: " not in self.log.read_text():
            assert self.proc.poll() is None and time.monotonic() < deadline, self.log.read_text()[-3000:]
            time.sleep(0.2)
        return self

    def kill(self):
        """SIGKILL to the whole group, as a crash or a power cut would; removes the shared memory it leaves."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        for leftover in Path("/dev/shm").glob(f"pytrtion{self.proc.pid}-*"):
            leftover.unlink(missing_ok=True)

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.kill()
