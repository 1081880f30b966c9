"""Fixtures of the quantize stage: ResNet-20s pruned for real with torch-pruning (structured, zero-padded)."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from edgeopt.models.layers import ZeroPadScatter


def zero_pad_prune(model: nn.Module, ratio: float = 0.5) -> nn.Module:
    """Prune the output channels of every block's second conv (which plain structured pruning cannot
    touch because of the residual add) and scatter them back into zeros of the original width."""
    import torch_pruning as tp

    from edgeopt.models.cifar_resnet import BasicBlock

    model = copy.deepcopy(model).eval()
    for block in [m for m in model.modules() if isinstance(m, BasicBlock)]:
        width = block.conv2.out_channels
        norms = block.conv2.weight.detach().flatten(1).norm(dim=1)
        drop = norms.argsort()[: int(width * ratio)].tolist()
        keep = torch.tensor(sorted(set(range(width)) - set(drop)))
        tp.prune_conv_out_channels(block.conv2, drop)
        tp.prune_batchnorm_out_channels(block.bn2, drop)
        block.bn2 = nn.Sequential(block.bn2, ZeroPadScatter(keep.tolist(), width))  # the pruning stage's layer
    return model


def structured_prune(model: nn.Module, image_size: int, ratio: float = 0.5) -> nn.Module:
    """DepGraph channel pruning across the residual dependencies (torch-pruning), rounded to 4."""
    import torch_pruning as tp

    model = copy.deepcopy(model).eval()
    example = torch.randn(1, 3, image_size, image_size)
    pruner = tp.pruner.BasePruner(
        model,
        example,
        importance=tp.importance.GroupMagnitudeImportance(p=2),
        pruning_ratio=ratio,
        ignored_layers=[model.fc],
        round_to=4,
    )
    pruner.step()
    return model


def _save_variant(tmp: Path, tiny_model: Path, variant: str, fn) -> Path:  # type: ignore[no-untyped-def]
    from edgeopt.models import load_model, save_model
    from edgeopt.quantize.data import make_contiguous

    model, meta = load_model(tiny_model)
    pruned = fn(make_contiguous(model), meta)
    out = tmp / variant / "model.pt"
    save_model(out, pruned, {**meta, "variant": variant})
    return out


@pytest.fixture(scope="session")
def pruned_model(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Path:
    """`tiny_model` with 50% of its channels removed by torch-pruning (structured)."""
    return _save_variant(
        tmp_path_factory.mktemp("pruned"),
        tiny_model,
        "pruned",
        lambda m, meta: structured_prune(m, meta["image_size"]),
    )


@pytest.fixture(scope="session")
def zeropad_model(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Path:
    """`tiny_model` with half of each block's output channels pruned and zero-padded back."""
    return _save_variant(
        tmp_path_factory.mktemp("zeropad"), tiny_model, "zeropad", lambda m, meta: zero_pad_prune(m)
    )


def qdq_zero_points(path: Path) -> dict[str, np.ndarray]:
    """Every QuantizeLinear/DequantizeLinear zero point of a QDQ ONNX file, by node kind and input."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    out = {}
    for node in m.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") and len(node.input) > 2:
            out[f"{node.op_type}:{node.input[0]}"] = inits[node.input[2]]
    return out
