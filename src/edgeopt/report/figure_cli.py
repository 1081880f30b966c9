"""`edgeopt report-figure`: the plot_* rules' command (tables -> one PNG)."""

from __future__ import annotations

import argparse

from edgeopt.cli import json_arg
from edgeopt.report.collect import read_tables
from edgeopt.report.figures import FIGURES, draw


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--figure", required=True, choices=sorted(FIGURES), help="which figure")
    p.add_argument("--tables", default="results/report", help="folder written by `edgeopt report-table`")
    p.add_argument("--params", type=json_arg, default={}, help="the `report` config section as JSON")
    p.add_argument("--out", required=True, help="PNG to write")


def run(args: argparse.Namespace) -> int:
    draw(args.figure, read_tables(args.tables), args.params, args.out)
    print(f"wrote {args.out}")
    return 0
