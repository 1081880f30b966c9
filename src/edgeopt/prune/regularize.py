"""Growing regularization before a structured cut (after Wang et al., "Neural Pruning via Growing
Regularization", ICLR 2021).

A one-shot cut to 2.5x fewer MACs throws away channels the network still uses (validation accuracy
falls to chance) and fine-tuning must rebuild what they carried. With the plan fixed beforehand, the
channels it will remove are known: training a few epochs while shrinking exactly those channels a
little more every step lets the rest of the network take over their work, so the cut itself then
removes channels that are already (almost) zero.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from edgeopt.errors import EdgeoptError

KEYS = ("epochs", "shrink", "ramp")


def read_regularize(recipe: dict[str, Any], where: str) -> tuple[int, float, float]:
    """(epochs, shrink, ramp) of a recipe's or config's `regularize` section (default: off, 0 epochs)."""
    reg = recipe.get("regularize") or {}
    if not isinstance(reg, dict):
        raise EdgeoptError(f"{where}: regularize: must be a mapping with epochs, shrink and ramp")
    for k in reg:
        if k not in KEYS:
            raise EdgeoptError(f"{where}: regularize.{k}: unknown key (allowed: {', '.join(KEYS)})")
    epochs, shrink, ramp = reg.get("epochs", 0), reg.get("shrink", 0.01), reg.get("ramp", 0.5)
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 0:
        raise EdgeoptError(f"{where}: regularize.epochs: must be an integer >= 0, got {epochs!r}")
    for key, v in (("shrink", shrink), ("ramp", ramp)):
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 < v <= 1:
            raise EdgeoptError(f"{where}: regularize.{key}: must be a number in (0, 1], got {v!r}")
    return epochs, float(shrink), float(ramp)


class GrowingShrink:
    """`after_step` hook: multiply the parameters of the channels to be cut by (1 - rate) after every optimizer
    step, the rate growing linearly from 0 to `shrink` over the first `ramp` share of `total_steps`, then held.

    The shrink is applied directly, not through an L2 term in the loss, so its strength is what `shrink` says at
    any learning rate; the gradients still push back harder at higher rates, so where the channels end up
    depends on both (`shrunk_norm_ratio` reports it).
    """

    def __init__(self, slices: list[tuple[nn.Module, list[int]]], total_steps: int, shrink: float, ramp: float):
        self.slices = slices
        self.ramp_steps = max(1, round(ramp * total_steps))
        self.shrink = shrink
        self._idx: dict[tuple[int, torch.device], torch.Tensor] = {}

    def rate(self, step: int) -> float:
        return self.shrink * min(1.0, step / self.ramp_steps)

    def __call__(self, model: nn.Module, step: int) -> None:
        keep = 1.0 - self.rate(step)
        with torch.no_grad():
            for mod, channels in self.slices:
                for p in (mod.weight, getattr(mod, "bias", None)):
                    if p is None:
                        continue
                    key = (id(mod), p.device)
                    if key not in self._idx:
                        self._idx[key] = torch.tensor(channels, device=p.device)
                    idx = self._idx[key]
                    p.index_copy_(0, idx, p.index_select(0, idx) * keep)


def shrunk_norm_ratio(slices: list[tuple[nn.Module, list[int]]]) -> float:
    """Mean |weight| of the channels to be cut over that of all channels of the same layers (1: untouched,
    near 0: the cut removes almost nothing the network still uses)."""
    cut, total, n_cut, n_total = 0.0, 0.0, 0, 0
    with torch.no_grad():
        for mod, channels in slices:
            w = mod.weight.detach().float()
            rows = w.reshape(w.shape[0], -1).abs().mean(1)
            cut += float(rows[channels].sum())
            n_cut += len(channels)
            total += float(rows.sum())
            n_total += rows.numel()
    return (cut / max(n_cut, 1)) / max(total / max(n_total, 1), 1e-12)
