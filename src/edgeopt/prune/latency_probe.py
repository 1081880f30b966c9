"""Measured speed-ups of pruning candidates, for the planner's latency target.

MACs overstate how much faster a pruned small network runs (per-layer overheads and memory traffic
do not shrink with the channel count): 2.55x fewer MACs ran only 1.15-1.71x faster in ONNX Runtime
on ResNet-20. So the planner times each candidate it considers against the baseline here (ONNX
Runtime on this machine, A/B runs interleaved so load hits both alike) and scales the baseline
latency measured on the target device by that speed-up.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from edgeopt.convert.onnx_export import export_onnx
from edgeopt.harness.runtimes import load_runner


def ort_latency_ms(
    paths: dict[str, Path], batch: int, runs: int, threads: int, image_size: int = 32, in_channels: int = 3
) -> dict[str, float]:
    """Median ms per batch of each ONNX model, runs interleaved A/B/A/B after a warm-up."""
    runners = {k: load_runner("onnxruntime", str(p), threads=threads) for k, p in paths.items()}
    x = np.random.default_rng(0).standard_normal((batch, in_channels, image_size, image_size)).astype(np.float32)
    times: dict[str, list[float]] = {k: [] for k in runners}
    for r in runners.values():
        for _ in range(5):
            r.predict(x)
    for _ in range(runs):
        for k, r in runners.items():
            t0 = time.perf_counter()
            r.predict(x)
            times[k].append((time.perf_counter() - t0) * 1e3)
    return {k: statistics.median(v) for k, v in times.items()}


class SpeedupProbe:
    """Batch-1 ONNX Runtime speed-up of candidate models over one baseline, measured side by side."""

    def __init__(self, baseline: nn.Module, meta: dict[str, Any], runs: int = 50, threads: int = 0) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="edgeopt-probe-")
        self.meta, self.runs, self.threads = meta, runs, threads
        self.base = export_onnx(baseline, Path(self._dir.name) / "baseline.onnx", meta["image_size"],
                                meta.get("in_channels", 3))
        self.measured: list[dict[str, float]] = []

    def speedup(self, candidate: nn.Module) -> float:
        """Baseline latency / candidate latency (> 1: the candidate is faster)."""
        path = export_onnx(candidate, Path(self._dir.name) / "candidate.onnx", self.meta["image_size"],
                           self.meta.get("in_channels", 3))
        ms = ort_latency_ms({"baseline": self.base, "candidate": path}, 1, self.runs, self.threads,
                            self.meta["image_size"], self.meta.get("in_channels", 3))
        self.measured.append(ms)
        return ms["baseline"] / ms["candidate"]

    def close(self) -> None:
        self._dir.cleanup()
