"""GPU validation: the CUDA kernels and the TensorRT plugins against the CPU kernels (detrt/bench/gpu_validate.py).

    python benchmarks/gpu_validate.py                      # builds build/gpu with CMake if the libraries are missing
    python benchmarks/gpu_validate.py --cuda-lib PATH/libdetrt_cuda.so --plugin-lib PATH/libdetrt_plugins.so

Without a GPU, cuda-python or the CPU extension it prints why and exits 0; a failed comparison exits 1.
Results: --json (default benchmarks/results/gpu_validate.json).
"""

import sys
from pathlib import Path

from detrt.bench.gpu_validate import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], root=Path(__file__).resolve().parents[1]))
