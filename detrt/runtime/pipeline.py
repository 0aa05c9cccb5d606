"""decode -> preprocess -> infer -> postprocess -> sinks, each stage a thread, joined by bounded queues.

    from detrt.runtime.pipeline import run
    summary = run("clip.mp4", "model.onnx", ["out.mp4", "dets.jsonl"])
    print(summary.format())

Files: every frame, in order, batched up to the backend's max batch; the queues are bounded, so a
slow stage holds the others back instead of growing memory. Live sources: batch 1, and the source
keeps only the newest frame, so the pipeline never works through a backlog.

Stopping: at the end of the stream everything in flight is finished and the sinks are closed. The
first Ctrl-C or SIGTERM (or a KeyboardInterrupt raised by the source, or a closed window) stops
reading and drains what is in flight the same way; a second one abandons the frames in flight.
Either way the sinks are closed (JSONL flushed, video finalized) and the Summary says `interrupted`
and by which signal. While a run started from the main thread lasts, SIGINT and SIGTERM (where
their handlers are Python's defaults) only set these flags, so no KeyboardInterrupt can land in
the middle of closing a sink. An error in any stage (e.g. SinkError: disk full) stops every stage
and is raised after the sinks close.
"""

import contextlib
import os
import queue
import signal
import threading
import time

from detrt.data.preprocess import Preprocessor, image_sizes
from detrt.errors import InputError
from detrt.progress import progress_bar
from detrt.runtime.backend import open_backend
from detrt.runtime.postprocess import Postprocessor, check_threshold
from detrt.runtime.sinks import Sink, open_sink
from detrt.runtime.sources import open_source
from detrt.runtime.stats import Stats

_END = object()
_POLL = 0.05


class Pipeline:
    """The threads of one run. Use `run()`; this class holds their shared state."""

    def __init__(self, source, backend, sinks, *, threshold=0.5, batch=None, topk=None, queue_size=4,
                 progress=False, on_frame=None, label="detrt run", position=None, stop=None):
        self.source = source
        self.backend = backend
        self.sinks = list(sinks)
        live = source.is_live
        if batch is not None and not 1 <= batch <= backend.max_batch:
            raise InputError(f"--batch {batch}: must be 1..{backend.max_batch} (the artifact's max batch)")
        self.batch = 1 if live else (batch or backend.max_batch)
        floors = [check_threshold(s.threshold, f"{type(s).__name__} threshold")
                  for s in self.sinks if s.threshold is not None]
        self.threshold = check_threshold(threshold)
        for s in self.sinks:
            s.check_model(backend.manifest)
        self.preprocess = Preprocessor.from_manifest(backend.manifest)
        self.postprocess = Postprocessor.from_manifest(backend.manifest, min([threshold, *floors]), topk)
        self.stats = Stats()
        self.q_frames = queue.Queue(maxsize=max(queue_size, 2 * self.batch))
        self.q_batches = queue.Queue(maxsize=2)
        self.q_outputs = queue.Queue(maxsize=2)
        self.stop_reading = stop or threading.Event()  # graceful: finish what is in flight (shared by streams)
        self.abort = threading.Event()  # now: drop what is in flight
        self.interrupted = False
        self.signal = None  # the name of the first signal that stopped the run
        self._signals = 0
        self.error = None
        self._lock = threading.Lock()
        self.progress = progress
        self.on_frame = on_frame
        # Batches in flight: a remote backend says how many (several per stream); TensorRT overlaps two on files.
        overlap = 2 if (getattr(backend, "name", "") == "tensorrt" and not live) else 1
        self.depth = getattr(backend, "in_flight", None) or overlap
        self.label, self.position = label, position

    # -- queue helpers that give up when aborted --
    def _put(self, q, item):
        while not self.abort.is_set():
            try:
                q.put(item, timeout=_POLL)
                return True
            except queue.Full:
                pass
        return False

    def _get(self, q):
        while not self.abort.is_set():
            try:
                return q.get(timeout=_POLL)
            except queue.Empty:
                pass
        return _END

    def _fail(self, exc):
        with self._lock:
            if self.error is None:
                self.error = exc
        self.abort.set()

    def _stage(self, fn):
        def body():
            try:
                fn()
            except BaseException as e:  # noqa: BLE001 - every failure must stop the run, not hang it
                self._fail(e)

        return threading.Thread(target=body, name=f"detrt-{fn.__name__.strip('_')}", daemon=True)

    # -- stages --
    def _read_one(self, timeout):
        """The next frame from the source, or None (timeout) or _END; a KeyboardInterrupt ends gracefully."""
        if self.stop_reading.is_set():
            return _END
        t0 = time.perf_counter()
        try:
            frame = self.source.capture(timeout=timeout)
        except KeyboardInterrupt:
            self.interrupted = True
            self.stop_reading.set()
            return _END
        if frame is None:
            return None if self.source.is_streaming else _END
        if not self.source.is_live:
            self.stats.stage("decode", time.perf_counter() - t0)
        return frame

    def _decode(self):
        """Files: read every frame into q_frames."""
        while True:
            frame = self._read_one(timeout=None)
            if frame is None:
                continue
            if frame is _END or not self._put(self.q_frames, frame):
                break
        self._put(self.q_frames, _END)

    def _next_frame(self):
        if self.source.is_live:  # pull the newest frame straight from the source
            while not self.abort.is_set():
                frame = self._read_one(timeout=_POLL)
                if frame is not None:
                    return frame
            return _END
        return self._get(self.q_frames)

    def _preprocess(self):
        ended = False
        while not ended:
            frames = []
            while len(frames) < self.batch:
                frame = self._next_frame()
                if frame is _END:
                    ended = True
                    break
                frames.append(frame)
            if frames:
                t0 = time.perf_counter()
                x, transforms = self.preprocess([f.image for f in frames])
                self.stats.stage("preprocess", time.perf_counter() - t0, len(frames))
                if not self._put(self.q_batches, (frames, x, transforms)):
                    return
        self._put(self.q_batches, _END)

    def _infer(self):
        pending = []  # [(frames, transforms, t0, result callable)], at most `depth`
        while True:
            item = self._get(self.q_batches)
            if item is not _END:
                frames, x, transforms = item
                feed = {"images": x, "image_sizes": image_sizes(transforms)}
                pending.append((frames, transforms, time.perf_counter(), self.backend.submit(feed)))
            while pending and (item is _END or len(pending) >= self.depth):
                frames, transforms, t0, result = pending.pop(0)
                outputs = result()
                self.stats.stage("infer", time.perf_counter() - t0, len(frames))
                if not self._put(self.q_outputs, (frames, transforms, outputs)):
                    return
            if item is _END:
                break
        self._put(self.q_outputs, _END)

    def _postprocess_and_write(self, bar):
        while True:
            item = self._get(self.q_outputs)
            if item is _END:
                return
            frames, transforms, outputs = item
            t0 = time.perf_counter()
            detections = self.postprocess(outputs, transforms)
            self.stats.stage("postprocess", time.perf_counter() - t0, len(frames))
            for frame, dets in zip(frames, detections):
                t1 = time.perf_counter()
                fps = self.stats.fps
                for sink in self.sinks:
                    cut = self.threshold if sink.threshold is None else sink.threshold
                    sink.write(frame, dets.above(cut), fps)
                self.stats.stage("sink", time.perf_counter() - t1)
                self.stats.frame_done(frame.time)
                bar.update(1)
                if self.on_frame is not None:
                    self.on_frame(frame, dets.above(self.threshold))
                if not all(s.is_streaming for s in self.sinks):  # a window was closed
                    self.stop_reading.set()

    # -- the run --
    def run(self):
        bar = progress_bar(total=self.source.frame_count, show=self.progress, unit="frame", dynamic_ncols=True,
                           desc=f"{self.label} ({self.backend.name}, batch {self.batch})", position=self.position)
        stages = [self._preprocess, self._infer]
        if not self.source.is_live:
            stages.insert(0, self._decode)
        threads = [self._stage(fn) for fn in stages]
        writer = self._stage(lambda: self._postprocess_and_write(bar))
        writer.name = "detrt-write"
        threads.append(writer)
        self.stats = Stats()
        with _signals_to(self._on_signal):
            for t in threads:
                t.start()
            try:
                self._wait(threads)
            finally:
                self.source.close()
                for t in threads:
                    t.join(timeout=10)
                close_error = self._close_sinks()
                bar.close()
        if self.error is None and close_error is not None:
            self.error = close_error
        summary = self.stats.summary(dropped=self.source.dropped, corrupt=self.source.corrupt,
                                     reconnects=self.source.reconnects, batch=self.batch,
                                     backend=self.backend.name, interrupted=self.interrupted, signal=self.signal,
                                     error=str(self.error) if self.error is not None else None)
        if self.error is not None:
            if isinstance(self.error, KeyboardInterrupt):
                summary.interrupted = True
                return summary
            self.error.summary = summary
            raise self.error
        return summary

    def _wait(self, threads):
        """Join the stages (a KeyboardInterrupt here: off the main thread, or a handler of the caller's)."""
        while any(t.is_alive() for t in threads):
            try:
                for t in threads:
                    t.join(timeout=0.1)
            except KeyboardInterrupt:
                self._on_signal(signal.SIGINT)

    def _on_signal(self, signum, _frame=None):
        """Ctrl-C or SIGTERM once: stop reading and drain; twice: abort."""
        self._signals += 1
        self.interrupted = True
        self.signal = self.signal or signal.Signals(signum).name
        self.stop_reading.set()
        if self._signals >= 2:
            self.abort.set()

    def _close_sinks(self):
        error = None
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as e:  # noqa: BLE001 - close every sink, report the first failure
                error = error or e
        return error


@contextlib.contextmanager
def _signals_to(handler):
    """Route SIGINT and SIGTERM to `handler` for the block, where Python's default handlers are in place."""
    defaults = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    taken = {s: signal.signal(s, handler) for s, h in defaults.items() if signal.getsignal(s) == h}
    try:
        yield
    finally:
        for s, h in taken.items():
            signal.signal(s, h)


def run(source, model, sinks=(), *, backend="auto", threshold=0.5, batch=None, topk=None, threads=None,
        plugins=None, cuda_graph=False, live=None, progress=False, on_frame=None, warmup=True, label="detrt run",
        position=None, stop=None, notice=None):
    """Run a model over a source into sinks; return the Summary (frames, drops, FPS, latencies).

    source: a URI or path (see detrt.runtime.sources) or a Source. model: an artifact path or an
    open Backend (left open for the caller). sinks: Sink objects or URIs/paths (out.mp4,
    dets.jsonl, dets.odgt, results.json, display://0). threshold: score cut for sinks that do not set their own.
    batch: frames per inference for files (default: the backend's max batch; live sources use 1).
    on_frame(frame, detections): called after each frame is written (e.g. to collect results). label,
    position: the progress bar's name and row; stop: an Event that, once set, ends the run as a first Ctrl-C does
    (several streams, detrt.runtime.streams).
    notice(line): told which artifact and backend run (see open_backend).
    Raises InputError for bad input and SinkError when a sink cannot write; every sink is closed
    either way.
    """
    opened, sink_objs = [], []
    try:
        if not isinstance(model, (str, os.PathLike)):  # an open Backend (or anything with its interface)
            be = model
        else:
            be = open_backend(model, backend, threads=threads, plugins=plugins, cuda_graph=cuda_graph, notice=notice)
            opened.append(be)
        src = open_source(source, live=live)
        opened.append(src)
        for s in sinks:
            sink_objs.append(s if isinstance(s, Sink) else open_sink(s, threshold=None))
        pipe = Pipeline(src, be, sink_objs, threshold=threshold, batch=batch, topk=topk, progress=progress,
                        on_frame=on_frame, label=label, position=position, stop=stop)
        if warmup:
            be.warmup(iterations=1, batch=pipe.batch)
        for s in sink_objs:
            s.open()
    except BaseException:
        for s in [*sink_objs, *(s for s in sinks if isinstance(s, Sink) and s not in sink_objs)]:
            try:
                s.close()
            except Exception:  # noqa: BLE001 - the setup error is the one to report
                pass
        for obj in reversed(opened):
            obj.close()
        raise
    try:
        return pipe.run()
    finally:
        for obj in reversed(opened):
            obj.close()
