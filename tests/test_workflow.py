"""End to end: real `snakemake` runs of the DAG on the tiny preset."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from workflow_fixtures import jpeg_dataset, run_snakemake

from edgeopt import plan
from edgeopt.config import check_config, deep_merge

ROOT = Path(__file__).resolve().parents[1]


def tiny_config(workdir: Path, cifar_tar: Path, extra: dict | None = None) -> Path:
    override = {"dataset": jpeg_dataset(cifar_tar)}
    path = workdir / "tiny-local.yaml"
    path.write_text(yaml.safe_dump(deep_merge(override, extra or {})))
    return path


@pytest.fixture(scope="module")
def tiny_run(tiny_workflow) -> tuple[Path, subprocess.CompletedProcess]:
    """The session's one real run of the whole tiny DAG (`tests/workflow_fixtures.py`)."""
    return tiny_workflow.workdir, tiny_workflow.proc


@pytest.mark.slow
def test_tiny_preset_builds_every_target(tiny_run) -> None:
    workdir, proc = tiny_run
    assert proc.returncode == 0, proc.stderr[-4000:]
    config = check_config(
        deep_merge(
            yaml.safe_load((ROOT / "config.yaml").read_text()),
            yaml.safe_load((ROOT / "config" / "tiny.yaml").read_text()),
        )
    )
    missing = [t for t in plan.all_targets(config) if not (workdir / t).exists()]
    assert not missing, missing
    metrics = json.loads((workdir / "results/models/resnet20/baseline/metrics.json").read_text())
    assert metrics["provenance"]["git_commit"] and metrics["accuracy"] >= 0
    assert (workdir / "results/logs/train_baseline/resnet20.log").exists()
    assert (workdir / "results/benchmarks/train_baseline/resnet20.tsv").exists()
    # the 8-bit QAT model deploys: exported, measured in each runtime against the PyTorch QAT model, benchmarked
    assert plan.qat_deploy_formats(config) == ["qat-ort-int8", "qat-tflite-int8"]
    for fmt in plan.qat_deploy_formats(config):
        side = json.loads((workdir / (plan.deploy_path("resnet20", "baseline", fmt) + ".json")).read_text())
        assert side["simulated"] is False and side["parity_reference"] == "pytorch QAT model (fake-quant)"
        assert side["images"] == 500 and 0 <= side["parity"]["top1_agreement"] <= 1 and side["provenance"]
        bench = json.loads((workdir / plan.bench_path("local", "resnet20", "baseline", fmt)).read_text())
        assert (bench["format"], bench["precision"]) == (fmt, "int8") and bench["accuracy_host"] == side["accuracy"]
    # the preset's speed-up target: planned from a latency table measured on `local`, checked there
    table = "results/latency/local/resnet20/ort-fp32.csv"
    planned = yaml.safe_load((workdir / "results/recipes/resnet20/pruned.yaml").read_text())["planned"]
    assert planned["metric"] == "speedup" and planned["latency_table"] == table and (workdir / table).exists()
    assert planned["predicted_speedup"] >= 1.2 and 1 <= len(planned["rounds"]) <= planned["max_rounds"] == 2


@pytest.mark.slow
def test_second_run_does_nothing(tiny_run) -> None:
    workdir, first = tiny_run
    assert first.returncode == 0, first.stderr[-4000:]
    cfg = workdir / "tiny-local.yaml"
    proc = run_snakemake(workdir, "--configfile", str(ROOT / "config" / "tiny.yaml"), str(cfg), "--dry-run")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_bad_config_stops_before_any_job_with_one_line(tmp_path: Path, cifar_tar: Path) -> None:
    cfg = tiny_config(tmp_path, cifar_tar, {"train": {"batch_size": "big"}})
    proc = run_snakemake(tmp_path, "--configfile", str(cfg), timeout=120)
    assert proc.returncode != 0
    errors = [line for line in (proc.stdout + proc.stderr).splitlines() if "edgeopt:" in line]
    assert errors == ["edgeopt: config: train.batch_size: 'big' is not of type 'integer'"]
    assert not (tmp_path / "results").exists()
