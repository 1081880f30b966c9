"""Layers the compression stages put into models, known to `load_model` by type.

A saved model is rebuilt from the registry (`create_model`) and its recorded structure; a module the
registry's architecture does not have is constructed here (edgeopt's own layers, registered in
`REBUILD`) or from `torch.nn` by its constructor arguments. Nothing named in a file is imported.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn


def type_name(cls: type) -> str:
    """How a saved model names a module type: `<module>.<qualified name>`."""
    return f"{cls.__module__}.{cls.__qualname__}"


#: edgeopt module type name -> constructor from the saved plain attributes (shapes come from the state dict)
REBUILD: dict[str, Callable[[dict[str, Any]], nn.Module]] = {}


def rebuildable(factory: Callable[[dict[str, Any]], nn.Module]) -> Callable[[type], type]:
    """Class decorator: `load_model` may construct this layer with `factory(saved attributes)`."""

    def deco(cls: type) -> type:
        REBUILD[type_name(cls)] = factory
        return cls

    return deco


@rebuildable(lambda attrs: ZeroPadScatter([], int(attrs["width"])))
class ZeroPadScatter(nn.Module):
    """Place `kept` channels of the input at their original positions of a `width`-channel zero tensor."""

    def __init__(self, kept: list[int], width: int) -> None:
        super().__init__()
        index = torch.full((width,), len(kept), dtype=torch.long)
        index[torch.tensor(kept, dtype=torch.long)] = torch.arange(len(kept))
        self.register_buffer("index", index)
        self.width = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padded = torch.cat([x, torch.zeros_like(x[:, :1])], dim=1)
        return torch.index_select(padded, 1, self.index)

    def extra_repr(self) -> str:
        return f"kept={int((self.index < self.index.max()).sum())}, width={self.width}"
