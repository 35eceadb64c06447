"""``small_cnn``: stacked 3×3 convolutions with batch norm, for CPU runs and low-resolution data.

Four stages of conv3×3-BN-ReLU, the channel count doubling and the resolution halving after
each of the last three, then global average pooling, optional dropout and a linear head. About
0.4 M parameters at the default width; at 32 px one image costs ~60 M multiply-adds.

    >>> model = small_cnn(num_classes=10)
    >>> model(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

import torch
from torch import nn


def _conv_bn(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True)]


class SmallCNN(nn.Module):
    stages = ("stem", "layer1", "layer2", "layer3", "fc")

    def __init__(self, num_classes: int = 10, width: int = 32, dropout: float = 0.0):
        super().__init__()
        w = width
        self.stem = nn.Sequential(*_conv_bn(3, w))
        self.layer1 = nn.Sequential(*_conv_bn(w, 2 * w), nn.MaxPool2d(2))
        self.layer2 = nn.Sequential(*_conv_bn(2 * w, 4 * w), nn.MaxPool2d(2))
        self.layer3 = nn.Sequential(*_conv_bn(4 * w, 8 * w), nn.MaxPool2d(2))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(8 * w, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return self.fc(self.dropout(torch.flatten(self.pool(x), 1)))


def small_cnn(
    num_classes: int = 10, width: int = 32, dropout: float = 0.0, zero_init_residual: bool = False
) -> SmallCNN:
    # zero_init_residual is accepted (and ignored: there are no residual branches) so the
    # trainer can build every registered model with the same arguments.
    return SmallCNN(num_classes, width, dropout)
