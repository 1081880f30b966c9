"""Parity of a converted model with its PyTorch original: the check every conversion must pass."""

from __future__ import annotations

from typing import Any

import numpy as np

from edgeopt.errors import EdgeoptError


def compare_logits(reference: np.ndarray, candidate: np.ndarray) -> dict[str, Any]:
    """Max/mean abs logit difference and top-1 agreement of `candidate` against `reference`."""
    if reference.shape != candidate.shape:
        raise EdgeoptError(f"parity: output shape {candidate.shape} differs from PyTorch's {reference.shape}")
    diff = np.abs(reference.astype(np.float64) - candidate.astype(np.float64))
    return {
        "max_abs_diff": float(diff.max()) if diff.size else 0.0,
        "mean_abs_diff": float(diff.mean()) if diff.size else 0.0,
        "top1_agreement": float((reference.argmax(1) == candidate.argmax(1)).mean())
        if len(reference)
        else 1.0,
        "images": int(len(reference)),
    }


def check_parity(
    what: str,
    parity: dict[str, Any],
    max_abs_diff: float | None = None,
    min_top1_agreement: float | None = None,
) -> None:
    """Raise a one-line error saying by how much `what` misses a threshold (None: not checked)."""
    if max_abs_diff is not None and parity["max_abs_diff"] > max_abs_diff:
        raise EdgeoptError(
            f"{what}: parity check failed: max |logit diff| {parity['max_abs_diff']:.3g} > {max_abs_diff:.3g} "
            f"(by {parity['max_abs_diff'] - max_abs_diff:.3g})"
        )
    if min_top1_agreement is not None and parity["top1_agreement"] < min_top1_agreement:
        raise EdgeoptError(
            f"{what}: parity check failed: top-1 agreement {parity['top1_agreement']:.4f} < {min_top1_agreement:.4f} "
            f"(short by {min_top1_agreement - parity['top1_agreement']:.4f})"
        )
