"""`edgeopt report-table`: the collect_results rule's command (metrics files -> CSV + Parquet tables)."""

from __future__ import annotations

import argparse

from edgeopt.cli import json_arg
from edgeopt.report.collect import collect, write_tables


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--results", default="results", help="the results/ folder the stages wrote")
    p.add_argument(
        "--inputs",
        nargs="*",
        help="targets to report on (the rule's inputs); default: every file under --results",
    )
    p.add_argument("--params", type=json_arg, default={}, help="the `report` config section as JSON")
    p.add_argument(
        "--out", default="results/report", help="folder for results.csv/.parquet and the other tables"
    )


def run(args: argparse.Namespace) -> int:
    tables = collect(args.results, args.inputs)
    write_tables(tables, args.out)
    sizes = ", ".join(f"{k}: {len(v)} rows" for k, v in tables.items())
    print(f"wrote tables to {args.out} ({sizes})")
    return 0
