"""Boards for real: `edgeopt device setup` and a complete `check-device` on the loopback sshd board."""

from __future__ import annotations

import re
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


def test_declared_pytorch_runtime_is_looked_for_where_pytorch_runs(sshd_server, device_python, tmp_path: Path) -> None:
    """`runtimes: [..., pytorch]` on a board whose benchmark venv has no torch: missing, unless
    `retrain.device_python` names an interpreter with torch there (where PyTorch jobs run)."""
    board = sshd_server.device_settings(python=str(device_python), runtimes=["onnxruntime", "pytorch"])
    devices = write(tmp_path / "board.yaml", {"devices": {"board": board}, "bench": {"devices": ["board"]}})
    proc = edgeopt("check-device", "board", "--config", str(devices))
    assert proc.returncode == 1
    assert "board: missing runtimes: pytorch (configured but not importable)" in proc.stdout, proc.stdout
    torch_python = write(tmp_path / "torch.yaml", {"retrain": {"device_python": {"board": {"pytorch": sys.executable}}}})
    proc = edgeopt("check-device", "board", "--config", str(devices), "--config", str(torch_python))
    assert proc.returncode == 0 and "board: ready for every planned job" in proc.stdout, proc.stdout + proc.stderr


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


def test_torch_for_retraining_fits_the_board() -> None:
    """PyTorch comes from envs/device-<kind>-torch.txt where one pins a wheel for the board (a Pi: the
    CPU-only aarch64 torch), never on a Jetson (NVIDIA's JetPack wheel), and `torch` elsewhere; a
    requirements file's comment that mentions torch (device-x86.txt: "no torch") does not count."""
    from edgeopt.devices.setup import ENVS, requirement_names, torch_requirements

    assert torch_requirements("rpi", ENVS / "device-rpi.txt") == [ENVS / "device-rpi-torch.txt"]
    assert torch_requirements("x86", ENVS / "device-x86.txt") == ["torch"]
    assert torch_requirements("jetson", ENVS / "device-jetson.txt") == []
    assert "torch" not in requirement_names(ENVS / "device-x86.txt")
    assert requirement_names(ENVS / "device-jetson.txt") >= {"numpy", "onnxruntime", "ai-edge-litert", "cuda-python"}
    assert torch_requirements("rpi", ENVS / "device-rpi-torch.txt") == []


@pytest.mark.slow
def test_device_setup_end_to_end_on_the_loopback_board(sshd_server, tmp_path: Path) -> None:
    """`edgeopt device setup` with nothing but the device and the plan: the x86 board gets a venv from
    envs/device-x86.txt and, for ONNX Runtime retraining, one from the package's ort-training.txt;
    `check-device` with the printed lines then passes with the interpreter of every planned job
    (PyTorch retraining with `retrain.device_python`). A second setup is a no-op that still checks."""
    import time

    from device_fixtures import setup_snippet

    wd = tmp_path / "wd"
    board = sshd_server.device_settings(workdir=str(wd), runtimes=["onnxruntime", "tflite"])
    devices = write(tmp_path / "board.yaml", {"devices": {"board": board}})
    planned = write(
        tmp_path / "plan.yaml",
        {
            "convert": {"formats": ["ort-fp32", "ort-int8", "tflite-int8"]},
            "bench": {"devices": ["board"]},
            "retrain": {
                "devices": ["board"],
                "frameworks": ["pytorch", "onnxruntime"],
                "device_python": {"board": {"pytorch": sys.executable}},
            },
        },
    )
    setup = ["device", "setup", "board", "--config", str(devices), "--config", str(planned)]
    proc = edgeopt(*setup, timeout=1200)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "board: x86_64, python 3." in out and "using device-x86.txt" in out
    assert f"board: made: {wd}/venv" in out and f"board: made: {wd}/venv-ort-training" in out, out
    assert "board: ready for every planned job" in out
    snippet = setup_snippet(out, "board")
    assert snippet["devices"]["board"]["python"] == f"{wd}/venv/bin/python"
    assert snippet["retrain"]["device_python"]["board"] == {
        "pytorch": sys.executable, "onnxruntime": f"{wd}/venv-ort-training/bin/python"
    }  # fmt: skip
    lines = write(tmp_path / "setup-lines.yaml", snippet)
    check = edgeopt("check-device", "board", "--config", str(devices), "--config", str(planned), "--config", str(lines))
    assert check.returncode == 0 and "board: ready for every planned job" in check.stdout, check.stdout + check.stderr
    # the check probes each job's own interpreter: without the ORT venv the ORT retraining job misses its module
    no_ort = write(tmp_path / "no-ort.yaml", {"retrain": {"device_python": {"board": {"onnxruntime": f"{wd}/venv/bin/python"}}}})
    check = edgeopt("check-device", "board", "--config", str(devices), "--config", str(planned), "--config", str(lines),
                    "--config", str(no_ort))  # fmt: skip
    assert check.returncode == 1
    missing = [ln for ln in check.stdout.splitlines() if "missing" in ln]
    assert missing == [
        f"board: missing onnxruntime.training.api for retrain onnxruntime in {wd}/venv/bin/python "
        "(a venv with onnxruntime-training: edgeopt device setup makes one)"
    ], check.stdout
    started = time.monotonic()
    again = edgeopt(*setup, timeout=600)
    seconds = time.monotonic() - started
    out = again.stdout + again.stderr
    assert again.returncode == 0 and f"board: up to date: {wd}/venv\n" in out, out
    assert f"board: up to date: {wd}/venv-ort-training" in out and "board: ready for every planned job" in out
    assert "made:" not in out
    print(f"second setup: {seconds:.1f} s")


def _harness_running(workdir: Path) -> bool:
    """Whether a benchmark harness runs with files from `workdir`'s store (i.e. on that board)."""
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"edgeopt.harness.bench" in cmd and any(str(workdir).encode() in a for a in cmd):
                return True
    return False


def _interval(work: Path, device: str, variant: str) -> tuple[float, float]:
    """(start, end) of a bench job: its output's mtime and its benchmark's wall seconds."""
    out = work / f"results/bench/{device}/resnet20/{variant}/ort-fp32.json"
    tsv = work / f"results/benchmarks/bench_model/{device}/resnet20/{variant}/ort-fp32.tsv"
    seconds = float(tsv.read_text().splitlines()[1].split("\t")[0])
    end = out.stat().st_mtime
    return end - seconds, end


@pytest.mark.slow
def test_one_job_per_board_and_faults_stay_on_their_board(
    sshd_server, ssh_device_settings, device_python, tiny_onnx, tiny_data, tmp_path: Path
) -> None:
    """Real snakemake, --cores 4 --keep-going: the two jobs of one board never overlap; an unreachable board,
    a board without the runtime and a board that drops mid-benchmark each fail with one line naming the
    device while the others finish; a rerun (board back) runs only what is missing."""
    import shutil
    import threading
    import time

    from device_fixtures import drop_sshd, free_port, start_sshd, stop_sshd
    from workflow_fixtures import run_snakemake

    from edgeopt import plan

    work = tmp_path / "wf"
    shutil.copytree(tiny_data, work / "results" / "data" / "cifar10-tiny")
    for variant in ("baseline", "v2"):
        dest = work / plan.deploy_path("resnet20", variant, "ort-fp32")
        dest.parent.mkdir(parents=True)
        shutil.copyfile(tiny_onnx, dest)
    flaky = start_sshd(tmp_path / "flaky-sshd")
    flaky_wd = tmp_path / "flaky-wd"
    cfg = {
        "dataset": {"name": "cifar10-tiny"},
        "models": ["resnet20"],
        "devices": {
            "board": ssh_device_settings,
            "flaky": flaky.device_settings(python=str(device_python), workdir=str(flaky_wd)),
            "down": sshd_server.device_settings(port=free_port(), python=str(device_python)),
            "nort": sshd_server.device_settings(python="/usr/bin/python3", workdir=str(tmp_path / "nort-wd")),
        },
        "bench": {"batch_sizes": [1, 8], "warmup": 2, "runs": 200, "threads": 1, "retries": 0, "eval_batch_size": 50},
    }
    (work / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    targets = [plan.bench_path("board", "resnet20", v, "ort-fp32") for v in ("baseline", "v2")]
    targets += [plan.bench_path(d, "resnet20", "baseline", "ort-fp32") for d in ("flaky", "down", "nort")]
    args = ["--configfile", str(ROOT / "config" / "tiny.yaml"), str(work / "cfg.yaml"), "--keep-going",
            "--allowed-rules", "bench_model", "--cores", "4", *targets]  # fmt: skip

    def drop_when_measuring() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not _harness_running(flaky_wd):
            time.sleep(0.05)
        drop_sshd(flaky)

    dropper = threading.Thread(target=drop_when_measuring, daemon=True)
    dropper.start()
    try:
        proc = run_snakemake(work, *args, timeout=900)
        dropper.join(timeout=310)
        assert proc.returncode != 0
        for t in targets[:2]:
            assert (work / t).exists(), proc.stderr[-3000:]
        assert not any((work / t).exists() for t in targets[2:])
        # one board, one job at a time (Snakemake would start both: there are 4 cores and 1 thread each)
        (s1, e1), (s2, e2) = (_interval(work, "board", v) for v in ("baseline", "v2"))
        assert e1 <= s2 + 0.5 or e2 <= s1 + 0.5, ((s1, e1), (s2, e2))
        errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("edgeopt bench-model: error: device ")]
        by_device = {d: [ln for ln in errors if ln.startswith(f"edgeopt bench-model: error: device {d} (")]
                     for d in ("flaky", "down", "nort")}
        # one line per board (Snakemake may echo the failed job's log, which repeats that same line)
        assert all(len(set(v)) == 1 for v in by_device.values()), errors
        assert "unreachable" in by_device["down"][0] and "Connection refused" in by_device["down"][0]
        assert "connection lost" in by_device["flaky"][0]
        assert "No module named 'numpy'" in by_device["nort"][0]

        flaky = start_sshd(tmp_path / "flaky-sshd", port=flaky.port)  # the board is back
        done = [(work / t).stat().st_mtime_ns for t in targets[:2]]
        proc = run_snakemake(work, *args, timeout=900)
        out = proc.stdout + proc.stderr
        assert set(re.findall(r"of (\d+) steps", out)) == {"3"}, out[-3000:]  # flaky, down, nort only
        assert [(work / t).stat().st_mtime_ns for t in targets[:2]] == done
        assert (work / targets[2]).exists() and not (work / targets[3]).exists()
    finally:
        if flaky.process.poll() is None:
            stop_sshd(flaky)
