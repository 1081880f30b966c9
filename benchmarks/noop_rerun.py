"""How long a rerun of the whole DAG takes when nothing changed (target: under 5 s).

Runs the tiny preset once in a work dir (or reuses one), then times, side by side in one run:
  floor   - `snakemake --version` (Python start + snakemake import: no workflow work at all)
  dry-run - `snakemake --dry-run` of the whole DAG (parse, config validation, DAG, metadata checks)
  no-op   - a real `snakemake --cores 2` that finds nothing to do
and prints medians, the no-op/floor ratio and the no-op/budget ratio.

    python benchmarks/noop_rerun.py [--workdir DIR] [--repeat 5] [--configfile extra.yaml ...]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUDGET_S = 5.0


def snakemake(
    workdir: Path, configs: list[str], *args: str
) -> tuple[float, float, subprocess.CompletedProcess]:
    """(wall seconds, CPU seconds of the snakemake process and its children, result)."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir)]
    cmd += ["--configfile", *configs, *args] if configs else list(args)
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime), proc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", help="run (or reuse) the tiny DAG here (default: a new temp dir)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument(
        "--configfile",
        nargs="*",
        default=[],
        help="extra config files after config/tiny.yaml (e.g. a dataset path)",
    )
    ap.add_argument("--dataset", help="a dataset tarball instead of the tiny preset's shipped sample")
    args = ap.parse_args(argv)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="edgeopt-noop-"))
    workdir.mkdir(parents=True, exist_ok=True)
    local = workdir / "noop-local.yaml"
    local.write_text(f"dataset:\n  path: {args.dataset}\n" if args.dataset else "{}\n")
    configs = [str(ROOT / "config" / "tiny.yaml"), str(local), *args.configfile]

    print(f"work dir {workdir}: building the tiny DAG (once)...", flush=True)
    took, _, proc = snakemake(workdir, configs, "--cores", "2")
    if proc.returncode != 0:
        print(proc.stderr[-3000:], file=sys.stderr)
        return 1
    print(f"  full run: {took:.1f} s")

    samples: dict[str, list[tuple[float, float]]] = {"floor": [], "dry-run": [], "no-op": []}
    for _ in range(args.repeat):
        wall, cpu, _ = snakemake(workdir, [], "--version")
        samples["floor"].append((wall, cpu))
        wall, cpu, p = snakemake(workdir, configs, "--dry-run")
        assert "Nothing to be done" in p.stdout + p.stderr, p.stdout[-2000:]
        samples["dry-run"].append((wall, cpu))
        wall, cpu, p = snakemake(workdir, configs, "--cores", "2")
        assert p.returncode == 0 and "Nothing to be done" in p.stdout + p.stderr, p.stderr[-2000:]
        samples["no-op"].append((wall, cpu))
    outputs = len(list((workdir / ".snakemake" / "metadata").glob("*")))
    wall = {k: statistics.median(w for w, _ in v) for k, v in samples.items()}
    cpu = {k: statistics.median(c for _, c in v) for k, v in samples.items()}
    print(f"\nno-op rerun of the tiny DAG ({outputs} recorded outputs), median of {args.repeat}:")
    print(f"  {'':8s} {'wall s':>7s} {'CPU s':>7s}")
    for k in samples:
        print(f"  {k:8s} {wall[k]:7.2f} {cpu[k]:7.2f}")
    print(
        f"  no-op / floor  = {wall['no-op'] / wall['floor']:.2f}x wall, {cpu['no-op'] / cpu['floor']:.2f}x CPU"
    )
    verdict = "within" if wall["no-op"] < BUDGET_S else "OVER"
    print(
        f"  no-op / budget = {wall['no-op'] / BUDGET_S:.2f} wall ({verdict} the {BUDGET_S:.0f} s budget);"
        f" CPU {cpu['no-op']:.2f} s (what it takes on an idle machine)"
    )
    if os.getloadavg()[0] > (os.cpu_count() or 1):
        print(
            f"  note: load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs: wall times include waiting"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
