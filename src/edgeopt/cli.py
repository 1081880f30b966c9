"""`edgeopt <command>`: one subcommand per stage, each defined next to the stage's code.

A command module exposes `add_arguments(parser)` and `run(args) -> int`. Commands are
imported lazily so `edgeopt --help` stays fast and a stage's heavy imports (torch,
onnxruntime, litert) are paid only by the stage that needs them.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Any

from edgeopt.errors import EdgeoptError

#: command name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "check-config": ("edgeopt.config", "validate a config file against the schema"),
    "prepare-data": ("edgeopt.data.cli", "read a dataset source and write the uint8 split cache"),
    "train": ("edgeopt.train.cli", "train a baseline model"),
    "bench-train": ("edgeopt.train.bench", "benchmark the training loop against a plain PyTorch loop"),
    "sensitivity": ("edgeopt.prune.sensitivity", "prune each layer group alone at a sweep of ratios, measure accuracy"),
    "prune-plan": ("edgeopt.prune.planner", "choose per-layer pruning ratios for a target, write a recipe"),
    "prune": ("edgeopt.prune.apply", "apply a pruning recipe to a trained model and fine-tune it"),
    "train-width": ("edgeopt.prune.width", "train a thinner (width-multiplier) model from scratch"),
    "quantize": ("edgeopt.quantize.cli", "int8 post-training quantization (ORT QDQ, LiteRT) and QAT at 2..8 bits"),
    "convert": ("edgeopt.convert.cli", "convert a model variant to a deployable format and check it against PyTorch"),
    "check-device": ("edgeopt.devices.cli", "connect to devices and list their Python and runtimes"),
    "bench": ("edgeopt.bench.run", "benchmark one deployable model on one device (bench_model rule)"),
    "retrain": ("edgeopt.retrain.cli", "fine-tune a model on a device and measure the cost"),
    "setup-ort-training": ("edgeopt.retrain.ort_env", "create the separate onnxruntime-training venv"),
    "bench-retrain": ("edgeopt.retrain.bench", "speedup of layer freezing and reduced precision vs fp32 training"),
    "report-table": ("edgeopt.report.table_cli", "gather every metrics file into the results table (CSV, Parquet)"),
    "report-figure": ("edgeopt.report.figure_cli", "draw one report figure from the results tables"),
    "report": ("edgeopt.report.cli", "write the self-contained HTML report (with --all: tables and figures too)"),
}


def json_arg(text: str) -> Any:
    """argparse type for `--params '<json>'` (how rules pass their config section)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgeopt", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if only is None or only == name:
            importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = argv[0] if argv and argv[0] in COMMANDS else None
    parser = build_parser(command)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(importlib.import_module(COMMANDS[args.command][0]).run(args) or 0)
    except EdgeoptError as exc:
        print(f"edgeopt {args.command}: error: {exc}", file=sys.stderr)
        return 2
