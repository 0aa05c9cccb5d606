"""Benchmarking: `detrt bench` and the scripts in benchmarks/.

One concept per module:
- measure.py: warm-up and measurement by time, interleaved runners, percentiles;
- device.py: device facts (CPU, GPU, clocks as found, versions, Jetson power mode), read-only;
- roofline.py: FLOPs and bytes counted from the ONNX graph against this machine's measured peak;
- frames.py: real frames (video, images, or a synthetic crowd video) preprocessed per artifact;
- torch_backend.py: PyTorch eager as a backend (the [train] extra), the pre-deployment baseline;
- run.py: one benchmark run: open artifacts, check batches, measure interleaved, collect results;
- report.py: terminal table, JSON, plot, RESULTS.md sections;
- gpu_validate.py, gpu_model_validate.py: on a GPU, the CUDA kernels and TensorRT plugins against the CPU
  kernels, and whole-model engines against ONNX Runtime (run by the benchmarks/ scripts of those names).
"""
