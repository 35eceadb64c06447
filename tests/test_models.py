"""augpipe.models: torchvision-compatible ResNet state_dicts, zero-init, small_cnn, registry."""

from __future__ import annotations

import hashlib

import pytest
import torch

from augpipe.errors import ConfigError
from augpipe.models import get_model, resnet18, resnet50, small_cnn, stage_of

# torchvision 0.29.1 resnet18().state_dict(): every key with its shape, in order
RESNET18 = """
conv1.weight 64x3x7x7
bn1.weight 64
bn1.bias 64
bn1.running_mean 64
bn1.running_var 64
bn1.num_batches_tracked scalar
layer1.0.conv1.weight 64x64x3x3
layer1.0.bn1.weight 64
layer1.0.bn1.bias 64
layer1.0.bn1.running_mean 64
layer1.0.bn1.running_var 64
layer1.0.bn1.num_batches_tracked scalar
layer1.0.conv2.weight 64x64x3x3
layer1.0.bn2.weight 64
layer1.0.bn2.bias 64
layer1.0.bn2.running_mean 64
layer1.0.bn2.running_var 64
layer1.0.bn2.num_batches_tracked scalar
layer1.1.conv1.weight 64x64x3x3
layer1.1.bn1.weight 64
layer1.1.bn1.bias 64
layer1.1.bn1.running_mean 64
layer1.1.bn1.running_var 64
layer1.1.bn1.num_batches_tracked scalar
layer1.1.conv2.weight 64x64x3x3
layer1.1.bn2.weight 64
layer1.1.bn2.bias 64
layer1.1.bn2.running_mean 64
layer1.1.bn2.running_var 64
layer1.1.bn2.num_batches_tracked scalar
layer2.0.conv1.weight 128x64x3x3
layer2.0.bn1.weight 128
layer2.0.bn1.bias 128
layer2.0.bn1.running_mean 128
layer2.0.bn1.running_var 128
layer2.0.bn1.num_batches_tracked scalar
layer2.0.conv2.weight 128x128x3x3
layer2.0.bn2.weight 128
layer2.0.bn2.bias 128
layer2.0.bn2.running_mean 128
layer2.0.bn2.running_var 128
layer2.0.bn2.num_batches_tracked scalar
layer2.0.downsample.0.weight 128x64x1x1
layer2.0.downsample.1.weight 128
layer2.0.downsample.1.bias 128
layer2.0.downsample.1.running_mean 128
layer2.0.downsample.1.running_var 128
layer2.0.downsample.1.num_batches_tracked scalar
layer2.1.conv1.weight 128x128x3x3
layer2.1.bn1.weight 128
layer2.1.bn1.bias 128
layer2.1.bn1.running_mean 128
layer2.1.bn1.running_var 128
layer2.1.bn1.num_batches_tracked scalar
layer2.1.conv2.weight 128x128x3x3
layer2.1.bn2.weight 128
layer2.1.bn2.bias 128
layer2.1.bn2.running_mean 128
layer2.1.bn2.running_var 128
layer2.1.bn2.num_batches_tracked scalar
layer3.0.conv1.weight 256x128x3x3
layer3.0.bn1.weight 256
layer3.0.bn1.bias 256
layer3.0.bn1.running_mean 256
layer3.0.bn1.running_var 256
layer3.0.bn1.num_batches_tracked scalar
layer3.0.conv2.weight 256x256x3x3
layer3.0.bn2.weight 256
layer3.0.bn2.bias 256
layer3.0.bn2.running_mean 256
layer3.0.bn2.running_var 256
layer3.0.bn2.num_batches_tracked scalar
layer3.0.downsample.0.weight 256x128x1x1
layer3.0.downsample.1.weight 256
layer3.0.downsample.1.bias 256
layer3.0.downsample.1.running_mean 256
layer3.0.downsample.1.running_var 256
layer3.0.downsample.1.num_batches_tracked scalar
layer3.1.conv1.weight 256x256x3x3
layer3.1.bn1.weight 256
layer3.1.bn1.bias 256
layer3.1.bn1.running_mean 256
layer3.1.bn1.running_var 256
layer3.1.bn1.num_batches_tracked scalar
layer3.1.conv2.weight 256x256x3x3
layer3.1.bn2.weight 256
layer3.1.bn2.bias 256
layer3.1.bn2.running_mean 256
layer3.1.bn2.running_var 256
layer3.1.bn2.num_batches_tracked scalar
layer4.0.conv1.weight 512x256x3x3
layer4.0.bn1.weight 512
layer4.0.bn1.bias 512
layer4.0.bn1.running_mean 512
layer4.0.bn1.running_var 512
layer4.0.bn1.num_batches_tracked scalar
layer4.0.conv2.weight 512x512x3x3
layer4.0.bn2.weight 512
layer4.0.bn2.bias 512
layer4.0.bn2.running_mean 512
layer4.0.bn2.running_var 512
layer4.0.bn2.num_batches_tracked scalar
layer4.0.downsample.0.weight 512x256x1x1
layer4.0.downsample.1.weight 512
layer4.0.downsample.1.bias 512
layer4.0.downsample.1.running_mean 512
layer4.0.downsample.1.running_var 512
layer4.0.downsample.1.num_batches_tracked scalar
layer4.1.conv1.weight 512x512x3x3
layer4.1.bn1.weight 512
layer4.1.bn1.bias 512
layer4.1.bn1.running_mean 512
layer4.1.bn1.running_var 512
layer4.1.bn1.num_batches_tracked scalar
layer4.1.conv2.weight 512x512x3x3
layer4.1.bn2.weight 512
layer4.1.bn2.bias 512
layer4.1.bn2.running_mean 512
layer4.1.bn2.running_var 512
layer4.1.bn2.num_batches_tracked scalar
fc.weight 1000x512
fc.bias 1000
"""

# resnet50: the stem, the first bottleneck (with its projection shortcut) and the head
RESNET50_PARTS = """
conv1.weight 64x3x7x7
bn1.weight 64
bn1.bias 64
bn1.running_mean 64
bn1.running_var 64
bn1.num_batches_tracked scalar
layer1.0.conv1.weight 64x64x1x1
layer1.0.bn1.weight 64
layer1.0.bn1.bias 64
layer1.0.bn1.running_mean 64
layer1.0.bn1.running_var 64
layer1.0.bn1.num_batches_tracked scalar
layer1.0.conv2.weight 64x64x3x3
layer1.0.bn2.weight 64
layer1.0.bn2.bias 64
layer1.0.bn2.running_mean 64
layer1.0.bn2.running_var 64
layer1.0.bn2.num_batches_tracked scalar
layer1.0.conv3.weight 256x64x1x1
layer1.0.bn3.weight 256
layer1.0.bn3.bias 256
layer1.0.bn3.running_mean 256
layer1.0.bn3.running_var 256
layer1.0.bn3.num_batches_tracked scalar
layer1.0.downsample.0.weight 256x64x1x1
layer1.0.downsample.1.weight 256
layer1.0.downsample.1.bias 256
layer1.0.downsample.1.running_mean 256
layer1.0.downsample.1.running_var 256
layer1.0.downsample.1.num_batches_tracked scalar
fc.weight 1000x2048
fc.bias 1000
"""

# sha256 of every 'key shape' line of torchvision's state_dict, newline-joined
SHA256 = {
    "resnet18": "57a0dd11e959b1ec8daac9b3eed02038f1c2c15801fa90153d9057e9134c5cfb",
    "resnet34": "daedd40fbfba87d5f432c3a21e9ff5dd099a948b49330f7eea3d895f10c305e3",
    "resnet50": "203ad9b4b82a1b6fba8154ff9a96a089a2ee0ef5504f5e9586c7c07bcbbffa45",
}
COUNTS = {"resnet18": 122, "resnet34": 218, "resnet50": 320}


def _lines(model) -> list[str]:
    return [f"{k} {'x'.join(map(str, v.shape)) or 'scalar'}" for k, v in model.state_dict().items()]


def test_resnet18_keys_and_shapes_equal_torchvision():
    assert _lines(resnet18()) == RESNET18.strip().splitlines()


def test_resnet50_stem_block_and_head_equal_torchvision():
    ours = [
        line
        for line in _lines(resnet50())
        if line.startswith("layer1.0.") or not line.startswith("layer")
    ]
    assert ours == RESNET50_PARTS.strip().splitlines()


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50"])
def test_every_resnet_state_dict_matches_torchvision_digest(name):
    lines = _lines(get_model(name, num_classes=1000))
    assert len(lines) == COUNTS[name]
    assert hashlib.sha256("\n".join(lines).encode()).hexdigest() == SHA256[name]


def test_torchvision_style_checkpoint_loads_strictly(tmp_path):
    src = resnet18(num_classes=1000)
    path = tmp_path / "tv.pth"
    torch.save(src.state_dict(), path)
    dst = resnet18(num_classes=1000)
    dst.load_state_dict(torch.load(path, weights_only=True), strict=True)
    x = torch.randn(1, 3, 64, 64)
    src.eval(), dst.eval()
    assert torch.equal(src(x), dst(x))


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_zero_init_residual_zeroes_last_bn_gamma_of_every_block(name):
    model = get_model(name, num_classes=10, zero_init_residual=True)
    last = "bn3" if name == "resnet50" else "bn2"
    gammas = {k: v for k, v in model.state_dict().items() if k.endswith(f"{last}.weight")}
    assert gammas and all(torch.count_nonzero(v) == 0 for v in gammas.values())
    assert torch.all(model.bn1.weight == 1)  # only the branch ends, not every BN
    default = get_model(name, num_classes=10)
    assert all(torch.all(v == 1) for k, v in default.state_dict().items() if k in gammas)


def test_zero_init_blocks_start_as_identity_plus_relu():
    block = resnet18(zero_init_residual=True).layer1[0].eval()
    x = torch.randn(2, 64, 8, 8)
    assert torch.allclose(block(x), torch.relu(x))


@pytest.mark.parametrize(
    ("name", "res"), [("small_cnn", 32), ("small_cnn", 20), ("resnet18", 64), ("resnet50", 64)]
)
def test_forward_backward_shapes(name, res):
    model = get_model(name, num_classes=7)
    out = model(torch.randn(2, 3, res, res))
    assert out.shape == (2, 7)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_small_cnn_dropout_and_channels_last():
    model = small_cnn(num_classes=3, width=8, dropout=0.5).eval()
    x = torch.randn(2, 3, 16, 16)
    a = model(x)
    b = model.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(a, b, atol=1e-5)


def test_unknown_model_is_a_config_error_naming_the_choices():
    with pytest.raises(ConfigError, match="resnet18"):
        get_model("vgg16", num_classes=10)


@pytest.mark.parametrize("name", ["small_cnn", "resnet18", "resnet50"])
def test_every_parameter_has_a_declared_stage(name):
    model = get_model(name, num_classes=4)
    seen = {stage_of(k) for k, _ in model.named_parameters()}
    assert seen == set(model.stages)
    assert stage_of("module._orig_mod.layer2.0.conv1.weight") == "layer2"
