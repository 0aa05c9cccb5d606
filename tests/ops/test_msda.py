"""MSDA: the reference against a per-sample loop, the CPU kernel and the torch op against the reference.

Backends: the PyTorch reference (detrt.ops.msda), the compiled CPU kernel through numpy (detrt.ops.cpu)
and through the custom op (torch.ops.detrt.ms_deform_attn). The plugin-form ONNX on ONNX Runtime is in
test_ort.py; CUDA/TensorRT in tests/plugins (marked, skipped where absent).
"""

import math
import warnings

import numpy as np
import pytest
import torch

from detrt.ops import cpu
from detrt.ops import msda as msda_module
from detrt.ops.msda import ms_deform_attn, ms_deform_attn_reference

needs_ext = pytest.mark.skipif(not cpu.available(), reason=f"{cpu.unavailable_reason()}")


def level_index(shapes):
    shapes = np.asarray(shapes, dtype=np.int64).reshape(-1, 2)
    sizes = shapes[:, 0] * shapes[:, 1]
    return shapes, np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64), int(sizes.sum())


def make_inputs(rng, n, shapes, m, d, lq, p, lo=-0.2, hi=1.2, dtype=np.float32):
    shapes, starts, s = level_index(shapes)
    num_levels = len(shapes)
    value = rng.standard_normal((n, s, m, d)).astype(dtype)
    loc = rng.uniform(lo, hi, (n, lq, m, num_levels, p, 2)).astype(dtype)
    attn = rng.uniform(0, 1, (n, lq, m, num_levels, p)).astype(dtype)
    return value, shapes, starts, loc, attn


def reference_np(value, shapes, starts, loc, attn):
    args = [torch.from_numpy(np.asarray(a)) for a in (value, shapes, starts, loc, attn)]
    return ms_deform_attn_reference(*args).numpy()


def loop_msda(value, shapes, starts, loc, attn):
    """docs/ops.md's definition written out per output element, in float64 (slow; tiny inputs only)."""
    n_, s_, m_, d_ = value.shape
    _, lq, _, num_levels, num_points, _ = loc.shape
    out = np.zeros((n_, lq, m_ * d_))
    for n in range(n_):
        for q in range(lq):
            for m in range(m_):
                acc = np.zeros(d_)
                for lvl in range(num_levels):
                    h, w = (int(v) for v in shapes[lvl])
                    for p in range(num_points):
                        x = float(loc[n, q, m, lvl, p, 0]) * w - 0.5
                        y = float(loc[n, q, m, lvl, p, 1]) * h - 0.5
                        x0, y0 = math.floor(x), math.floor(y)
                        for yy, wy in ((y0, y0 + 1 - y), (y0 + 1, y - y0)):
                            for xx, wx in ((x0, x0 + 1 - x), (x0 + 1, x - x0)):
                                if 0 <= xx < w and 0 <= yy < h:
                                    row = int(starts[lvl]) + yy * w + xx
                                    acc += float(attn[n, q, m, lvl, p]) * wy * wx * value[n, row, m].astype(np.float64)
                out[n, q, m * d_ : (m + 1) * d_] = acc
    return out


def assert_close32(out, ref, tol=2e-5):
    scale = max(1.0, float(np.abs(ref).max()))
    np.testing.assert_allclose(out, ref, rtol=tol, atol=tol * scale)


@pytest.mark.parametrize("seed", range(3))
def test_reference_matches_per_sample_loop(seed):
    rng = np.random.default_rng(seed)
    args = make_inputs(rng, 2, [[3, 5], [2, 2], [1, 1]], m=2, d=3, lq=4, p=3, lo=-0.3, hi=1.3)
    np.testing.assert_allclose(reference_np(*args), loop_msda(*args), rtol=1e-5, atol=1e-5)


def random_config(rng):
    num_levels = int(rng.integers(1, 5))
    shapes = [[int(rng.integers(1, 13)), int(rng.integers(1, 13))] for _ in range(num_levels)]
    if rng.random() < 0.5:
        shapes[int(rng.integers(num_levels))] = [1, 1]
    return dict(
        n=int(rng.integers(1, 3)),
        shapes=shapes,
        m=int(rng.integers(1, 9)),
        d=int(rng.integers(1, 65)),
        lq=int(rng.integers(1, 40)),
        p=int(rng.integers(1, 9)),
    )


@needs_ext
@pytest.mark.parametrize("seed", range(12))
def test_kernel_matches_reference_random_shapes(seed):
    rng = np.random.default_rng(100 + seed)
    args = make_inputs(rng, **random_config(rng))
    assert_close32(cpu.ms_deform_attn(*args), reference_np(*args))


@needs_ext
def test_kernel_long_query_and_one_by_one_levels():
    rng = np.random.default_rng(7)
    args = make_inputs(rng, 1, [[1, 1], [24, 40], [1, 1], [3, 7]], m=3, d=5, lq=5000, p=2, lo=-0.5, hi=1.5)
    assert_close32(cpu.ms_deform_attn(*args, num_threads=2), reference_np(*args))
    # thread count does not change the result
    np.testing.assert_array_equal(cpu.ms_deform_attn(*args, num_threads=1), cpu.ms_deform_attn(*args, num_threads=2))


@needs_ext
def test_kernel_int32_shapes_and_ranks_of_one():
    rng = np.random.default_rng(8)
    value, shapes, starts, loc, attn = make_inputs(rng, 1, [[1, 1]], m=1, d=1, lq=1, p=1)
    out = cpu.ms_deform_attn(value, shapes.astype(np.int32), starts.astype(np.int32), loc, attn)
    assert out.shape == (1, 1, 1) and out.dtype == np.float32
    assert_close32(out, reference_np(value, shapes, starts, loc, attn))


@needs_ext
def test_locations_far_outside_give_zero_padding():
    rng = np.random.default_rng(9)
    value, shapes, starts, loc, attn = make_inputs(rng, 1, [[6, 5], [3, 2]], m=2, d=4, lq=30, p=4)
    far = np.array([-1e9, -3.0, -1.0, -0.6, 1.6, 2.0, 7.5, 1e9, np.inf, -np.inf, np.nan], dtype=np.float32)
    loc_far = loc.copy()
    loc_far[:, :, :, :, 0, 0] = rng.choice(far, size=loc_far.shape[:4])
    out = cpu.ms_deform_attn(value, shapes, starts, loc_far, attn)
    assert np.isfinite(out).all()
    no_first_point = attn.copy()
    no_first_point[:, :, :, :, 0] = 0  # a point outside every map contributes exactly nothing
    assert_close32(out, cpu.ms_deform_attn(value, shapes, starts, loc, no_first_point))
    finite = loc_far.copy()
    finite[~np.isfinite(finite)] = 5.0
    finite_args = (value, shapes, starts, finite, attn)
    assert_close32(cpu.ms_deform_attn(*finite_args), reference_np(*finite_args))


@needs_ext
def test_exact_pixel_centres_edges_and_level_boundaries():
    rng = np.random.default_rng(10)
    shapes_list = [[4, 6], [2, 3], [1, 1]]
    value, shapes, starts, loc, attn = make_inputs(rng, 1, shapes_list, m=2, d=8, lq=64, p=4)
    # x*W - 0.5 integral (pixel centres), half-integral (between centres), 0 and 1 (map edges), -0.5/W, 1+0.5/W
    for lvl, (h, w) in enumerate(shapes_list):
        xs = np.concatenate([(np.arange(w) + 0.5) / w, np.arange(w + 1) / w, [-0.5 / w, 1 + 0.5 / w]])
        ys = np.concatenate([(np.arange(h) + 0.5) / h, np.arange(h + 1) / h, [-0.5 / h, 1 + 0.5 / h]])
        loc[..., lvl, :, 0] = rng.choice(xs, size=loc.shape[:3] + (loc.shape[4],))
        loc[..., lvl, :, 1] = rng.choice(ys, size=loc.shape[:3] + (loc.shape[4],))
    out = cpu.ms_deform_attn(value, shapes, starts, loc, attn)
    assert_close32(out, reference_np(value, shapes, starts, loc, attn))
    np.testing.assert_allclose(out, loop_msda(value, shapes, starts, loc, attn), rtol=2e-5, atol=2e-5)


@needs_ext
def test_last_row_of_a_level_does_not_read_the_next_level():
    """A sample just below a level's last row must pad with zeros, not read the next level's first row."""
    value, shapes, starts, loc, attn = make_inputs(np.random.default_rng(11), 1, [[2, 2], [2, 2]], 1, 1, 1, 1)
    value[:] = 0
    value[0, 4:] = 1000.0  # level 1
    loc[0, 0, 0, 0, 0] = (0.75, 0.99)  # level 0, y*H - 0.5 = 1.48: rows 1 and 2 (row 2 is outside)
    attn[:] = 1
    loc[0, 0, 0, 1, 0] = (-5, -5)
    assert cpu.ms_deform_attn(value, shapes, starts, loc, attn)[0, 0, 0] == 0.0


def half_inputs(rng, **cfg):
    args = make_inputs(rng, **cfg)
    value, shapes, starts, loc, attn = args
    h = [a.astype(np.float16) for a in (value, loc, attn)]
    return (h[0], shapes, starts, h[1], h[2]), (h[0].astype(np.float32), shapes, starts, h[1].astype(np.float32),
                                                h[2].astype(np.float32))


@needs_ext
@pytest.mark.parametrize("seed", range(4))
def test_float16_io_within_1e3_of_float32_reference(seed):
    rng = np.random.default_rng(200 + seed)
    args16, args32 = half_inputs(rng, **random_config(rng))
    out = cpu.ms_deform_attn(*args16)
    assert out.dtype == np.float16
    ref = reference_np(*args32)
    # the only rounding left is the final float16 store: <= 2^-11 relative, well inside 1e-3
    err = np.abs(out.astype(np.float32) - ref)
    assert (err <= 1e-3 * np.abs(ref) + 1e-6).all(), float((err / (np.abs(ref) + 1e-6)).max())


@needs_ext
@pytest.mark.parametrize("seed", range(2))
def test_float32_locations_with_float16_value(seed):
    """A float16 engine feeds float32 locations with float16 value and weights: locations that float16 can hold
    give the all-float16 call's output bit for bit; finer ones are used unrounded (the reference on them)."""
    rng = np.random.default_rng(300 + seed)
    args16, _ = half_inputs(rng, **random_config(rng))
    value, shapes, starts, loc16, attn = args16
    out = cpu.ms_deform_attn(value, shapes, starts, loc16.astype(np.float32), attn)
    assert out.dtype == np.float16
    np.testing.assert_array_equal(out, cpu.ms_deform_attn(*args16))
    loc32 = rng.uniform(-0.2, 1.2, loc16.shape).astype(np.float32)
    out = cpu.ms_deform_attn(value, shapes, starts, loc32, attn).astype(np.float32)
    ref = reference_np(value.astype(np.float32), shapes, starts, loc32, attn.astype(np.float32))
    err = np.abs(out - ref)
    assert (err <= 1e-3 * np.abs(ref) + 1e-6).all(), float((err / (np.abs(ref) + 1e-6)).max())
    rounded = cpu.ms_deform_attn(value, shapes, starts, loc32.astype(np.float16), attn).astype(np.float32)
    assert (rounded != out).mean() > 0.1  # the locations were not rounded to half on the way


@needs_ext
def test_float32_accumulation_beats_half_accumulation_on_long_sums():
    rng = np.random.default_rng(12)
    shapes_list = [[8, 8]] * 8
    args16, args32 = half_inputs(rng, n=1, shapes=shapes_list, m=1, d=16, lq=64, p=8, lo=0.1, hi=0.9)
    value, shapes, starts, loc, attn = args16
    value[:] = (1.0 + 0.01 * rng.standard_normal(value.shape)).astype(np.float16)  # long sums of similar terms
    attn[:] = 1
    args32 = (value.astype(np.float32), shapes, starts, loc.astype(np.float32), attn.astype(np.float32))
    exact = loop_msda(*args32)  # float64 truth over the same float16 inputs
    ours = cpu.ms_deform_attn(*args16).astype(np.float64)
    # half accumulation: the same terms summed with a float16 running total
    half_acc = np.zeros_like(exact, dtype=np.float16)
    terms = _bilinear_terms(*args32)
    for t in terms:
        half_acc = (half_acc + t.astype(np.float16)).astype(np.float16)
    half_err = np.abs(half_acc.astype(np.float64) - exact)
    our_err = np.abs(ours - exact)
    ulp = np.spacing(np.abs(exact).astype(np.float16)).astype(np.float64)
    assert (our_err <= 0.5 * ulp + 1e-9).all()  # float32 sum, one rounding at the store
    assert half_err.mean() > 4 * our_err.mean()


def _bilinear_terms(value, shapes, starts, loc, attn):
    """The per-tap terms of the sum in kernel order, each [N, Lq, M*D] (float64), for one head."""
    n_, _, m_, d_ = value.shape
    _, lq, _, num_levels, num_points, _ = loc.shape
    assert m_ == 1 and n_ == 1
    terms = []
    for lvl in range(num_levels):
        h, w = (int(v) for v in shapes[lvl])
        for p in range(num_points):
            term = [np.zeros((lq, d_)) for _ in range(4)]
            for q in range(lq):
                x = loc[0, q, 0, lvl, p, 0] * w - 0.5
                y = loc[0, q, 0, lvl, p, 1] * h - 0.5
                x0, y0 = math.floor(x), math.floor(y)
                taps = [(y0, x0, (x0 + 1 - x) * (y0 + 1 - y)), (y0, x0 + 1, (x - x0) * (y0 + 1 - y)),
                        (y0 + 1, x0, (x0 + 1 - x) * (y - y0)), (y0 + 1, x0 + 1, (x - x0) * (y - y0))]
                for c, (yy, xx, wt) in enumerate(taps):
                    if 0 <= xx < w and 0 <= yy < h:
                        term[c][q] = attn[0, q, 0, lvl, p] * wt * value[0, int(starts[lvl]) + yy * w + xx, 0]
            terms.extend(t[None] for t in term)
    return terms


# ---- the torch op ----


def torch_inputs(seed, dtype=torch.float32, **cfg):
    rng = np.random.default_rng(seed)
    cfg = cfg or random_config(rng)
    return [torch.from_numpy(a) for a in make_inputs(rng, **cfg)]


@needs_ext
def test_public_op_matches_reference_float32_and_float16():
    args = torch_inputs(300, n=2, shapes=[[5, 7], [3, 4], [1, 1]], m=4, d=8, lq=50, p=4)
    ref = ms_deform_attn_reference(*args)
    out = ms_deform_attn(*args)
    torch.testing.assert_close(out, ref, rtol=2e-5, atol=2e-5)
    half = [a.half() if a.is_floating_point() else a for a in args]
    out16 = ms_deform_attn(*half)
    assert out16.dtype == torch.float16
    ref16 = ms_deform_attn_reference(*[a.float() if a.is_floating_point() else a for a in half])
    torch.testing.assert_close(out16.float(), ref16, rtol=1e-3, atol=1e-4)


def test_op_gradients_match_reference():
    args = torch_inputs(301, n=1, shapes=[[4, 3], [2, 2]], m=2, d=3, lq=5, p=2)
    leaves = [a.clone().requires_grad_(a.is_floating_point()) for a in args]
    out = torch.ops.detrt.ms_deform_attn(*leaves)
    grad = torch.randn_like(out)
    got = torch.autograd.grad(out, [leaves[0], leaves[3], leaves[4]], grad)
    ref_leaves = [a.clone().requires_grad_(a.is_floating_point()) for a in args]
    ref_out = ms_deform_attn_reference(*ref_leaves)
    want = torch.autograd.grad(ref_out, [ref_leaves[0], ref_leaves[3], ref_leaves[4]], grad)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)


def test_public_entry_stays_differentiable_in_training():
    args = torch_inputs(302, n=1, shapes=[[4, 3]], m=1, d=2, lq=3, p=2)
    value = args[0].clone().requires_grad_()
    out = ms_deform_attn(value, *args[1:])
    out.sum().backward()
    assert value.grad is not None and value.grad.abs().sum() > 0


def test_opcheck_fake_and_autograd_registration():
    args = torch_inputs(303, n=1, shapes=[[3, 3], [1, 2]], m=2, d=4, lq=6, p=2)
    torch.library.opcheck(torch.ops.detrt.ms_deform_attn.default, tuple(args))


def test_export_keeps_one_custom_op_node():
    class Attn(torch.nn.Module):
        def forward(self, value, shapes, starts, loc, attn):
            return ms_deform_attn(value, shapes, starts, loc, attn)

    args = tuple(torch_inputs(304, n=1, shapes=[[3, 3]], m=1, d=2, lq=2, p=1))
    ep = torch.export.export(Attn(), args)
    targets = [str(node.target) for node in ep.graph.nodes if node.op == "call_function"]
    assert targets == ["detrt.ms_deform_attn.default"]


def test_fallback_warns_once_and_uses_reference(monkeypatch):
    monkeypatch.setattr(cpu, "available", lambda: False)
    monkeypatch.setattr(cpu, "unavailable_reason", lambda: "detrt.ops._cpu is not built (test)")
    monkeypatch.setattr(msda_module, "_warned_fallback", False)
    args = torch_inputs(305, n=1, shapes=[[3, 4]], m=1, d=2, lq=3, p=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = ms_deform_attn(*args)
        ms_deform_attn(*args)
    assert len([w for w in caught if "not built" in str(w.message)]) == 1
    torch.testing.assert_close(out, ms_deform_attn_reference(*args))


@needs_ext
@pytest.mark.parametrize("isa", ["baseline", "avx2"])
def test_narrower_and_dispatched_kernels_agree(tmp_path, isa):
    """DETRT_CPU_ISA caps the variant (baseline: the portable build; avx2: AVX2+FMA on an AVX-512 CPU); the
    capped and the dispatched kernel both match the reference, at the sizes of every vector path (D = 32
    and 33; 9 points per row, and 24: more than one group of 16 lanes)."""
    import os
    import subprocess
    import sys

    rng = np.random.default_rng(13)
    cases = [make_inputs(rng, 2, [[7, 5], [3, 3], [1, 1]], m=3, d=33, lq=40, p=3),
             make_inputs(rng, 2, [[7, 5], [3, 3], [1, 1]], m=2, d=32, lq=40, p=8)]
    for i, args in enumerate(cases):
        np.savez(tmp_path / f"in{i}.npz", *args)
    code = (
        "import sys, numpy as np; from detrt.ops import cpu\n"
        "for i in range(2):\n"
        "    a = np.load(f'{sys.argv[1]}/in{i}.npz'); a = [a[f'arr_{j}'] for j in range(5)]\n"
        "    h = [x.astype(np.float16) if x.dtype == np.float32 else x for x in a]\n"
        "    np.savez(f'{sys.argv[1]}/out{i}.npz', f32=cpu.ms_deform_attn(*a), f16=cpu.ms_deform_attn(*h),\n"
        "             isa=cpu.info()['msda_isa'])"
    )
    subprocess.run([sys.executable, "-c", code, tmp_path], check=True, env=dict(os.environ, DETRT_CPU_ISA=isa))
    for i, args in enumerate(cases):
        capped = np.load(tmp_path / f"out{i}.npz")
        assert str(capped["isa"]) in {"baseline": ["baseline"], "avx2": ["baseline", "avx2+fma"]}[isa]
        ref = reference_np(*args)
        assert_close32(capped["f32"], ref)
        assert_close32(cpu.ms_deform_attn(*args), ref)
        half = [a.astype(np.float16) if a.dtype == np.float32 else a for a in args]
        np.testing.assert_allclose(capped["f16"].astype(np.float32), cpu.ms_deform_attn(*half).astype(np.float32),
                                   rtol=1e-3, atol=1e-3)


@needs_ext
@pytest.mark.parametrize("points", [1, 16, 20, 32, 34])
def test_points_per_row_in_and_past_the_vector_groups(points):
    """L*P sampling points per row: one lane, one full group of 16, a group and a tail, two groups, and more
    than the AVX-512 path takes (32: the AVX2 loop runs); D = 32 and 16, threads 1 and 2."""
    rng = np.random.default_rng(points)
    levels = [[9, 6], [5, 3]] if points % 2 == 0 else [[9, 6]]
    for d, threads in ((32, 1), (16, 2)):
        args = make_inputs(rng, 2, levels, m=2, d=d, lq=33, p=points // len(levels))
        assert_close32(cpu.ms_deform_attn(*args, num_threads=threads), reference_np(*args))


@needs_ext
def test_taps_outside_the_map_read_nothing():
    """Non-finite values where no tap inside the map lands never reach the output (the reference reads
    only taps inside the map; a vector path must not read a stand-in row for the others)."""
    rng = np.random.default_rng(21)
    value, shapes, starts, loc, attn = make_inputs(rng, 1, [[4, 4], [2, 3]], m=2, d=32, lq=20, p=4)
    value[:, 0] = np.nan  # the first row of level 0
    value[:, 16] = np.inf  # the first row of level 1
    loc[..., 0] = rng.choice([-3.0, -0.2, 1.2, 4.0], loc[..., 0].shape)  # every x outside (-0.2: taps x0, x1 < 0)
    out = cpu.ms_deform_attn(value, shapes, starts, loc, attn)
    assert (out == 0).all()
    np.testing.assert_array_equal(reference_np(value, shapes, starts, loc, attn), out)
    loc[..., 0] = rng.choice([np.inf, -np.inf, np.nan], loc[..., 0].shape)  # the reference makes these NaN
    assert (cpu.ms_deform_attn(value, shapes, starts, loc, attn) == 0).all()


@needs_ext
@pytest.mark.parametrize("d", [16, 32, 64])
def test_compile_time_channel_counts(d):
    """D = 16, 32, 64 take the kernel's fixed-size path; float32 and float16 I/O."""
    rng = np.random.default_rng(14 + d)
    args = make_inputs(rng, 2, [[9, 6], [5, 3], [1, 1]], m=3, d=d, lq=70, p=4)
    assert_close32(cpu.ms_deform_attn(*args, num_threads=2), reference_np(*args))
    args16, args32 = half_inputs(rng, n=1, shapes=[[9, 6], [2, 2]], m=2, d=d, lq=30, p=3)
    ref = reference_np(*args32)
    err = np.abs(cpu.ms_deform_attn(*args16).astype(np.float32) - ref)
    assert (err <= 1e-3 * np.abs(ref) + 1e-6).all()
