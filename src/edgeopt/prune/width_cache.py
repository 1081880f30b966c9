"""Planning-time pieces of the width baseline that must not import torch.

Snakemake plans the DAG on every start (a no-op rerun included), so naming the `width<mult>` variant and
looking the matched multiplier up in its cache stay torch-free; only a cache miss builds models.
"""

from __future__ import annotations

import json
from pathlib import Path

from edgeopt.atomic import write_json

#: multipliers searched by `edgeopt.prune.width.match_width`
GRID = [round(0.1 + 0.025 * i, 3) for i in range(37)]  # 0.1 .. 1.0


def variant_name(mult: float) -> str:
    return f"width{mult:g}"


def cached_match_width(
    cache: str | Path, model: str, reduction: float, metric: str = "macs", image_size: int = 32,
    in_channels: int = 3,
) -> float:
    """`match_width` memoised in a small JSON file, so planning the DAG does not rebuild models every run."""
    key = f"{model}|{reduction:g}|{metric}|{image_size}|{in_channels}|{GRID[0]}-{GRID[-1]}/{len(GRID)}"
    path = Path(cache)
    try:
        known = json.loads(path.read_text()) if path.exists() else {}
    except (OSError, ValueError):
        known = {}
    if key not in known:
        from edgeopt.prune.width import match_width  # imports torch: only on a cache miss

        known[key] = match_width(model, reduction, metric, image_size, in_channels)
        try:
            write_json(path, known)
        except OSError:
            pass
    return float(known[key])
