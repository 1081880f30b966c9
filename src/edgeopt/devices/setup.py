"""`edgeopt device setup NAME`: provision a board over SSH for the jobs the config plans on it.

Makes a venv in the device's workdir from its envs/device-*.txt (chosen by what the board is:
a Jetson, another aarch64 board, an x86 box; or `--requirements FILE`), adds torch where the
board retrains with PyTorch (envs/device-<kind>-torch.txt where one pins a wheel that fits the
board) and an onnxruntime-training venv (the package's retrain/ort-training.txt) where it
retrains with ONNX Runtime, unless `retrain.device_python` already names the interpreter for
that framework. The caller then checks the board as `check-device` does, with those interpreters.
Idempotent: a venv built from the same requirements is kept (a stamp holds their hash), so a
second setup costs one SSH round trip per venv plus the check.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from edgeopt.devices.needs import retrain_frameworks
from edgeopt.devices.transport import Device, SshDevice
from edgeopt.errors import EdgeoptError
from edgeopt.retrain.ort_env import REQUIREMENTS as ORT_TRAINING_REQUIREMENTS

#: the device requirement lists (package data; a checkout's envs/device-*.txt link here)
ENVS = Path(__file__).resolve().parent / "requirements"

#: remote script: (re)make a venv from a requirements file unless its stamp matches
_MAKE_VENV = r"""
set -eu
base=$1; venv=$2; stamp=$3; site=$4; shift 4
if [ -f "$venv/.edgeopt-stamp" ] && [ "$(cat "$venv/.edgeopt-stamp")" = "$stamp" ] \
   && "$venv/bin/python" -c 'import sys' 2>/dev/null; then
  echo "up to date: $venv"; exit 0
fi
rm -rf "$venv"
mkdir -p "$(dirname "$venv")"
if [ "$site" = yes ]; then "$base" -m venv --system-site-packages "$venv"; else "$base" -m venv "$venv"; fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check "$@"
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


def requirement_names(path: Path) -> set[str]:
    """The (normalised) project names a requirements file asks for; comments and options left out."""
    names = set()
    for line in path.read_text().splitlines():
        m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line.split("#", 1)[0])
        if m:
            names.add(re.sub(r"[-_.]+", "-", m.group(1)).lower())
    return names


def torch_requirements(kind: str, req: Path) -> list[Path | str]:
    """What the venv of a board of `kind` made from `req` adds for PyTorch retraining: nothing where
    `req` has torch or on a Jetson (NVIDIA's JetPack wheel; check-device says when it is absent),
    envs/device-<kind>-torch.txt where that file pins a wheel fit for the board, else `torch`."""
    if kind == "jetson" or "torch" in requirement_names(req):
        return []
    pinned = ENVS / f"device-{kind}-torch.txt"
    return [pinned] if pinned.is_file() else ["torch"]


def make_venv(
    device: Device, base: str, venv: str, wants: list[Path | str], system_site: bool, timeout: float
) -> str:
    """Make `venv` on the device with what `wants` lists: requirements files (sent along) and package
    names; returns what the remote script said (`made: VENV` or `up to date: VENV`)."""
    files = [w for w in wants if isinstance(w, Path)]
    remote = device.put(files)
    pip_args: list[str] = []
    digest = hashlib.sha256()
    for w in wants:
        if isinstance(w, Path):
            pip_args += ["-r", remote[str(w)]]
            digest.update(w.read_bytes())
        else:
            pip_args.append(w)
            digest.update(json.dumps(w).encode())
    argv = ["sh", "-c", _MAKE_VENV, "sh", base, venv, digest.hexdigest()[:32], "yes" if system_site else "no"]
    proc = device.run([*argv, *pip_args], timeout=timeout)
    return proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else f"made: {venv}"


def setup_device(
    config: dict[str, Any],
    device: Device,
    requirements: Path | None = None,
    base_python: str = "python3",
    with_torch: bool = True,
    timeout: float = 3600,
    say: Any = print,
) -> dict[str, Any]:
    """Provision `device`; returns the config with the interpreters it made set."""
    if not isinstance(device, SshDevice):
        raise EdgeoptError(f"device setup: {device.name} runs on this machine (no SSH): nothing to provision")
    facts = json.loads(device.run([base_python, "-c", _FACTS], timeout=120).stdout.strip().splitlines()[-1])
    kind = board_kind(facts)
    req = Path(requirements) if requirements else ENVS / f"device-{kind}.txt"
    if not req.is_file():
        raise EdgeoptError(f"device setup: {req}: requirements file not found")
    say(f"{device.name}: {facts['machine']}, python {facts['python']}{' (Jetson)' if facts['jetson'] else ''}; using {req.name}")
    frameworks = retrain_frameworks(config, device.name)
    retrain = dict(config.get("retrain") or {})
    device_python = {k: dict(v or {}) for k, v in (retrain.get("device_python") or {}).items()}
    own = device_python.get(device.name, {})
    wants: list[Path | str] = [req]
    if "pytorch" in frameworks and with_torch and not own.get("pytorch"):
        wants += torch_requirements(kind, req)
    venv = f"{device.workdir}/venv"
    say(f"{device.name}: {make_venv(device, base_python, venv, wants, kind == 'jetson', timeout)}")
    settings = dict((config.get("devices") or {}).get(device.name) or {})
    settings["python"] = f"{venv}/bin/python"
    if "onnxruntime" in frameworks and not own.get("onnxruntime"):
        ort_venv = f"{device.workdir}/venv-ort-training"
        say(f"{device.name}: {make_venv(device, base_python, ort_venv, [ORT_TRAINING_REQUIREMENTS], False, timeout)}")
        device_python.setdefault(device.name, {})["onnxruntime"] = f"{ort_venv}/bin/python"
    retrain["device_python"] = device_python
    return {**config, "devices": {**(config.get("devices") or {}), device.name: settings}, "retrain": retrain}


def config_snippet(config: dict[str, Any], name: str) -> str:
    """The lines to put in the user's device file so the workflow uses what setup made."""
    import yaml

    out: dict[str, Any] = {"devices": {name: {"python": config["devices"][name]["python"]}}}
    dp = ((config.get("retrain") or {}).get("device_python") or {}).get(name)
    if dp:
        out["retrain"] = {"device_python": {name: dp}}
    return yaml.safe_dump(out, sort_keys=False)
