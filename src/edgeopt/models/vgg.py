"""VGG16 with BatchNorm for 32x32 inputs: torchvision's feature extractor, a single linear head."""

from __future__ import annotations

from torch import nn
from torchvision.models.vgg import cfgs, make_layers

from edgeopt.models.registry import register_model, scaled


class CifarVGG(nn.Module):
    """torchvision VGG features (5 max-pools take 32x32 to 1x1) + Linear(512, classes)."""

    def __init__(self, features: nn.Sequential, width: int, num_classes: int) -> None:
        super().__init__()
        self.features = features
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x):  # type: ignore[no-untyped-def]
        return self.classifier(self.flatten(self.features(x)))


@register_model("vgg16")
def vgg16(num_classes: int = 10, in_channels: int = 3, width_mult: float = 1.0) -> nn.Module:
    cfg = [v if v == "M" else scaled(int(v), width_mult) for v in cfgs["D"]]
    features = make_layers(cfg, batch_norm=True)
    if in_channels != 3:
        first = features[0]
        features[0] = nn.Conv2d(in_channels, first.out_channels, 3, padding=1)
    width = [v for v in cfg if v != "M"][-1]
    return CifarVGG(features, int(width), num_classes)
