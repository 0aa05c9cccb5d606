"""Multi-scale deformable attention (MSDA): reference implementation.

Semantics (SPEC.md section 1): for each (n, q, m), the sum over levels l and points p of
attention_weights[n, q, m, l, p] times the bilinear sample of value level l, head m, at pixel
(x * W_l - 0.5, y * H_l - 0.5), zero outside the map. This is F.grid_sample with
align_corners=False and padding_mode="zeros", as in Deformable DETR's pure-PyTorch reference.
"""

import torch
import torch.nn.functional as F


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
    """Public MSDA entry; see ms_deform_attn_reference for shapes."""
    return ms_deform_attn_reference(value, spatial_shapes, level_start_index, sampling_locations, attention_weights)
