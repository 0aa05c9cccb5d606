"""The binding detrt.ops._cpu refuses bad input with a ValueError naming the argument, never crashes.

Hand-written cases for each rule, then hypothesis: random (mostly inconsistent) shapes, dtypes and
layouts must either give the right output shape or a ValueError. tests/ops/asan_fuzz.py runs the same
fuzzing against an AddressSanitizer + UBSan build of the extension (test_asan_fuzz, marked slow).
"""

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detrt.ops import cpu

pytestmark = pytest.mark.skipif(not cpu.available(), reason=f"{cpu.unavailable_reason()}")


def good_msda(n=2, shapes=((4, 3), (2, 2)), m=2, d=4, lq=5, p=3):
    shapes = np.array(shapes, np.int64)
    sizes = shapes[:, 0] * shapes[:, 1]
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    rng = np.random.default_rng(0)
    value = rng.standard_normal((n, int(sizes.sum()), m, d)).astype(np.float32)
    loc = rng.uniform(0, 1, (n, lq, m, len(shapes), p, 2)).astype(np.float32)
    attn = rng.uniform(0, 1, (n, lq, m, len(shapes), p)).astype(np.float32)
    return dict(value=value, spatial_shapes=shapes, level_start_index=starts, sampling_locations=loc,
                attention_weights=attn)


def call_msda(args):
    return cpu.ms_deform_attn(args["value"], args["spatial_shapes"], args["level_start_index"],
                              args["sampling_locations"], args["attention_weights"])


def test_good_input_runs():
    assert call_msda(good_msda()).shape == (2, 5, 8)


def replaced(**kw):
    args = good_msda()
    for key, fn in kw.items():
        args[key] = fn(args[key])
    return args


@pytest.mark.parametrize(
    "arg, change, words",
    [
        ("value", lambda a: a[0], "rank 4"),
        ("value", lambda a: a.astype(np.float64), "float32 or float16"),
        ("value", lambda a: a.astype(np.int32), "float32 or float16"),
        ("value", lambda a: a.tolist(), "numpy.ndarray"),
        ("value", lambda a: np.asfortranarray(a), "C-contiguous"),
        ("value", lambda a: a[:, ::2], "C-contiguous"),
        ("value", lambda a: a.astype(">f4"), "float32 or float16"),
        ("value", lambda a: a[:, :-1].copy(), "value's S"),
        ("spatial_shapes", lambda a: a.astype(np.float32), "int32 or int64"),
        ("spatial_shapes", lambda a: a[:, :1].copy(), "[L, 2]"),
        ("spatial_shapes", lambda a: a.reshape(-1), "rank 2"),
        ("spatial_shapes", lambda a: a * np.array([[-1, 1]] * len(a)), "must be positive"),
        ("spatial_shapes", lambda a: a * np.array([[0, 1]] * len(a)), "must be positive"),
        ("spatial_shapes", lambda a: a[::-1].copy(), "level_start_index[1] must be 4"),
        ("spatial_shapes", lambda a: np.array([[2**40, 2**40], [1, 1]]), "spatial_shapes[0]"),
        ("level_start_index", lambda a: a + 1, "level_start_index[0]"),
        ("level_start_index", lambda a: a[:1].copy(), "level_start_index must have shape"),
        ("level_start_index", lambda a: a.astype(np.uint64), "int32 or int64"),
        ("sampling_locations", lambda a: a[..., :1].copy(), "sampling_locations must have shape"),
        ("sampling_locations", lambda a: a.astype(np.float16), "value's dtype"),
        ("sampling_locations", lambda a: a[:, :, :1].copy(), "sampling_locations must have shape"),
        ("sampling_locations", lambda a: a.swapaxes(0, 1), "C-contiguous"),
        ("attention_weights", lambda a: a[..., :1].copy(), "attention_weights must have shape"),
        ("attention_weights", lambda a: a[None], "rank 5"),
        ("attention_weights", lambda a: None, "numpy.ndarray"),
    ],
)
def test_msda_bad_input_names_the_argument(arg, change, words):
    args = replaced(**{arg: change})
    with pytest.raises(ValueError) as info:
        call_msda(args)
    message = str(info.value)
    names = ("value", "spatial_shapes", "level_start_index", "sampling_locations", "attention_weights")
    assert any(name in message for name in names), message
    assert words in message, message
    assert "\n" not in message


def test_msda_unaligned_array_is_refused():
    args = good_msda()
    raw = np.zeros(args["value"].nbytes + 1, np.uint8)[1:]
    value = raw.view(np.float32).reshape(args["value"].shape)
    assert not value.flags.aligned
    args["value"] = value
    with pytest.raises(ValueError, match="value must be aligned"):
        call_msda(args)


def good_dcg(b=2, n=20):
    rng = np.random.default_rng(1)
    boxes = np.concatenate([rng.uniform(0, 1, (b, n, 2)), rng.uniform(0.05, 0.3, (b, n, 2))], -1).astype(np.float32)
    return boxes, rng.uniform(0, 1, (b, n)).astype(np.float32)


@pytest.mark.parametrize(
    "boxes_fn, scores_fn, k, words",
    [
        (lambda b: b[..., :3].copy(), None, 10, "boxes must have shape [B, N, 4]"),
        (lambda b: b[0], None, 10, "boxes must have rank 3"),
        (lambda b: b.astype(np.float64), None, 10, "boxes must be float32"),
        (lambda b: b[:, ::2], None, 10, "boxes must be C-contiguous"),
        (None, lambda s: s[:, :-1].copy(), 10, "scores must have shape [B, N]"),
        (None, lambda s: s.astype(np.float16), 10, "scores must be float32"),
        (None, lambda s: s[0], 10, "scores must have rank 2"),
        (None, None, -1, "k must be a non-negative int"),
        (None, None, 2.5, "k must be an int"),
    ],
)
def test_dcg_bad_input_names_the_argument(boxes_fn, scores_fn, k, words):
    boxes, scores = good_dcg()
    boxes = boxes_fn(boxes) if boxes_fn else boxes
    scores = scores_fn(scores) if scores_fn else scores
    with pytest.raises(ValueError, match=words.replace("[", r"\[").replace("]", r"\]")):
        cpu.dcg_neighbors(boxes, scores, k, 0.4, 0.1)


def test_numpy_wrapper_imports_without_torch():
    code = "import sys, detrt.ops.cpu as c; assert c.available(); assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# ---- fuzzing ----

dims = st.integers(min_value=0, max_value=5)
dtypes = st.sampled_from([np.float32, np.float16, np.float64, np.int64, np.int32])


@st.composite
def msda_inputs(draw):
    """Shapes that are consistent with probability ~1/2 per argument, random dtypes and layouts."""
    n, m, d, lq, p = (draw(st.integers(1, 3)) for _ in range(5))
    num_levels = draw(st.integers(1, 3))
    shapes = np.array([[draw(st.integers(1, 4)), draw(st.integers(1, 4))] for _ in range(num_levels)], np.int64)
    if draw(st.booleans()):
        shapes = np.array(draw(st.lists(st.lists(st.integers(-3, 5), min_size=0, max_size=3), min_size=0,
                                        max_size=4).filter(lambda x: len({len(r) for r in x}) <= 1)), np.int64)
        shapes = shapes.reshape(len(shapes), -1) if shapes.size else shapes.reshape(0, 2)
    sizes = shapes[:, 0] * shapes[:, 1] if shapes.ndim == 2 and shapes.shape[-1:] == (2,) else np.array([4])
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    if draw(st.booleans()):
        starts = np.array(draw(st.lists(st.integers(-2, 20), max_size=4)), np.int64)
    s = int(max(sizes.sum(), 0)) + draw(st.sampled_from([0, 0, 0, -1, 1]))
    level_count = len(shapes) + draw(st.sampled_from([0, 0, 0, 1, -1]))

    def shape_of(default):
        if draw(st.booleans()):
            return default
        return tuple(draw(st.lists(dims, min_size=max(0, len(default) - 1), max_size=len(default) + 1)))

    value_dtype = draw(st.sampled_from([np.float32, np.float32, np.float16, np.float64]))
    arrays = dict(
        value=np.ones(shape_of((n, max(s, 0), m, d)), value_dtype),
        spatial_shapes=shapes.astype(draw(st.sampled_from([np.int64, np.int32, np.float32]))),
        level_start_index=starts.astype(draw(st.sampled_from([np.int64, np.int32]))),
        sampling_locations=np.full(shape_of((n, lq, m, max(level_count, 0), p, 2)), 0.5,
                                   draw(st.sampled_from([value_dtype, value_dtype, np.float32, np.float16]))),
        attention_weights=np.ones(shape_of((n, lq, m, max(level_count, 0), p)),
                                  draw(st.sampled_from([value_dtype, value_dtype, np.float64]))),
    )
    if draw(st.integers(0, 9)) == 0:
        key = draw(st.sampled_from(sorted(arrays)))
        if arrays[key].ndim >= 2 and arrays[key].shape[0] > 1:
            arrays[key] = arrays[key][::2]  # non-contiguous
    return arrays


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(msda_inputs())
def test_fuzz_msda_validation(args):
    try:
        out = call_msda(args)
    except ValueError as e:
        assert str(e) and "\n" not in str(e)
        return
    n, _, m, d = args["value"].shape
    assert out.shape == (n, args["sampling_locations"].shape[1], m * d)
    assert np.isfinite(out.astype(np.float32)).all()


@settings(max_examples=200, deadline=None)
@given(
    st.lists(dims, min_size=1, max_size=4),
    st.lists(dims, min_size=1, max_size=3),
    st.integers(-2, 12),
    st.sampled_from([np.float32, np.float32, np.float64, np.float16]),
    st.floats(allow_nan=True, allow_infinity=True, width=32),
)
def test_fuzz_dcg_validation(box_shape, score_shape, k, dtype, t):
    rng = np.random.default_rng(len(box_shape) * 7 + k)
    boxes = rng.uniform(0, 1, box_shape).astype(dtype)
    scores = rng.uniform(0, 1, score_shape).astype(np.float32)
    try:
        idx, valid = cpu.dcg_neighbors(boxes, scores, k, t, 0.1)
    except ValueError as e:
        assert str(e) and "\n" not in str(e)
        return
    assert idx.shape == valid.shape == (box_shape[0], box_shape[1], k)
    assert ((idx >= 0) & (idx < max(box_shape[1], 1))).all()


def test_asan_fuzz(tmp_path):
    """Build the extension with AddressSanitizer + UBSan (Debug) and fuzz it (tests/ops/asan_fuzz.py)."""
    import os
    import shutil
    from pathlib import Path

    pybind11 = pytest.importorskip("pybind11")
    if not shutil.which("cmake") or not shutil.which("c++"):
        pytest.skip("cmake or a C++ compiler is missing")
    libasan = subprocess.run(["c++", "-print-file-name=libasan.so"], capture_output=True, text=True).stdout.strip()
    libubsan = subprocess.run(["c++", "-print-file-name=libubsan.so"], capture_output=True, text=True).stdout.strip()
    if not os.path.isabs(libasan) or not os.path.isabs(libubsan):
        pytest.skip("the compiler has no libasan/libubsan")
    root = Path(__file__).resolve().parents[2]
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    subprocess.run(["cmake", "-S", root, "-B", tmp_path, *generator, "-DCMAKE_BUILD_TYPE=Debug",
                    "-DDETRT_SANITIZE=address;undefined", f"-Dpybind11_DIR={pybind11.get_cmake_dir()}",
                    f"-DPython_EXECUTABLE={sys.executable}"], check=True, capture_output=True)
    subprocess.run(["cmake", "--build", tmp_path, "--target", "_cpu", "-j", "2"], check=True, capture_output=True)
    (library,) = (tmp_path / "plugins" / "cpu").glob("_cpu*.so")
    env = dict(os.environ, LD_PRELOAD=f"{libasan}:{libubsan}", ASAN_OPTIONS="detect_leaks=0",
               UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1")
    # every MSDA variant this CPU runs: the dispatched one, then capped at AVX2 and at the portable build
    narrower = {"avx512": ["avx2", "baseline"], "avx2+fma": ["baseline"]}.get(cpu.info()["msda_isa"], [])
    variants = [None, *narrower]
    for cap in variants:
        env.pop("DETRT_CPU_ISA", None)
        if cap:
            env["DETRT_CPU_ISA"] = cap
        run = subprocess.run([sys.executable, "-W", "ignore", root / "tests" / "ops" / "asan_fuzz.py", library,
                              str(900 // len(variants))], env=env, capture_output=True, text=True)
        assert run.returncode == 0 and "ERROR: AddressSanitizer" not in run.stderr, run.stderr[-3000:]
        assert "runtime error" not in run.stderr, run.stderr[-3000:]
        ran = {"avx2": "avx2+fma"}.get(cap, cap) or cpu.info()["msda_isa"]
        assert f"asan fuzz ({ran})" in run.stdout, run.stdout
