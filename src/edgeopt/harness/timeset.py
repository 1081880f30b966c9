"""Device-side timing of several model files side by side: the measuring half of a latency table.

Runs on the device with Python 3 + numpy + one runtime, like `edgeopt.harness.bench` (whose loader and
input helpers it uses). Each model gets seeded random batch-1 inputs of its own declared shape; the
models are timed in rounds, a few runs of each per round in a rotating order, so load that comes and
goes on the device hits every model alike and ratios between them stay meaningful.
`python -m edgeopt.harness.timeset --runtime onnxruntime --out times.json a.onnx b.onnx ...`; on an input
or runtime problem it prints one line `edgeopt harness: ...` last on stderr and exits 3.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from edgeopt.harness import sysinfo
from edgeopt.harness.bench import HarnessError, input_shape, load_model, random_batch, write_result

TIMESET_VERSION = 1


def time_models(
    runtime: str, paths: list[str], threads: int = 0, warmup: int = 3, rounds: int = 10, runs: int = 3
) -> list[dict[str, Any]]:
    """Per model (in the order given): median, p10 and p90 batch-1 latency in ms over `rounds` x `runs`."""
    if not paths:
        raise HarnessError("no model files to time")
    # all sessions stay alive and take turns: the spinning idle threads of the others would slow the one
    # running (measured in docs/pruning.md), so none spins; every file is timed alike
    runners = [load_model(runtime, p, threads, spin=len(paths) == 1) for p in paths]
    rng = np.random.default_rng(0)
    batches = [random_batch(input_shape(None, r), 1, rng) for r in runners]
    for r, x in zip(runners, batches, strict=True):
        for _ in range(warmup):
            r.predict(x)
    times: list[list[float]] = [[] for _ in paths]
    n = len(paths)
    for k in range(rounds):
        for j in range(n):
            i = (j + k) % n  # rotate who goes first
            r, x = runners[i], batches[i]
            for _ in range(runs):
                t0 = time.perf_counter()
                r.predict(x)
                times[i].append((time.perf_counter() - t0) * 1e3)
    out = []
    for t in times:
        a = np.asarray(t)
        out.append({"latency_ms": float(np.median(a)), "p10_ms": float(np.percentile(a, 10)),
                    "p90_ms": float(np.percentile(a, 90)), "timed_runs": int(len(a))})
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runtime", required=True, help="runner registry name: onnxruntime or tflite")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--runs", type=int, default=3, help="runs of each model per round")
    p.add_argument("--out", required=True)
    p.add_argument("models", nargs="+")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def compute() -> dict[str, Any]:
        t0 = time.perf_counter()
        rows = time_models(args.runtime, args.models, args.threads, args.warmup, args.rounds, args.runs)
        return {"timeset_version": TIMESET_VERSION, "runtime": args.runtime, "threads": args.threads,
                "warmup": args.warmup, "rounds": args.rounds, "runs": args.runs, "models": rows,
                "system": sysinfo.system_info(), "seconds": time.perf_counter() - t0}

    return write_result(compute, args.out, f"{args.runtime} failed timing models")


if __name__ == "__main__":
    raise SystemExit(main())
