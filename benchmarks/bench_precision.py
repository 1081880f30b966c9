#!/usr/bin/env python
"""Benchmark: training-step time in fp32 vs bf16 autocast on this machine, side by side in one run.

Why: `train.precision: auto` keeps CPUs in fp32, but on CPUs with AMX (Intel Sapphire Rapids and newer,
`amx_bf16` in `lscpu`) bf16 autocast runs the convolutions on AMX tiles; this prints the ratio that tells a
user whether to set `train.precision: bf16` on their machine. Rounds alternate fp32/bf16 so drift in the
machine's state hits both.

    PYTHONPATH=src python benchmarks/bench_precision.py --model resnet56 --batch-size 256 --rounds 2
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from edgeopt.models import create_model  # noqa: E402
from edgeopt.train.loop import autocast_dtype, resolve_device, sync_device  # noqa: E402


def step_seconds(model: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                 amp: torch.dtype | None, steps: int) -> float:
    """Mean seconds of `steps` SGD steps after one untimed warm-up step."""

    def step() -> None:
        with torch.autocast(x.device.type, dtype=amp or torch.bfloat16, enabled=amp is not None):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()
    sync_device(x.device)  # the warm-up's queued kernels must not run on the timed clock
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync_device(x.device)
    return (time.perf_counter() - t0) / steps


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet56")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=3, help="timed steps per precision and round")
    ap.add_argument("--rounds", type=int, default=2, help="fp32/bf16 alternations")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = resolve_device(args.device)
    model = create_model(args.model, num_classes=10).to(device, memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(args.batch_size, 3, 32, 32, device=device).to(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (args.batch_size,), device=device)
    times: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for _ in range(args.rounds):
        for name in times:
            times[name].append(step_seconds(model, opt, x, y, autocast_dtype(name, device), args.steps))
    fp32, bf16 = statistics.median(times["fp32"]), statistics.median(times["bf16"])
    print(f"== bench_precision: {args.model}, batch {args.batch_size}, {device}, {args.threads} threads, "
          f"channels_last, {args.rounds} rounds x {args.steps} steps ==")
    for name, ts in times.items():
        print(f"  {name}: {' / '.join(f'{t:.3f}' for t in ts)} s per step (median {statistics.median(ts):.3f})")
    print(f"  bf16 speed-up (median fp32 / median bf16): {fp32 / bf16:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
