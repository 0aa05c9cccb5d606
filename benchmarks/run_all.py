"""The benchmark suite: `make bench` (CPU) and `make bench-gpu` (the same plus TensorRT where a GPU exists).

    .venv/bin/python benchmarks/run_all.py                      # CPU suite, ~10 minutes on 2 cores
    .venv/bin/python benchmarks/run_all.py --gpu                # + TensorRT precisions, NVIDIA's MSDA plugin vs ours
    .venv/bin/python benchmarks/run_all.py --checkpoint runs/tiny --note "final figures, quiet machine"

Runs each script in its own process, in order: ops_cpu.py (CPU kernels vs references), model.py (PyTorch
eager vs ORT FP32 / INT8 / plugin form and OpenVINO FP32 / BF16 / INT8), pipeline.py (end-to-end FPS vs
inference FPS, on model.py's ORT FP32 artifact), accuracy.py (AP / MR-2 / JI per precision), stages.py (the
per-stage profile of each CPU backend), scaling.py (queries, input size). Each writes
benchmarks/results/NAME.json and its section of benchmarks/RESULTS.md. With --gpu and no usable GPU it
says so once and runs the CPU part; with one, model.py adds the TensorRT engines. A script that fails is
reported and the rest still run; the exit status is 1 if any failed.
"""

import argparse
import subprocess
import sys
import time
from pathlib import Path

from detrt.ops.tensorrt import tensorrt_here

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

HERE = Path(__file__).resolve().parent


def plan(args, gpu):
    """[(name, argv)] of the scripts to run."""
    mine = (["--checkpoint", args.checkpoint] if args.checkpoint else []) + (["--note", args.note] if args.note else [])
    steps = [("ops_cpu.py", []),
             ("model.py", mine + (["--gpu"] if gpu else [])),
             ("pipeline.py", None),  # its --model is model.py's artifact, known once model.py has made it
             ("accuracy.py", mine),
             ("stages.py", mine),
             ("scaling.py", ["--note", args.note] if args.note else [])]
    return [(name, a) for name, a in steps if not args.only or name in args.only]


def pipeline_args(args):
    ckpt, _ = common.model_source(args.checkpoint)
    arts = common.artifacts(ckpt, common.synthetic_video())
    return ["--model", arts["fp32"], "--frames", "150"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpu", action="store_true", help="add the TensorRT part where a GPU and TensorRT exist")
    parser.add_argument("--checkpoint", help="trained checkpoint dir (default: the bundled dhdetr_r18_tiny)")
    parser.add_argument("--note", help="a line printed at the top of each of model/accuracy/scaling's sections")
    parser.add_argument("--only", nargs="+", help="run only these scripts (e.g. model.py scaling.py)")
    args = parser.parse_args(argv)

    gpu = False
    if args.gpu:
        gpu, why = tensorrt_here()
        common.log(f"run_all: {'GPU part on ' + why if gpu else 'no GPU part: ' + why + '; running the CPU part'}")
    start, done = time.monotonic(), []
    for name, script_args in plan(args, gpu):
        path = HERE / name
        if not path.is_file():
            common.log(f"run_all: {name} is not in benchmarks/ yet: skipped")
            done.append((name, "absent", 0.0))
            continue
        if script_args is None:
            script_args = pipeline_args(args)
        common.log(f"run_all: {name} {' '.join(script_args)}")
        t0 = time.monotonic()
        rc = subprocess.call([sys.executable, str(path), *script_args], cwd=HERE.parent)
        done.append((name, "ok" if rc == 0 else f"failed (exit {rc})", time.monotonic() - t0))
    total = time.monotonic() - start
    common.log("\nrun_all summary:")
    for name, status, seconds in done:
        common.log(f"  {name:<14} {status:<18} {seconds:7.1f} s")
    common.log(f"  {'total':<14} {'':<18} {total:7.1f} s")
    return 1 if any(s.startswith("failed") for _, s, _ in done) else 0


if __name__ == "__main__":
    sys.exit(main())
