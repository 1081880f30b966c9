"""The separate ONNX Runtime training environment (`edgeopt setup-ort-training`).

onnxruntime-training stopped at 1.19.2 and cannot share a venv with onnxruntime 1.32, so it
lives in its own venv (default ~/.cache/edgeopt-ort-training-venv, or $EDGEOPT_ORT_TRAINING_VENV),
created from `ort-training.txt` beside this module (package data). A stamp with the requirements' hash makes setup idempotent.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
from pathlib import Path

from edgeopt.errors import EdgeoptError

REQUIREMENTS = Path(__file__).resolve().parent / "ort-training.txt"
STAMP = ".edgeopt-requirements.sha256"


def venv_dir() -> Path:
    return Path(
        os.environ.get("EDGEOPT_ORT_TRAINING_VENV", Path.home() / ".cache" / "edgeopt-ort-training-venv")
    )


def venv_python(venv: Path | None = None) -> Path:
    return (venv or venv_dir()) / "bin" / "python"


def _digest(req: Path) -> str:
    return hashlib.sha256(req.read_bytes()).hexdigest()


def is_ready(venv: Path | None = None, req: Path = REQUIREMENTS) -> bool:
    """The venv exists and was built from the current requirements file."""
    venv = venv or venv_dir()
    stamp = venv / STAMP
    return (
        venv_python(venv).exists()
        and stamp.exists()
        and req.exists()
        and stamp.read_text().strip() == _digest(req)
    )


def setup(venv: Path | None = None, req: Path = REQUIREMENTS, force: bool = False) -> Path:
    """Create (or refresh) the ORT training venv; returns its python."""
    venv = venv or venv_dir()
    if not req.exists():
        raise EdgeoptError(f"{req}: requirements file missing")
    if is_ready(venv, req) and not force:
        return venv_python(venv)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--clear", str(venv)], check=True)
    pip = [str(venv_python(venv)), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-r", str(req)], check=True)
    (venv / STAMP).write_text(_digest(req) + "\n")
    return venv_python(venv)


def python_or_error(configured: str | None = None) -> str:
    """The ORT training python to use on this machine, or a one-line error saying how to get it."""
    if configured:
        if not Path(configured).exists():
            raise EdgeoptError(f"retrain.ort_python: {configured} does not exist")
        return configured
    if not venv_python().exists():
        raise EdgeoptError(
            f"onnxruntime training env missing at {venv_dir()}: run `python -m edgeopt setup-ort-training`"
        )
    return str(venv_python())


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--venv", help=f"where to create it (default {venv_dir()})")
    p.add_argument("--force", action="store_true", help="recreate even when up to date")
    p.add_argument("--check", action="store_true", help="only report whether it is ready (exit 1 if not)")


def run(args: argparse.Namespace) -> int:
    venv = Path(args.venv) if args.venv else None
    if args.check:
        ok = is_ready(venv)
        print(f"{venv or venv_dir()}: {'ready' if ok else 'missing or outdated'}")
        return 0 if ok else 1
    py = setup(venv, force=args.force)
    out = subprocess.run(
        [str(py), "-c", "import onnxruntime, onnx; print(onnxruntime.__version__, onnx.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    print(f"ORT training env ready: {py} (onnxruntime-training {out[0]}, onnx {out[1]})")
    return 0
