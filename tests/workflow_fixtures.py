"""Real snakemake runs of the tiny preset, shared by the end-to-end tests (a pytest plugin module).

`tiny_workflow` runs the whole DAG once per test session in a tmp dir; `dry_run_jobs` then asks
Snakemake, with a changed config, which jobs it would run: the job list is how incremental
reruns are tested (no job is executed, the finished run stays intact for the next case).
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from edgeopt.config import check_config, deep_merge

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile")]
TINY = ROOT / "config" / "tiny.yaml"
README = ROOT / "README.md"


def readme_command(start: str) -> list[str]:
    """The command line README.md prints that begins with `start`, as argv (its `# comment` dropped),
    with `snakemake` run by this interpreter: tests run the commands users are told to type."""
    for line in README.read_text().splitlines():
        if line.startswith(start):
            argv = shlex.split(line, comments=True)
            return [sys.executable, "-m", "snakemake", *argv[1:]] if argv[0] == "snakemake" else argv
    raise AssertionError(f"README.md prints no command line starting with {start!r}")


def checkout_copy(parent: Path) -> Path:
    """`parent/edgeopt`: this checkout's files as a clone has them (tracked and untracked, not ignored),
    with the data folder beside it as on dev and CI machines (`parent/shared`, which the default
    `dataset.path` ../shared/datasets/... names). README commands run there exactly as printed."""
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    dest = parent / "edgeopt"
    for rel in filter(None, listed):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    shared = ROOT.parent / "shared"
    if shared.exists() and not (parent / "shared").exists():
        (parent / "shared").symlink_to(shared.resolve())
    return dest


def run_in(cwd: Path, argv: list[str], timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def bench_workdir(work: Path, tiny_data: Path, onnx: Path, variants: tuple[str, ...] = ("baseline",)) -> Path:
    """`work` holding the prepared tiny data (dataset `cifar10-tiny`) and `onnx` as the ort-fp32 deploy file of
    resnet20's `variants`: benchmark jobs there start at once, without the stages before them."""
    from edgeopt import plan

    shutil.copytree(tiny_data, work / "results" / "data" / "cifar10-tiny")
    for variant in variants:
        deploy = work / plan.deploy_path("resnet20", variant, "ort-fp32")
        deploy.parent.mkdir(parents=True)
        shutil.copyfile(onnx, deploy)
    return work


def jpeg_dataset(cifar_tar: Path) -> dict:
    """The `dataset` section reading the JPEG tarball (config.yaml's default downloads the python archive)."""
    return {"source": "tar", "path": str(cifar_tar), "url": None, "checksum": None}


@dataclass
class TinyWorkflow:
    """A finished tiny-preset run: its folder, the local override file and the first run's result."""

    workdir: Path
    local_config: Path
    proc: subprocess.CompletedProcess

    def snakemake(
        self, *args: str, configs: tuple[Path, ...] = (), timeout: int = 600
    ) -> subprocess.CompletedProcess:
        return run_snakemake(
            self.workdir,
            "--configfile",
            str(TINY),
            str(self.local_config),
            *map(str, configs),
            *args,
            timeout=timeout,
        )

    def config(self, extra: dict | None = None) -> dict:
        """The merged, validated config of this run (plus `extra`)."""
        merged = deep_merge(
            yaml.safe_load((ROOT / "config.yaml").read_text()), yaml.safe_load(TINY.read_text())
        )
        merged = deep_merge(merged, yaml.safe_load(self.local_config.read_text()))
        return check_config(deep_merge(merged, extra or {}))


@dataclass
class Job:
    rule: str
    wildcards: dict[str, str] = field(default_factory=dict)
    output: list[str] = field(default_factory=list)
    reason: str = ""


def run_snakemake(workdir: Path, *args: str, timeout: int = 1500) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*SNAKEMAKE, "--directory", str(workdir), "--cores", "2", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def parse_dry_run(text: str) -> list[Job]:
    """The jobs a `snakemake --dry-run` printed (rule blocks with their wildcards and outputs)."""
    jobs: list[Job] = []
    for line in text.splitlines():
        m = re.match(r"^(?:local)?rule (\w+):$", line)
        if m:
            jobs.append(Job(m.group(1)))
            continue
        if not jobs or not line.startswith("    "):
            continue
        key, _, value = line.strip().partition(": ")
        if key == "wildcards":
            jobs[-1].wildcards = dict(kv.split("=", 1) for kv in value.split(", ") if "=" in kv)
        elif key == "output":
            jobs[-1].output = value.split(", ")
        elif key == "reason":
            jobs[-1].reason = value
    return [j for j in jobs if j.rule != "all"]


def dry_run_jobs(wf: TinyWorkflow, change: dict) -> list[Job]:
    """Jobs Snakemake would run after merging `change` into the tiny config of `wf`."""
    path = wf.workdir / f"change-{abs(hash(repr(change)))}.yaml"
    path.write_text(yaml.safe_dump(change))
    proc = wf.snakemake("--dry-run", configs=(path,), timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return parse_dry_run(proc.stdout + proc.stderr)


def stage_rules() -> dict[str, set[str]]:
    """rule name -> stage file it is defined in (workflow/rules/<stage>.smk), read from the sources."""
    out: dict[str, set[str]] = {}
    for smk in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        out[smk.stem] = set(re.findall(r"^rule (\w+):", smk.read_text(), flags=re.M))
    return out


@pytest.fixture(scope="session")
def tiny_workflow(tmp_path_factory: pytest.TempPathFactory) -> TinyWorkflow:
    """The whole tiny DAG as a new user runs it (its dataset: the sample shipped in data/), once per
    test session in a copy of the checkout (README commands run there), every stage and the report included."""
    workdir = checkout_copy(tmp_path_factory.mktemp("tinywf"))
    local = workdir / "tiny-local.yaml"
    local.write_text("{}\n")
    proc = run_snakemake(workdir, "--configfile", str(TINY), str(local))
    return TinyWorkflow(workdir, local, proc)
