"""Which parameters "freeze the first k layers" means for a model.

A layer is a convolution or linear module in registration order (forward order for the
registry's models), together with the normalisation layers that follow it. The classifier is
the last linear layer. Frozen normalisation layers keep their running statistics.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from edgeopt.errors import EdgeoptError
from edgeopt.retrain.settings import FREEZE_HEAD

_WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.GroupNorm, nn.LayerNorm)


@dataclass
class Layer:
    name: str
    kind: str
    params: list[str] = field(default_factory=list)
    norms: list[str] = field(default_factory=list)


def layers(model: nn.Module) -> list[Layer]:
    """Weighted layers in order, each with its own parameters and the norms that follow it."""
    out: list[Layer] = []
    for name, mod in model.named_modules():
        if isinstance(mod, _WEIGHTED):
            out.append(Layer(name, type(mod).__name__))
            out[-1].params += [f"{name}.{p}" for p, _ in mod.named_parameters(recurse=False)]
        elif isinstance(mod, _NORMS) and out:
            out[-1].norms.append(name)
            out[-1].params += [f"{name}.{p}" for p, _ in mod.named_parameters(recurse=False)]
    return out


@dataclass
class FreezePlan:
    frozen_layers: int
    total_layers: int
    frozen_params: list[str]
    trainable_params: list[str]
    frozen_modules: list[str]


def freeze_plan(model: nn.Module, freeze: int | str) -> FreezePlan:
    """Parameter names to freeze and to train for a `freeze` setting (k or 'all_but_classifier')."""
    ls = layers(model)
    if not ls:
        raise EdgeoptError("retrain: model has no convolution or linear layers to train")
    k = len(ls) - 1 if freeze == FREEZE_HEAD else int(freeze)
    if k >= len(ls):
        raise EdgeoptError(
            f"retrain.settings.freeze: {k} layers frozen but the model has only {len(ls)} (nothing would train)"
        )
    frozen = {p for layer in ls[:k] for p in layer.params}
    names = [n for n, _ in model.named_parameters()]
    return FreezePlan(
        frozen_layers=k,
        total_layers=len(ls),
        frozen_params=[n for n in names if n in frozen],
        trainable_params=[n for n in names if n not in frozen],
        frozen_modules=[m for layer in ls[:k] for m in layer.norms],
    )
