"""Fuzz an instrumented build of detrt.ops._cpu (AddressSanitizer + UBSan): random, mostly bad, inputs.

    python tests/ops/asan_fuzz.py PATH/TO/_cpu.so [iterations]

Run it with LD_PRELOAD=$(c++ -print-file-name=libasan.so) (the Python interpreter is not instrumented);
test_cpu_binding.py::test_asan_fuzz builds the library and does so, once per MSDA variant this CPU has
(DETRT_CPU_ISA caps it). Exit status 0: no sanitizer report, every failure a ValueError.
"""

import importlib.machinery
import importlib.util
import sys

import numpy as np


def load(path):
    loader = importlib.machinery.ExtensionFileLoader("_cpu", path)
    spec = importlib.util.spec_from_file_location("_cpu", path, loader=loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def random_msda(rng):
    n, m, d, lq, p = (int(rng.integers(1, 5)) for _ in range(5))
    # half the calls at the channel counts of the vector paths (D = 16, 32, 64), some with more than 16
    # points per row (more than one AVX-512 group) or more than 32 (past that path)
    d = int(rng.choice([16, 32, 64])) if rng.random() < 0.5 else int(rng.integers(1, 40))
    p = int(rng.choice([p, p, 8, 22]))
    levels = int(rng.integers(1, 4))
    shapes = rng.integers(1, 6, (levels, 2))
    if rng.random() < 0.3:
        shapes = shapes - rng.integers(0, 3, shapes.shape)  # zero or negative sizes
    sizes = shapes[:, 0] * shapes[:, 1]
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    if rng.random() < 0.2:
        starts = starts + rng.integers(-2, 3, starts.shape)
    s = int(max(sizes.sum(), 0)) + int(rng.choice([0, 0, 0, -1, 1]))
    dt = rng.choice([np.float32, np.float32, np.float16, np.float64])

    def jitter(shape):
        shape = list(shape)
        if rng.random() < 0.15:
            i = int(rng.integers(len(shape)))
            shape[i] = max(0, shape[i] + int(rng.choice([-1, 1])))
        if rng.random() < 0.05:
            shape = shape[:-1]
        return shape

    loc = (rng.standard_normal(jitter([n, lq, m, levels, p, 2])) * rng.choice([0.3, 3, 1e6])).astype(dt)
    if loc.size and rng.random() < 0.2:
        loc.flat[rng.integers(loc.size)] = rng.choice([np.nan, np.inf, -np.inf])
    args = [
        rng.standard_normal(jitter([n, max(s, 0), m, d])).astype(dt),
        shapes.astype(rng.choice([np.int64, np.int32])),
        starts.astype(rng.choice([np.int64, np.int32])),
        loc,
        rng.uniform(0, 1, jitter([n, lq, m, levels, p])).astype(dt),
    ]
    if rng.random() < 0.1:
        i = int(rng.integers(5))
        if args[i].ndim and args[i].shape[0] > 1:
            args[i] = args[i][::2]
    return args


def random_dcg(rng):
    b, n = int(rng.integers(0, 3)), int(rng.integers(0, 300))
    boxes = np.concatenate([rng.uniform(0, 1, (b, n, 2)), rng.uniform(-0.01, 0.3, (b, n, 2))], -1)
    if boxes.size and rng.random() < 0.3:
        boxes.flat[rng.integers(boxes.size, size=5)] = rng.choice([np.nan, np.inf, -np.inf, 1e30, 0.0])
    scores = rng.uniform(0, 1, (b, n))
    if rng.random() < 0.1:
        scores = scores[:, : max(0, n - 1)]
    t = float(rng.choice([0.4, 0.0, -1.0, 1e-6, 0.9, 1.5, np.nan]))
    return boxes.astype(np.float32), scores.astype(np.float32), int(rng.integers(-1, 20)), t


def main():
    module = load(sys.argv[1])
    iterations = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    rng = np.random.default_rng(0)
    ran = refused = 0
    for _ in range(iterations):
        try:
            module.ms_deform_attn(*random_msda(rng), num_threads=int(rng.integers(0, 3)))
            ran += 1
        except ValueError:
            refused += 1
        boxes, scores, k, t = random_dcg(rng)
        try:
            module.dcg_neighbors(boxes, scores, k, t, 0.1, num_threads=int(rng.integers(0, 3)),
                                 index_dtype=str(rng.choice(["int64", "int32"])))
            ran += 1
        except ValueError:
            refused += 1
    print(f"asan fuzz ({module.info()['msda_isa']}): {ran} calls ran, {refused} refused with ValueError")


if __name__ == "__main__":
    main()
