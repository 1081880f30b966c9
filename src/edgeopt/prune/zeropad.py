"""Zero-padding pruning of residual blocks: prune a block's output channels and scatter them back.

Plain structured pruning cannot remove a residual block's output channels alone: the add
couples them to every other block of the stage. Here the block's last conv keeps only its
important channels, and a `ZeroPadScatter` puts them back at their positions in a zero tensor
of the original width, so the add keeps its shape. The scatter is a concat + gather, which
ONNX (Gather), ONNX Runtime, torch.export and TFLite all handle.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from edgeopt.errors import EdgeoptError
from edgeopt.models.layers import ZeroPadScatter
from edgeopt.prune.groups import kept_channels

#: residual block type -> function returning (container, conv attr, bn attr) of the block's last conv/BN
BlockAdapter = Callable[[nn.Module], tuple[nn.Module, str, str] | None]
BLOCK_ADAPTERS: dict[str, BlockAdapter] = {}


def register_block(class_name: str) -> Callable[[BlockAdapter], BlockAdapter]:
    def deco(fn: BlockAdapter) -> BlockAdapter:
        BLOCK_ADAPTERS[class_name] = fn
        return fn

    return deco


@register_block("BasicBlock")
def _basic_block(block: nn.Module) -> tuple[nn.Module, str, str] | None:
    """edgeopt's CIFAR ResNet and torchvision's ResNet BasicBlock: `bn2(conv2(...)) + shortcut`."""
    if isinstance(getattr(block, "conv2", None), nn.Conv2d) and isinstance(
        getattr(block, "bn2", None), nn.BatchNorm2d
    ):
        return block, "conv2", "bn2"
    return None


@register_block("InvertedResidual")
def _inverted_residual(block: nn.Module) -> tuple[nn.Module, str, str] | None:
    """torchvision MobileNetV2 (`x + conv(x)`, `conv` ends with project conv + BN) and MobileNetV3 (`x + block(x)`,
    `block` ends with a Conv2dNormActivation of project conv + BN, no activation), when `use_res_connect`."""
    seq = getattr(block, "conv", None)
    if seq is None:
        inner = getattr(block, "block", None)
        seq = inner[-1] if isinstance(inner, nn.Sequential) and len(inner) else None
    if not getattr(block, "use_res_connect", False) or not isinstance(seq, nn.Sequential) or len(seq) < 2:
        return None
    if isinstance(seq[-2], nn.Conv2d) and isinstance(seq[-1], nn.BatchNorm2d) and seq[-2].groups == 1:
        return seq, str(len(seq) - 2), str(len(seq) - 1)
    return None


def residual_blocks(model: nn.Module) -> dict[str, tuple[nn.Module, str, str]]:
    """Residual blocks of `model` whose output channels zero-padding can prune, by module name."""
    out = {}
    for name, mod in model.named_modules():
        adapter = BLOCK_ADAPTERS.get(type(mod).__name__)
        found = adapter(mod) if adapter else None
        if found is not None:
            out[name] = found
    return out


def channel_scale(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> torch.Tensor:
    """How much each output channel contributes: filter L2 norm times the BN scale."""
    w = conv.weight.detach().flatten(1).norm(p=2, dim=1)
    g = bn.weight.detach().abs() / torch.sqrt(bn.running_var.detach() + bn.eps)
    return w * g


@torch.no_grad()
def zeropad_block(container: nn.Module, conv_attr: str, bn_attr: str, ratio: float, round_to: int | None) -> int:
    """Prune the block's last conv/BN outputs by `ratio` in place; returns the channels kept."""
    conv: nn.Conv2d = getattr(container, conv_attr)
    bn: nn.BatchNorm2d = getattr(container, bn_attr)
    width = conv.out_channels
    keep_n = kept_channels(width, ratio, round_to)
    if keep_n >= width:
        return width
    kept = sorted(torch.argsort(channel_scale(conv, bn), descending=True)[:keep_n].tolist())
    idx = torch.tensor(kept, dtype=torch.long, device=conv.weight.device)
    new_conv = nn.Conv2d(
        conv.in_channels, keep_n, conv.kernel_size, conv.stride, conv.padding, conv.dilation,
        conv.groups if conv.groups == 1 else _bad_groups(conv), conv.bias is not None,
    ).to(conv.weight.device)
    new_conv.weight.copy_(conv.weight[idx])
    if conv.bias is not None:
        new_conv.bias.copy_(conv.bias[idx])
    new_bn = nn.BatchNorm2d(keep_n, bn.eps, bn.momentum, bn.affine, bn.track_running_stats).to(
        bn.weight.device
    )
    new_bn.weight.copy_(bn.weight[idx])
    new_bn.bias.copy_(bn.bias[idx])
    new_bn.running_mean.copy_(bn.running_mean[idx])
    new_bn.running_var.copy_(bn.running_var[idx])
    setattr(container, conv_attr, new_conv)
    setattr(container, bn_attr, nn.Sequential(new_bn, ZeroPadScatter(kept, width).to(bn.weight.device)))
    return keep_n


def _bad_groups(conv: nn.Conv2d) -> int:
    raise EdgeoptError("zeropad: a grouped/depthwise conv as a block's last layer is not supported")


def prune_zeropad(model: nn.Module, blocks: dict[str, float], round_to: int | None) -> dict[str, dict[str, int]]:
    """Zero-pad prune each named residual block by its ratio; an unknown block name is an error."""
    found = residual_blocks(model)
    report = {}
    for name, ratio in blocks.items():
        if name not in found:
            known = ", ".join(found) or "none (the model has no residual blocks)"
            raise EdgeoptError(f"recipe: unknown residual block {name!r} (zero-paddable blocks: {known})")
        if not 0.0 <= float(ratio) < 1.0:
            raise EdgeoptError(f"recipe: block ratio for {name!r} must be in [0, 1), got {ratio}")
        container, c, b = found[name]
        width = getattr(container, c).out_channels
        report[name] = {"before": width, "after": zeropad_block(container, c, b, float(ratio), round_to)}
    return report
