"""Mutation testing of the core Python modules with mutmut (`make mutation`; not part of `make test`).

    .venv/bin/python benchmarks/mutation.py                  # a seeded sample (defaults below)
    .venv/bin/python benchmarks/mutation.py --fraction 1     # every mutant (hours on 2 cores)
    .venv/bin/python benchmarks/mutation.py --report-only    # the report again, from mutants/

[tool.mutmut] in pyproject.toml names the modules and the tests. mutmut copies detrt/ and tests/ into mutants/,
rewrites each function there with its mutants behind a switch, runs the tests once to learn which tests call which
function (and how long each takes, its fixtures' setup included: SetupTimes), then runs each mutant against only
those tests, in processes forked from a server that has run no test (a fork of a process whose OpenVINO thread
pool ran hangs). Each mutant's tests run quickest first and stop at the first failure; a mutant outside
detrt/compile runs its tests outside tests/compile where it has any (own_tests: the compile tests export a model in
every process and reach the other modules only on the way, so this can only lower the kill rate). The sample is
drawn per module (the same fraction of each file's mutants, at least 10, by a seeded shuffle of the sorted names),
so each module's kill rate is measured. mutmut runs the mutants whose tests are quickest first; after --minutes
the run stops and the report counts the mutants not run per module ("not checked"). A mutant killed in an earlier
run in mutants/ stays killed (tests are only ever added); the others run again. Mutants that no test can tell from
the original (same behaviour) are listed in EQUIVALENT with the reason, keyed by module and the mutated line, and
counted apart. Writes benchmarks/results/mutation.json (with each module's seconds of mutant tests, from
mutants/wall_s.jsonl) and the surviving mutants, with their diffs, to benchmarks/results/mutation_survivors.txt.
"""

import argparse
import collections
import json
import os
import random
import shutil
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"

# One thread per forked worker: two workers on two cores (torch's and OpenMP's pools are not fork-safe either).
os.environ.setdefault("OMP_NUM_THREADS", "1")

# (module, the mutated line as mutmut shows it, stripped) -> why no test can kill it.
ORT_DEFAULT_FALSE = ("ONNX Runtime reads extra_options by exact key, and QDQKeepRemovableActivations defaults to "
                     "False: a misspelt key is ignored and gives the same graph")
FLOAT64_ALREADY = "the array is float64 already (callers and the .odgt reader give float64), so no conversion"
ORT_CPU = "ONNX Runtime warns about an unknown provider name and runs on the CPU provider, the one asked for"
INT_SIZES = "int64 sizes: their first arithmetic (minimum with float32 positions, + 1e-6) gives the same float32"
EQUIVALENT = {
    ("detrt.eval.assignment", "u, v = np.zeros(n + 2), np.zeros(m + 1)"): "one more row potential, never read",
    ("detrt.eval.assignment", "cost = np.asarray(cost, dtype=None)"): FLOAT64_ALREADY,
    ("detrt.eval.assignment", "cost = np.asarray(cost, )"): FLOAT64_ALREADY,
    ("detrt.eval.assignment", "weight = np.asarray(weight, dtype=None)"): FLOAT64_ALREADY,
    ("detrt.eval.assignment", "weight = np.asarray(weight, )"): FLOAT64_ALREADY,
    ("detrt.eval.assignment", "for i in range(n + 1):"):
        "row 0 is the solver's dummy: its pass assigns nothing and moves only u[0] and v[0], which no later pass reads",
    ("detrt.eval.assignment", "better = free & (cur <= minv[1:])"):
        "a tie between equally short augmenting paths: another assignment of the same minimum cost",
    ("detrt.eval.assignment", "edge = weight >= 0"):
        "rows and columns without an edge enter the solver too, and the pairs of weight 0 are dropped after it",
    ("detrt.eval.duplicates", "boxes, gt_boxes, ignore = np.asarray(d.boxes, None).reshape(-1, 4), g.boxes, g.ignore"):
        FLOAT64_ALREADY,
    ("detrt.eval.duplicates", "boxes, gt_boxes, ignore = np.asarray(d.boxes, ).reshape(-1, 4), g.boxes, g.ignore"):
        FLOAT64_ALREADY,
    ("detrt.eval.duplicates", "np.fill_diagonal(overlap, None)"): "None is stored as NaN, which is not > the threshold",
    ("detrt.eval.duplicates", 'order = np.argsort(-dt_scores[keep], kind="STABLE")'): "numpy reads kind case-blind",
    ("detrt.ops.tensorrt", 'for root in (pkg, pkg / "LIB", pkg.parent / "build"):'):
        "the recursive glob of pkg itself finds pkg/lib already",
    ("detrt.runtime.postprocess", 'order = np.argsort(+part, axis=1, kind="stable")'):
        "_one sorts each frame by score again (it does not rely on the model's order)",
    ("detrt.compile.tensorrt", "if not config.set_timing_cache(cache, None):  # False: refuse a cache timed on another "
                               "GPU or TensorRT"): "TensorRT's bool argument takes None as false (pybind11)",
    ("detrt.runtime.trt_backend", "self.timing = None  # benchmarks: CUDA events per batch "
                                  "(see the module docstring)"): "read only as a truth value, where None is False",
    ("detrt.runtime.trt_backend", 'self.timed = ""  # "split" | "graph" when timing events were recorded for '
                                  'this batch'): 'read only as a truth value, where "" is None',
    ("detrt.runtime.trt_backend", "self._next = 1"): "the two slots are alike: which takes the first batch is moot",
    ("detrt.runtime.trt_backend", "def __init__(self, artifact, manifest, plugins=None, cuda_graph=True, device=0):"):
        "open_backend, its one caller, always passes cuda_graph",
    ("detrt.runtime.trt_backend", 'slot.marks = [self.cuda("cudaEventCreate") for _ in range(5)]'):
        "a fifth event, made and destroyed with the others, is never recorded or read",
    ("detrt.runtime.trt_backend", 'if int(err.value if (hasattr(err, "value")) and False else err):'):
        "cuda-python's errors are IntEnums: int(err) is err.value",
    ("detrt.runtime.postprocess", "part = np.take_along_axis(flat, idx, )"):
        "numpy 2's take_along_axis defaults to axis=-1: axis 1 of this 2-D array",
    ("detrt.runtime.base", "x = np.zeros((batch or self.max_batch, *self.input_shape[1:]), None)"):
        "infer's check_input converts the zeros to float32 before any backend sees them",
    ("detrt.eval.crowdhuman", "dt_left[rows] = None"): "None stored in a bool array is False",
    ("detrt.eval.crowdhuman", "gt_left[cols] = None"): "None stored in a bool array is False",
    ("detrt.eval.crowdhuman", 'with np.errstate(divide="ignore", ):'): "only lets numpy warn; values are the same",
    ("detrt.eval.crowdhuman", '"JI": float(np.nanmax(ji_crowddet)) if not np.isnan(ji_crowddet).all() else '
                              'float("NAN"),'): 'float() reads "NAN" as "nan"',
    ("detrt.models.deformable_attention", "grid = (grid / grid.abs().max(+1, keepdim=True)[0]).view(self.n_heads, 1, "
                                          "1, 2)"): "dim 1 of the [heads, 2] grid is its last, dim -1",
    ("detrt.models.deformable_attention", "valid = torch.tensor([[h, w]], dtype=None, device=device)"): INT_SIZES,
    ("detrt.models.deformable_attention", "valid = torch.tensor([[h, w]], device=device)"): INT_SIZES,
    ("detrt.runtime.postprocess", 'order = np.argsort(-part, axis=1, kind="STABLE")'): "numpy reads kind case-blind",
    ("detrt.compile.openvino", "m = ops.reshape(ops.reduce_mean(t, const(np.array([2, 3])), ), const(np.array([0, G, C "
                               "// G])), True)"): "[B, C] or [B, C, 1, 1]: the Reshape to [0, G, C/G] gives the same",
    ("detrt.compile.tensorrt", r'm = re.fullmatch(r"images:(\d+)x(\d+)x(\d+)x(\d+)", text or "XXXX")'):
        'a missing text fails the pattern as "" or "XXXX", and the error shows the text itself',
    ("detrt.eval.crowdhuman", 'with np.errstate(divide="ignore"):'): "only lets numpy warn; values are the same",
    ("detrt.eval.crowdhuman", "b = np.array(boxes, ).reshape(-1, 4)"): FLOAT64_ALREADY,
    ("detrt.eval.crowdhuman", "b = np.array(boxes, dtype=None).reshape(-1, 4)"): FLOAT64_ALREADY,
    ("detrt.eval.crowdhuman", "for i in np.nonzero((iou >= THRESH).any(1))[0]:"):
        "IoU carries eps in its denominator: exactly 0.5 needs inter = (union + eps) / 2, which pixel boxes never give",
    ("detrt.eval.coco", "counts = np.zeros(len(vocabulary), )"): "the counts are only compared with 10 and 100",
    ("detrt.eval.coco", "counts = np.zeros(len(vocabulary), None)"): "the counts are only compared with 10 and 100",
    ("detrt.eval.coco", "e.params.areaRng, e.params.areaRngLbl = [[0, 10000000001.0]], [\"all\"]"):
        "no box is 1e10 pixels",
    ("detrt.eval.coco", "precision = np.zeros((11, 1, len(with_gt)))"): "all zeros: every mean is 0 however many rows",
    ("detrt.eval.coco", '"iscrowd": int(bool(a.get("iscrowd", None)))} for k, a in enumerate(data["annotations"])]'):
        "bool(None) is False, as bool(0)",
    ("detrt.compile.onnxruntime", 'InferenceSession(str(src), so, providers=["cpuexecutionprovider"])'): ORT_CPU,
    ("detrt.compile.onnxruntime", 'InferenceSession(str(src), so, providers=["CPUEXECUTIONPROVIDER"])'): ORT_CPU,
    ("detrt.models.deformable_attention", "thetas = torch.arange(self.n_heads, ) * (2.0 * math.pi / self.n_heads)"):
        "int64 times a Python float is float32",
    ("detrt.compile.precision", 'with tempfile.TemporaryDirectory(prefix="XXdetrt-int8-XX") as tmp:'):
        "only the name of a temporary folder that is gone after the call",
    ("detrt.compile.precision", '"DedicatedQDQPair": True, "qdqkeepremovableactivations": False,'): ORT_DEFAULT_FALSE,
    ("detrt.compile.precision", '"DedicatedQDQPair": True, "QDQKEEPREMOVABLEACTIVATIONS": False,'): ORT_DEFAULT_FALSE,
    ("detrt.compile.surgery", "plugins = [n for n in graph.nodes if n.domain in (DETRT_DOMAIN, PORTABLE_DOMAIN) or n.op "
                              "in DETRT_OPS]"):
        "detrt's two domains hold only MSDeformAttn and DCGNeighbors nodes, and no other domain uses those names",
    ("detrt.runtime.postprocess", "labels = (idx % C).astype(None)"): "_one makes the labels int64 for Detections",
    ("detrt.runtime.pipeline", "self.q_batches = queue.Queue(maxsize=3)"):
        "one more preprocessed batch may wait: frames, order and live drops (made before this queue) are the same",
}
_EXPORTING = ('if compiler is not None and (compiler.is_compiling() or getattr(compiler, "is_exporting", '
              '{})()):')
for _default in ("", "lambda: None", "lambda: True"):
    EQUIVALENT["detrt.ops.msda", _EXPORTING.format(_default)] = \
        "torch.compiler has is_exporting from torch 2.5 on: the default is never used"
# COCOeval (faster-coco-eval) reads no image width or height for boxes; with the one area range [0, 1e10] every
# annotation is inside it whatever its area (or none), and the range's label is printed only by summarize().
_IMAGE = 'images = [{{"id": im["id"], {}, "file_name": file_name(im)}}'
_AREA = '"bbox": [float(v) for v in a["bbox"]], {},'
for _line in ([_IMAGE.format(f'"{w}": im["width"], "height": im["height"]') for w in ("XXwidthXX", "WIDTH")] +
              [_IMAGE.format(f'"width": im["width"], "{h}": im["height"]') for h in ("XXheightXX", "HEIGHT")] +
              [_AREA.format(a) for a in ('"XXareaXX": float(a["bbox"][2] * a["bbox"][3])',
                                         '"AREA": float(a["bbox"][2] * a["bbox"][3])',
                                         '"area": float(a["bbox"][3] * a["bbox"][3])',
                                         '"area": float(a["bbox"][2] * a["bbox"][2])')] +
              [f'e.params.areaRng, e.params.areaRngLbl = [[0, 1e10]], ["{label}"]' for label in ("XXallXX", "ALL")]):
    EQUIVALENT["detrt.eval.coco", _line] = "COCOeval reads no image size; one area range [0, 1e10]"
# DeHomoCodingGenerator's one caller (the transformer) passes all four arguments: the defaults are DH-DETR's, to read.
for _args in ("d_model=257, k=10, iou_threshold=0.4, low_score=0.1", "d_model=256, k=11, iou_threshold=0.4, "
              "low_score=0.1", "d_model=256, k=10, iou_threshold=1.4, low_score=0.1",
              "d_model=256, k=10, iou_threshold=0.4, low_score=1.1"):
    EQUIVALENT["detrt.models.dcg", f"def __init__(self, {_args}):"] = "its one caller passes every argument"
# Functions that run once, when their module is imported: in mutmut's parent process, before any mutant is switched
# on, so no mutant of theirs can be tested this way (tests/ops/test_ort_errors.py tests what they do).
IMPORT_TIME = {"detrt.ops.ort.x__guard_invocations": "installs the guard around onnxruntime-extensions' dispatcher",
               "detrt.ops.ort.x__import_extensions": "imports onnxruntime-extensions with torch hidden"}


class SetupTimes:
    """A pytest plugin for mutmut's stats run: adds each test's setup and teardown time to the call time that mutmut
    records. A session fixture (the compile tests' exported model) is built again in every mutant's fork, so its
    cost belongs to the estimate that orders the tests and sets the time limit."""

    def pytest_runtest_makereport(self, item, call):
        from mutmut import state
        if call.when != "call":
            durations = state().duration_by_test
            durations[item.nodeid] = durations.get(item.nodeid, 0) + call.duration


def own_tests(mutant_name, tests):
    """A mutant outside detrt/compile is checked by its tests outside tests/compile, where it has any. The compile
    tests export a whole model in each mutant's process and reach the runtime, eval, models and ops only on the way
    (their own tests check those with hand-computed values); leaving them out can only let a mutant survive, so the
    kill rate is a lower bound. Functions that only the compile tests call (export symbolics) keep them."""
    if mutant_name is None or mutant_name.startswith("detrt.compile."):
        return tests
    return [t for t in tests if not t.startswith("tests/compile/")] or tests


def quickest_tests_first():
    """mutmut hands each mutant's tests to pytest (-x) in a set's order; quickest first, a killed mutant stops at the
    first cheap test that fails it instead of after a model export. Only the order changes, not the tests."""
    from mutmut import state
    from mutmut.mutation.trampoline import get_mutant_under_test
    from mutmut.runners.harness import PytestRunner

    execute_pytest, run_tests = PytestRunner.execute_pytest, PytestRunner.run_tests

    def execute_with_setup_times(self, params, **kwargs):
        if get_mutant_under_test() == "stats":
            kwargs["plugins"] = [*kwargs.get("plugins", []), SetupTimes()]
        return execute_pytest(self, params, **kwargs)

    def run_quickest_first(self, *, mutant_name, tests):
        durations = state().duration_by_test
        tests = sorted(own_tests(mutant_name, tests), key=lambda t: (durations.get(t, 0), t))
        start = time.monotonic()
        code = run_tests(self, mutant_name=mutant_name, tests=tests)
        with open(ROOT / "mutants" / "wall_s.jsonl", "a") as f:  # one short line per mutant: appends do not mix
            f.write(json.dumps([mutant_name, round(time.monotonic() - start, 2), code]) + "\n")
        return code

    PytestRunner.execute_pytest, PytestRunner.run_tests = execute_with_setup_times, run_quickest_first


def drop_editable_finder():
    """The editable install maps `detrt` to the source tree ahead of sys.path; mutmut imports it from mutants/.
    Returns the compiled extension's path, which is not in the source tree."""
    for finder in list(sys.meta_path):
        if type(finder).__name__ == "ScikitBuildRedirectingFinder":
            sys.meta_path.remove(finder)
            return [os.path.join(finder.dir, rel) for rel in finder.known_wheel_files.values()]
    sys.exit("mutation: detrt is not an editable install here (run `make install`)")


def exit_codes():
    """{mutant name: mutmut's exit code (None: not run yet)}, from the .meta files beside the mutated copies."""
    codes = {}
    for meta in sorted((ROOT / "mutants" / "detrt").rglob("*.py.meta")):
        codes.update(json.loads(meta.read_text())["exit_code_by_key"])
    return codes


def mutant_names():
    """Every mutant's name, by module, after mutmut generated them."""
    by_module = collections.defaultdict(list)
    for name in sorted(exit_codes()):
        by_module[name.split(".x_")[0].split(".xǁ")[0]].append(name)
    return by_module


# Their tests build and export a model in each mutant's fork (about a minute of CPU per mutant): sampled thinner.
HEAVY = ("detrt.compile.export", "detrt.compile.precision", "detrt.compile.surgery", "detrt.compile.portable_ops",
         "detrt.compile.build")


def sample(by_module, fraction, heavy_fraction, seed, least=10):
    """The first share of each module's seeded shuffle, and at least `least` of its mutants (or all it has), so that
    each module's kill rate rests on enough mutants."""
    chosen = []
    for module, names in by_module.items():
        names = list(names)
        random.Random(f"{seed}:{module}").shuffle(names)
        share = heavy_fraction if module in HEAVY else fraction
        chosen += names[: max(least, round(len(names) * share))]
    return chosen


def report(chosen, args, wall_s):
    from mutmut.mutation.data import SourceFileMutationData
    from mutmut.mutation.diff_apply import get_diff_for_mutant
    from mutmut.stats import status_by_exit_code

    chosen = set(chosen)
    counts = collections.defaultdict(collections.Counter)
    survivors, equivalents = [], []
    for meta in sorted((ROOT / "mutants" / "detrt").rglob("*.py.meta")):
        path = str(meta.relative_to(ROOT / "mutants"))[: -len(".meta")]
        module = path[: -len(".py")].replace("/", ".")
        data = SourceFileMutationData(path=path)
        data.load()
        for name, code in sorted(data.exit_code_by_key.items()):
            if name not in chosen:
                continue
            status = status_by_exit_code[code]
            if status == "not checked":
                pass
            elif name.split("__mutmut_")[0] in IMPORT_TIME:
                status = "import time"
            elif status in ("survived", "no tests"):
                diff = get_diff_for_mutant(name, path=path)
                line = next((d[1:].strip() for d in diff.splitlines() if d.startswith("+") and not
                             d.startswith("+++")), "")
                reason = EQUIVALENT.get((module, line))
                if reason:
                    status = "equivalent"
                    equivalents.append({"mutant": name, "line": line, "reason": reason})
                else:
                    survivors.append({"mutant": name, "status": status, "diff": diff})
            counts[module][status] += 1
    rows, total = {}, collections.Counter()
    for module, c in sorted(counts.items()):
        rows[module] = dict(c)
        total.update(c)
    seconds = collections.Counter()
    for name, s in mutant_seconds().items():
        if name in chosen:
            seconds[name.split(".x_")[0].split(".xǁ")[0]] += s
    # A mutant that hangs or crashes the tests is caught as surely as one that fails them.
    killed = total["killed"] + total["timeout"] + total["segfault"]
    live = sum(total.values()) - total["equivalent"] - total["not checked"] - total["import time"]
    out = {
        "command": "make mutation (" + " ".join(["benchmarks/mutation.py", *sys.argv[1:]]) + ")",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "mutmut": __import__("importlib.metadata").metadata.version("mutmut"),
        "fraction": args.fraction, "heavy_fraction": args.heavy_fraction, "seed": args.seed,
        "wall_s": None if wall_s is None else round(wall_s),
        "load_average_at_end": os.getloadavg()[0],
        "by_module": rows, "total": dict(total),
        "mutant_seconds_by_module": {m: round(v) for m, v in sorted(seconds.items())},
        "kill_rate_of_non_equivalent": round(killed / live, 4) if live else None,
        "equivalent": equivalents,
        "survivors": [s["mutant"] for s in survivors],
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "mutation.json").write_text(json.dumps(out, indent=1) + "\n")
    (RESULTS / "mutation_survivors.txt").write_text(
        "".join(f"# {s['mutant']}: {s['status']}\n{s['diff']}\n" for s in survivors))
    print(markdown_table(rows, seconds))
    print(f"{killed} killed of {live} non-equivalent mutants ({out['kill_rate_of_non_equivalent']}); "
          f"{total['equivalent']} equivalent; survivors in {RESULTS / 'mutation_survivors.txt'}")


def out_of_time(signum, frame):
    raise KeyboardInterrupt  # mutmut stops its workers and keeps the verdicts it has


def mutant_seconds():
    """{mutant name: seconds its tests took}, the latest run of each (mutants/wall_s.jsonl; timeouts are not in it)."""
    path = ROOT / "mutants" / "wall_s.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return {name: s for name, s, _ in map(json.loads, lines) if name is not None}


def markdown_table(rows, seconds):
    """Per module: the sample's mutants by verdict, the kill rate (killed or timed out / all tested but the
    equivalent ones) and the seconds its mutants' tests took in all, for benchmarks/MUTATION.md."""
    cols = ["killed", "timeout", "survived", "no tests", "equivalent", "import time", "not checked"]
    lines = ["| module | " + " | ".join(cols) + " | kill rate | mutants' s |", "|---" * (len(cols) + 3) + "|"]
    for module, c in list(rows.items()) + [("all", collections.Counter())]:
        if module == "all":
            c = sum((collections.Counter(r) for r in rows.values()), collections.Counter())
        caught = c.get("killed", 0) + c.get("timeout", 0) + c.get("segfault", 0)
        tested = caught + c.get("survived", 0) + c.get("no tests", 0)
        rate = f"{100 * caught / tested:.0f}%" if tested else "-"
        s = sum(seconds.values()) if module == "all" else seconds.get(module, 0)
        lines.append(f"| {module} | " + " | ".join(str(c.get(k, 0)) for k in cols) + f" | {rate} | {s:.0f} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fraction", type=float, default=0.15, help="share of each module's mutants to run")
    parser.add_argument("--heavy-fraction", type=float, default=0.02, help="share of the HEAVY modules' mutants")
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--modules", nargs="*", default=[], help="only these modules (detrt.eval.crowdhuman ...)")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--survivors", action="store_true",
                        help="run only the sample's survivors and timeouts (after adding tests)")
    parser.add_argument("--max-children", type=int, default=2)
    parser.add_argument("--minutes", type=float, default=55,
                        help="stop after this long (as Ctrl-C would): the report counts the mutants not run")
    args = parser.parse_args()
    start = time.monotonic()  # the wall time reported: everything, mutant generation and mutmut's clean runs too

    os.chdir(ROOT)
    extensions = drop_editable_finder()
    from mutmut.__main__ import cli, copy_src_dir, create_mutants
    quickest_tests_first()
    if not args.report_only:
        copy_src_dir()
        for ext in extensions:
            rel = Path(ext).relative_to(Path(ext).parents[2])  # detrt/ops/_cpu....so
            shutil.copy2(ext, ROOT / "mutants" / rel)
        create_mutants(args.max_children)
    by_module = mutant_names()
    if args.modules:
        by_module = {m: n for m, n in by_module.items() if m in args.modules}
    chosen = sample(by_module, args.fraction, args.heavy_fraction, args.seed)
    if not args.report_only:
        # A mutant killed once stays killed (tests are only added); the rest run, survivors again.
        codes = exit_codes()
        again = (0, 5, 33) + ((-24, 24, 36, 152, 255) if args.survivors else ())  # survived, no tests (, timeout)
        todo = [n for n in chosen if codes[n] in again or (codes[n] is None and not args.survivors)]
        print(f"mutation: {len(chosen)} of {sum(map(len, by_module.values()))} mutants, {len(todo)} to run",
              flush=True)
        signal.signal(signal.SIGALRM, out_of_time)
        signal.alarm(max(1, round(args.minutes * 60)))
        try:
            cli(["run", "--max-children", str(args.max_children), *todo])
        except SystemExit as e:
            if e.code:
                raise
    report(chosen, args, None if args.report_only else time.monotonic() - start)


if __name__ == "__main__":
    main()
