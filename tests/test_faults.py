"""Fault injection on the real workflow: signals to Snakemake mid-job, a full results/, corrupt inputs.

Each case is bounded in time (a timeout on every subprocess and every wait). The Snakemake cases
share one tiny workdir and run in file order (training first: the later stages start from its model):
a kill lands after the job's first epoch, and the rerun must complete, resume where it stopped,
load every model and parse every JSON, with never two trainers on one folder (the output lock).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
import torch
import yaml
from workflow_fixtures import SNAKEMAKE, TINY

from edgeopt.jobguard import lock_holder, output_lock
from edgeopt.models import load_model

ROOT = Path(__file__).resolve().parents[1]
BASE = "results/models/resnet20/baseline"
TRAIN_LOG = "results/logs/train_baseline/resnet20.log"
TARGETS = {
    "train": (f"{BASE}/model.pt", TRAIN_LOG, "epoch 1/4:"),
    "prune": ("results/models/resnet20/pruned/model.pt", "results/logs/prune_model/resnet20-pruned.log", "epoch 1/4:"),
    "qat": (
        "results/quantize/resnet20/baseline/qat-w8a8.json",
        "results/logs/train_qat/resnet20/baseline/w8a8.log",
        "epoch 1/4:",
    ),
    "bench": ("results/bench/local/resnet20/baseline/ort-fp32.json", None, "edgeopt.harness.bench"),
}
WAIT_S = 300  # for a job to reach its first epoch on a loaded 2-core machine
STOP_S = 60  # for a job to end after its Snakemake got a signal


def edgeopt(*args: str, timeout: int = 300, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edgeopt", *args], capture_output=True, text=True, timeout=timeout, cwd=cwd
    )


def one_line_error(proc: subprocess.CompletedProcess, command: str, *needles: str) -> str:
    """The command failed with exit 2 and one `edgeopt <command>: error:` line naming the input."""
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("edgeopt ")]
    assert len(lines) == 1 and lines[0].startswith(f"edgeopt {command}: error: "), proc.stderr[-3000:]
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


# ---------------------------------------------------------------- no Snakemake needed
def test_second_trainer_on_one_folder_fails_at_once(tmp_path: Path) -> None:
    out = tmp_path / "models" / "m" / "baseline"
    with output_lock(out):
        t0 = time.monotonic()
        proc = edgeopt(
            "train", "--model", "resnet20", "--data", str(tmp_path / "no-data"), "--params", "{}",
            "--out-model", str(out / "model.pt"), "--out-metrics", str(out / "metrics.json"),
            timeout=120,
        )  # fmt: skip
        assert time.monotonic() - t0 < 60
    one_line_error(proc, "train", str(out), f"pid {os.getpid()}")
    assert not (out / "model.pt").exists()


def test_forced_rerun_retrains_from_scratch(tmp_path: Path, tiny_data: Path, tiny_train_cfg: dict) -> None:
    """A finished job leaves no checkpoint, so `snakemake -f` on it trains again instead of returning the old run."""
    out = tmp_path / "baseline"
    args = [
        "train", "--model", "resnet20", "--data", str(tiny_data), "--params", json.dumps(tiny_train_cfg),
        "--out-model", str(out / "model.pt"), "--out-metrics", str(out / "metrics.json"),
        "--checkpoint", str(out / "checkpoint.pt"), "--threads", "1",
    ]  # fmt: skip
    for _ in range(2):
        proc = edgeopt(*args)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert json.loads((out / "metrics.json").read_text())["resumed_from_epoch"] == 0
        assert not (out / "checkpoint.pt").exists()


def test_full_results_filesystem_leaves_nothing_half_written(tmp_path: Path, tiny_data: Path) -> None:
    """results/ on a 1 MB tmpfs: the checkpoint (2.3 MB) and the model (1.2 MB) cannot be written."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("mounting a small tmpfs needs root and unshare (a private mount namespace)")
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip(f"unshare -m is not permitted here: {probe.stderr.decode().strip()}")
    results = tmp_path / "results"
    results.mkdir()
    out = results / "models" / "resnet20" / "baseline"
    params = json.dumps({"epochs": 1, "batch_size": 64, "device": "cpu", "progress": False})
    for checkpoint in (["--checkpoint", str(out / "checkpoint.pt")], []):
        cmd = [
            sys.executable, "-m", "edgeopt", "train", "--model", "resnet20", "--data", str(tiny_data),
            "--params", params, "--out-model", str(out / "model.pt"), "--out-metrics", str(out / "metrics.json"),
            "--threads", "1", *checkpoint,
        ]  # fmt: skip
        script = (
            f"mount -t tmpfs -o size=1000k tmpfs {results} && {' '.join(map(repr, cmd))}; rc=$?; "
            f"find {results} -type f -printf '%P %s\\n'; exit $rc"
        )
        proc = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=300)
        line = one_line_error(proc, "train", "no space left on the file system")
        assert ("checkpoint.pt" if checkpoint else "model.pt") in line
        files = [ln.split()[0] for ln in proc.stdout.splitlines()]
        assert files == ["models/resnet20/baseline/.job.lock"], files  # no model, checkpoint or temp file


def test_corrupt_inputs_are_one_line(tmp_path: Path, cifar_tar: Path, tiny_data: Path) -> None:
    bad_tar = tmp_path / "cifar.tar.gz"
    bad_tar.write_bytes(cifar_tar.read_bytes()[:200_000])
    bad_model = tmp_path / "model.pt"
    bad_model.write_bytes(b"PK\x03\x04 not a model")
    bad_metrics = tmp_path / "metrics.json"
    bad_metrics.write_text('{"accuracy": 0.9')
    bad_config = tmp_path / "config.yaml"
    bad_config.write_text("train: {epochs: [1\n")
    dataset = {"name": "x", "source": "tar", "path": str(bad_tar), "max_train_per_class": 4,
               "max_test_per_class": 2, "calib_size": 4}  # fmt: skip
    one_line_error(
        edgeopt("prepare-data", "--params", json.dumps(dataset), "--out", str(tmp_path / "data")),
        "prepare-data", str(bad_tar),
    )  # fmt: skip
    assert not (tmp_path / "data" / "meta.json").exists()
    one_line_error(
        edgeopt("quantize", "qat", "--model-file", str(bad_model), "--data", str(tiny_data), "--params", "{}",
                "--bits", "w8a8", "--out", str(tmp_path / "q" / "qat-w8a8.json")),
        "quantize", str(bad_model),
    )  # fmt: skip
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"pruner": "magnitude"}))
    one_line_error(
        edgeopt("prune", "--recipe", str(recipe), "--model", str(bad_model), "--baseline-metrics",
                str(bad_metrics), "--data", str(tiny_data), "--params", "{}",
                "--out-model", str(tmp_path / "p" / "model.pt"), "--out-metrics", str(tmp_path / "p" / "m.json")),
        "prune", str(bad_metrics),
    )  # fmt: skip
    one_line_error(edgeopt("check-config", str(bad_config)), "check-config", str(bad_config))


# ---------------------------------------------------------------- signals to a real Snakemake run
@pytest.fixture(scope="module")
def faultwf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny workdir whose jobs last a few epochs (a kill lands mid-job), with the data prepared."""
    wd = tmp_path_factory.mktemp("faults")
    (wd / "local.yaml").write_text(
        yaml.safe_dump(
            {
                "dataset": {"max_train_per_class": 40, "max_test_per_class": 10},  # the shipped sample
                "train": {"epochs": 4, "progress": "epochs"},
                "sensitivity": {"enabled": False},
                "prune": {"variants": ["pruned"], "order": "global", "finetune": {"epochs": 4, "lr": 0.02}},
                "quantize": {"qat": {"bits": [[8, 8]], "epochs": 4}},
                "bench": {"batch_sizes": [1], "runs": 2000},
            }
        )
    )
    proc = snakemake(wd, "results/data/cifar10-sample/meta.json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return wd


def _argv(wd: Path, *args: str) -> list[str]:
    return [*SNAKEMAKE, "--directory", str(wd), "--cores", "2", *args, "--configfile", str(TINY), str(wd / "local.yaml")]


def snakemake(wd: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(_argv(wd, *args), capture_output=True, text=True, timeout=timeout)


def wait_for(check: Callable[[], object], what: str, proc: subprocess.Popen, timeout: float) -> object:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if (found := check()):
            return found
        if proc.poll() is not None:
            pytest.fail(f"snakemake ended (exit {proc.returncode}) before {what}")
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def jobs_of(proc: subprocess.Popen) -> list[psutil.Process]:
    try:
        return psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def cmdline(p: psutil.Process) -> str:
    """A process's command line, or "" once it has ended (a job's short-lived children end while we look)."""
    try:
        return " ".join(p.cmdline())
    except psutil.Error:
        return ""


def interrupt(wd: Path, stage: str, sig: signal.Signals, marker: str | None = None) -> None:
    """Start Snakemake on the stage's target, send `sig` to Snakemake alone once the job is under way
    (`marker` in its log), and check that every job process ends by itself (no orphan keeps writing)."""
    target, log, default_marker = TARGETS[stage]
    marker = marker or default_marker
    with open(wd / f"snakemake-{stage}-{sig.name}.out", "w") as out:
        proc = subprocess.Popen(_argv(wd, target), cwd=wd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        if log is not None:
            logf = wd / log
            logf.unlink(missing_ok=True)  # a log of an earlier run does not count
            wait_for(lambda: logf.exists() and marker in logf.read_text(), f"{marker!r} in {log}", proc, WAIT_S)
        else:  # the benchmark: its harness process is running
            wait_for(lambda: any(marker in cmdline(p) for p in jobs_of(proc)),
                     "the benchmark harness", proc, WAIT_S)  # fmt: skip
        jobs = jobs_of(proc)
        assert jobs
        os.kill(proc.pid, sig)  # Snakemake only, as CI or `kill` would, not its process group
        if sig == signal.SIGKILL:
            proc.wait(timeout=30)
        else:
            assert proc.wait(timeout=STOP_S) != 0  # stops now, instead of waiting for the job to finish
        _, alive = psutil.wait_procs(jobs, timeout=STOP_S)
        assert not alive, f"job processes outlived snakemake: {[cmdline(p) for p in alive]}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    if log is not None:
        assert "stopped by SIGTERM" in (wd / log).read_text()
    if sig == signal.SIGKILL:
        unlock = snakemake(wd, "--unlock", timeout=120)
        assert unlock.returncode == 0, unlock.stderr[-2000:]


def complete(wd: Path, stage: str) -> str:
    """Rerun the stage's target: it completes; returns the job's log (None for the benchmark)."""
    target, log, _ = TARGETS[stage]
    proc = snakemake(wd, target)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return (wd / log).read_text() if log else ""


def checkpoint_loads(folder: Path) -> int:
    """The checkpoint a stopped job kept is complete: it loads, and says which epoch it holds."""
    state = torch.load(folder / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert state["epoch"] >= 0 and state["model"]
    return int(state["epoch"]) + 1


@pytest.mark.slow
def test_training_survives_sigint_then_kill9(faultwf: Path) -> None:
    interrupt(faultwf, "train", signal.SIGINT)
    done = checkpoint_loads(faultwf / BASE)
    assert lock_holder(faultwf / BASE) is None
    interrupt(faultwf, "train", signal.SIGKILL, f"epoch {done + 1}/4:")  # the rerun resumes; killed an epoch later
    assert checkpoint_loads(faultwf / BASE) > done
    log = complete(faultwf, "train")
    assert "resuming after epoch" in log and "resuming after epoch 0/" not in log
    metrics = json.loads((faultwf / BASE / "metrics.json").read_text())
    assert metrics["resumed_from_epoch"] > done
    load_model(faultwf / BASE / "model.pt")
    assert not (faultwf / BASE / "checkpoint.pt").exists()


@pytest.mark.slow
def test_pruning_finetune_survives_kill9(faultwf: Path) -> None:
    interrupt(faultwf, "prune", signal.SIGKILL)
    folder = faultwf / "results/models/resnet20/pruned"
    checkpoint_loads(folder)
    log = complete(faultwf, "prune")
    assert "resuming after epoch" in log
    assert json.loads((folder / "metrics.json").read_text())["resumed_from_epoch"] >= 1
    load_model(folder / "model.pt")


@pytest.mark.slow
def test_qat_survives_sigint(faultwf: Path) -> None:
    interrupt(faultwf, "qat", signal.SIGINT)
    out = faultwf / TARGETS["qat"][0]
    assert not out.exists()
    complete(faultwf, "qat")
    assert "accuracy" in json.loads(out.read_text())


@pytest.mark.slow
def test_benchmark_survives_kill9(faultwf: Path) -> None:
    interrupt(faultwf, "bench", signal.SIGKILL)
    out = faultwf / TARGETS["bench"][0]
    assert not out.exists()
    complete(faultwf, "bench")
    assert json.loads(out.read_text())["batches"]
