"""ResNet-18/34/50 backbones returning strides 8, 16 and 32, with torchvision's state-dict keys.

Written here because torchvision does not install beside the local CPU torch. Parameter names are
torchvision's (`conv1.weight`, `bn1.running_mean`, `layer1.0.conv1.weight`, `layer2.0.downsample.0.weight`
...), so a user can load ImageNet weights downloaded elsewhere with `load_backbone_weights`.

Normalization (`norm`):
- "frozen_bn": BatchNorm with statistics and affine parameters frozen as buffers (DETR, Deformable DETR,
  DH-DETR). Right for pretrained weights; from scratch it is an identity and trains badly.
- "bn": ordinary BatchNorm2d. Batch statistics at batch size 2 are noisy, and train/eval differ.
- "gn": GroupNorm(32), independent of batch size; the standard choice to train detectors from scratch
  ("Rethinking ImageNet Pre-training", He et al. 2019). The tiny configs use it.
`freeze_at` = number of leading stages (0: stem, 1: layer1, ...) whose parameters get no gradient: 2 freezes
stem + layer1 as the paper does.
"""

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import torch
from torch import nn

from detrt.errors import InputError
from detrt.models.padding import feature_mask, masked_norm, zero_padding
from detrt.optional import require

ARCHS = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
}
NORMS = ("frozen_bn", "bn", "gn")


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm2d whose statistics and affine parameters are fixed buffers (torchvision.ops.misc)."""

    def __init__(self, n, eps=1e-5):
        super().__init__()
        self.eps = eps
        for name, value in (("weight", 1.0), ("bias", 0.0), ("running_mean", 0.0), ("running_var", 1.0)):
            self.register_buffer(name, torch.full((n,), value))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        state_dict.pop(prefix + "num_batches_tracked", None)  # kept by nn.BatchNorm2d, meaningless here
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x):
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        bias = self.bias - self.running_mean * scale
        return x * scale.view(1, -1, 1, 1) + bias.view(1, -1, 1, 1)


def make_norm(kind, channels):
    if kind == "frozen_bn":
        return FrozenBatchNorm2d(channels)
    if kind == "bn":
        return nn.BatchNorm2d(channels)
    if kind == "gn":
        return nn.GroupNorm(min(32, channels), channels)
    raise InputError(f"backbone norm {kind!r} is not one of {', '.join(NORMS)}")


def conv3x3(cin, cout, stride=1):
    return nn.Conv2d(cin, cout, 3, stride, 1, bias=False)


def conv1x1(cin, cout, stride=1):
    return nn.Conv2d(cin, cout, 1, stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin, planes, stride, norm):
        super().__init__()
        self.conv1, self.bn1 = conv3x3(cin, planes, stride), make_norm(norm, planes)
        self.conv2, self.bn2 = conv3x3(planes, planes), make_norm(norm, planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != planes:
            self.downsample = nn.Sequential(conv1x1(cin, planes, stride), make_norm(norm, planes))

    def forward(self, x, mask=None):
        """mask: the padding mask at the block's output (detrt.models.padding), or None."""
        identity = x if self.downsample is None else masked_norm(self.downsample[1], self.downsample[0](x), mask)
        out = zero_padding(self.relu(masked_norm(self.bn1, self.conv1(x), mask)), mask)
        return zero_padding(self.relu(masked_norm(self.bn2, self.conv2(out), mask) + identity), mask)


class Bottleneck(nn.Module):
    """torchvision's ResNet v1.5 bottleneck: the stride sits on the 3x3 conv."""

    expansion = 4

    def __init__(self, cin, planes, stride, norm):
        super().__init__()
        cout = planes * self.expansion
        self.conv1, self.bn1 = conv1x1(cin, planes), make_norm(norm, planes)
        self.conv2, self.bn2 = conv3x3(planes, planes, stride), make_norm(norm, planes)
        self.conv3, self.bn3 = conv1x1(planes, cout), make_norm(norm, cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(conv1x1(cin, cout, stride), make_norm(norm, cout))

    def forward(self, x, mask=None):
        """mask: the padding mask at the block's output (detrt.models.padding), or None."""
        identity = x if self.downsample is None else masked_norm(self.downsample[1], self.downsample[0](x), mask)
        out = zero_padding(self.relu(masked_norm(self.bn1, self.conv1(x), mask)), mask)
        out = self.relu(masked_norm(self.bn2, self.conv2(out), mask))
        return zero_padding(self.relu(masked_norm(self.bn3, self.conv3(out), mask) + identity), mask)


class ResNet(nn.Module):
    """ResNet trunk without the classifier: forward(images [B, 3, H, W], sizes=None) -> [C3, C4, C5] at
    strides 8, 16, 32. sizes [B, 2] (h, w): the image at the top-left of a padded input; then the padding
    is zeroed after every layer and left out of GroupNorm statistics, so the image's features are the
    unpadded image's (detrt.models.padding).

    `strides` and `num_channels` describe the three outputs.
    """

    def __init__(self, name="resnet50", norm="frozen_bn", freeze_at=2, zero_init_residual=False):
        super().__init__()
        if name not in ARCHS:
            raise InputError(f"backbone {name!r} is not one of {', '.join(ARCHS)}")
        if norm not in NORMS:
            raise InputError(f"backbone norm {norm!r} is not one of {', '.join(NORMS)}")
        kind, depths = ARCHS[name]
        block = BasicBlock if kind == "basic" else Bottleneck
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = make_norm(norm, 64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = 64
        for i, (planes, depth) in enumerate(zip((64, 128, 256, 512), depths)):
            blocks = []
            for j in range(depth):
                blocks.append(block(cin, planes, 2 if (i > 0 and j == 0) else 1, norm))
                cin = planes * block.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.strides = [8, 16, 32]
        self.num_channels = [128 * block.expansion, 256 * block.expansion, 512 * block.expansion]
        self._init_weights(zero_init_residual)
        self.freeze(freeze_at)

    def _init_weights(self, zero_init_residual):
        # torchvision's initialization; zero_init_residual starts each block as the identity (Goyal et al.)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                last = getattr(m, "bn3", None) if isinstance(m, Bottleneck) else getattr(m, "bn2", None)
                if isinstance(m, (BasicBlock, Bottleneck)) and isinstance(last, (nn.BatchNorm2d, nn.GroupNorm)):
                    nn.init.zeros_(last.weight)

    def freeze(self, freeze_at):
        """Stop gradients in the first `freeze_at` stages (0 = nothing, 1 = stem, 2 = stem + layer1, ...)."""
        stages = [("conv1.", "bn1.")] + [(f"layer{i}.",) for i in range(1, 5)]
        frozen = tuple(p for stage in stages[:freeze_at] for p in stage)
        for name, p in self.named_parameters():
            p.requires_grad_(not name.startswith(frozen) if frozen else True)

    def forward(self, x, sizes=None):
        def mask(stride, shape):
            return None if sizes is None else feature_mask(sizes, stride, shape, x.dtype)

        x = self.conv1(x)
        m = mask(2, x.shape[-2:])
        x = zero_padding(self.relu(masked_norm(self.bn1, x, m)), m)
        x = self.maxpool(x)  # >= 0 after the ReLU: the zeroed padding is what max-pool's own padding gives
        x = zero_padding(x, mask(4, x.shape[-2:]))
        outs = []
        for i in range(1, 5):
            shape = x.shape[-2:] if i == 1 else [(int(d) + 1) // 2 for d in x.shape[-2:]]  # stride 2 from layer2
            m = mask(2 << i, shape)
            for block in getattr(self, f"layer{i}"):
                x = block(x, m)
            outs.append(x)
        return outs[1:]


@dataclass
class LoadReport:
    """What `load_backbone_weights` did: keys loaded, keys the backbone expected but the file lacks, and
    keys in the file the backbone does not have (after dropping `fc.*` and `num_batches_tracked`)."""

    path: str
    loaded: list = field(default_factory=list)
    missing: list = field(default_factory=list)
    unexpected: list = field(default_factory=list)

    def __str__(self):
        lines = [f"{self.path}: loaded {len(self.loaded)} tensors"]
        for what, keys in (("missing (left as initialized)", self.missing), ("unexpected (ignored)", self.unexpected)):
            if keys:
                shown = ", ".join(keys[:8]) + (f", ... ({len(keys)} in all)" if len(keys) > 8 else "")
                lines.append(f"  {what}: {shown}")
        return "\n".join(lines)


# Prefixes seen in checkpoints that embed a ResNet: DETR-family models, DDP wrappers, timm/mmdet exports.
_PREFIXES = ("module.", "backbone.0.body.", "backbone.body.", "backbone.")


def read_state_dict(path):
    """A flat {name: tensor} dict from `.safetensors` or a `.pth`/`.pt` (tensors only, never unpickling code)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: backbone weights file not found")
    # chosen before the try below: a missing package is not a corrupt file
    load = (require("safetensors.torch", str(path)).load_file if path.suffix == ".safetensors"
            else partial(torch.load, map_location="cpu", weights_only=True))
    try:
        state = load(str(path))
    except Exception as e:  # a corrupt or non-weights file: one line, not a traceback
        raise InputError(f"{path}: cannot read weights ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from e
    for key in ("state_dict", "model"):  # common checkpoint wrappers
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"{path}: not a state dict of tensors")
    return state


def load_backbone_weights(backbone, path):
    """Load torchvision-named ResNet weights from `path` into `backbone`; returns a LoadReport.

    Raises InputError when the file cannot be read, no key matches, or a tensor has the wrong shape.
    """
    state = read_state_dict(path)
    own = backbone.state_dict()
    for prefix in _PREFIXES:  # strip one wrapper prefix if most keys carry it
        if sum(k.startswith(prefix) for k in state) > len(state) // 2:
            state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            break
    state = {k: v for k, v in state.items() if not k.startswith("fc.") and not k.endswith("num_batches_tracked")}
    report = LoadReport(str(path))
    report.unexpected = sorted(k for k in state if k not in own)
    report.missing = sorted(k for k in own if k not in state)
    report.loaded = sorted(k for k in state if k in own)
    if not report.loaded:
        raise InputError(f"{path}: no tensor matches a ResNet key (expected names like 'conv1.weight', "
                         f"'layer1.0.conv1.weight'; found e.g. {', '.join(list(state)[:3]) or 'nothing'})")
    for k in report.loaded:
        if state[k].shape != own[k].shape:
            raise InputError(f"{path}: {k} has shape {tuple(state[k].shape)}, the backbone expects "
                             f"{tuple(own[k].shape)} (weights of another ResNet depth?)")
    backbone.load_state_dict({k: state[k] for k in report.loaded}, strict=False)
    return report


def scratch_warning(cfg):
    """The warning for training config `cfg` without backbone weights, or None when its recipe trains from scratch."""
    if not cfg.pretrained_backbone:
        return None
    return (f"warning: config {cfg.name} starts from an ImageNet {cfg.backbone} in its recipe and its published "
            f"figures assume one, but this run trains the backbone from random weights; pass torchvision "
            f"{cfg.backbone} weights with --backbone-weights FILE (.safetensors or .pth, docs/training.md)")
