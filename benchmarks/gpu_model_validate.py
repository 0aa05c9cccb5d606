"""GPU validation of the whole model: TensorRT engines (fp32/fp16/int8) against ONNX Runtime on the CPU
(detrt/bench/gpu_model_validate.py).

    python benchmarks/gpu_model_validate.py [--checkpoint DIR] [--plugins libdetrt_plugins.so] [--json OUT]

Where TensorRT, cuda-python or a GPU is absent it prints why and exits 0.
Results: --json (default benchmarks/results/gpu_model_validate.json).
"""

import sys
from pathlib import Path

from detrt.bench.gpu_model_validate import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], root=Path(__file__).resolve().parents[1]))
