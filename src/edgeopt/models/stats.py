"""MACs / params / sparsity of a model, counted the same way for every variant."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def model_stats(model: nn.Module, image_size: int = 32, in_channels: int = 3) -> dict[str, Any]:
    """MACs (torch-pruning's counter), parameter count, non-zero parameters and weight sparsity."""
    import torch_pruning as tp

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    example = torch.zeros(1, in_channels, image_size, image_size, device=device)
    with torch.no_grad():
        macs, params = tp.utils.count_ops_and_params(model, example)
    model.train(was_training)
    weights = [m.weight for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    total = sum(w.numel() for w in weights)
    zeros = sum(int((w == 0).sum()) for w in weights)
    nonzero = sum(int((p != 0).sum()) for p in model.parameters())
    return {
        "macs": int(macs),
        "params": int(params),
        "nonzero_params": nonzero,
        "weight_sparsity": zeros / total if total else 0.0,
    }
