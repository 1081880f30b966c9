"""Unstructured magnitude pruning with a gradual (AGP) schedule whose masks persist through fine-tuning.

AGP (Zhu & Gupta 2017): sparsity rises as s_f * (1 - (1 - t/T)^3) between `start` and `end`
steps, so the network adapts while weights are removed. Masks are re-applied after every
optimizer step (the training loop's `after_step` hook), so pruned weights stay zero.
"""

from __future__ import annotations

import torch
from torch import nn

from edgeopt.errors import EdgeoptError

SCOPES = ("global", "layer")


def prunable_weights(model: nn.Module) -> dict[str, nn.Parameter]:
    """Conv and linear weights: what unstructured pruning sparsifies (BN and biases stay dense)."""
    return {f"{n}.weight": m.weight for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}


def agp_sparsity(step: int, final: float, start: int, end: int, initial: float = 0.0) -> float:
    """The AGP target sparsity at `step`."""
    if step <= start:
        return initial if step < start else initial
    if step >= end or end <= start:
        return final
    frac = (step - start) / (end - start)
    return final + (initial - final) * (1.0 - frac) ** 3


@torch.no_grad()
def magnitude_masks(weights: dict[str, torch.Tensor], sparsity: float, scope: str) -> dict[str, torch.Tensor]:
    """Masks that zero the smallest-magnitude `sparsity` share of weights, globally or per layer."""
    if scope not in SCOPES:
        raise EdgeoptError(f"recipe: scope must be one of {SCOPES}, got {scope!r}")
    if not 0.0 <= sparsity < 1.0:
        raise EdgeoptError(f"recipe: sparsity must be in [0, 1), got {sparsity}")
    if sparsity == 0:
        return {n: torch.ones_like(w, dtype=torch.bool) for n, w in weights.items()}
    if scope == "global":
        flat = torch.cat([w.detach().abs().flatten().float() for w in weights.values()])
        k = int(sparsity * flat.numel())
        thr = torch.kthvalue(flat.cpu(), k).values.item() if k > 0 else -1.0
        return {n: w.detach().abs() > thr for n, w in weights.items()}
    masks = {}
    for n, w in weights.items():
        a = w.detach().abs().flatten().float().cpu()
        k = int(sparsity * a.numel())
        thr = torch.kthvalue(a, k).values.item() if k > 0 else -1.0
        masks[n] = w.detach().abs() > thr
    return masks


class AGPMasker:
    """`after_step` hook: raise sparsity on the AGP schedule every `frequency` steps, re-apply masks always."""

    def __init__(
        self,
        model: nn.Module,
        sparsity: float,
        scope: str = "global",
        total_steps: int = 1,
        start_fraction: float = 0.0,
        end_fraction: float = 0.75,
        frequency: int = 1,
    ) -> None:
        self.weights = prunable_weights(model)
        self.final, self.scope = float(sparsity), scope
        self.start = int(start_fraction * total_steps)
        self.end = max(self.start + 1, int(end_fraction * total_steps))
        self.frequency = max(1, int(frequency))
        self.current = 0.0
        self.masks = magnitude_masks(self.weights, 0.0, scope)
        self.schedule: list[tuple[int, float]] = []

    def __call__(self, model: nn.Module, step: int) -> None:
        if step % self.frequency == 0 or step >= self.end:
            target = agp_sparsity(step, self.final, self.start, self.end)
            if target > self.current:
                self.masks = magnitude_masks(self.weights, target, self.scope)
                self.current = target
                self.schedule.append((step, round(target, 6)))
        self.apply()

    @torch.no_grad()
    def apply(self) -> None:
        for n, w in self.weights.items():
            w.mul_(self.masks[n].to(w.dtype))

    def finalize(self) -> None:
        """Reach the final sparsity exactly (a short run may end before the schedule does)."""
        if self.current < self.final:
            self.masks = magnitude_masks(self.weights, self.final, self.scope)
            self.current = self.final
            self.schedule.append((-1, self.final))
        self.apply()


def weight_sparsity(model: nn.Module) -> float:
    ws = list(prunable_weights(model).values())
    total = sum(w.numel() for w in ws)
    return sum(int((w == 0).sum()) for w in ws) / total if total else 0.0
