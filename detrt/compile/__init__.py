"""Compile: ONNX export, graph surgery, precision (FP16/INT8), TensorRT engine build, artifacts."""
