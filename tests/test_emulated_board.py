"""The emulated arm64 board (scripts/emulated-board.sh): a Debian aarch64 root under qemu-user, over real SSH.

What an x86 loopback board cannot show: the device packages, the runtimes' aarch64 wheels and the shipped
harness/retraining code really run on aarch64, and results name the board's machine, not the host's.
Skips, with the reason, where the board cannot run (not root, no debootstrap/qemu-user-static, no user
namespaces, Linux < 6.7, no Debian mirror before the first build).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from edgeopt import plan
from edgeopt.devices.config import device_configs

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "emulated-board.sh"
BOARD = "emulated-arm64"
CPU_MODEL = "edgeopt emulated arm64 board (qemu-user, cortex-a76)"  # a Raspberry Pi 5's CPU

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def emulated_board(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The board's device config file; the board runs for the session (built once per machine, cached)."""
    env = {**os.environ, "EDGEOPT_BOARD_STATE": str(tmp_path_factory.mktemp("emulated-board") / "state")}
    check = subprocess.run(
        ["bash", str(SCRIPT), "check"], capture_output=True, text=True, env=env, timeout=300
    )
    if check.returncode == 3:
        pytest.skip(f"no emulated arm64 board here: {check.stdout.strip()}")
    assert check.returncode == 0, check.stdout + check.stderr
    up = subprocess.run(["bash", str(SCRIPT), "up"], capture_output=True, text=True, env=env, timeout=2400)
    if up.returncode != 0:
        pytest.fail(f"emulated-board.sh up failed: {up.stderr.strip()[-3000:]}")
    yield Path(up.stdout.strip().splitlines()[-1])
    subprocess.run(["bash", str(SCRIPT), "down"], capture_output=True, env=env, timeout=120)


def board_settings(config_file: Path) -> dict:
    return yaml.safe_load(config_file.read_text())["devices"][BOARD]


def ssh(settings: dict, command: str) -> str:
    proc = subprocess.run(
        ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
         "-o", f"UserKnownHostsFile={settings['known_hosts']}", "-i", settings["identity_file"],
         "-p", str(settings["port"]), f"{settings['user']}@{settings['host']}", command],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_board_is_aarch64_over_ssh(emulated_board: Path) -> None:
    """The config file is a valid device; behind it an aarch64 python with the Pi's runtimes answers."""
    dev = device_configs(yaml.safe_load(emulated_board.read_text()))[BOARD]
    assert dev.host == "127.0.0.1" and dev.user == "pi" and "pytorch" in dev.runtimes
    settings = board_settings(emulated_board)
    assert ssh(settings, "uname -m") == "aarch64"
    probe = (
        "import platform, numpy, onnxruntime, ai_edge_litert, torch; "
        "print(platform.machine(), onnxruntime.__version__, torch.__version__)"
    )
    machine, ort_version, torch_version = ssh(settings, f"{settings['python']} -c '{probe}'").split()
    assert machine == "aarch64" and ort_version == "1.32.0" and torch_version.startswith("2.10.0")
    # /proc/cpuinfo describes the emulated Cortex-A76 with its features, not the host's x86 CPU
    cpuinfo = ssh(settings, "cat /proc/cpuinfo")
    assert "CPU part\t: 0xd0b" in cpuinfo and CPU_MODEL in cpuinfo and "model name" not in cpuinfo
    assert "asimddp" in cpuinfo.split("Features\t:")[1].splitlines()[0]


def test_no_host_wide_binfmt_registration(emulated_board: Path) -> None:
    """qemu is registered only inside the board's user namespace: the host's binfmt_misc does not see it."""
    proc = subprocess.run(
        ["unshare", "--mount", "sh", "-c",
         "mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc && cat /proc/sys/fs/binfmt_misc/* ; true"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "/usr/bin/qemu-aarch64-static" not in proc.stdout


def test_bench_and_retrain_on_the_board_through_the_dag(
    emulated_board: Path, cifar_tar: Path, tmp_path: Path
) -> None:
    """The tiny DAG with bench.devices and retrain.devices set to the board: real SSH, aarch64 results."""
    work = tmp_path / "wf"
    work.mkdir()
    local = work / "local.yaml"
    local.write_text(
        yaml.safe_dump(
            {
                "dataset": {"path": str(cifar_tar)},
                "convert": {"formats": ["ort-fp32", "tflite-int8"]},
                "bench": {
                    "devices": [BOARD],
                    "batch_sizes": [1],
                    "warmup": 1,
                    "runs": 3,
                    "eval_batch_size": 50,
                },
                "retrain": {
                    "devices": [BOARD],
                    "frameworks": ["pytorch"],
                    "subset_size": 64,
                    "eval_limit": 50,
                    "settings": [
                        {
                            "name": "head",
                            "freeze": "all_but_classifier",
                            "precision": "fp32",
                            "batch_size": 32,
                        }
                    ],
                },
            }
        )
    )
    benches = [plan.bench_path(BOARD, "resnet20", "baseline", fmt) for fmt in ("ort-fp32", "tflite-int8")]
    retrained = plan.retrain_path(BOARD, "resnet20", "pytorch", "head")
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(work),
         "--cores", "2", *benches, retrained,
         "--configfile", str(ROOT / "config" / "tiny.yaml"), str(local), str(emulated_board)],
        capture_output=True, text=True, timeout=2400,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    settings = board_settings(emulated_board)
    for path in benches:
        rec = json.loads((work / path).read_text())
        assert rec["device"] == BOARD and 0 <= rec["accuracy"] <= 1
        # the harness ran on the board: aarch64, its CPU, its python; the host's machine is only `device`
        assert rec["system"]["os"]["machine"] == "aarch64" and rec["system"]["cpu"]["model"] == CPU_MODEL
        side = rec["provenance"]["device_side"]
        assert side["machine"] == "aarch64" and side["processor"] == CPU_MODEL and side["device"] == BOARD
        assert rec["provenance"]["device"]["machine"] != "aarch64"
        assert rec["device_settings"]["port"] == settings["port"]
    # the board's onnxruntime and LiteRT agree with the host's (the same model, another architecture)
    for path in benches:
        rec = json.loads((work / path).read_text())
        assert rec["accuracy_delta"] is not None and abs(rec["accuracy_delta"]) <= 0.02, rec["accuracy_delta"]
    m = json.loads((work / retrained).read_text())
    assert m["framework"] == "pytorch" and m["device"] == BOARD and m["epochs_run"] == 1
    side = m["provenance"]["device_side"]
    assert side["machine"] == "aarch64" and side["processor"] == CPU_MODEL
    assert side["framework_version"].startswith("2.10.0") and side["torch_device"] == "cpu"
    log = (work / "results" / "logs" / "retrain_model" / BOARD / "resnet20" / "pytorch-head.log").read_text()
    assert f"[{BOARD}] {settings['python']} -m edgeopt.retrain.device." in log


def edgeopt(*args: str, timeout: int = 2400) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edgeopt", *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


def test_device_setup_and_check_device_on_the_board(emulated_board: Path, tmp_path: Path) -> None:
    """`edgeopt device setup` on the aarch64 board: a venv from envs/device-rpi.txt in its workdir (the
    board's home is in the cached root, so it is made once per build); `check-device` then passes with the
    interpreter of each planned job (retraining: the board's own torch venv via retrain.device_python); a
    second setup is a quick no-op that still checks; without that torch interpreter, one line names the
    board and the piece."""
    import time

    from device_fixtures import setup_snippet

    plan_with_torch = tmp_path / "plan.yaml"
    planned = {
        "convert": {"formats": ["ort-fp32", "tflite-int8"]},
        "bench": {"devices": [BOARD]},
        "retrain": {"devices": [BOARD], "frameworks": ["pytorch"]},
    }
    board_torch = board_settings(emulated_board)["python"]  # the image's venv with torch
    plan_with_torch.write_text(
        yaml.safe_dump({**planned, "retrain": {**planned["retrain"], "device_python": {BOARD: {"pytorch": board_torch}}}})
    )
    setup = ["device", "setup", BOARD, "--config", str(emulated_board), "--config", str(plan_with_torch)]
    first = edgeopt(*setup)
    out = first.stdout + first.stderr
    assert first.returncode == 0, out
    assert f"{BOARD}: aarch64, python 3.11" in out and "using device-rpi.txt" in out, out
    assert re.search(rf"^{BOARD}: (made|up to date): edgeopt-device/venv$", out, re.M), out
    assert f"{BOARD}: ready for every planned job" in out
    snippet = setup_snippet(out, BOARD)
    assert snippet["devices"][BOARD] == {"python": "edgeopt-device/venv/bin/python"}
    assert snippet["retrain"]["device_python"][BOARD] == {"pytorch": board_torch}
    lines = tmp_path / "setup-lines.yaml"
    lines.write_text(yaml.safe_dump({"devices": snippet["devices"]}))

    # the venv setup made, on the board: aarch64 wheels of the Pi's runtimes
    settings = board_settings(emulated_board)
    probe = "import platform, onnxruntime, ai_edge_litert.interpreter; print(platform.machine(), onnxruntime.__version__)"
    assert ssh(settings, f"edgeopt-device/venv/bin/python -c '{probe}'") == "aarch64 1.32.0"
    check = edgeopt("check-device", BOARD, "--config", str(emulated_board), "--config", str(plan_with_torch),
                    "--config", str(lines))  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    assert re.search(rf"^{BOARD}: python 3\.11\.\S+ on aarch64 ", check.stdout, re.M), check.stdout
    assert f"{BOARD}: ready for every planned job" in check.stdout

    started = time.monotonic()
    again = edgeopt(*setup)
    seconds = time.monotonic() - started
    out = again.stdout + again.stderr
    assert again.returncode == 0 and f"{BOARD}: up to date: edgeopt-device/venv\n" in out, out
    assert "made:" not in out and f"{BOARD}: ready for every planned job" in out
    print(f"second setup on the emulated board: {seconds:.1f} s")

    # PyTorch retraining planned with the venv's own python, which has no torch: one line, board and piece
    plan_without = tmp_path / "plan-without.yaml"
    plan_without.write_text(yaml.safe_dump(planned))
    check = edgeopt("check-device", BOARD, "--config", str(emulated_board), "--config", str(plan_without),
                    "--config", str(lines))  # fmt: skip
    assert check.returncode == 1, check.stdout + check.stderr
    problems = [ln for ln in check.stdout.splitlines() if "missing" in ln]
    assert problems == [
        f"{BOARD}: missing torch for retrain pytorch in edgeopt-device/venv/bin/python "
        "(pip install torch (NVIDIA's JetPack wheel on a Jetson))"
    ], check.stdout
