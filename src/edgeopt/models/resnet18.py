"""ResNet-18 (torchvision) with the CIFAR stem: 3x3 stride-1 first conv, no max-pool."""

from __future__ import annotations

from torch import nn
from torchvision.models import resnet18 as tv_resnet18

from edgeopt.models.registry import register_model


@register_model("resnet18")
def resnet18(num_classes: int = 10, in_channels: int = 3, width_mult: float = 1.0) -> nn.Module:
    """CIFAR-style ResNet-18 (3x3 stem, no max-pool); no width multiplier (`create_model` refuses one)."""
    model = tv_resnet18(num_classes=num_classes)
    model.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
    model.maxpool = nn.Identity()
    return model
