"""MobileNetV2 (torchvision) with a CIFAR stem: stride 1 in the first conv and first stride-2 stage."""

from __future__ import annotations

from torch import nn
from torchvision.models import mobilenet_v2

from edgeopt.models.registry import register_model


@register_model("mobilenetv2")
def mobilenetv2(num_classes: int = 10, in_channels: int = 3, width_mult: float = 1.0) -> nn.Module:
    model = mobilenet_v2(num_classes=num_classes, width_mult=width_mult)
    stem = model.features[0][0]
    model.features[0][0] = nn.Conv2d(in_channels, stem.out_channels, 3, 1, 1, bias=False)
    # 32x32 inputs: keep resolution through the first downsampling stage (as in CIFAR ports).
    model.features[2].conv[1][0].stride = (1, 1)
    return model
