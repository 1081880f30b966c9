"""Boards for real: `edgeopt device setup` and a complete `check-device` on the loopback sshd board."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def edgeopt(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edgeopt", *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


def write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def test_check_device_reports_what_planned_jobs_miss(sshd_server, device_python, tmp_path: Path) -> None:
    """Runtimes pass, but the board is planned to retrain with PyTorch (no torch in its venv), to run
    TensorRT engines (no tensorrt, no CUDA binding) and to read tegrastats: one line for each."""
    board = sshd_server.device_settings(
        python=str(device_python), runtimes=["onnxruntime", "tensorrt"], power="tegrastats"
    )
    devices = write(tmp_path / "board.yaml", {"devices": {"board": board}})
    plan_cfg = write(
        tmp_path / "plan.yaml",
        {"retrain": {"devices": ["board"], "frameworks": ["pytorch"]}, "bench": {"devices": ["board"]}},
    )
    proc = edgeopt("check-device", "board", "--configfile", str(devices), "--configfile", str(plan_cfg))
    assert proc.returncode == 1, proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("board: ") and "python 3" not in ln]
    torch = [ln for ln in lines if "missing torch for retrain pytorch" in ln]
    assert len(torch) == 1 and str(device_python) in torch[0]
    assert any("missing tensorrt for bench trt-fp32, trt-fp16, trt-int8" in ln for ln in lines)
    assert any("missing cuda.bindings.runtime or cuda.cudart or pycuda.driver" in ln for ln in lines)
    assert any("power source tegrastats does not work here (no tegrastats)" in ln for ln in lines)
    assert not any("onnxruntime for bench" in ln for ln in lines)  # present in the venv
    # the same board with retraining elsewhere and only what it has planned: ready
    ok = write(tmp_path / "ok.yaml", {"devices": {"board": dict(board, runtimes=["onnxruntime"], power="auto")}})
    proc = edgeopt("check-device", "board", "--config", str(ok), "--config", str(plan_cfg.with_name("none.yaml")))
    assert proc.returncode == 2 and "none.yaml: config file not found" in proc.stderr
    write(tmp_path / "bench.yaml", {"bench": {"devices": ["board"]}})
    proc = edgeopt("check-device", "board", "--config", str(ok), "--config", str(tmp_path / "bench.yaml"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "board: ready for every planned job" in proc.stdout


def test_retrain_device_python_is_the_interpreter_checked(sshd_server, device_python, tmp_path: Path) -> None:
    """`retrain.device_python` names the interpreter that trains: it is the one probed for torch."""
    board = sshd_server.device_settings(python="/nonexistent/python", runtimes=["onnxruntime"])
    cfg = write(
        tmp_path / "c.yaml",
        {
            "devices": {"board": board},
            "bench": {"devices": ["local"]},
            "retrain": {
                "devices": ["board"],
                "frameworks": ["pytorch"],
                "device_python": {"board": {"pytorch": sys.executable}},
            },
        },
    )
    from edgeopt.devices import get_device, needs
    from edgeopt.devices.cli import load_merged_config

    config = load_merged_config([str(cfg)])
    lines = needs.missing(config, get_device(config, "board"))
    assert lines == []  # this interpreter (the dev venv) has torch; the board's own python is not used


@pytest.mark.slow
def test_device_setup_makes_the_venv_then_checks_it(sshd_server, tmp_path: Path) -> None:
    """`edgeopt device setup` on the loopback board: a venv from envs/device-x86.txt in its workdir, then
    the check with that venv: ready for benchmarks, and torch reported missing for PyTorch retraining."""
    board = sshd_server.device_settings(workdir=str(tmp_path / "wd"), runtimes=["onnxruntime", "tflite"])
    devices = write(tmp_path / "board.yaml", {"devices": {"board": board}})
    retrain = write(
        tmp_path / "retrain.yaml",
        {"bench": {"devices": ["board"]}, "retrain": {"devices": ["board"], "frameworks": ["pytorch"]}},
    )
    req = ROOT / "envs" / "device-x86.txt"
    proc = edgeopt(
        "device", "setup", "board", "--config", str(devices), "--config", str(retrain),
        "--requirements", str(req), "--no-torch", timeout=1200,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    venv_python = f"{tmp_path / 'wd'}/venv/bin/python"
    assert f"board: made: {tmp_path / 'wd'}/venv" in out and f"python: {venv_python}" in out, out
    assert proc.returncode == 1 and "board: missing torch for retrain pytorch in " + venv_python in out, out
    assert Path(venv_python).exists()
    probe = subprocess.run([venv_python, "-c", "import numpy, onnxruntime, ai_edge_litert.interpreter"])
    assert probe.returncode == 0
    # without retraining planned there it is ready; a second setup keeps the venv
    write(tmp_path / "bench.yaml", {"bench": {"devices": ["board"]}, "retrain": {"devices": ["local"]}})
    proc = edgeopt(
        "device", "setup", "board", "--config", str(devices), "--config", str(tmp_path / "bench.yaml"),
        "--requirements", str(req),
    )  # fmt: skip
    assert proc.returncode == 0 and "board: up to date: " in proc.stdout, proc.stdout + proc.stderr
    assert "board: ready for every planned job" in proc.stdout
