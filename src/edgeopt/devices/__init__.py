"""Devices: where models are benchmarked (and retrained): this machine, or boards over SSH.

API (for the bench stage and on-device retraining)::

    from edgeopt.devices import get_device, load_devices, File, Output

    devices = load_devices(config)          # full config -> {name: Device}; `local` always there
    dev = get_device(config, "jetson")      # one device (EdgeoptError naming the key if unknown)
    dev = device_from_json(name, settings)  # from a rule's --device JSON (plan.device_json)

    res = dev.run_module(
        "edgeopt.harness.bench",            # python -m <module> on the device
        ["--model", File("results/deploy/m/v/ort-fp32.onnx"),   # sent once (content-hashed store)
         "--out", Output("result.json")],   # path in a fresh run folder on the device
        packages=("edgeopt.harness",),      # edgeopt subpackages shipped (+ edgeopt/__init__.py only)
        fetch_to="some/local/dir",          # Output files land in fetch_to/<name>
        timeout=600,                        # seconds (default: the device's `timeout`)
    )
    res.returncode, res.stdout, res.stderr, res.outputs["result.json"], res.sent, res.seconds

    dev.run(["nvpmodel", "-q"], timeout=30, check=True)   # argv run on the device -> CompletedProcess
    dev.put([path, ...]) -> {local: device_path}          # only missing files are sent (dev.last_sent)
    dev.ship_code(packages) -> device PYTHONPATH entry
    dev.fetch(device_path, local_path)                    # one file back (atomic); local: a copy
    dev.close()                                           # end the multiplexed ssh connection (also at exit)
    dev.check() -> {"python", "machine", "platform", "runtimes": {...}, "missing_runtimes": [...]}
    dev.config                                            # DeviceConfig: runtimes, threads, power, ...
    dev.python                                            # the device's interpreter

Errors are `DeviceError` subclasses of `EdgeoptError` (one line naming the device):
`HostKeyError` (never retried), `UnreachableError` (retried `retries` times),
`DeviceTimeout` (the command's process group on the device is ended too),
`ConnectionLost` (the board dropped mid-command), `RemoteCommandError` (`.returncode`, `.stdout`, `.stderr`).

Only the shipped packages exist on the device: a module run there must import nothing of
edgeopt outside them (and so no torch unless the device has it and you import it yourself).
The local device runs the same way (private copy of the code, subprocess with `dev.python`)
and uses files where they are. Remote commands start in the remote home folder (relative
`workdir`/`python` settings are relative to it); local ones in the caller's folder.
`run_module(..., check=False)` returns failures instead of raising; `env={...}` adds variables.

Tests: `tests/device_fixtures.py` (a pytest plugin) gives `sshd_server` (a real sshd on 127.0.0.1;
`.device_settings(**overrides)`), `device_python` (runtime-only venv) and `ssh_device_settings`.
"""

from __future__ import annotations

import json
from typing import Any

from edgeopt.devices.config import DeviceConfig, device_configs, device_from_settings
from edgeopt.devices.transport import (
    ConnectionLost,
    Device,
    DeviceError,
    DeviceTimeout,
    File,
    HostKeyError,
    LocalDevice,
    Output,
    RemoteCommandError,
    RunResult,
    SshDevice,
    UnreachableError,
)
from edgeopt.errors import EdgeoptError

__all__ = [
    "ConnectionLost",
    "Device",
    "DeviceConfig",
    "DeviceError",
    "DeviceTimeout",
    "File",
    "HostKeyError",
    "LocalDevice",
    "Output",
    "RemoteCommandError",
    "RunResult",
    "SshDevice",
    "UnreachableError",
    "device_from_json",
    "get_device",
    "load_devices",
    "make_device",
]


def make_device(cfg: DeviceConfig) -> Device:
    return LocalDevice(cfg) if cfg.is_local else SshDevice(cfg)


def load_devices(config: dict[str, Any]) -> dict[str, Device]:
    """Every enabled device of a full config (`local` always included)."""
    return {name: make_device(cfg) for name, cfg in device_configs(config).items()}


def get_device(config: dict[str, Any], name: str) -> Device:
    devices = device_configs(config)
    if name not in devices:
        raise EdgeoptError(
            f"config: devices.{name}: no such (enabled) device (known: {', '.join(sorted(devices))})"
        )
    return make_device(devices[name])


def device_from_json(name: str, settings: str | dict[str, Any]) -> Device:
    """A device from its settings as a rule passes them (`--device-params '<json>'`)."""
    if isinstance(settings, str):
        settings = json.loads(settings)
    return make_device(device_from_settings(name, settings))
