"""Provenance block stored in every metrics file: which config, code, packages and machine made it."""

from __future__ import annotations

import importlib.metadata
import platform
import socket
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edgeopt.harness.sysinfo import cpu_info

TRACKED_PACKAGES = (
    "edgeopt",
    "torch",
    "torchvision",
    "torch-pruning",
    "torchao",
    "onnx",
    "onnxruntime",
    "ai-edge-litert",
    "litert-torch",
    "numpy",
    "snakemake",
)


def git_commit(cwd: str | Path | None = None) -> str | None:
    """The commit of the working tree (with `-dirty` when it has local changes), or None outside git."""
    here = Path(cwd) if cwd else Path(__file__).resolve().parent
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return rev + ("-dirty" if dirty else "")


def package_versions(names: tuple[str, ...] = TRACKED_PACKAGES) -> dict[str, str | None]:
    """Installed versions of the packages whose behaviour the numbers depend on."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def device_info(torch_device: str | None = None) -> dict[str, Any]:
    """The machine the numbers were produced on."""
    info: dict[str, Any] = {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": cpu_info()["model"],
        "python": sys.version.split()[0],
    }
    if torch_device is not None:
        info["torch_device"] = torch_device
        if torch_device.startswith("cuda"):
            import torch

            info["gpu"] = torch.cuda.get_device_name(torch.device(torch_device))
    return info


def device_side(system: dict[str, Any], device: str) -> dict[str, Any]:
    """Where a measurement made on a device ran, from the `sysinfo.system_info()` the device reported.

    The `device` block describes the machine that ran the workflow; this one names the board's own
    machine, CPU and Python, with the keys retraining's device scripts report (`host_info`).
    """
    os_info, cpu = system.get("os") or {}, system.get("cpu") or {}
    return {
        "device": device,
        "hostname": system.get("hostname"),
        "machine": os_info.get("machine"),
        "distribution": os_info.get("distribution"),
        "processor": cpu.get("model"),
        "cpu_count": cpu.get("logical_cores"),
        "python": system.get("python"),
    }


def provenance(config: dict[str, Any] | None = None, torch_device: str | None = None) -> dict[str, Any]:
    """The full provenance block: config used, git commit, package versions, device, time."""
    return {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": config,
        "git_commit": git_commit(),
        "packages": package_versions(),
        "device": device_info(torch_device),
        "argv": sys.argv,
    }
