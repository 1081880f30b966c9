"""`edgeopt train`: the train_baseline rule's command."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from edgeopt.cli import json_arg
from edgeopt.jobguard import output_lock
from edgeopt.train.baseline import train_baseline


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="registry name, e.g. resnet20")
    p.add_argument("--data", required=True, help="dataset cache folder (results/data/<name>)")
    p.add_argument("--params", type=json_arg, required=True, help="the `train` config section as JSON")
    p.add_argument("--model-params", type=json_arg, default={}, help="per-model options (width_mult) as JSON")
    p.add_argument("--out-model", required=True)
    p.add_argument("--out-metrics", required=True)
    p.add_argument("--checkpoint", help="per-epoch checkpoint; an existing matching one is resumed")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default)")


def run(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    with output_lock(Path(args.out_model).parent):
        m = train_baseline(
            args.model,
            args.data,
            args.out_model,
            args.out_metrics,
            args.params,
            args.model_params,
            args.checkpoint,
        )
    print(f"{args.model}: test accuracy {m['accuracy']:.4f}, {m['train_images_per_second']:.0f} img/s")
    return 0
