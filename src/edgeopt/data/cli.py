"""`edgeopt prepare-data`: the prepare_data rule's command."""

from __future__ import annotations

import argparse

from edgeopt.cli import json_arg
from edgeopt.data.prepare import prepare


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", type=json_arg, required=True, help="the `dataset` config section as JSON")
    p.add_argument("--out", required=True, help="output folder (results/data/<name>)")


def run(args: argparse.Namespace) -> int:
    meta = prepare(args.params, args.out)
    print(f"prepared {meta['name']}: {meta['counts']} images, {meta['num_classes']} classes")
    return 0
