"""Multi-scale deformable attention (Deformable DETR) and the sine position encodings around it.

The sampling itself is `detrt.ops.ms_deform_attn` (semantics: docs/ops.md); this module owns the
projections that produce its inputs and Deformable DETR's initialization.
"""

import math

import torch
from torch import nn

from detrt.ops import ms_deform_attn


class MSDeformAttn(nn.Module):
    """Each query samples `n_points` points per head and level around its reference, weighted by a softmax.

    Reference points [B, Lq, L, 2] are normalized (x, y): offsets are in pixels of each level.
    Reference boxes [B, Lq, L, 4] are normalized (cx, cy, w, h): offsets are fractions of half the box
    size divided by n_points, so initial points fall inside the box (Deformable DETR's box refinement).
    """

    def __init__(self, d_model=256, n_levels=4, n_heads=8, n_points=4):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} is not divisible by n_heads {n_heads}")
        self.d_model, self.n_levels, self.n_heads, self.n_points = d_model, n_levels, n_heads, n_points
        self.sampling_offsets = nn.Linear(d_model, n_heads * n_levels * n_points * 2)
        self.attention_weights = nn.Linear(d_model, n_heads * n_levels * n_points)
        self.value_proj = nn.Linear(d_model, d_model)
        self.output_proj = nn.Linear(d_model, d_model)
        self._reset_parameters()

    def _reset_parameters(self):
        # Offsets start at zero weight with a bias putting head h's points on a ray at angle 2*pi*h/M,
        # point p at distance p+1 (in the max-norm): each head looks in its own direction at first.
        nn.init.zeros_(self.sampling_offsets.weight)
        thetas = torch.arange(self.n_heads, dtype=torch.float32) * (2.0 * math.pi / self.n_heads)
        grid = torch.stack([thetas.cos(), thetas.sin()], -1)
        grid = (grid / grid.abs().max(-1, keepdim=True)[0]).view(self.n_heads, 1, 1, 2)
        grid = grid.repeat(1, self.n_levels, self.n_points, 1) * torch.arange(1, self.n_points + 1).view(1, 1, -1, 1)
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(grid.flatten())
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        for proj in (self.value_proj, self.output_proj):
            nn.init.xavier_uniform_(proj.weight)
            nn.init.zeros_(proj.bias)

    def forward(self, query, reference_points, value, spatial_shapes, level_start_index, padding=None):
        """query [B, Lq, C], reference_points [B, Lq, L, 2 or 4], value [B, S, C] (S = sum of H_l * W_l),
        spatial_shapes [L, 2] (H, W) int64, level_start_index [L] int64 -> [B, Lq, C].
        padding [B, S] bool: value tokens on input padding, read as zeros (what sampling outside a map reads)."""
        b, lq, _ = query.shape
        m, lv, p = self.n_heads, self.n_levels, self.n_points
        value = self.value_proj(value)
        if padding is not None:
            value = value.masked_fill(padding[..., None], 0.0)
        value = value.view(b, value.shape[1], m, self.d_model // m)
        offsets = self.sampling_offsets(query).view(b, lq, m, lv, p, 2)
        weights = self.attention_weights(query).view(b, lq, m, lv * p).softmax(-1).view(b, lq, m, lv, p)
        ref = reference_points[:, :, None, :, None]  # [B, Lq, 1, L, 1, 2|4]
        if reference_points.shape[-1] == 2:
            wh = torch.stack([spatial_shapes[:, 1], spatial_shapes[:, 0]], -1).to(offsets.dtype)
            locations = ref + offsets / wh[None, None, None, :, None, :]
        else:
            locations = ref[..., :2] + offsets / p * ref[..., 2:] * 0.5
        out = ms_deform_attn(value, spatial_shapes, level_start_index, locations, weights)
        return self.output_proj(out)


def sine_position_encoding(h, w, num_feats, temperature=10000.0, device=None, valid=None):
    """DETR's normalized sine encoding of an h x w map -> [B, 2 * num_feats, h, w] (y half first).

    valid [B, 2] (h, w): the part of the map holding the image (top-left), to which positions are normalized,
    as DETR's cumulative sum over the padding mask does; None: all of it (B = 1). The padding gets the last
    row's and column's positions (only padded tokens read them, and nothing reads those tokens)."""
    if valid is None:
        valid = torch.tensor([[h, w]], dtype=torch.float32, device=device)
    scale = 2 * math.pi
    dim_t = temperature ** (2 * (torch.arange(num_feats, device=device) // 2) / num_feats)

    def embed(n, size):  # [B, n, num_feats]
        pos = torch.arange(1, n + 1, dtype=torch.float32, device=device)[None].minimum(size[:, None])
        pos = ((pos - 0.5) / (size[:, None] + 1e-6) * scale)[..., None] / dim_t
        return torch.stack([pos[..., 0::2].sin(), pos[..., 1::2].cos()], -1).flatten(2)

    pos_y, pos_x = embed(h, valid[:, 0]), embed(w, valid[:, 1])
    b = pos_y.shape[0]
    pos = torch.cat([pos_y[:, :, None, :].expand(b, h, w, num_feats), pos_x[:, None, :, :].expand(b, h, w, num_feats)],
                    -1)
    return pos.permute(0, 3, 1, 2)


def box_sine_embedding(boxes_unact, num_feats, temperature=10000.0):
    """Sine embedding of boxes given as logits [B, N, 4] -> [B, N, 4 * num_feats] (two-stage query init)."""
    dim_t = temperature ** (2 * (torch.arange(num_feats, device=boxes_unact.device) // 2) / num_feats)
    pos = boxes_unact.sigmoid()[..., None] * (2 * math.pi) / dim_t  # [B, N, 4, F]
    return torch.stack([pos[..., 0::2].sin(), pos[..., 1::2].cos()], -1).flatten(2)


def inverse_sigmoid(x, eps=1e-5):
    x = x.clamp(0, 1)
    return torch.log(x.clamp(min=eps) / (1 - x).clamp(min=eps))

