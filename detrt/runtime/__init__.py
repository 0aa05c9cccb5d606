"""Runtime: backends, video sources and sinks, pipeline, postprocessing (preprocessing is detrt.data.preprocess).
Never imports torch.

    from detrt.runtime import Detector, open_source, open_sink, run

Names resolve lazily, so importing one submodule (e.g. detrt.runtime.sources) stays cheap.
"""

_EXPORTS = {
    "Detector": "detrt.runtime.detector",
    "Detections": "detrt.runtime.postprocess",
    "open_backend": "detrt.runtime.backend",
    "choose_backend": "detrt.runtime.backend",
    "open_source": "detrt.runtime.sources",
    "Frame": "detrt.runtime.sources",
    "open_sink": "detrt.runtime.sinks",
    "SinkError": "detrt.runtime.sinks",
    "run": "detrt.runtime.pipeline",
    "Summary": "detrt.runtime.stats",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'detrt.runtime' has no attribute {name!r}")
