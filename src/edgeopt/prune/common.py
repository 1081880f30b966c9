"""Helpers shared by the pruning commands: loading a model with its data, counting, settings."""

from __future__ import annotations

from typing import Any

import torch
import torch_pruning as tp
from torch import nn

from edgeopt.models import load_model
from edgeopt.train.loop import resolve_device


def load_for_pruning(model_path: str, device: str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """The trained model (eval, fp32) and its metadata, with the keys pruning needs filled in."""
    model, meta = load_model(model_path, "cpu")
    model = model.float().to(memory_format=torch.contiguous_format)
    meta = dict(meta)
    meta.setdefault("image_size", 32)
    meta.setdefault("in_channels", 3)
    return model.to(resolve_device(device)).eval(), meta


def count(model: nn.Module, meta: dict[str, Any]) -> tuple[int, int]:
    """(MACs, params) at batch 1, torch-pruning's counter (the same as `model_stats`)."""
    dev = next(model.parameters()).device
    ex = torch.zeros(1, meta["in_channels"], meta["image_size"], meta["image_size"], device=dev)
    was = model.training
    model.eval()
    with torch.no_grad():
        macs, params = tp.utils.count_ops_and_params(model, ex)
    model.train(was)
    return int(macs), int(params)
