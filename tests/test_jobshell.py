"""The shell prefix of every workflow job: which python runs `python -m edgeopt`, and which edgeopt."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from workflow_fixtures import ROOT

from edgeopt.jobshell import shell_prefix


def _which_python(prefix: str, path: str) -> list[str]:
    """Run the prefix in bash with PATH as a job sees it, then report the python and edgeopt found."""
    proc = subprocess.run(
        ["bash", "-c", prefix + 'command -v python; python -c "import edgeopt; print(edgeopt.__file__)"'],
        env={"PATH": path, "HOME": os.environ.get("HOME", "/root")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def test_conda_env_python_stays_first_under_sdm_conda(tmp_path: Path) -> None:
    """Under `--sdm conda` Snakemake has put the rule's env first on PATH; the prefix must keep it there
    (else the host's interpreter runs the job), while this checkout's src/ is still what gets imported."""
    env_bin = tmp_path / "conda-env" / "bin"  # a real interpreter standing where a conda env's would be
    env_bin.mkdir(parents=True)
    (env_bin / "python").symlink_to(sys.executable)
    job_path = f"{env_bin}:/usr/bin:/bin"
    src = ROOT / "src"

    python, module = _which_python(shell_prefix(sys.executable, src, in_conda_env=True), job_path)
    assert python == str(env_bin / "python") and Path(module).is_relative_to(src)

    python, module = _which_python(shell_prefix(sys.executable, src, in_conda_env=False), job_path)
    assert python == str(Path(sys.executable).parent / "python") and Path(module).is_relative_to(src)


def test_prefix_quotes_paths(tmp_path: Path) -> None:
    odd = tmp_path / "a dir; echo pwned"
    (odd / "bin").mkdir(parents=True)
    (odd / "bin" / "python").symlink_to(sys.executable)
    proc = subprocess.run(
        ["bash", "-c", shell_prefix(odd / "bin" / "python", odd / "src", False) + 'echo "$PYTHONPATH"'],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.stdout.strip() == f"{odd / 'src'}" and "pwned" not in proc.stdout.replace(str(odd), "")


def test_real_sdm_conda_run() -> None:
    if shutil.which("conda") is None and shutil.which("mamba") is None:
        pytest.skip(
            "no conda/mamba here and conda channels are unreachable: a real `snakemake --sdm conda` run "
            "(envs/edgeopt.yaml) cannot be made; the prefix logic is tested above"
        )
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--sdm", "conda", "--conda-create-envs-only", "--cores", "1",
         "--configfile", str(ROOT / "config" / "tiny.yaml")],
        cwd=ROOT, capture_output=True, text=True, timeout=3600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
