"""A user's own network, built by a factory function (the `factory:` way into edgeopt's models).

Tests name it as `tests/data/factory_net.py:build`. It has residual blocks of its own class (not one
edgeopt knows by name) and a concat, so what it supports must be worked out from the model.
"""

from __future__ import annotations

import torch
from torch import nn


class Block(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))


class FactoryNet(nn.Module):
    """stem -> two branches concatenated -> residual block -> pooled linear head."""

    def __init__(self, num_classes: int, in_channels: int, width: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, 2, 1, bias=False), nn.BatchNorm2d(width),
                                  nn.ReLU())
        self.left = nn.Sequential(nn.Conv2d(width, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.right = nn.Sequential(nn.Conv2d(width, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.block = Block(2 * width)
        self.head = nn.Sequential(nn.Conv2d(2 * width, 2 * width, 3, 2, 1, bias=False), nn.BatchNorm2d(2 * width),
                                  nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.block(torch.cat([self.left(x), self.right(x)], 1))
        return self.fc(torch.flatten(self.pool(self.head(x)), 1))


def build(num_classes: int, in_channels: int, width: int = 16) -> nn.Module:
    return FactoryNet(num_classes, in_channels, width)


def not_a_module(num_classes: int, in_channels: int) -> str:
    return "a string"
