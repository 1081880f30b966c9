"""Execution profiles in profiles/: found and used as README prints the commands, and the SLURM one run on a
real cluster. Every command here is typed as README.md prints it, in a copy of the checkout."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import sys
from pathlib import Path

import pytest
import yaml
from slurm_cluster import missing_binaries, run_in_cluster
from snakemake.iocontainers import Wildcards
from workflow_fixtures import ROOT, bench_workdir, checkout_copy, parse_dry_run, readme_command, run_in

from edgeopt import plan

PROFILES = ROOT / "profiles"


def test_profiles_exist_and_name_real_rules() -> None:
    assert sorted(p.name for p in PROFILES.iterdir()) == ["default", "remote", "slurm"]
    slurm = yaml.safe_load((PROFILES / "slurm" / "config.yaml").read_text())
    assert slurm["executor"] == "slurm"
    # sacct fails where the cluster has no accounting storage
    assert slurm["slurm-status-command"] == "squeue"
    rules = set(
        re.findall(
            r"^rule (\w+):", "".join(p.read_text() for p in (ROOT / "workflow/rules").glob("*.smk")), re.M
        )
    )
    assert set(slurm["set-resources"]) <= rules and set(slurm["set-threads"]) <= rules
    assert slurm["set-resources"]["train_baseline"]["gpu"] == 1
    remote = yaml.safe_load((PROFILES / "remote" / "config.yaml").read_text())
    assert remote["keep-going"] is True and "gpu=1" in remote["resources"]


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return checkout_copy(tmp_path_factory.mktemp("checkout"))


@pytest.mark.parametrize(
    ("start", "profile"),
    [
        ("snakemake --configfile config/tiny.yaml", "profiles/default"),  # README's run: no profile flag
        ("snakemake --workflow-profile profiles/remote", "profiles/remote"),
    ],
)
def test_readme_commands_use_their_profile(start: str, profile: str, checkout: Path, cifar_tar: Path) -> None:
    """The default profile is found with no flag (it gives --cores), `--workflow-profile` replaces it."""
    argv = readme_command(start)
    if "my-devices.yaml" in argv:  # the user's own config file: here the tiny preset, whose board is `local`
        (checkout / "my-devices.yaml").write_text((checkout / "config" / "tiny.yaml").read_text())
    proc = run_in(checkout, [*argv, "--dry-run"], timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"Using workflow specific profile {profile} for" in proc.stderr
    assert {"prepare_data", "train_baseline", "make_report"} <= {
        j.rule for j in parse_dry_run(proc.stdout + proc.stderr)
    }


def test_unlock_needs_no_other_flag(checkout: Path) -> None:
    proc = run_in(checkout, readme_command("snakemake --unlock"), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Unlocked working directory" in proc.stdout + proc.stderr


def test_device_resources_give_each_job_its_own_device_slot() -> None:
    config = {"devices": {"local": {}, "jetson": {"host": "j"}, "off": {"host": "o", "enabled": False}}}
    res = plan.device_resources(config)
    w = Wildcards(fromdict={"device": "jetson", "model": "resnet20"})
    assert {k: f(w) for k, f in res.items()} == {"device_local": 0, "device_jetson": 1}
    assert plan.device_resources({})["device_local"](Wildcards(fromdict={"device": "local"})) == 1
    assert plan.device_resource_limits(config) == {"device_local": 1, "device_jetson": 1}
    assert plan.device_job_threads(config, "jetson", 8) == 1 and plan.device_job_threads(config, "local", 8) == 8


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
def test_readme_slurm_command_runs_the_tiny_dag(tmp_path: Path, cifar_tar: Path) -> None:
    """README's SLURM command, typed as printed in a checkout, on a cluster without accounting storage:
    every job of the tiny DAG goes through sbatch, training on the `gpu` partition with --gpus=1."""
    checkout = checkout_copy(tmp_path)
    root = tmp_path / "slurm"
    argv = readme_command("snakemake --workflow-profile profiles/slurm")
    proc = run_in_cluster(root, argv, timeout=3000, cwd=checkout)
    out = proc.stdout + proc.stderr
    logs = "".join(
        f"--- {p}\n{p.read_text()[-2000:]}" for p in sorted(checkout.glob(".snakemake/slurm_logs/**/*.log"))
    )
    assert proc.returncode == 0, out[-5000:] + logs[-5000:]
    assert (checkout / "results/report/index.html").is_file()
    job_ids = re.findall(r"submitted with SLURM jobid (\d+)", out)
    shown = {
        jid: block
        for block in (root / "jobs.txt").read_text().split("\n\n")
        for jid in re.findall(r"^JobId=(\d+)", block)
        if jid in job_ids
    }
    assert len(job_ids) >= 20 and len(shown) == len(job_ids), (root / "jobs.txt").read_text()[-3000:]
    assert all("JobState=COMPLETED" in s for s in shown.values())
    on_gpu = [s for s in shown.values() if re.search(r"Partition=gpu\b", s)]
    assert len(on_gpu) == 1, on_gpu  # train_baseline, as profiles/slurm says; everything else on `cpu`
    assert re.search(r"TresPer(Job|Node)=\S*gpu[:=]1", on_gpu[0])
    assert "MinMemoryNode=8000M" in on_gpu[0] or "mem=8000M" in on_gpu[0]


@pytest.mark.slow
@pytest.mark.skipif(_slurm_skip_reason() is not None, reason=str(_slurm_skip_reason()))
def test_board_jobs_stay_on_the_submitting_host_under_slurm(
    tmp_path: Path, tiny_data: Path, tiny_onnx: Path, sshd_server, device_python
) -> None:
    """profiles/slurm on a real cluster: training is an sbatch job; a benchmark and a retraining job on a
    board over SSH run on the submitting host (Snakemake's local jobs: the board is reached from here, not
    from a compute node), the retraining job with one thread, not all of the host's cores."""
    work = bench_workdir(tmp_path / "wf", tiny_data, tiny_onnx, variants=("v2",))
    cfg = {
        "dataset": {"name": "cifar10-tiny"},
        "models": ["resnet20"],
        "train": {"epochs": 1},
        "devices": {"board": sshd_server.device_settings(python=str(device_python), workdir=str(tmp_path / "wd"))},
        "bench": {"devices": ["board"], "batch_sizes": [1], "warmup": 1, "runs": 3},
        "retrain": {
            "devices": ["board"],
            "frameworks": ["pytorch"],
            "subset_size": 32,
            "eval_limit": 20,
            "device_python": {"board": {"pytorch": sys.executable}},
        },
    }
    (work / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    bench = plan.bench_path("board", "resnet20", "v2", "ort-fp32")
    retrained = plan.retrain_path("board", "resnet20", "pytorch", "head")
    argv = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"),
            "--workflow-profile", str(ROOT / "profiles" / "slurm"), "--slurm-no-account",
            "--configfile", str(ROOT / "config" / "tiny.yaml"), str(work / "cfg.yaml"),
            "--allowed-rules", "train_baseline", "bench_model", "retrain_model", "--", bench, retrained]  # fmt: skip
    root = tmp_path / "slurm"
    proc = run_in_cluster(root, argv, timeout=1500, cwd=work)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    assert (work / bench).is_file() and (work / retrained).is_file()
    # Snakemake's own account: the board jobs are local jobs, training alone went through sbatch
    blocks = re.split(r"\n(?=\[[^\n]*\d{4}\]\n)", out)
    local = {m.group(1): b for b in blocks if (m := re.search(r"^localrule (\w+):", b, re.M))}
    remote = {m.group(1): b for b in blocks if (m := re.search(r"^rule (\w+):", b, re.M))}
    assert set(local) == {"bench_model", "retrain_model"} and set(remote) == {"train_baseline"}, out[-5000:]
    job_ids = re.findall(r"submitted with SLURM jobid (\d+)", out)
    assert len(job_ids) == 1, out[-5000:]
    # the cluster's account: one job, the training (the plugin puts the rule name in the job's comment)
    shown = [b for b in (root / "jobs.txt").read_text().split("\n\n") if b.strip()]
    assert len(shown) == 1 and f"JobId={job_ids[0]}" in shown[0] and "Comment=rule_train_baseline" in shown[0]
    # one host thread for the retraining job on the board (the profile's cores: 8 would give a local one 8)
    assert "device_board=1" in local["retrain_model"]
    threads = re.search(r"^\s*threads: (\d+)", local["retrain_model"], re.M)
    assert threads is None or threads.group(1) == "1", local["retrain_model"]
    assert json.loads((work / retrained).read_text())["device"] == "board"
