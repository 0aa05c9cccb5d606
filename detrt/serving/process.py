"""`detrt serve` as a child process, for scripts that start servers (a fleet on one host, benchmarks, tests):
started in a process group of its own with its tritonserver, waited for until it serves, stopped or killed.

    with ServeProcess(".venv-serve/bin/detrt", "model.onnx", log="serve.log") as server:
        subprocess.run([".venv-serve/bin/detrt", "run", "cam.mp4", "--server", server.url, "--model", "model.onnx"])

`detrt` is the executable of an environment where `detrt serve` runs (README: Serving on Triton).
"""

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

READY = "detrt serve: "  # the line detrt serve prints once the model is served


def free_ports(n):
    """n ports on 127.0.0.1 that nothing listens on now."""
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


class ServeProcess:
    """`detrt serve ARTIFACT FLAGS` on free ports of 127.0.0.1, its output in `log`."""

    def __init__(self, detrt, artifact, *flags, log, env=None):
        self.cmd = [str(detrt), "serve", str(artifact), *map(str, flags)]
        self.grpc_port, http, metrics = free_ports(3)
        self.cmd += ["--grpc-port", str(self.grpc_port), "--http-port", str(http), "--metrics-port", str(metrics)]
        self.url = f"grpc://127.0.0.1:{self.grpc_port}"
        self.log, self.env, self.proc = Path(log), env, None

    def start(self, timeout=180):
        """Start and wait until it serves; RuntimeError with the end of its log if it exits or takes too long."""
        with open(self.log, "a") as out:
            start = out.tell()  # a restart appends: look for its own READY line only
            self.proc = subprocess.Popen(self.cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                         env=self.env)
        deadline = time.monotonic() + timeout
        while READY not in self.log.read_text()[start:]:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"detrt serve did not start: {self.log.read_text()[-3000:]}")
            time.sleep(0.2)
        return self

    def kill(self):
        """SIGKILL to the whole group, as a crash would; removes the shared memory its Python backend leaves."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        for leftover in Path("/dev/shm").glob(f"pytrtion{self.proc.pid}-*"):
            leftover.unlink(missing_ok=True)

    def stop(self, timeout=60):
        """SIGTERM (tritonserver finishes what is in flight), SIGKILL after `timeout` seconds."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
