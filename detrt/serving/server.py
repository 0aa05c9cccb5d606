"""`detrt serve`: an artifact behind a real Triton Inference Server, through PyTriton, on hosts without Triton.

PyTriton starts the `tritonserver` its wheel ships and proxies each batch to a Python function in this process,
here the runtime's backend (ONNX Runtime or TensorRT), so the model is served with Triton's dynamic batching
across all clients and its gRPC/HTTP protocol. It serves the network model (`images` in, the manifest's outputs
out) under the name `detrt export-triton` gives it, so `detrt run --server` works against either.

PyTriton's server runs its Python-backend stub against the libpython of the environment: use a virtual
environment made from a Python whose shared libpython matches the stub's build (Debian's /usr/bin/python3.11
works; README, "Serving on Triton").
"""

import logging
import signal
import socket
import time

import numpy as np

from detrt.errors import InputError
from detrt.optional import require
from detrt.runtime.backend import open_backend
from detrt.serving.repository import DETECTOR, network_inputs, network_outputs

NUMPY_DTYPES = {"TYPE_FP32": np.float32, "TYPE_INT64": np.int64}


def check_port_free(host, port, flag):
    """InputError naming the port (and its flag) when something on this host listens on it already."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind: a closed port's TIME_WAIT is free
        try:
            s.bind((host, port))
        except OSError as e:
            raise InputError(f"port {port} on {host} is in use ({flag}: {e.strerror or e}); pick another "
                             f"with {flag}") from None


def _stop_on_sigterm():
    """SIGTERM stops the server as Ctrl-C does (PyTriton stops tritonserver on KeyboardInterrupt)."""

    def handler(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def serve(artifact, *, host="127.0.0.1", grpc_port=8001, http_port=8000, metrics_port=8002, model_name=DETECTOR,
          max_batch=None, preferred=None, queue_delay_us=2000, backend="auto", threads=None, plugins=None,
          log=print):
    """Serve `artifact` until SIGINT or SIGTERM. max_batch: Triton's max_batch_size (default and upper bound:
    the artifact's); preferred: dynamic batching's preferred sizes (default: max_batch); queue_delay_us: how
    long a request may wait for others to fill a batch."""
    for port, flag in ((grpc_port, "--grpc-port"), (http_port, "--http-port"), (metrics_port, "--metrics-port")):
        check_port_free(host, port, flag)
    with open_backend(artifact, backend, threads=threads, plugins=plugins) as be:
        pytriton = require("pytriton.triton", "detrt serve")
        config = require("pytriton.model_config", "detrt serve")
        decorators = require("pytriton.decorators", "detrt serve")
        max_batch = be.max_batch if max_batch is None else max_batch
        if not 1 <= max_batch <= be.max_batch:
            raise InputError(f"--max-batch {max_batch}: must be 1..{be.max_batch} (the artifact's max batch)")
        sizes = preferred or [max_batch]
        if any(not 1 <= s <= max_batch for s in sizes):
            raise InputError(f"--preferred-batch {','.join(map(str, sizes))}: sizes must be 1..{max_batch}")
        be.warmup(iterations=1, batch=max_batch)

        dtypes = {n: NUMPY_DTYPES[t] for n, t, _ in network_outputs(be.manifest)}

        @decorators.batch
        def infer(**inputs):  # as the declared dtypes: ONNX Runtime's int64 may be numpy's longlong, not its int64
            return {n: v.astype(dtypes[n]) for n, v in be.infer(inputs).items()}

        inputs = [config.Tensor(name=n, dtype=np.float32, shape=tuple(dims))
                  for n, _, dims in network_inputs(be.manifest)]
        outputs = [config.Tensor(name=n, dtype=NUMPY_DTYPES[t], shape=tuple(dims))
                   for n, t, dims in network_outputs(be.manifest)]
        batcher = config.DynamicBatcher(max_queue_delay_microseconds=queue_delay_us, preferred_batch_size=sizes)
        server = pytriton.TritonConfig(http_address=host, grpc_address=host, metrics_address=host,
                                       http_port=http_port, grpc_port=grpc_port, metrics_port=metrics_port,
                                       log_verbose=0)
        logging.getLogger("pytriton").setLevel(logging.WARNING)
        with pytriton.Triton(config=server) as triton:
            triton.bind(model_name=model_name, infer_func=infer,
                        inputs=inputs, outputs=outputs,
                        config=config.ModelConfig(max_batch_size=max_batch, batcher=batcher), strict=True)
            triton.run()
            log(f"detrt serve: {model_name} ({be.artifact.name} on {be.name}, max batch {max_batch}, preferred "
                f"{','.join(map(str, sizes))}, queue delay {queue_delay_us} us) on grpc://{host}:{grpc_port}, "
                f"http://{host}:{http_port}; Ctrl-C stops", flush=True)
            _stop_on_sigterm()
            try:
                while triton.is_alive():
                    time.sleep(0.5)
            except KeyboardInterrupt:
                pass
