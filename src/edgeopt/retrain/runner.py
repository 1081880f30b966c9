"""Run a prepared job on a device through the devices transport and bring the result back.

Every device, `local` included, goes through `edgeopt.devices`: only `edgeopt.retrain.device`
is shipped (so the device-side code cannot lean on anything else of edgeopt), the job's files
are sent content-hashed, and the script runs as `python -m ...` with the device's python.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from edgeopt.errors import EdgeoptError
from edgeopt.retrain.device import MODEL_FILES, SCRIPTS

PACKAGES = ("edgeopt.retrain.device", "edgeopt.harness.sysinfo")  # sysinfo: host_info's CPU model


def run_on_device(
    job: Path,
    framework: str,
    device: str,
    settings: dict[str, Any],
    python: str | None,
    timeout: float | None = None,
    log: Path | None = None,
) -> dict[str, Any]:
    """Send `job`'s files to `device`, train there, and return the parsed result JSON."""
    from edgeopt.devices import File, Output, device_from_json

    dev = device_from_json(device, {**settings, **({"python": python} if python else {})})
    module, model_args = SCRIPTS[framework]
    args: list[Any] = []
    for name in ("job", "train", "test"):
        args += [f"--{name}", File(job / f"{name}.{'json' if name == 'job' else 'npz'}")]
    for name in model_args:
        args += [f"--{name.replace('_', '-')}", File(job / MODEL_FILES[name])]
    args += ["--out", Output("result.json")]
    res = dev.run_module(
        module, args, packages=PACKAGES, fetch_to=job / "fetched", timeout=timeout, check=False
    )
    text = f"$ [{device}] {dev.python} -m {module} ({res.seconds:.1f} s, sent {len(res.sent)} files)\n"
    text += res.stdout + res.stderr
    if log is None:
        print(text, flush=True)
    else:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a") as fh:
            fh.write(text)
    if res.returncode != 0:
        lines = [ln for ln in (res.stderr or res.stdout).strip().splitlines() if ln.strip()]
        last = lines[-1].strip() if lines else "no output"
        raise EdgeoptError(
            f"retrain: {framework} training failed on {device} (exit {res.returncode}): {last}"
        )
    out = res.outputs.get("result.json")
    if out is None:
        raise EdgeoptError(f"retrain: {framework} on {device} wrote no result")
    return json.loads(Path(out).read_text())


def job_python(section: dict[str, Any], device: str, framework: str, ort_python: str | None) -> str | None:
    """The interpreter a retraining job uses: `retrain.device_python.<device>.<framework>`, else on
    `local` this one (pytorch) or the ORT training env; None: the device's own `python`."""
    python = ((section.get("device_python") or {}).get(device) or {}).get(framework)
    if python is None and device == "local":
        python = local_python(framework, ort_python)
    return python


def local_python(framework: str, ort_python: str | None) -> str:
    """The local interpreter for a framework: this one for PyTorch, the ORT training env for ORT."""
    return ort_python if framework == "onnxruntime" and ort_python else sys.executable


def run_logged(cmd: list[str], log: Path | None, timeout: float | None = None) -> int:
    """Run a host-side helper with its output appended to `log` (None: this process's stdout)."""
    import subprocess

    if log is None:
        print("$ " + " ".join(cmd), flush=True)
        return subprocess.run(cmd, stderr=subprocess.STDOUT, timeout=timeout).returncode
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as fh:
        fh.write("$ " + " ".join(cmd) + "\n")
        fh.flush()
        return subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, timeout=timeout).returncode
