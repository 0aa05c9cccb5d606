"""The serving environment for the tests that need a real tritonserver.

PyTriton's tritonserver runs its Python-backend stub against the environment's libpython, which only a venv made
from Debian's /usr/bin/python3.11 provides here; `make serve-env` makes that venv (.venv-serve) from
requirements-serve.lock, so the tests build it themselves and skip, saying why, only where no such Python exists.
"""

import os
import subprocess
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


def env(tmp):
    """The environment of a process in the serving venv: PyTriton's workspace under `tmp`, no progress bars."""
    return {**os.environ, "PYTRITON_HOME": str(tmp / "pytriton"), "TQDM_DISABLE": "1"}
