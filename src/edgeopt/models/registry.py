"""A name -> constructor registry, so config files and the CLI name models by string.

The registry also declares what each registered model supports (`declared_capabilities`); the planner
asks `edgeopt.model_capabilities.model_capabilities`, which answers from here for built-in models and
works it out (and caches it) for models from outside the registry. This module does not import torch,
so planning the DAG stays fast: the built-in models' capabilities are declared in
`BUILTIN_CAPABILITIES` (checked against the real models by tests/test_layout.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from edgeopt.errors import EdgeoptError
from edgeopt.models.builtins import BUILTIN_CAPABILITIES, Capabilities

if TYPE_CHECKING:
    from torch import nn

ModelFn = Callable[..., "nn.Module"]
_REGISTRY: dict[str, ModelFn] = {}


_CAPABILITIES: dict[str, Capabilities] = dict(BUILTIN_CAPABILITIES)


def register_model(
    name: str, *, residual: bool | None = None, width: bool | None = None
) -> Callable[[ModelFn], ModelFn]:
    """Register `fn(num_classes, in_channels, width_mult) -> nn.Module` under `name`, with what it
    supports (`residual`, `width`; a built-in model's come from `BUILTIN_CAPABILITIES`)."""

    def deco(fn: ModelFn) -> ModelFn:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        _REGISTRY[name] = fn
        base = _CAPABILITIES.get(name, Capabilities())
        _CAPABILITIES[name] = Capabilities(
            residual=base.residual if residual is None else residual,
            width=base.width if width is None else width,
        )
        return fn

    return deco


def register_builtins() -> None:
    """Import the built-in model modules (their decorators register them); imports torch."""
    import importlib

    for module in ("cifar_resnet", "mobilenet", "resnet18", "vgg"):
        importlib.import_module(f"edgeopt.models.{module}")


def declared_capabilities(name: str) -> Capabilities:
    """What model `name` supports; built-in names answer without importing torch, others are looked up
    after registering the models (an unknown name supports nothing extra)."""
    if name not in _CAPABILITIES:
        register_builtins()
    return _CAPABILITIES.get(name, Capabilities())


def list_models() -> list[str]:
    """Built-in names accepted by `create_model` (plus `torchvision:<name>`, `timm:<name>` and registered
    factory models, see `edgeopt.models.external`)."""
    register_builtins()
    return sorted(_REGISTRY)


def create_model(
    name: str, num_classes: int = 10, in_channels: int = 3, width_mult: float = 1.0, **options: Any
) -> nn.Module:
    """Build a model by name: a built-in one, `torchvision:<ctor>`, `timm:<ctor>` or a registered factory.

    Unknown names and bad arguments raise a one-line `EdgeoptError`. `width_mult` other than 1 goes to
    the constructor as an option (built-in models scale by it when their capabilities say so; others only
    when they accept it).
    """
    from edgeopt.models import external

    register_builtins()
    if num_classes < 2:
        raise EdgeoptError(f"model {name}: num_classes must be >= 2, got {num_classes}")
    if in_channels not in (1, 3):
        raise EdgeoptError(f"model {name}: in_channels must be 1 or 3, got {in_channels}")
    if not 0 < width_mult <= 4:
        raise EdgeoptError(f"model {name}: width_mult must be in (0, 4], got {width_mult}")
    if width_mult != 1.0 and name not in _REGISTRY:
        options = {**options, "width_mult": width_mult}
    prefix, _, ctor = name.partition(":")
    if ctor and prefix == "torchvision":
        return external.build_torchvision(ctor, num_classes, in_channels, options)
    if ctor and prefix == "timm":
        return external.build_timm(ctor, num_classes, in_channels, options)
    if name in external.factory_names():
        return external.build_factory(name, num_classes, in_channels, options)
    if name not in _REGISTRY:
        raise EdgeoptError(f"model: unknown model {name!r} (known: {', '.join(list_models())}, torchvision:<name>, "
                           "timm:<name>, or a factory named in the config)")
    if options:
        raise EdgeoptError(f"model {name}: unknown options {sorted(options)} (built-in models take width_mult)")
    if width_mult != 1.0 and not declared_capabilities(name).width:
        with_width = ", ".join(n for n in list_models() if declared_capabilities(n).width)
        raise EdgeoptError(f"model {name}: width_mult is not supported (models with one: {with_width})")
    return _REGISTRY[name](num_classes=num_classes, in_channels=in_channels, width_mult=width_mult)


def scaled(channels: int, width_mult: float, multiple: int = 8) -> int:
    """Scale a channel count by `width_mult`, rounded to a hardware-friendly multiple (never below it)."""
    if width_mult == 1.0:
        return channels
    return max(multiple, int(round(channels * width_mult / multiple)) * multiple)
