"""detrt: DETR-family detectors from PyTorch training to TensorRT engines and real-time video."""

__version__ = "0.1.0"
