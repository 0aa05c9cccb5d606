"""Multi-scale deformable attention (MSDA): reference implementation.

Semantics (docs/ops.md): for each (n, q, m), the sum over levels l and points p of
attention_weights[n, q, m, l, p] times the bilinear sample of value level l, head m, at pixel
(x * W_l - 0.5, y * H_l - 0.5), zero outside the map. This is F.grid_sample with
align_corners=False and padding_mode="zeros", as in Deformable DETR's pure-PyTorch reference.
"""

import warnings

import torch
import torch.nn.functional as F

from detrt.ops import cpu
from detrt.ops.names import TORCH_MSDA_OP


def ms_deform_attn_reference(value, spatial_shapes, level_start_index, sampling_locations, attention_weights):
    """Differentiable MSDA through F.grid_sample.

    value [N, S, M, D]; spatial_shapes [L, 2] (H, W) int64; level_start_index [L] int64;
    sampling_locations [N, Lq, M, L, P, 2] normalized (x, y); attention_weights [N, Lq, M, L, P].
    Returns [N, Lq, M * D].
    """
    n, _, m, d = value.shape
    _, lq, _, num_levels, num_points, _ = sampling_locations.shape
    grids = 2 * sampling_locations - 1  # grid_sample wants [-1, 1]
    samples = []
    for level, ((h, w), start) in enumerate(zip(spatial_shapes.tolist(), level_start_index.tolist())):
        # [N, H*W, M, D] -> [N*M, D, H, W]
        value_l = value[:, start : start + h * w].flatten(2).transpose(1, 2).reshape(n * m, d, h, w)
        # [N, Lq, M, P, 2] -> [N*M, Lq, P, 2]
        grid_l = grids[:, :, :, level].transpose(1, 2).flatten(0, 1)
        samples.append(F.grid_sample(value_l, grid_l, mode="bilinear", padding_mode="zeros", align_corners=False))
    # [N*M, D, Lq, L*P] weighted by [N*M, 1, Lq, L*P]
    weights = attention_weights.transpose(1, 2).reshape(n * m, 1, lq, num_levels * num_points)
    out = (torch.stack(samples, dim=-2).flatten(-2) * weights).sum(-1).view(n, m * d, lq)
    return out.transpose(1, 2).contiguous()


def ms_deform_attn(value, spatial_shapes, level_start_index, sampling_locations, attention_weights):
    """Public MSDA entry; see ms_deform_attn_reference for shapes.

    Runs the custom op `detrt::ms_deform_attn` (compiled CPU kernel, export sees one node). When autograd
    needs this call (training), eager code takes the differentiable reference directly; under tracing
    (torch.export / dynamo / jit) the op is kept, its backward computed through the reference.
    """
    args = (value, spatial_shapes, level_start_index, sampling_locations, attention_weights)
    if _needs_grad(value, sampling_locations, attention_weights) and not _tracing():
        return ms_deform_attn_reference(*args)
    return torch.ops.detrt.ms_deform_attn(*args)


def _needs_grad(*tensors):
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def _tracing():
    compiler = getattr(torch, "compiler", None)
    if compiler is not None and (compiler.is_compiling() or getattr(compiler, "is_exporting", lambda: False)()):
        return True
    return torch.jit.is_tracing()


_warned_fallback = False


def _cpu_kernels():
    """detrt.ops.cpu when the extension is built, else None (warning once)."""
    global _warned_fallback
    if cpu.available():
        return cpu
    if not _warned_fallback:
        _warned_fallback = True
        warnings.warn(
            f"{cpu.unavailable_reason()}: detrt::ms_deform_attn and detrt::dcg_neighbors use the slow PyTorch "
            "reference on the CPU",
            RuntimeWarning,
            stacklevel=3,
        )
    return None


_KERNEL_DTYPES = (torch.float32, torch.float16)


@torch.library.custom_op(TORCH_MSDA_OP, mutates_args=())
def _ms_deform_attn_op(
    value: torch.Tensor,
    spatial_shapes: torch.Tensor,
    level_start_index: torch.Tensor,
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> torch.Tensor:
    tensors = (value, spatial_shapes, level_start_index, sampling_locations, attention_weights)
    on_cpu = all(t.device.type == "cpu" for t in tensors)
    same_float = value.dtype in _KERNEL_DTYPES and sampling_locations.dtype == attention_weights.dtype == value.dtype
    cpu = _cpu_kernels() if on_cpu else None
    if cpu is not None and same_float and spatial_shapes.dtype in (torch.int32, torch.int64):
        arrays = [t.detach().contiguous().numpy() for t in tensors]
        return torch.from_numpy(cpu.ms_deform_attn(*arrays))
    return ms_deform_attn_reference(*(t.detach() for t in tensors))


@_ms_deform_attn_op.register_fake
def _(value, spatial_shapes, level_start_index, sampling_locations, attention_weights):
    n, _, m, d = value.shape
    return value.new_empty((n, sampling_locations.shape[1], m * d))


def _setup_context(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


def _backward(ctx, grad_output):
    """Gradients through the reference (recomputed): the compiled kernel has no backward."""
    value, spatial_shapes, level_start_index, sampling_locations, attention_weights = ctx.saved_tensors
    needs = ctx.needs_input_grad
    with torch.enable_grad():
        leaves = [t.detach().requires_grad_(need) for t, need in zip(ctx.saved_tensors, needs) if t.is_floating_point()]
        v, loc, attn = leaves
        out = ms_deform_attn_reference(v, spatial_shapes, level_start_index, loc, attn)
        wanted = [t for t in leaves if t.requires_grad]
        grads = iter(torch.autograd.grad(out, wanted, grad_output) if wanted else ())
    g = [next(grads) if t.requires_grad else None for t in leaves]
    return g[0], None, None, g[1], g[2]


torch.library.register_autograd(TORCH_MSDA_OP, _backward, setup_context=_setup_context)
