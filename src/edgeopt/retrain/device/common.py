"""Numpy-only helpers shared by the device-side training scripts (data, timing, memory, results)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgeopt.harness.sysinfo import cpu_info


def parse_args(argv: list[str] | None, files: tuple[str, ...], doc: str | None) -> argparse.Namespace:
    """`--job`, `--train`, `--test`, `--out` and the framework's model files, each a path on the device.

    Files arrive one by one in the device's content-hashed store, so every input is named explicitly.
    """
    p = argparse.ArgumentParser(description=(doc or "").strip().splitlines()[0] if doc else None)
    for name in ("job", "train", "test", "out", *files):
        p.add_argument(f"--{name.replace('_', '-')}", required=True)
    return p.parse_args(argv)


def load_job(path: str | Path) -> dict[str, Any]:
    """The job description written by the host (`job.json`)."""
    return json.loads(Path(path).read_text())


def load_split(path: str | Path, mean: list[float], std: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """A uint8 NHWC split as normalised float32 NCHW plus int64 labels (normalised once, up front)."""
    with np.load(path) as z:
        x, y = z["x"], z["y"].astype(np.int64)
    if x.ndim == 3:
        x = x[..., None]
    m = np.asarray(mean, np.float32).reshape(1, -1, 1, 1)
    s = np.asarray(std, np.float32).reshape(1, -1, 1, 1)
    xf = (x.transpose(0, 3, 1, 2).astype(np.float32) / 255.0 - m) / s
    return np.ascontiguousarray(xf), y


def batch_order(n: int, batch_size: int, epoch: int, seed: int) -> list[np.ndarray]:
    """Shuffled full batches for one epoch (the last partial batch is dropped, as in training loops)."""
    idx = np.random.default_rng(seed + epoch).permutation(n)
    nb = max(1, n // batch_size) if n >= batch_size else 1
    return [idx[i * batch_size : (i + 1) * batch_size] for i in range(nb)]


def peak_rss_bytes() -> int:
    """Peak resident memory of this process so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def current_rss_bytes() -> int | None:
    """Resident memory now (Linux /proc), to separate model+data from training overhead."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


class EpochTimer:
    """Per-epoch wall time and images; `sync` is called before reading the clock (CUDA)."""

    def __init__(self, sync: Any = None) -> None:
        self.sync = sync or (lambda: None)
        self.epochs: list[dict[str, float]] = []

    def start(self) -> None:
        self.sync()
        self._t0 = time.perf_counter()

    def stop(self, images: int, loss: float) -> None:
        self.sync()
        dt = time.perf_counter() - self._t0
        self.epochs.append(
            {
                "epoch": len(self.epochs) + 1,
                "seconds": dt,
                "images": images,
                "images_per_second": images / dt,
                "loss": loss,
            }
        )

    def summary(self) -> dict[str, Any]:
        total_s = sum(e["seconds"] for e in self.epochs)
        total_i = sum(e["images"] for e in self.epochs)
        later = self.epochs[1:]
        steady = sum(e["images"] for e in later) / sum(e["seconds"] for e in later) if later else None
        return {
            "epochs": self.epochs,
            "train_seconds": total_s,
            "seconds_per_epoch": total_s / max(len(self.epochs), 1),
            "images_per_second": total_i / total_s if total_s > 0 else 0.0,
            "first_epoch_images_per_second": self.epochs[0]["images_per_second"] if self.epochs else None,
            "steady_images_per_second": steady,
        }


def host_info() -> dict[str, Any]:
    """What the numbers ran on, as seen from the device itself."""
    return {
        "hostname": platform.node(),
        "machine": platform.machine(),
        "platform": platform.platform(),
        "processor": cpu_info()["model"],
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
    }


def write_result(path: str | Path, result: dict[str, Any]) -> None:
    """Write the result JSON atomically (temp + rename) so the host never reads half a file."""
    final = Path(path)
    tmp = final.with_name("." + final.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, final)


def param_change(
    before: dict[str, np.ndarray], after: dict[str, np.ndarray], frozen: set[str]
) -> dict[str, float]:
    """Largest absolute change of frozen and of trained parameters (proves freezing held)."""
    out = {"frozen_max_abs_change": 0.0, "trainable_max_abs_change": 0.0}
    for name, b in before.items():
        d = float(np.max(np.abs(after[name].astype(np.float64) - b))) if b.size else 0.0
        key = "frozen_max_abs_change" if name in frozen else "trainable_max_abs_change"
        out[key] = max(out[key], d)
    return out
