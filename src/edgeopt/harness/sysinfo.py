"""What machine a measurement ran on: OS, CPU, GPU, memory, Jetson model and power mode.

Device-side (Python 3 + stdlib only). `python -m edgeopt.harness.sysinfo [--out FILE]` prints it as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any


def _read(path: str | Path) -> str | None:
    try:
        return Path(path).read_text(errors="replace").strip("\x00\n ")
    except OSError:
        return None


def cpu_info(cpuinfo: str | None = None) -> dict[str, Any]:
    """CPU model (x86 `model name`, ARM `Model`/`CPU part`), logical cores, frequency governor."""
    text = cpuinfo if cpuinfo is not None else (_read("/proc/cpuinfo") or "")
    model = None
    for key in ("model name", "Model", "Hardware", "cpu model"):
        m = re.search(rf"^{key}\s*:\s*(.+)$", text, re.M)
        if m:
            model = m.group(1).strip()
            break
    if model is None:
        parts = sorted(set(re.findall(r"^CPU part\s*:\s*(\S+)$", text, re.M)))
        model = f"ARM CPU part {','.join(parts)}" if parts else platform.processor() or platform.machine()
    return {
        "model": model,
        "logical_cores": os.cpu_count(),
        "governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "max_freq_khz": _int(_read("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")),
    }


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The x86 `flags` (ARM `Features`) of the first CPU: which SIMD kernels (VNNI, dot product) it has."""
    text = cpuinfo if cpuinfo is not None else (_read("/proc/cpuinfo") or "")
    m = re.search(r"^(?:flags|Features)\s*:\s*(.*)$", text, re.M)
    return set(m.group(1).split()) if m else set()


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def memory_bytes() -> int | None:
    m = re.search(r"^MemTotal:\s+(\d+) kB", _read("/proc/meminfo") or "", re.M)
    return int(m.group(1)) * 1024 if m else None


def os_info() -> dict[str, Any]:
    release = _read("/etc/os-release") or ""
    m = re.search(r'^PRETTY_NAME="?([^"\n]+)"?', release, re.M)
    return {
        "system": platform.system(),
        "distribution": m.group(1) if m else None,
        "kernel": platform.release(),
        "machine": platform.machine(),
    }


def board_model() -> str | None:
    """Device-tree model (`NVIDIA Jetson Orin Nano ...`, `Raspberry Pi 5 Model B ...`), None on PCs."""
    return _read("/proc/device-tree/model") or _read("/sys/firmware/devicetree/base/model")


def is_jetson() -> bool:
    return Path("/etc/nv_tegra_release").exists() or "jetson" in (board_model() or "").lower()


def gpu_info() -> list[dict[str, Any]]:
    """NVIDIA GPUs from nvidia-smi; on a Jetson the integrated GPU from the device tree."""
    gpus: list[dict[str, Any]] = []
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=20,
            ).stdout
            for line in out.strip().splitlines():
                name, mem, driver = [p.strip() for p in line.split(",")[:3]]
                gpus.append({"name": name, "memory": mem, "driver": driver})
        except (OSError, subprocess.SubprocessError, ValueError):
            pass
    if not gpus and is_jetson():
        gpus.append(
            {"name": f"{board_model() or 'Jetson'} integrated GPU", "l4t": _read("/etc/nv_tegra_release")}
        )
    return gpus


def parse_nvpmodel_query(text: str) -> dict[str, Any]:
    """`nvpmodel -q` output -> {'name': 'MAXN', 'mode': 0}.

    JetPack prints e.g. `NV Power Mode: MAXN\\n0` (older) or `NV Power Mode: 15W\\n1`.
    """
    name = re.search(r"NV Power Mode:\s*(.+)", text)
    mode = re.search(r"^\s*(\d+)\s*$", text, re.M)
    return {"name": name.group(1).strip() if name else None, "mode": int(mode.group(1)) if mode else None}


def nvpmodel_query() -> dict[str, Any] | None:
    """The Jetson power mode now, or None where there is no nvpmodel."""
    exe = shutil.which("nvpmodel")
    if not exe:
        return None
    try:
        proc = subprocess.run([exe, "-q"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError) as exc:
        return {"error": str(exc)}
    return parse_nvpmodel_query(proc.stdout + proc.stderr)


def nvpmodel_set(mode: int) -> dict[str, Any]:
    """Switch the Jetson power mode (needs root or passwordless `sudo nvpmodel`); return the new state."""
    exe = shutil.which("nvpmodel")
    if not exe:
        raise RuntimeError("nvpmodel requested but this device has no nvpmodel (not a Jetson?)")
    current = nvpmodel_query() or {}
    if current.get("mode") == mode:
        return current
    argv = [exe, "-m", str(int(mode))]
    if os.geteuid() != 0:
        argv = ["sudo", "-n", *argv]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, input="NO\n")
    if proc.returncode != 0:
        raise RuntimeError(
            f"nvpmodel -m {mode} failed (exit {proc.returncode}): "
            f"{(proc.stderr or proc.stdout).strip().splitlines()[-1:] or ['no output']}"
            " (allow it with a sudoers rule for nvpmodel)"
        )
    return nvpmodel_query() or {"mode": mode}


def system_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "os": os_info(),
        "board": board_model(),
        "cpu": cpu_info(),
        "memory_bytes": memory_bytes(),
        "gpu": gpu_info(),
        "python": sys.version.split()[0],
        "hostname": platform.node(),
    }
    try:
        import numpy

        info["numpy"] = numpy.__version__
    except ImportError:
        info["numpy"] = None
    if is_jetson():
        info["jetson"] = {"l4t": _read("/etc/nv_tegra_release"), "nvpmodel": nvpmodel_query()}
    return info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", help="write the JSON here instead of stdout")
    args = p.parse_args(argv)
    text = json.dumps({"system": system_info(), "modules": sorted(sys.modules)}, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
