"""`edgeopt check-device` and `edgeopt device setup|check`: provision boards and check them for the planned jobs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from edgeopt.config import check_config, deep_merge
from edgeopt.devices import Device, DeviceError, load_devices
from edgeopt.errors import EdgeoptError


def load_merged_config(files: list[str]) -> dict[str, Any]:
    """Merge config files like `snakemake --configfile a.yaml b.yaml` does, then validate."""
    merged: dict[str, Any] = {}
    for f in files:
        path = Path(f)
        if not path.exists():
            raise EdgeoptError(f"{path}: config file not found")
        merged = deep_merge(merged, yaml.safe_load(path.read_text()) or {})
    return check_config(merged)


def _config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--configfile",
        "--config",
        dest="configfile",
        action="append",
        help="a config file; repeat to merge several, later override earlier (default: config.yaml)",
    )


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("devices", nargs="*", help="device names (default: every enabled device)")
    _config_args(p)


def _devices(config: dict[str, Any], names: list[str]) -> dict[str, Device]:
    devices = load_devices(config)
    for n in names:
        if n not in devices:
            raise EdgeoptError(f"config: devices.{n}: no such (enabled) device (known: {', '.join(devices)})")
    return {n: devices[n] for n in names or list(devices)}


def check(config: dict[str, Any], dev: Device) -> int:
    """Print the device's Python and runtimes, then one line per piece a planned job misses; 1 if any."""
    from edgeopt.devices import needs

    n = dev.name
    try:
        info = dev.check()
        problems = needs.missing(config, dev)
    except DeviceError as exc:
        print(f"{n}: error: {exc}", file=sys.stderr)
        return 1
    found = ", ".join(f"{k} {v}" for k, v in info["runtimes"].items() if v)
    print(f"{n}: python {info['python']} on {info['machine']} ({info['platform']}); found: {found}")
    status = 0
    missing_runtimes = needs.missing_runtimes(config, dev, info)
    if missing_runtimes:
        print(f"{n}: missing runtimes: {', '.join(missing_runtimes)} (configured but not importable)")
        status = 1
    for line in problems:
        print(f"{n}: {line}")
        status = 1
    if status == 0:
        print(f"{n}: ready for every planned job")
    return status


def run(args: argparse.Namespace) -> int:
    config = load_merged_config(args.configfile or ["config.yaml"])
    return max([check(config, dev) for dev in _devices(config, args.devices).values()], default=0)


# ---------------------------------------------------------------- `edgeopt device setup|check`
def add_device_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True)
    s = sub.add_parser("setup", help="make the board's venv over SSH, then check it for the planned jobs")
    s.add_argument("name", help="device name (a key of `devices`)")
    _config_args(s)
    s.add_argument("--requirements", help="requirements file (default: envs/device-<jetson|rpi|x86>.txt by board)")
    s.add_argument("--base-python", default="python3", help="the board's python that makes the venv")
    s.add_argument("--no-torch", action="store_true", help="do not install torch even if the board retrains")
    s.add_argument("--timeout", type=float, default=3600, help="seconds for each venv (pip can be slow)")
    c = sub.add_parser("check", help="the same as `edgeopt check-device`")
    c.add_argument("devices", nargs="*")
    _config_args(c)


def run_device(args: argparse.Namespace) -> int:
    if args.action == "check":
        return run(args)
    from edgeopt.devices.setup import config_snippet, setup_device

    config = load_merged_config(args.configfile or ["config.yaml"])
    dev = _devices(config, [args.name])[args.name]
    new_config = setup_device(config, dev, args.requirements, args.base_python, not args.no_torch, args.timeout)
    print(f"{args.name}: add to your device file:\n{config_snippet(new_config, args.name)}", end="")
    return check(new_config, _devices(new_config, [args.name])[args.name])
