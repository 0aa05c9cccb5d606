"""ResNet backbones: torchvision's state-dict keys, weight loading from a user's file, freezing, outputs."""

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from detrt.errors import InputError
from detrt.models.backbone import FrozenBatchNorm2d, ResNet, load_backbone_weights


def torchvision_state_dict(name):
    """A state dict named and shaped like torchvision.models.<name>().state_dict(), random values, fc kept."""
    net = ResNet(name, norm="bn", freeze_at=0)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.5, 0.5)
    state = dict(net.state_dict())
    state["fc.weight"] = torch.randn(1000, net.num_channels[-1])
    state["fc.bias"] = torch.randn(1000)
    return state


@pytest.mark.parametrize("name, n_keys", [("resnet18", 122), ("resnet34", 218), ("resnet50", 320)])
def test_keys_match_torchvision(name, n_keys):
    # torchvision's resnet18/34/50 state dicts have 122/218/320 entries including fc.weight and fc.bias
    state = torchvision_state_dict(name)
    assert len(state) == n_keys
    assert state["conv1.weight"].shape == (64, 3, 7, 7)
    assert "bn1.running_var" in state and "layer1.0.bn1.num_batches_tracked" in state


def test_resnet50_shapes_are_torchvision_v1_5():
    state = ResNet("resnet50", norm="bn").state_dict()
    assert state["layer1.0.conv1.weight"].shape == (64, 64, 1, 1)
    assert state["layer2.0.conv2.weight"].shape == (128, 128, 3, 3)  # stride on the 3x3 (v1.5)
    assert state["layer2.0.downsample.0.weight"].shape == (512, 256, 1, 1)
    assert state["layer4.2.conv3.weight"].shape == (2048, 512, 1, 1)
    assert ResNet("resnet50").layer2[0].conv2.stride == (2, 2)


@pytest.mark.parametrize("name, channels", [("resnet18", [128, 256, 512]), ("resnet50", [512, 1024, 2048])])
def test_outputs_strides_and_channels(name, channels):
    net = ResNet(name, norm="gn", freeze_at=0).eval()
    outs = net(torch.randn(1, 3, 64, 96))
    assert [o.shape[1] for o in outs] == channels == net.num_channels
    assert [tuple(o.shape[-2:]) for o in outs] == [(8, 12), (4, 6), (2, 3)]


def test_freeze_at():
    net = ResNet("resnet18", norm="gn", freeze_at=2)
    frozen = {n for n, p in net.named_parameters() if not p.requires_grad}
    assert frozen and all(n.startswith(("conv1.", "bn1.", "layer1.")) for n in frozen)
    assert all(n in frozen for n, _ in net.named_parameters() if n.startswith(("conv1.", "layer1.")))
    assert not any(p.requires_grad is False for n, p in net.named_parameters() if n.startswith("layer2."))
    assert all(p.requires_grad for p in ResNet("resnet18", norm="gn", freeze_at=0).parameters())
    # frozen BN has no parameters at all: only convolutions count
    assert all("bn" not in n and "downsample.1" not in n for n, _ in ResNet("resnet18").named_parameters())


def test_frozen_bn_equals_batchnorm_in_eval():
    bn = nn.BatchNorm2d(8).eval()
    bn.running_mean.uniform_(-1, 1), bn.running_var.uniform_(0.5, 2)
    nn.init.uniform_(bn.weight), nn.init.uniform_(bn.bias)
    frozen = FrozenBatchNorm2d(8)
    frozen.load_state_dict(bn.state_dict())  # num_batches_tracked is dropped, not reported
    x = torch.randn(2, 8, 5, 5)
    torch.testing.assert_close(frozen(x), bn(x))


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_load_torchvision_weights(tmp_path, suffix):
    state = torchvision_state_dict("resnet18")
    path = tmp_path / f"r18{suffix}"
    save_file(state, str(path)) if suffix == ".safetensors" else torch.save(state, path)
    net = ResNet("resnet18", norm="frozen_bn")
    report = load_backbone_weights(net, path)
    assert report.missing == [] and report.unexpected == []
    assert len(report.loaded) == len(net.state_dict())
    torch.testing.assert_close(net.layer3[1].bn2.running_var, state["layer3.1.bn2.running_var"])
    torch.testing.assert_close(net.conv1.weight, state["conv1.weight"])


def test_load_reports_missing_unexpected_and_strips_prefix(tmp_path):
    state = torchvision_state_dict("resnet18")
    state = {"backbone.0.body." + k: v for k, v in state.items() if not k.startswith("layer4.")}
    state["backbone.0.body.extra.weight"] = torch.zeros(3)
    path = tmp_path / "ckpt.pth"
    torch.save({"model": state}, path)
    report = load_backbone_weights(ResNet("resnet18"), path)
    assert report.unexpected == ["extra.weight"]
    assert report.missing and all(k.startswith("layer4.") for k in report.missing)
    assert "missing" in str(report) and "extra.weight" in str(report)


def test_load_errors(tmp_path):
    net = ResNet("resnet18")
    with pytest.raises(InputError, match="not found"):
        load_backbone_weights(net, tmp_path / "nope.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="cannot read"):
        load_backbone_weights(net, tmp_path / "junk.pth")
    save_file(torchvision_state_dict("resnet50"), str(tmp_path / "r50.safetensors"))
    with pytest.raises(InputError, match="shape"):
        load_backbone_weights(net, tmp_path / "r50.safetensors")
    save_file({"foo": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(InputError, match="no tensor matches"):
        load_backbone_weights(net, tmp_path / "other.safetensors")


def test_bad_names():
    with pytest.raises(InputError, match="resnet18"):
        ResNet("resnet101")
    with pytest.raises(InputError, match="frozen_bn"):
        ResNet("resnet18", norm="ln")
