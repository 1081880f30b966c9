"""Run a prepared job folder on a device and bring `result.json` back.

`local` runs the device script in a subprocess (so peak memory is the training process's
own); other devices go through the devices transport (`edgeopt.devices`) over SSH.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from edgeopt.errors import EdgeoptError
from edgeopt.retrain.jobs import SCRIPTS


def run_logged(cmd: list[str], log: Path | None, timeout: float | None = None) -> int:
    """Run `cmd` with its output appended to `log` (None: this process's stdout, i.e. the rule's log)."""
    if log is None:
        print("$ " + " ".join(cmd), flush=True)
        return subprocess.run(cmd, stderr=subprocess.STDOUT, timeout=timeout).returncode
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as fh:
        fh.write("$ " + " ".join(cmd) + "\n")
        fh.flush()
        return subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, timeout=timeout).returncode


def run_local(
    job: Path, framework: str, python: str | None, log: Path | None, timeout: float | None = None
) -> dict[str, Any]:
    """Run the job with a local python (the main venv's for pytorch, the ORT env's for onnxruntime)."""
    cmd = [python or sys.executable, str(job / "code" / SCRIPTS[framework]), str(job)]
    try:
        rc = run_logged(cmd, log, timeout)
    except subprocess.TimeoutExpired:
        raise EdgeoptError(f"retrain: {framework} job timed out after {timeout} s on local") from None
    if rc != 0:
        where = f", see {log}" if log else ""
        raise EdgeoptError(f"retrain: {framework} training failed on local (exit {rc}{where})")
    return read_result(job)


def read_result(job: Path) -> dict[str, Any]:
    path = job / "result.json"
    if not path.exists():
        raise EdgeoptError(f"{path}: the device wrote no result")
    return json.loads(path.read_text())
