"""Width-multiplier baseline: the same architecture, thinner, trained from scratch at matched MACs.

The multiplier is computed, not guessed: bisection over a grid of multipliers for the one whose
MACs (or params, for a params target) come closest to baseline / target reduction, counted on
real model instances. This is the comparison point for pruning (accuracy and training cost).
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path
from typing import Any

import torch

from edgeopt.cli import json_arg
from edgeopt.errors import EdgeoptError
from edgeopt.jobguard import output_lock
from edgeopt.models.registry import declared_capabilities
from edgeopt.prune.width_cache import GRID, cached_match_width, variant_name  # noqa: F401 (re-exported)
from edgeopt.records import ModelMetrics, read_record, write_record


@functools.lru_cache(maxsize=256)
def _cost(model: str, mult: float, metric: str, image_size: int, in_channels: int, num_classes: int) -> int:
    import torch_pruning as tp

    from edgeopt.models import create_model

    m = create_model(model, num_classes, in_channels, mult).eval()
    with torch.no_grad():
        macs, params = tp.utils.count_ops_and_params(m, torch.zeros(1, in_channels, image_size, image_size))
    return int(macs if metric == "macs" else params)


def match_width(
    model: str, reduction: float, metric: str = "macs", image_size: int = 32, in_channels: int = 3,
    num_classes: int = 10,
) -> float:
    """The grid multiplier whose `metric` is closest to the full-width model's divided by `reduction`."""
    if not declared_capabilities(model).width:
        raise EdgeoptError(f"prune.width: model {model!r} has no width multiplier")
    if reduction < 1:
        raise EdgeoptError(f"prune.width: reduction must be >= 1, got {reduction}")
    cost = functools.partial(_cost, model, metric=metric, image_size=image_size, in_channels=in_channels,
                             num_classes=num_classes)
    target = cost(1.0) / reduction
    lo, hi = 0, len(GRID) - 1  # largest index with cost <= target, by bisection (cost grows with width)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if cost(GRID[mid]) <= target:
            lo = mid
        else:
            hi = mid - 1
    options = [GRID[lo]] + ([GRID[lo + 1]] if lo + 1 < len(GRID) else [])
    return min(options, key=lambda m: abs(cost(m) - target))


def train_width(
    model_name: str, mult: float, data_dir: str, out_model: str, out_metrics: str, train_cfg: dict[str, Any],
    pruned_metrics: str | None = None, checkpoint: str | None = None,
) -> dict[str, Any]:
    """Train `model_name` at `mult` from scratch (the baseline trainer) and record how it matches the pruned one."""
    from edgeopt.train.baseline import train_baseline

    variant = variant_name(mult)
    trained = train_baseline(model_name, data_dir, out_model, out_metrics, train_cfg, {"width_mult": mult},
                             checkpoint, variant=variant)  # fmt: skip
    m = ModelMetrics.from_json(trained, out_metrics)
    m.stage = "train_width"
    m.extra["width_mult"] = mult
    if pruned_metrics and Path(pruned_metrics).exists():
        p = read_record(pruned_metrics, ModelMetrics)
        m.extra.update(
            matched_variant=p.variant, matched_macs=p.macs, macs_vs_matched=m.macs / max(p.macs or 1, 1),
            matched_accuracy=p.accuracy, matched_finetune_seconds=p.extra.get("finetune_seconds"),
        )  # fmt: skip
    return write_record(out_metrics, m)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="registry name")
    p.add_argument("--width-mult", type=float, required=True, help="width multiplier (from plan.width_mult)")
    p.add_argument("--data", required=True)
    p.add_argument("--params", type=json_arg, required=True, help="the `train` config section as JSON")
    p.add_argument("--pruned-metrics", help="metrics.json of the pruned variant it is compared with")
    p.add_argument("--out-model", required=True)
    p.add_argument("--out-metrics", required=True)
    p.add_argument("--checkpoint", help="per-epoch checkpoint; an existing matching one is resumed")
    p.add_argument("--threads", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    with output_lock(Path(args.out_model).parent):
        m = train_width(args.model, args.width_mult, args.data, args.out_model, args.out_metrics, args.params,
                        args.pruned_metrics, args.checkpoint)
    print(f"{args.model} x{args.width_mult:g}: accuracy {m['accuracy']:.4f}, {m['macs']} MACs, "
          f"{m['train_seconds']:.1f}s training")
    return 0
