"""`edgeopt check-device`: connect to devices and report their Python and runtimes."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from edgeopt.config import check_config, deep_merge
from edgeopt.devices import DeviceError, load_devices
from edgeopt.errors import EdgeoptError


def load_merged_config(files: list[str]) -> dict[str, Any]:
    """Merge config files like `snakemake --configfile` does, then validate."""
    merged: dict[str, Any] = {}
    for f in files:
        path = Path(f)
        if not path.exists():
            raise EdgeoptError(f"{path}: config file not found")
        merged = deep_merge(merged, yaml.safe_load(path.read_text()) or {})
    return check_config(merged)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("devices", nargs="*", help="device names (default: every enabled device)")
    p.add_argument(
        "--configfile", action="append", help="config files, later override earlier (default: config.yaml)"
    )


def run(args: argparse.Namespace) -> int:
    config = load_merged_config(args.configfile or ["config.yaml"])
    devices = load_devices(config)
    names = args.devices or list(devices)
    for n in names:
        if n not in devices:
            raise EdgeoptError(f"config: devices.{n}: no such (enabled) device (known: {', '.join(devices)})")
    status = 0
    for n in names:
        dev = devices[n]
        try:
            info = dev.check()
        except DeviceError as exc:
            print(f"{n}: error: {exc}", file=sys.stderr)
            status = 1
            continue
        found = ", ".join(f"{k} {v}" for k, v in info["runtimes"].items() if v)
        print(f"{n}: python {info['python']} on {info['machine']} ({info['platform']}); found: {found}")
        if info["missing_runtimes"]:
            print(
                f"{n}: missing runtimes: {', '.join(info['missing_runtimes'])} (configured but not importable)"
            )
            status = 1
    return status
