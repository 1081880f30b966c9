"""End to end on the tiny preset: the report the DAG builds, `snakemake --report`, no-op and incremental reruns.

One real run of the whole DAG (the `tiny_workflow` session fixture); every incremental case is a
real `snakemake --dry-run` with a changed config against that finished run, whose job list must
contain exactly the stages that depend on the change.
"""

from __future__ import annotations

import zipfile

import pandas as pd
import pytest
from workflow_fixtures import TinyWorkflow, dry_run_jobs, readme_command, run_in, stage_rules

from edgeopt import plan

pytestmark = pytest.mark.slow

REPORT_RULES = stage_rules()["report"]


def finished(wf: TinyWorkflow) -> TinyWorkflow:
    assert wf.proc.returncode == 0, wf.proc.stdout[-3000:] + wf.proc.stderr[-5000:]
    return wf


def rules_of(jobs) -> set[str]:
    return {j.rule for j in jobs}


def test_tiny_run_builds_the_report(tiny_workflow: TinyWorkflow) -> None:
    wf = finished(tiny_workflow)
    cfg = wf.config()
    for target in plan.report_targets(cfg):
        assert (wf.workdir / target).is_file(), target
    res = pd.read_parquet(wf.workdir / "results/report/results.parquet")
    base = res[(res.model == "resnet20") & (res.variant == "baseline") & (res.format == "pytorch")]
    assert len(base) == 1 and 0 <= base.accuracy.iloc[0] <= 1 and base.macs.iloc[0] > 1e7
    for fmt in plan.qat_deploy_formats(cfg):  # the deployed 8-bit QAT model: real rows with real latency
        qat = res[(res.variant == "baseline") & (res.format == fmt) & (res.device == "local")]
        assert len(qat) >= 1 and not qat.simulated.any() and qat.latency_p50_ms.notna().all(), qat
    page = (wf.workdir / "results/report/index.html").read_text()
    assert page.count("data:image/png;base64,") == len(plan.report_figures(cfg)) >= 1
    assert (wf.workdir / "results/logs/make_report.log").is_file()
    assert (wf.workdir / "results/benchmarks/collect_results.tsv").is_file()


def test_second_run_schedules_nothing(tiny_workflow: TinyWorkflow) -> None:
    wf = finished(tiny_workflow)
    proc = wf.snakemake("--dry-run")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_snakemake_report_html(tiny_workflow: TinyWorkflow) -> None:
    wf = finished(tiny_workflow)
    out = wf.workdir / "snakemake-report.html"
    proc = wf.snakemake("--report", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = out.read_text()
    assert len(text) > 10_000
    for fig in plan.report_figures(wf.config()):
        assert f"{fig}.png" in text
    assert "results.csv" in text and "index.html" in text


def test_readme_report_command_works_as_printed(tiny_workflow: TinyWorkflow) -> None:
    """README's `snakemake ... --report report.zip`, typed in the checkout after the tiny run: no --cores
    (profiles/default gives them) and no other flag."""
    wf = finished(tiny_workflow)
    argv = readme_command("snakemake --configfile config/tiny.yaml --report")
    proc = run_in(wf.workdir, argv)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "Using workflow specific profile profiles/default" in proc.stderr
    with zipfile.ZipFile(wf.workdir / argv[-1]) as z:
        names = z.namelist()
        page = next(n for n in names if n.endswith("report.html"))
        text = z.read(page).decode()
    for fig in plan.report_figures(wf.config()):
        assert any(n.endswith(f"{fig}.png") for n in names) or f"{fig}.png" in text, fig


def test_report_settings_rerun_only_report_jobs(tiny_workflow: TinyWorkflow) -> None:
    wf = finished(tiny_workflow)
    assert rules_of(dry_run_jobs(wf, {"report": {"title": "another title"}})) == {"make_report"}
    jobs = rules_of(dry_run_jobs(wf, {"report": {"pareto": {"x": "size_bytes"}}}))
    assert "make_report" in jobs and jobs <= REPORT_RULES - {"collect_results"}


def test_training_settings_rerun_training_and_downstream_never_data(tiny_workflow: TinyWorkflow) -> None:
    wf = finished(tiny_workflow)
    jobs = rules_of(dry_run_jobs(wf, {"train": {"epochs": 2}}))
    assert "train_baseline" in jobs and {"collect_results", "make_report"} <= jobs
    assert not jobs & stage_rules()["data"]


def _quantization_change(cfg: dict) -> dict | None:
    """A setting of the `quantize` section that only quantization depends on (None: none known yet)."""
    q = cfg.get("quantize") or {}
    for path in (
        ("calib_batch_size",),
        ("calib_size",),
        ("ptq", "calib_size"),
        ("ptq", "calibration_images"),
        ("calib_batches",),
    ):
        node = q
        for k in path[:-1]:
            node = node.get(k) if isinstance(node, dict) else None
        if isinstance(node, dict) and isinstance(node.get(path[-1]), int):
            change: dict = {path[-1]: node[path[-1]] + 1}
            for k in reversed(path[:-1]):
                change = {k: change}
            return {"quantize": change}
    return None


def test_quantization_settings_never_retrain(tiny_workflow: TinyWorkflow) -> None:
    stages = stage_rules()
    wf = finished(tiny_workflow)
    change = _quantization_change(wf.config())
    if change is None:
        pytest.skip(
            f"no known quantization setting to change in quantize: {sorted(wf.config().get('quantize', {}))}"
        )
    jobs = rules_of(dry_run_jobs(wf, change))
    allowed = stages["quantize"] | stages.get("convert", set()) | stages.get("bench", set()) | REPORT_RULES
    assert jobs & stages["quantize"], jobs
    assert jobs <= allowed, jobs - allowed
    assert not jobs & (
        stages["train"] | stages["data"] | stages.get("prune", set()) | stages.get("retrain", set())
    )


def test_adding_a_device_runs_only_its_jobs(tiny_workflow: TinyWorkflow) -> None:
    wf = finished(tiny_workflow)
    cfg = wf.config()
    local = dict(cfg["devices"].get("local") or {})
    change: dict = {
        "devices": {"board2": {"host": "board2.invalid", "runtimes": local.get("runtimes", ["onnxruntime"])}}
    }
    if isinstance(cfg.get("bench", {}).get("devices"), list):
        change["bench"] = {"devices": [*cfg["bench"]["devices"], "board2"]}
    jobs = dry_run_jobs(wf, change)
    device_jobs = [j for j in jobs if j.rule not in REPORT_RULES]
    assert device_jobs, "adding a device scheduled no benchmark"
    for j in device_jobs:
        assert j.wildcards.get("device") == "board2" or any("/board2/" in o for o in j.output), (
            j.rule,
            j.wildcards,
        )
