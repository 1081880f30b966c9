"""What the built-in models support, declared without torch: the planner and the `models:` entry parser
read it on every Snakemake start. The registry (`edgeopt.models.registry`) holds the constructors.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Capabilities:
    """What a model supports beyond plain structured pruning."""

    residual: bool = False  # has residual blocks: the `zeropad` variant applies
    width: bool = False  # its constructor honours `width_mult`: the `width<mult>` variant applies


#: capabilities of the models registered by edgeopt.models (declared here so planning needs no torch)
BUILTIN_CAPABILITIES: dict[str, Capabilities] = {
    "resnet20": Capabilities(residual=True, width=True),
    "resnet56": Capabilities(residual=True, width=True),
    "resnet18": Capabilities(residual=True, width=False),
    "mobilenetv2": Capabilities(residual=True, width=True),
    "vgg16": Capabilities(residual=False, width=True),
}
