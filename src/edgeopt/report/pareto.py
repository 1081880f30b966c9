"""Pareto front of (cost, quality) points: the variants no other variant beats on both axes."""

from __future__ import annotations

import math
from collections.abc import Sequence


def pareto_mask(cost: Sequence[float], quality: Sequence[float]) -> list[bool]:
    """True for points not dominated: no other point is at most as costly and strictly better, or
    strictly cheaper and at least as good. Points with a missing (NaN) value are never on the front."""
    if len(cost) != len(quality):
        raise ValueError("cost and quality must have the same length")
    idx = [
        i
        for i in range(len(cost))
        if cost[i] is not None
        and quality[i] is not None
        and not math.isnan(cost[i])
        and not math.isnan(quality[i])
    ]
    # cheapest first; among equal cost, best quality first
    idx.sort(key=lambda i: (cost[i], -quality[i]))
    mask = [False] * len(cost)
    best = -math.inf
    for i in idx:
        if quality[i] > best:
            mask[i] = True
            best = quality[i]
    return mask
