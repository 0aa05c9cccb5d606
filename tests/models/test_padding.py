"""detrt.models.padding: which feature pixels hold the image, and GroupNorm over them only."""

import torch
import torch.nn.functional as F
from torch import nn

from detrt.models.backbone import ResNet
from detrt.models.padding import feature_mask, masked_norm


def test_feature_mask_covers_what_the_convs_compute_from_the_image():
    # a 200x136 image: ceil(200 / 8) = 25 rows, ceil(136 / 64) = 3 columns at stride 64 (2.125 -> 3)
    sizes = torch.tensor([[200.0, 136.0], [256.0, 384.0]])
    m = feature_mask(sizes, 8, (32, 48))
    assert m.shape == (2, 1, 32, 48)
    assert m[0, 0].sum(0).max() == 25 and m[0, 0].sum(1).max() == 17 and m[1].all()
    m = feature_mask(sizes, 64, (4, 6))
    assert m[0, 0].sum().item() == 4 * 3 and m[0, 0, :, 3:].sum() == 0
    # the same counts as the backbone's own maps of the unpadded image
    feats = ResNet("resnet18", "gn", 0)(torch.zeros(1, 3, 200, 136))
    assert [tuple(f.shape[-2:]) for f in feats] == [(25, 17), (13, 9), (7, 5)]
    assert [feature_mask(sizes[:1], s, (99, 99))[0, 0].sum().item() for s in (8, 16, 32)] == [25 * 17, 13 * 9, 7 * 5]


def test_masked_group_norm_is_group_norm_of_the_image_alone():
    torch.manual_seed(0)
    gn = nn.GroupNorm(4, 8)
    nn.init.normal_(gn.weight)
    nn.init.normal_(gn.bias)
    x = torch.randn(2, 8, 6, 10) * 3 + 1
    sizes = torch.tensor([[40.0, 56.0], [48.0, 80.0]])  # stride 8: 5x7 of 6x10, and all of it
    y = masked_norm(gn, x, feature_mask(sizes, 8, (6, 10)))
    torch.testing.assert_close(y[0, :, :5, :7], F.group_norm(x[:1, :, :5, :7], 4, gn.weight, gn.bias)[0],
                               atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(y[1], gn(x[1:])[0], atol=1e-5, rtol=1e-5)
    assert torch.equal(masked_norm(gn, x, None), gn(x))
