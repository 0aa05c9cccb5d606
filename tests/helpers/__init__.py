"""Helpers shared by the tests, imported as `from tests.helpers.probe_models import ...` (tests is a package).

- probe_models.py: tiny torch-free ONNX models whose detections are a known function of the input;
- fake_trt.py: CPU stand-ins for `tensorrt` and `cuda.bindings.runtime` (the TensorRT backend's logic);
- checkpoints.py: a model written as a checkpoint directory;
- tiny_training.py: a 64x96 model config, a drawn .odgt data set, a fixed batch, a NaN-loss criterion.
"""
