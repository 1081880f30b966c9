"""Latency tables: batch-1 latency of each prunable group at a sweep of kept widths, measured on a device.

The table is what the planner's `speedup` target (and `latency` with `latency_model: table`) plans from:
the latency a group saves at each width, measured on the target device and runtime (so runtime
alignment effects show: a width that is not faster than a wider one is never chosen). Two ways to
build one (`prune.latency_table.method`): `whole` times the whole model with only that group cut to
that width; `layers` times the group's affected layers alone and adds them up. The planner predicts a
pruned model's latency as the baseline's minus the sum of each group's saving.

This module is torch-free (reading, predicting, snapping); `edgeopt.prune.latency_sweep` builds tables.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeopt.errors import EdgeoptError

#: how a table is measured (see the module docstring)
TABLE_METHODS = ("whole", "layers")
#: formats whose files the host can build for a device to time (TensorRT engines build on the device)
TABLE_FORMATS = ("ort-fp32", "ort-int8", "tflite-fp32", "tflite-fp16", "tflite-int8")
#: the `prune.latency_table` keys that change a table's numbers: editing one rebuilds it (the rule's params)
TABLE_KEYS = ("method", "ratios", "warmup", "rounds", "runs", "threads")
#: the row naming the whole unpruned model (its `latency_ms` anchors every prediction)
BASELINE_ROW = "@baseline"
#: the largest speed-up a table ever predicts (a floor for summed savings)
MAX_SPEEDUP = 100.0
COLUMNS = ("group", "channels", "kept", "ratio", "latency_ms", "saved_ms")


def plans_from_latency_table(target: dict[str, Any]) -> bool:
    """Whether a `prune.target` is planned from a latency table measured on its device: kind `speedup`, or
    kind `latency` with `latency_model: table`."""
    return target.get("kind") == "speedup" or (
        target.get("kind") == "latency" and target.get("latency_model") == "table")


@dataclass
class LatencyTable:
    """A read table: the baseline's latency and, per group, the ms saved at each measured kept width."""

    path: str
    sha256: str
    baseline_ms: float
    channels: dict[str, int] = field(default_factory=dict)
    saved: dict[str, dict[int, float]] = field(default_factory=dict)  # group -> kept -> ms saved

    def saved_at(self, group: str, kept: int) -> float:
        """ms `group` saves at `kept` channels: measured, or linear between the nearest measured widths."""
        points = self.saved.get(group)
        if not points or kept >= self.channels[group]:
            return 0.0
        points = {**points, self.channels[group]: 0.0}
        if kept in points:
            return points[kept]
        ws = sorted(points)
        lower = [w for w in ws if w < kept]
        upper = [w for w in ws if w > kept]
        if not lower:
            return points[ws[0]]
        lo, hi = lower[-1], upper[0]
        return points[lo] + (points[hi] - points[lo]) * (kept - lo) / (hi - lo)

    def predict_ms(self, widths: dict[str, int]) -> float:
        """Predicted latency of the model with each named group cut to its kept width; never under 1/`MAX_SPEEDUP`
        of the baseline (noisy savings summed over many groups can exceed the baseline itself)."""
        ms = self.baseline_ms - sum(self.saved_at(g, w) for g, w in widths.items() if g in self.channels)
        return max(ms, self.baseline_ms / MAX_SPEEDUP)

    def fast_widths(self, group: str) -> list[int]:
        """Kept widths (narrowest first) that run faster than every wider width measured: the only
        widths worth cutting to on this device and runtime (a narrower width no faster is accuracy lost
        for nothing)."""
        points = {**self.saved.get(group, {}), self.channels[group]: 0.0}
        best, fast = 0.0, []
        for w in sorted(points, reverse=True):
            if w < self.channels[group] and points[w] > best:
                fast.append(w)
                best = points[w]
        return sorted(fast)


def table_rows_csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(COLUMNS), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: r.get(k, "") for k in COLUMNS})
    return buf.getvalue()


def read_table(path: str | Path) -> LatencyTable:
    """Parse a latency table CSV; a missing or malformed one is a one-line error naming the file."""
    path = Path(path)
    if not path.exists():
        raise EdgeoptError(f"{path}: latency table missing; run the build_latency_table rule first")
    text = path.read_text()
    rows = list(csv.DictReader(text.splitlines()))
    if not rows or not set(COLUMNS) <= set(rows[0]):
        raise EdgeoptError(f"{path}: not a latency table (needs columns {', '.join(COLUMNS)})")
    table = LatencyTable(str(path), hashlib.sha256(text.encode()).hexdigest(), 0.0)
    try:
        for r in rows:
            if r["group"] == BASELINE_ROW:
                table.baseline_ms = float(r["latency_ms"])
                continue
            g, kept = r["group"], int(r["kept"])
            table.channels[g] = int(r["channels"])
            if kept < table.channels[g]:
                table.saved.setdefault(g, {})[kept] = float(r["saved_ms"])
    except (KeyError, ValueError) as exc:
        raise EdgeoptError(f"{path}: malformed latency table row ({exc})") from None
    if table.baseline_ms <= 0:
        raise EdgeoptError(f"{path}: latency table has no {BASELINE_ROW} row with a positive latency_ms")
    return table
