"""Model registry (timm-style `create_model`) and the checkpoint format every stage shares.

The names below are imported on first use (PEP 562), so `edgeopt.models.registry` can be imported
without torch (the planner asks it what a model supports); using any of them registers every model.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["create_model", "list_models", "register_model", "load_model", "save_model", "model_stats",
           "register_factory", "load_weights"]  # fmt: skip
_HOME = {
    "create_model": "registry",
    "list_models": "registry",
    "register_model": "registry",
    "load_model": "io",
    "save_model": "io",
    "model_stats": "stats",
    "register_factory": "external",
    "load_weights": "external",
}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    importlib.import_module(f"{__name__}.registry").register_builtins()
    return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
