"""Several sources in one process: one pipeline per stream, one backend shared by all.

    summaries = run_streams(["cam0.mp4", "rtsp://cam1/live"], backend, [lambda: [JsonlSink("a.jsonl")], ...])

Each stream is a detrt.runtime.pipeline run in its own thread with its own sinks, so a stream that fails (a
camera that never answers, a file that does not decode) is reported in its Summary's `error` and the others go
on. With a local backend the streams' batches meet in a `StreamMuxer` (the idea of DeepStream's nvstreammux):
what the streams submit within `delay_s` of each other runs as one batch, up to the backend's max batch. A
Triton backend needs no muxer: the server's dynamic batcher does the same across every client.
"""

import threading
import time

import numpy as np

from detrt.errors import InputError
from detrt.manifest import IMAGES
from detrt.runtime.pipeline import run
from detrt.runtime.sources import STREAM_SCHEMES
from detrt.runtime.stats import Summary


class _Pending:
    def __init__(self, feed):
        self.feed, self.done, self.outputs, self.error = feed, threading.Event(), None, None
        self.size = len(feed[IMAGES])

    def result(self):
        self.done.wait()
        if self.error is not None:
            raise self.error
        return self.outputs


class StreamMuxer:
    """A backend's view for many streams: submits from several threads are batched together (the interface of
    detrt.runtime.base.Backend, by delegation)."""

    def __init__(self, backend, delay_s=0.005):
        self.backend, self.delay_s = backend, delay_s
        self.name, self.manifest = backend.name, backend.manifest
        self.max_batch, self.input_shape = backend.max_batch, backend.input_shape
        self.batches = []  # the batch sizes run, for the summary and the tests
        self._queue, self._cv, self._closed = [], threading.Condition(), False
        self._worker = threading.Thread(target=self._loop, name="detrt-muxer", daemon=True)
        self._worker.start()

    def submit(self, feed):
        pending = _Pending(self.backend.check_input(feed))
        with self._cv:
            self._queue.append(pending)
            self._cv.notify()
        return pending.result

    def infer(self, feed):
        return self.submit(feed)()

    def warmup(self, iterations=2, batch=None):
        self.backend.warmup(iterations, batch)

    def _take(self):
        """Wait for a first request, then up to delay_s for more, up to the max batch; [] when closed."""
        with self._cv:
            while not self._queue and not self._closed:
                self._cv.wait()
            deadline = time.monotonic() + self.delay_s
            while sum(p.size for p in self._queue) < self.max_batch and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cv.wait(left)
            taken, size = [], 0
            while self._queue and size + self._queue[0].size <= self.max_batch:
                taken.append(self._queue.pop(0))
                size += taken[-1].size
            return taken

    def _loop(self):
        while True:
            taken = self._take()
            if not taken:
                return
            try:
                outputs = self.backend.infer({k: np.concatenate([p.feed[k] for p in taken]) for k in taken[0].feed})
            except BaseException as e:  # noqa: BLE001 - every waiting stream gets the error
                for p in taken:
                    p.error = e
                    p.done.set()
                continue
            self.batches.append(sum(p.size for p in taken))
            start = 0
            for p in taken:
                n = p.size
                p.outputs = {k: v[start:start + n] for k, v in outputs.items()}
                start += n
                p.done.set()

    def close(self):
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        self._worker.join(timeout=10)


def run_streams(sources, backend, make_sinks, *, labels=None, open_retry_s=30.0, notice=None, **options):
    """Run every source through `backend` (an open Backend, shared) into its own sinks, each stream in a thread;
    return one Summary per stream (a failed stream's has `error` set and keeps what it wrote). make_sinks[i]()
    makes stream i's list of sinks (Sink objects or URIs), again for each try to open it.
    A network stream (rtsp://, http://, ...) that cannot be opened is tried again with back-off (1 s doubling to
    8 s) for `open_retry_s` seconds, each failure told to notice(message); a stream that breaks once running
    reconnects by itself (detrt.runtime.sources). A Ctrl-C ends every stream as it ends one run: reading stops,
    the frames in flight are written and the sinks closed; a second one abandons them.
    options: those of detrt.runtime.pipeline.run (threshold, batch, live, progress, ...); batch defaults to
    the backend's max batch shared out over the streams, so that their batches fit one batch together."""
    if len(make_sinks) != len(sources):
        raise ValueError(f"{len(sources)} sources but {len(make_sinks)} sink makers")
    if options.get("batch") is None:
        options["batch"] = max(1, backend.max_batch // len(sources))
    labels = labels or [f"stream {i}" for i in range(len(sources))]
    summaries = [None] * len(sources)

    notice = notice or (lambda message: None)
    stop = threading.Event()

    def one(i):
        deadline, wait = time.monotonic() + open_retry_s, 1.0
        while True:
            try:
                summaries[i] = run(sources[i], backend, make_sinks[i](), label=labels[i], position=i, stop=stop,
                                   **options)
                return
            except Exception as e:  # noqa: BLE001 - one stream's failure is reported, the others go on
                summary = getattr(e, "summary", None)
                retry = (summary is None and isinstance(e, InputError) and str(sources[i]).startswith(STREAM_SCHEMES)
                         and time.monotonic() + wait < deadline and not stop.is_set())
                if not retry:
                    summaries[i] = summary or Summary(backend=backend.name)
                    summaries[i].error = str(e) if isinstance(e, InputError) else f"{type(e).__name__}: {e}"
                    return
                notice(f"{labels[i]}: {e}; trying again in {wait:g} s")
                stop.wait(wait)
                wait = min(2 * wait, 8.0)

    # Waited for through events: a Thread.join that a KeyboardInterrupt cuts short can leave the thread marked
    # finished while it still runs (CPython gh-90882).
    done = [threading.Event() for _ in sources]

    def stream(i):
        try:
            one(i)
        finally:
            done[i].set()

    for i in range(len(sources)):
        threading.Thread(target=stream, args=(i,), name=f"detrt-stream-{i}", daemon=True).start()
    for finished in done:
        while not finished.is_set():
            try:
                finished.wait(0.1)
            except KeyboardInterrupt:  # the first Ctrl-C stops every stream's reading, what is in flight finishes
                if stop.is_set():
                    raise
                stop.set()
                notice("interrupted: finishing the frames in flight (Ctrl-C again to abandon them)")
    for s in summaries:
        s.interrupted = s.interrupted or stop.is_set()
    return summaries


def aggregate(summaries):
    """One line over all streams: frames, the summed FPS of the streams, drops, failed streams."""
    frames = sum(s.frames for s in summaries)
    wall = max((s.wall_s for s in summaries), default=0.0)
    failed = sum(1 for s in summaries if s.error)
    return (f"all {len(summaries)} streams: {frames} frames, {frames / wall if wall else 0.0:.1f} FPS aggregate, "
            f"dropped {sum(s.dropped for s in summaries)}" + (f", {failed} failed" if failed else ""))
