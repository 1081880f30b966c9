"""edgeopt installed from a non-editable wheel works away from the checkout: the data files it reads
(config schema, ORT training requirements) ship inside the package."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from workflow_fixtures import ROOT, checkout_copy

pytestmark = pytest.mark.slow


def _run(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_wheel_checks_a_config_outside_the_checkout(tmp_path: Path) -> None:
    source = checkout_copy(tmp_path / "src")  # the build writes build/ and *.egg-info: not into the checkout
    wheels = tmp_path / "wheels"
    proc = _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), "."],
        source,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = wheels.glob("edgeopt-*.whl")

    venv = tmp_path / "venv"
    assert _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path).returncode == 0
    python = venv / "bin" / "python"
    # without the test's PYTHONPATH (this checkout's src/), pip would find edgeopt "already installed"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = _run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)],
        tmp_path,
        env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    site = Path(
        _run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path
        ).stdout.strip()
    )
    # the dependencies come from this interpreter's site-packages, after the wheel's own files
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "config.yaml").write_text((ROOT / "config.yaml").read_text())
    proc = _run([str(python), "-m", "edgeopt", "check-config", "config.yaml"], elsewhere, env)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert "config OK" in proc.stdout
    proc = _run(
        [str(python), "-c", "import edgeopt, edgeopt.config as c, edgeopt.retrain.ort_env as o; "
         "print(edgeopt.__file__, c.SCHEMA_PATH.is_file(), o.REQUIREMENTS.is_file())"],
        elsewhere, env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    where, schema, requirements = proc.stdout.split()
    assert Path(where).is_relative_to(site) and schema == requirements == "True", proc.stdout
    # the HTML report's figure captions are package data, not files of the checkout's workflow/ folder
    proc = _run(
        [str(python), "-c", "from edgeopt.report.catalog import FIGURES; from edgeopt.report.html import caption; "
         "print(sorted(f for f in FIGURES if len(caption(f)) < 40))"],
        elsewhere, env,
    )  # fmt: skip
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stdout + proc.stderr[-2000:]
    (elsewhere / "bad.yaml").write_text("train: {epochs: -1}\n")
    proc = _run([str(python), "-m", "edgeopt", "check-config", "config.yaml", "bad.yaml"], elsewhere, env)
    assert proc.returncode == 2 and "train.epochs" in proc.stderr, proc.stderr[-2000:]
