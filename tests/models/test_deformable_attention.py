"""MSDeformAttn module (initialization, reference points vs boxes) and the sine encodings."""

import math

import pytest
import torch

from detrt.models.deformable_attention import MSDeformAttn, box_sine_embedding, inverse_sigmoid, sine_position_encoding
from detrt.ops.msda import ms_deform_attn_reference


def test_initialization_points_each_head_in_its_direction():
    m = MSDeformAttn(d_model=32, n_levels=2, n_heads=8, n_points=3)
    bias = m.sampling_offsets.bias.view(8, 2, 3, 2)
    # head 0 looks right (+x), head 2 down (+y), head 4 left; point p at distance p + 1 (max-norm)
    torch.testing.assert_close(bias[0, 0, :, 0], torch.tensor([1.0, 2.0, 3.0]))
    torch.testing.assert_close(bias[2, 1, 2], torch.tensor([0.0, 3.0]), atol=1e-6, rtol=0)
    torch.testing.assert_close(bias[4, 0, 0], torch.tensor([-1.0, 0.0]), atol=1e-6, rtol=0)
    torch.testing.assert_close(bias[1, 1, 1], torch.tensor([2.0, 2.0]))  # head 1 diagonal: (1, 1) in max-norm
    assert m.sampling_offsets.weight.abs().sum() == 0 and m.attention_weights.weight.abs().sum() == 0


@pytest.mark.parametrize("levels, heads, points", [(2, 2, 2), (3, 2, 4)])
def test_forward_matches_explicit_sampling(levels, heads, points):
    """levels != heads != points, a batch of 2: a view or a divisor that mixes them up breaks the shapes or the
    values."""
    torch.manual_seed(0)
    m = MSDeformAttn(d_model=16, n_levels=levels, n_heads=heads, n_points=points)
    torch.nn.init.normal_(m.sampling_offsets.weight, std=0.1)
    torch.nn.init.normal_(m.attention_weights.weight, std=0.1)
    shapes = torch.tensor([[4, 6], [2, 3], [1, 2]][:levels])  # non-square: H and W must not swap
    starts = torch.tensor([0, 24, 30][:levels])
    s = int((shapes[:, 0] * shapes[:, 1]).sum())
    value, query = torch.randn(2, s, 16), torch.randn(2, 5, 16)
    wh = shapes.flip(-1).float()  # (W, H) per level
    for ref in (torch.rand(2, 5, levels, 2),
                torch.cat([torch.rand(2, 5, levels, 2), 0.1 + torch.rand(2, 5, levels, 2) * 0.3], -1)):
        out = m(query, ref, value, shapes, starts)
        # Deformable DETR's layout: offsets [.., head, level, point, xy], weights softmaxed over (level, point)
        off = m.sampling_offsets(query).view(2, 5, heads, levels, points, 2)
        if ref.shape[-1] == 2:
            loc = ref[:, :, None, :, None] + off / wh[None, None, None, :, None]
        else:
            loc = ref[:, :, None, :, None, :2] + off / points * ref[:, :, None, :, None, 2:] * 0.5
        w = m.attention_weights(query).view(2, 5, heads, levels * points).softmax(-1).view(2, 5, heads, levels, points)
        v = m.value_proj(value).view(2, s, heads, 16 // heads)
        expected = m.output_proj(ms_deform_attn_reference(v, shapes, starts, loc, w))
        torch.testing.assert_close(out, expected)


def test_sine_position_encoding_equals_detr_masked_form():
    h, w, f = 3, 5, 8
    ones = torch.ones(1, h, w)
    y, x = ones.cumsum(1), ones.cumsum(2)  # DETR: cumulative sums of the not-padded mask
    y = (y - 0.5) / (y[:, -1:, :] + 1e-6) * 2 * math.pi
    x = (x - 0.5) / (x[:, :, -1:] + 1e-6) * 2 * math.pi
    dim_t = 10000 ** (2 * (torch.arange(f, dtype=torch.float32) // 2) / f)
    px, py = x[..., None] / dim_t, y[..., None] / dim_t
    px = torch.stack((px[..., 0::2].sin(), px[..., 1::2].cos()), dim=4).flatten(3)
    py = torch.stack((py[..., 0::2].sin(), py[..., 1::2].cos()), dim=4).flatten(3)
    expected = torch.cat((py, px), dim=3).permute(0, 3, 1, 2)
    torch.testing.assert_close(sine_position_encoding(h, w, f), expected, rtol=0, atol=0)  # the same float32 ops


def test_box_embedding_by_hand():
    """Each coordinate c: sigmoid(logit) * 2 pi over T^(2j / F), sin and cos of pair j, j = 0 .. F/2 - 1."""
    boxes = torch.tensor([[[0.3, -1.2, 2.0, 0.7]]])
    f, t = 8, 10000.0
    want = []
    for c in range(4):
        p = torch.sigmoid(boxes[0, 0, c]).item() * 2 * math.pi
        for j in range(f // 2):
            want += [math.sin(p / t ** (2 * j / f)), math.cos(p / t ** (2 * j / f))]
    torch.testing.assert_close(box_sine_embedding(boxes, f)[0, 0], torch.tensor(want), rtol=1e-5, atol=1e-6)


def test_box_embedding_and_inverse_sigmoid():
    boxes = torch.tensor([[[0.0, 1.0, -2.0, float("inf")]]])
    emb = box_sine_embedding(boxes, 8)
    assert emb.shape == (1, 1, 32) and torch.isfinite(emb).all()
    torch.testing.assert_close(emb[0, 0, :2], torch.tensor([math.sin(math.pi), math.cos(math.pi)]))  # sigmoid(0)*2pi
    expected = torch.tensor([0.0, math.log(1e-5), -math.log(1e-5), -math.log(1e-5), math.log(1e-5)])
    torch.testing.assert_close(inverse_sigmoid(torch.tensor([0.5, 0.0, 1.0, 1.5, -0.5])), expected)  # clamped to [0, 1]
