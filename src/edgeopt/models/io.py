"""The checkpoint format shared by all stages: the whole module pickled, plus metadata.

Saving the module (not only a state dict) lets pruned models, whose layer shapes no longer
match the registry constructor, reload with `load_model` alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgeopt.atomic import atomic_path
from edgeopt.errors import EdgeoptError


def save_model(path: str | Path, model: nn.Module, meta: dict[str, Any]) -> None:
    """Atomically save `{"model": module, "meta": meta}`; meta holds arch, num_classes, image_size, ..."""
    model = model.to("cpu").eval()
    with atomic_path(path) as tmp:
        torch.save({"model": model, "meta": meta}, tmp)


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Load a model saved by `save_model` (eval mode, on `device`) and its metadata."""
    path = Path(path)
    if not path.exists():
        raise EdgeoptError(f"{path}: model file missing")
    from edgeopt.models.external import register_env_factories

    register_env_factories()  # a factory model's classes live in the user's file: import it first
    try:
        blob = torch.load(path, map_location=device, weights_only=False)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file
        raise EdgeoptError(f"{path}: not a readable edgeopt model ({type(exc).__name__}: {exc})") from None
    if not isinstance(blob, dict) or "model" not in blob:
        raise EdgeoptError(f"{path}: not an edgeopt model file (no 'model' entry)")
    return blob["model"].to(device).eval(), blob.get("meta", {})
