"""Execution profiles in workflow/profiles/: accepted by snakemake, and the SLURM one run on a real cluster."""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from pathlib import Path

import pytest
import yaml
from slurm_cluster import missing_binaries, run_in_cluster
from snakemake.iocontainers import Wildcards
from workflow_fixtures import ROOT, TINY, jpeg_dataset, parse_dry_run, run_snakemake

from edgeopt import plan

PROFILES = ROOT / "workflow" / "profiles"


def tiny_local(tmp_path: Path, cifar_tar: Path) -> Path:
    p = tmp_path / "tiny-local.yaml"
    p.write_text(yaml.safe_dump({"dataset": jpeg_dataset(cifar_tar)}))
    return p


def test_profiles_exist_and_name_real_rules() -> None:
    assert sorted(p.name for p in PROFILES.iterdir()) == ["default", "remote", "slurm"]
    slurm = yaml.safe_load((PROFILES / "slurm" / "config.yaml").read_text())
    assert slurm["executor"] == "slurm"
    rules = set(
        re.findall(
            r"^rule (\w+):", "".join(p.read_text() for p in (ROOT / "workflow/rules").glob("*.smk")), re.M
        )
    )
    assert set(slurm["set-resources"]) <= rules and set(slurm["set-threads"]) <= rules
    assert slurm["set-resources"]["train_baseline"]["gpu"] == 1
    remote = yaml.safe_load((PROFILES / "remote" / "config.yaml").read_text())
    assert remote["keep-going"] is True and "device_local=1" in remote["resources"]


@pytest.mark.parametrize("profile", ["default", "remote"])
def test_local_profiles_plan_the_tiny_dag(profile: str, tmp_path: Path, cifar_tar: Path) -> None:
    proc = run_snakemake(
        tmp_path, "--profile", str(PROFILES / profile), "--configfile", str(TINY), str(tiny_local(tmp_path, cifar_tar)),
        "--dry-run", timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"Using profile {PROFILES / profile}" in proc.stderr
    assert {"prepare_data", "train_baseline", "make_report"} <= {
        j.rule for j in parse_dry_run(proc.stdout + proc.stderr)
    }


def test_device_resources_give_each_job_its_own_device_slot() -> None:
    res = plan.device_resources({"devices": {"local": {}, "jetson": {"host": "j"}}})
    w = Wildcards(fromdict={"device": "jetson", "model": "resnet20"})
    assert {k: f(w) for k, f in res.items()} == {"device_local": 0, "device_jetson": 1}
    assert plan.device_resources({})["device_local"](Wildcards(fromdict={"device": "local"})) == 1


def _slurm_skip_reason() -> str | None:
    missing = missing_binaries()
    if missing:
        return (
            f"SLURM not installed (missing {', '.join(missing)}; .ci/run installs Debian's slurm-wlm + munge)"
        )
    if os.geteuid() != 0:
        return "the single-node SLURM test runs slurmd as root (CI and dev machines are root)"
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        return "snakemake-executor-plugin-slurm is not installed"
    return None


@pytest.mark.slow
@pytest.mark.skipif(_slurm_skip_reason() is not None, reason=str(_slurm_skip_reason()))
def test_slurm_profile_runs_training_on_a_gpu_partition(tmp_path: Path, cifar_tar: Path) -> None:
    """prepare_data and train_baseline go through sbatch with the profile's partitions and --gpus=1."""
    work = tmp_path / "work"
    work.mkdir()
    local = tiny_local(work, cifar_tar)
    target = "results/models/resnet20/baseline/metrics.json"
    root = tmp_path / "slurm"
    proc = run_in_cluster(
        root,
        [
            sys.executable, "-m", "snakemake", target, "-s", str(ROOT / "Snakefile"), "--directory", str(work),
            "--profile", str(PROFILES / "slurm"), "--slurm-no-account", "--slurm-status-command", "squeue",
            "--slurm-init-seconds-before-status-checks", "1", "--seconds-between-status-checks", "2",
            "--configfile", str(TINY), str(local),
        ],
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    logs = "".join(
        f"--- {p}\n{p.read_text()[-2000:]}" for p in sorted(work.glob(".snakemake/slurm_logs/**/*.log"))
    )
    assert proc.returncode == 0, out[-5000:] + logs
    job_ids = re.findall(r"submitted with SLURM jobid (\d+)", out)
    assert len(job_ids) == 2, out[-3000:]
    shown = {
        jid: block
        for block in (root / "jobs.txt").read_text().split("\n\n")
        for jid in re.findall(r"^JobId=(\d+)", block)
        if jid in job_ids
    }
    assert len(shown) == 2, (root / "jobs.txt").read_text()
    assert (work / target).is_file()
    by_partition = {re.search(r"Partition=(\S+)", s).group(1): s for s in shown.values()}
    assert set(by_partition) == {"cpu", "gpu"}, shown
    gpu_job = by_partition["gpu"]
    assert re.search(r"TresPer(Job|Node)=\S*gpu[:=]1", gpu_job) and "JobState=COMPLETED" in gpu_job
    assert "MinMemoryNode=8000M" in gpu_job or "mem=8000M" in gpu_job
    assert "JobState=COMPLETED" in by_partition["cpu"]
