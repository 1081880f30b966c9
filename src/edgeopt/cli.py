"""`edgeopt <command>`: one subcommand per stage, each defined next to the stage's code.

A command module exposes `add_arguments(parser)` and `run(args) -> int`. Commands are
imported lazily so `edgeopt --help` stays fast and a stage's heavy imports (torch,
onnxruntime, litert) are paid only by the stage that needs them.
"""

from __future__ import annotations

import argparse
import importlib
import json
import signal
import sys
from typing import Any

from edgeopt.errors import EdgeoptError
from edgeopt.jobguard import guard_job

#: command name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "check-config": ("edgeopt.config", "validate a config file against the schema"),
    "prepare-data": ("edgeopt.data.cli", "read a dataset source and write the uint8 split cache"),
    "train": ("edgeopt.train.cli", "train a baseline model"),
    "bench-train": ("edgeopt.train.bench", "benchmark the training loop against a plain PyTorch loop"),
    "sensitivity": ("edgeopt.prune.sensitivity", "prune each layer group alone at a sweep of ratios, measure accuracy"),
    "latency-table": ("edgeopt.prune.latency_sweep", "measure each prunable group's latency at a sweep of widths on a device"),
    "prune-plan": ("edgeopt.prune.planner", "choose per-layer pruning ratios for a target, write a recipe"),
    "prune": ("edgeopt.prune.apply", "apply a pruning recipe to a trained model and fine-tune it"),
    "train-width": ("edgeopt.prune.width", "train a thinner (width-multiplier) model from scratch"),
    "quantize": ("edgeopt.quantize.cli", "int8 post-training quantization (ORT QDQ, LiteRT) and QAT at 2..8 bits"),
    "convert": ("edgeopt.convert.cli", "convert a model variant to a deployable format and check it against PyTorch"),
    "onnx-model": ("edgeopt.convert.onnx_model", "import, optimize or int8-quantize a model given only as ONNX"),
    "check-device": ("edgeopt.devices.cli", "check devices for everything the planned jobs need there"),
    "device": ("edgeopt.devices.device_cli", "provision a board over SSH (setup NAME) or check it (check)"),
    "bench-model": ("edgeopt.bench.run", "benchmark one deployable model on one device (bench_model rule)"),
    "bench": ("edgeopt.bench.file", "benchmark a model file you bring (.onnx, .tflite) on a device"),
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
    guard_job()
    try:
        return int(importlib.import_module(COMMANDS[args.command][0]).run(args) or 0)
    except EdgeoptError as exc:
        print(f"edgeopt {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # SIGINT, or SIGTERM / the workflow gone (JobStopped)
        signum = getattr(exc, "signum", signal.SIGINT)
        print(f"edgeopt {args.command}: stopped by {signal.Signals(signum).name} (outputs are written "
              "atomically: none is half-written; a training rerun resumes from its last checkpoint)", file=sys.stderr)
        return 128 + signum
