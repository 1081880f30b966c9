"""`edgeopt report`: the make_report rule's command (tables + figures -> results/report/index.html).

With `--all` it also collects the tables and draws every figure first, for use outside Snakemake.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edgeopt.cli import json_arg
from edgeopt.errors import EdgeoptError
from edgeopt.report import html
from edgeopt.report.collect import collect, read_tables, write_tables
from edgeopt.report.figures import FIGURES, draw


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tables", default="results/report", help="folder with results.csv/.parquet etc.")
    p.add_argument("--figures", nargs="*", default=[], help="PNG files named <figure>.png to embed, in order")
    p.add_argument("--params", type=json_arg, default={}, help="the `report` config section as JSON")
    p.add_argument("--out", default="results/report/index.html", help="HTML page to write")
    p.add_argument(
        "--all",
        action="store_true",
        help="first collect tables from --results and draw the figures in `plots`",
    )
    p.add_argument("--results", default="results", help="with --all: the results/ folder to collect from")


def run(args: argparse.Namespace) -> int:
    cfg = args.params or {}
    figures: dict[str, Path] = {}
    if args.all:
        tables = collect(args.results)
        write_tables(tables, args.tables)
        for name in cfg.get("plots", list(FIGURES)):
            figures[name] = draw(name, tables, cfg, Path(args.tables) / "figures" / f"{name}.png")
    for f in filter(None, args.figures):  # an empty list arrives as one '' from the rule
        path = Path(f)
        if not path.is_file():
            raise EdgeoptError(f"{path}: figure not found")
        figures[path.stem] = path
    results = Path(args.tables) / "results.parquet"
    if not results.is_file() and not (Path(args.tables) / "results.csv").is_file():
        raise EdgeoptError(
            f"{results}: results table not found (run `edgeopt report-table` first, or pass --all)"
        )
    html.write(read_tables(args.tables), figures, cfg, args.out)
    print(f"wrote {args.out} ({len(figures)} figures)")
    return 0
