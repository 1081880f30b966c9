"""ResNet-18 (torchvision) with the CIFAR stem: 3x3 stride-1 first conv, no max-pool."""

from __future__ import annotations

from torch import nn
from torchvision.models import resnet18 as tv_resnet18

from edgeopt.errors import EdgeoptError
from edgeopt.models.registry import register_model


@register_model("resnet18")
def resnet18(num_classes: int = 10, in_channels: int = 3, width_mult: float = 1.0) -> nn.Module:
    if width_mult != 1.0:
        raise EdgeoptError(
            "model resnet18: width_mult is not supported (use resnet20/56, vgg16 or mobilenetv2)"
        )
    model = tv_resnet18(num_classes=num_classes)
    model.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
    model.maxpool = nn.Identity()
    return model
