"""Padding masks: which pixels of a padded input, and of each feature map, hold the image.

The image sits at the top-left of the network input (the runtime's letterbox, the training canvas) and
`sizes` [B, 2] (h, w) is its size in input pixels. A feature map at stride s holds the image in its first
ceil(h / s) x ceil(w / s) pixels: the size every stride-2 layer of the network (3x3 and 7x7 convs padded
by k // 2, 1x1 convs, 3x3 max-pool) computes from h x w pixels, i.e. the map the unpadded image gives.
Zeroing the rest before every conv that reads across the image border, and taking GroupNorm statistics
over the image only, make the features of the image pixels those of the unpadded image: the padding
changes nothing. (Deformable DETR interpolates the image mask to each level instead, which can disagree
with the conv arithmetic by a pixel at the coarse levels, and its backbone sees the padding.)
"""

import torch
from torch import nn


def valid_size(sizes, stride):
    """[B, 2] (h, w) feature pixels holding the image at `stride`."""
    return torch.ceil(sizes / stride)


def feature_mask(sizes, stride, shape, dtype=torch.float32):
    """[B, 1, H, W] of 1 on the image and 0 on the padding, for a feature map of `shape` (H, W) at `stride`."""
    valid = valid_size(sizes, stride)
    ys = torch.arange(int(shape[0]), dtype=sizes.dtype, device=sizes.device)
    xs = torch.arange(int(shape[1]), dtype=sizes.dtype, device=sizes.device)
    inside = (ys[None, :, None] < valid[:, 0, None, None]) & (xs[None, None, :] < valid[:, 1, None, None])
    return inside[:, None].to(dtype)


def zero_padding(x, mask):
    """x with the padding zeroed (mask None: no padding)."""
    return x if mask is None else x * mask


def masked_norm(module, x, mask):
    """module(x); a GroupNorm takes its statistics over the image pixels only when `mask` is given."""
    if mask is None or not isinstance(module, nn.GroupNorm):
        return module(x)  # frozen BN and eval-mode BN are per pixel
    b, c, h, w = x.shape
    g = module.num_groups
    xg = x.reshape(-1, g, c // g, h * w)
    m = mask.reshape(-1, 1, 1, h * w)
    # means over all pixels, rescaled to the image's: ReduceMean keeps FP16 graphs in range, a sum would not
    share = m.mean(-1, keepdim=True)
    mean = (xg * m).mean((-2, -1), keepdim=True) / share
    var = ((xg - mean) * m).square().mean((-2, -1), keepdim=True) / share
    y = ((xg - mean) * torch.rsqrt(var + module.eps)).reshape(-1, c, h, w)
    return y * module.weight.view(1, -1, 1, 1) + module.bias.view(1, -1, 1, 1)
