"""A Triton Inference Server as a backend: `detrt run SOURCE --server URL` sends each batch over gRPC.

The server runs the network (`detrt serve`, or the `detector` model of a `detrt export-triton` repository);
preprocessing and postprocessing stay here, from the artifact's manifest, so the detections are the ones a local
run writes. `submit` sends at once (tritonclient's async_infer) and returns a callable that waits, so the
pipeline keeps `in_flight` requests of a stream on the wire and still writes results in frame order.

Failures: a request that fails because the server is unreachable or restarting, timed out (`timeout_s`), or is
refused while the server loads its model, is sent again with exponential back-off (0.1 s doubling to 2 s) until
`retry_s` seconds pass with no success; then the run stops, saying why. A frame's result is written only once
its own request succeeds, in order, so a server restart loses and duplicates nothing. When the server is too
slow, the pipeline's bounded queues hold the stream back: a file waits, a live source drops stale frames (counted).
Problems found when connecting (no server at the URL, no such model, an input that does not match the manifest)
are one InputError each.
"""

import threading
import time

from detrt.errors import InputError
from detrt.optional import require
from detrt.runtime.base import Backend

DTYPES = {"FP32": "float32", "INT64": "int64"}
# Errors no retry can fix: the request is wrong, or the model failed on it.
FINAL = ("StatusCode.INVALID_ARGUMENT", "StatusCode.UNIMPLEMENTED", "StatusCode.PERMISSION_DENIED",
         "StatusCode.INTERNAL")


def _first_line(e):
    text = (e.message() if hasattr(e, "message") and callable(e.message) else None) or str(e)
    return text.strip().splitlines()[0] if text.strip() else type(e).__name__


def grpc_address(url):
    """host:port from grpc://host:port or host:port (gRPC's own default port, 8001, when none is given)."""
    address = url.removeprefix("grpc://").rstrip("/")
    if "://" in address:
        raise InputError(f"--server {url}: expected grpc://HOST:PORT or HOST:PORT (Triton's gRPC endpoint)")
    return address if ":" in address.rsplit("]", 1)[-1] else f"{address}:8001"


class TritonBackend(Backend):
    """The network of `manifest` served by Triton at `url` under `model_name`."""

    name = "triton"

    def __init__(self, url, manifest, model_name="detector", *, timeout_s=10.0, retry_s=60.0, in_flight=4,
                 notice=None):
        self.grpc = require("tritonclient.grpc", "--server")
        self.errors = require("tritonclient.utils", "--server")
        super().__init__(grpc_address(url), manifest)
        self.url, self.model_name = f"grpc://{self.artifact}", model_name
        self.timeout_s, self.retry_s, self.in_flight = timeout_s, retry_s, in_flight
        self.notice = notice or (lambda message: None)
        self.retries = 0
        # Reconnect within a second of the server's return (gRPC's default back-off grows to two minutes).
        self.client = self.grpc.InferenceServerClient(str(self.artifact), channel_args=[
            ("grpc.max_send_message_length", 2**31 - 1), ("grpc.max_receive_message_length", 2**31 - 1),
            ("grpc.initial_reconnect_backoff_ms", 100), ("grpc.max_reconnect_backoff_ms", 1000)])
        self._check_model()

    def _check_model(self):
        try:
            self.client.is_server_live()
            ready = self.client.is_model_ready(self.model_name)
        except self.errors.InferenceServerException as e:
            raise InputError(f"{self.url}: cannot reach the Triton server ({_first_line(e)})") from None
        if not ready:
            raise InputError(f"{self.url}: no model {self.model_name!r} ready on this server{self._models()}; "
                             f"pass --triton-model NAME")
        meta = self.client.get_model_metadata(self.model_name, as_json=True)
        config = self.client.get_model_config(self.model_name, as_json=True)["config"]
        H, W = self.manifest.input_size
        want = [-1, 3, H, W]
        inputs = {i["name"]: [int(d) for d in i["shape"]] for i in meta.get("inputs", [])}
        if inputs.get(self.input_name) != want or set(inputs) != set(self.input_names):
            raise InputError(f"{self.url}: model {self.model_name!r} takes {inputs}, the manifest says "
                             f"{list(self.input_names)} ({self.input_name} {want}): the server runs another model")
        missing = set(self.manifest.outputs) - {o["name"] for o in meta.get("outputs", [])}
        if missing:
            raise InputError(f"{self.url}: model {self.model_name!r} has no output(s) {sorted(missing)} that the "
                             f"manifest promises")
        self._max_batch = max(1, min(self.max_batch, int(config.get("max_batch_size", 1))))

    def _models(self):
        """" (it has: a, b)" where the server lists its models (PyTriton restricts that endpoint), else ""."""
        try:
            index = self.client.get_model_repository_index(as_json=True).get("models", [])
        except self.errors.InferenceServerException:
            return ""
        return f" (it has: {', '.join(m['name'] for m in index) or 'none'})"

    def submit(self, feed):
        return _Request(self, self.check_input(feed)).result

    def close(self):
        self.client.close()


class _Request:
    """One batch on the wire: sent now, sent again on a retryable failure, its outputs awaited by result()."""

    def __init__(self, backend, feed):
        self.backend, self.feed = backend, feed
        self._send()

    def _send(self):
        be = self.backend
        self.done, self.outputs, self.error = threading.Event(), None, None
        inputs = []
        for name, array in self.feed.items():  # float32 images (and image_sizes), as the manifest declares
            inputs.append(be.grpc.InferInput(name, list(array.shape), "FP32"))
            inputs[-1].set_data_from_numpy(array)
        outputs = [be.grpc.InferRequestedOutput(n) for n in be.manifest.outputs]
        try:
            be.client.async_infer(be.model_name, inputs, self._on_result, outputs=outputs,
                                  client_timeout=be.timeout_s)
        except be.errors.InferenceServerException as e:
            self._on_result(None, e)

    def _on_result(self, result, error):
        if error is None:
            self.outputs = {n: result.as_numpy(n) for n in self.backend.manifest.outputs}
        self.error = error
        self.done.set()

    def result(self):
        be = self.backend
        deadline, wait = None, 0.1
        while True:
            self.done.wait()
            if self.error is None:
                if deadline is not None:
                    be.notice(f"{be.url}: answering again")
                return self.outputs
            status = str(self.error.status() or "")
            if status in FINAL:
                raise InputError(f"{be.url}: model {be.model_name!r} failed on the request: {_first_line(self.error)}")
            now = time.monotonic()
            if deadline is None:
                deadline = now + be.retry_s
                be.notice(f"{be.url}: {_first_line(self.error)}; retrying for up to {be.retry_s:g} s")
            if now >= deadline:
                raise InputError(f"{be.url}: no answer for {be.retry_s:g} s ({_first_line(self.error)})")
            be.retries += 1
            time.sleep(wait)
            wait = min(2 * wait, 2.0)
            self._send()
