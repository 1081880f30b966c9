"""`edgeopt device setup NAME`: provision a board over SSH for the jobs the config plans on it.

Makes a venv in the device's workdir from its envs/device-*.txt (chosen by what the board is:
a Jetson, another aarch64 board, an x86 box; or `--requirements FILE`), adds torch where the
board retrains with PyTorch and an onnxruntime-training venv (envs/ort-training.txt) where it
retrains with ONNX Runtime, then checks the board with those interpreters (`needs.missing`).
Idempotent: a venv built from the same requirements is kept (a stamp holds their hash).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from edgeopt import plan
from edgeopt.devices.transport import Device, SshDevice
from edgeopt.errors import EdgeoptError

ENVS = Path(__file__).resolve().parents[3] / "envs"
ORT_TRAINING_REQUIREMENTS = ENVS / "ort-training.txt"

#: remote script: (re)make a venv from a requirements file unless its stamp matches
_MAKE_VENV = r"""
set -eu
base=$1; venv=$2; req=$3; stamp=$4; site=$5; shift 5
if [ -f "$venv/.edgeopt-stamp" ] && [ "$(cat "$venv/.edgeopt-stamp")" = "$stamp" ] \
   && "$venv/bin/python" -c 'import sys' 2>/dev/null; then
  echo "up to date: $venv"; exit 0
fi
rm -rf "$venv"
mkdir -p "$(dirname "$venv")"
if [ "$site" = yes ]; then "$base" -m venv --system-site-packages "$venv"; else "$base" -m venv "$venv"; fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req" "$@"
echo "$stamp" > "$venv/.edgeopt-stamp"
echo "made: $venv"
"""

_FACTS = (
    "import json, os, platform, sys; print(json.dumps({'machine': platform.machine(),"
    " 'python': sys.version.split()[0], 'jetson': os.path.exists('/etc/nv_tegra_release')}))"
)


def board_kind(facts: dict[str, Any]) -> str:
    """Which envs/device-<kind>.txt fits a board: jetson, x86 or rpi (any other aarch64 board)."""
    if facts.get("jetson"):
        return "jetson"
    machine = str(facts.get("machine", "")).lower()
    if machine in ("x86_64", "amd64"):
        return "x86"
    if machine in ("aarch64", "arm64"):
        return "rpi"
    raise EdgeoptError(f"device setup: no envs/device-*.txt for a {machine or 'unknown'} board; use --requirements")


def _stamp(req: Path, extra: list[str]) -> str:
    return hashlib.sha256(req.read_bytes() + json.dumps(extra).encode()).hexdigest()[:32]


def make_venv(
    device: Device, base: str, venv: str, req: Path, extra: list[str], system_site: bool, timeout: float
) -> str:
    """Make `venv` on the device from `req` (+ `extra` packages); returns what pip's wrapper said."""
    remote_req = device.put([req])[str(req)]
    argv = ["sh", "-c", _MAKE_VENV, "sh", base, venv, remote_req, _stamp(req, extra), "yes" if system_site else "no"]
    proc = device.run([*argv, *extra], timeout=timeout)
    return proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else f"made: {venv}"


def retrain_frameworks(config: dict[str, Any], name: str) -> set[str]:
    return {job[2] for job in plan.retrain_jobs(config) if job[0] == name}


def setup_device(
    config: dict[str, Any],
    device: Device,
    requirements: Path | None = None,
    base_python: str = "python3",
    with_torch: bool = True,
    timeout: float = 3600,
    say: Any = print,
) -> tuple[dict[str, Any], list[str]]:
    """Provision `device`; returns (the config with its interpreters set, the check's missing lines)."""
    if not isinstance(device, SshDevice):
        raise EdgeoptError(f"device setup: {device.name} runs on this machine (no SSH): nothing to provision")
    facts = json.loads(device.run([base_python, "-c", _FACTS], timeout=120).stdout.strip().splitlines()[-1])
    kind = board_kind(facts)
    req = Path(requirements) if requirements else ENVS / f"device-{kind}.txt"
    if not req.is_file():
        raise EdgeoptError(f"device setup: {req}: requirements file not found")
    say(f"{device.name}: {facts['machine']}, python {facts['python']}{' (Jetson)' if facts['jetson'] else ''}; using {req.name}")
    frameworks = retrain_frameworks(config, device.name)
    extra: list[str] = []
    if "pytorch" in frameworks and with_torch and kind != "jetson" and "torch" not in req.read_text():
        extra.append("torch")  # a Jetson needs NVIDIA's JetPack wheel: check-device says so if it is absent
    venv = f"{device.workdir}/venv"
    say(f"{device.name}: {make_venv(device, base_python, venv, req, extra, kind == 'jetson', timeout)}")
    settings = dict((config.get("devices") or {}).get(device.name) or {})
    settings["python"] = f"{venv}/bin/python"
    retrain = dict(config.get("retrain") or {})
    device_python = {k: dict(v or {}) for k, v in (retrain.get("device_python") or {}).items()}
    if "onnxruntime" in frameworks and not device_python.get(device.name, {}).get("onnxruntime"):
        ort_venv = f"{device.workdir}/venv-ort-training"
        say(f"{device.name}: {make_venv(device, base_python, ort_venv, ORT_TRAINING_REQUIREMENTS, [], False, timeout)}")
        device_python.setdefault(device.name, {})["onnxruntime"] = f"{ort_venv}/bin/python"
    retrain["device_python"] = device_python
    new_config = {**config, "devices": {**(config.get("devices") or {}), device.name: settings}, "retrain": retrain}
    from edgeopt.devices import needs

    checked = replace(device.config, python=settings["python"])
    return new_config, needs.missing(new_config, SshDevice(checked))


def config_snippet(config: dict[str, Any], name: str) -> str:
    """The lines to put in the user's device file so the workflow uses what setup made."""
    import yaml

    out: dict[str, Any] = {"devices": {name: {"python": config["devices"][name]["python"]}}}
    dp = ((config.get("retrain") or {}).get("device_python") or {}).get(name)
    if dp:
        out["retrain"] = {"device_python": {name: dp}}
    return yaml.safe_dump(out, sort_keys=False)
