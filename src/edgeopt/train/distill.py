"""Knowledge distillation (Hinton et al.; Distiller's `--kd-*` options): the unpruned model teaches the pruned one.

A pruned network fine-tuned on hard labels alone has to rediscover what its removed channels
knew; matching the baseline's softened outputs recovers more accuracy for the same epochs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from edgeopt.errors import EdgeoptError


@dataclass(frozen=True)
class Distill:
    """`alpha`: weight of the teacher term (0: off, 1: teacher only); `temperature`: softening of both outputs."""

    alpha: float = 0.0
    temperature: float = 4.0

    @classmethod
    def from_config(cls, cfg: Any, where: str) -> Distill:
        """Check a `distill:` mapping ({alpha, temperature}); null or missing means off."""
        if cfg is None:
            return cls()
        if not isinstance(cfg, dict):
            raise EdgeoptError(f"{where}: distill: must be a mapping with alpha and temperature")
        unknown = set(cfg) - {"alpha", "temperature"}
        if unknown:
            raise EdgeoptError(f"{where}: distill.{sorted(unknown)[0]}: unknown key (allowed: alpha, temperature)")
        alpha, temp = cfg.get("alpha", 0.0), cfg.get("temperature", 4.0)
        if not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
            raise EdgeoptError(f"{where}: distill.alpha: must be a number in [0, 1], got {alpha!r}")
        if not isinstance(temp, (int, float)) or temp <= 0:
            raise EdgeoptError(f"{where}: distill.temperature: must be a positive number, got {temp!r}")
        return cls(float(alpha), float(temp))

    @property
    def enabled(self) -> bool:
        return self.alpha > 0

    def loss(self, hard: torch.Tensor, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        """(1 - alpha) * hard-label loss + alpha * T^2 * KL(teacher_T || student_T) (T^2 keeps gradients comparable)."""
        t = self.temperature
        soft = nn.functional.kl_div(
            nn.functional.log_softmax(student.float() / t, dim=1),
            nn.functional.log_softmax(teacher.float() / t, dim=1),
            reduction="batchmean",
            log_target=True,
        )
        return (1 - self.alpha) * hard + self.alpha * t * t * soft
