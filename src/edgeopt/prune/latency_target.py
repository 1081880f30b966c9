"""Speed-up and latency targets planned from a latency table measured on the device, then checked there.

Moves are (group, kept width) steps, each width one the table shows faster than every wider width on
that device and runtime (measured alignment instead of one fixed `round_to`), ordered by the accuracy
the sensitivity table says the cut costs per millisecond the latency table says it saves (without a
sensitivity table, as `order: global` plans, the cost of a cut is the share of channels it removes). The shortest
prefix whose *predicted* speed-up meets the target is cut and timed against the baseline on the device; while the *measured* speed-up falls short,
the goal is raised by the shortfall and more moves are added, for at most `target.rounds` timings.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from edgeopt.errors import EdgeoptError
from edgeopt.prune.common import count
from edgeopt.prune.latency_sweep import cut_to
from edgeopt.prune.latency_table import LatencyTable


def required_speedup(target: dict[str, Any], table: LatencyTable) -> float:
    """The batch-1 speed-up a target asks for: `speedup` directly, `latency` (ms) against the table's baseline."""
    value = float(target["value"])
    if target.get("kind") == "speedup":
        if value <= 1:
            raise EdgeoptError(f"prune.target.value: a speedup must be > 1, got {value:g}")
        return value
    if value <= 0:
        raise EdgeoptError(f"prune.target.value: a latency budget must be > 0 ms, got {value:g}")
    return max(1.0, table.baseline_ms / value)


def _cut_share(row: dict[str, Any]) -> float:
    """The share of channels a sensitivity row really removed: from its `kept`/`channels` columns when present
    (the table rounds kept widths to its `round_to`, so ratio 0.75 of 16 channels may have kept 8), else its ratio."""
    try:
        return 1.0 - float(row["kept"]) / float(row["channels"])
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return float(row["ratio"])


def accuracy_drops(rows: list[dict[str, Any]]) -> dict[str, list[tuple[float, float]]]:
    """Per group, (share of channels removed, accuracy drop) points of the sensitivity table from (0, 0), drops
    kept non-decreasing; rows that removed the same share (rounding) count once, with the worst drop."""
    by_layer: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_layer.setdefault(r["layer"], []).append(r)
    out: dict[str, list[tuple[float, float]]] = {}
    for layer, lr in by_layer.items():
        base = next((r["accuracy"] for r in lr if r["ratio"] == 0.0), None)
        if base is None:
            raise EdgeoptError(f"sensitivity table: group {layer!r} has no ratio-0 (baseline) row")
        worst, points = 0.0, [(0.0, 0.0)]
        for r in sorted(lr, key=_cut_share):
            share = _cut_share(r)
            if share > 0:
                worst = max(worst, base - r["accuracy"])
                if share - points[-1][0] > 1e-9:
                    points.append((share, worst))
                else:
                    points[-1] = (share, worst)
        out[layer] = points
    return out


def drop_at(points: list[tuple[float, float]], ratio: float) -> float | None:
    """Accuracy drop at `ratio`, linear between measured shares; None past the largest share really measured."""
    for (r0, d0), (r1, d1) in zip(points, points[1:], strict=False):
        if r0 <= ratio <= r1 + 1e-9:
            return d0 + (d1 - d0) * (ratio - r0) / (r1 - r0)
    return None


def table_moves(
    table: LatencyTable, drops: dict[str, list[tuple[float, float]]] | None, max_ratio: float
) -> list[tuple[str, int]]:
    """(group, kept width) moves, cheapest accuracy lost per ms saved first (ties: most saved first). A group's
    deeper cut may come before its shallower one when it buys time more cheaply; a prefix keeps each group's
    narrowest width (`widths_after`), so the shallower move then changes nothing. With `drops` None (no
    sensitivity table) a cut costs the share of the group's channels it removes."""
    keyed = []
    for g in table.channels:
        if drops is not None and g not in drops:
            continue
        c = table.channels[g]
        for w in sorted(table.fast_widths(g), reverse=True):
            ratio = (c - w) / c
            drop = ratio if drops is None else drop_at(drops[g], ratio)
            if ratio > max_ratio + 1e-9 or drop is None:
                break
            saved = table.saved[g][w]
            keyed.append(((max(drop, 0.0) / saved, -saved), g, w))
    keyed.sort(key=lambda k: k[0])
    return [(g, w) for _, g, w in keyed]


def widths_after(moves: list[tuple[str, int]], n: int) -> dict[str, int]:
    widths: dict[str, int] = {}
    for g, w in moves[:n]:
        widths[g] = min(w, widths.get(g, w))
    return widths


def plan_for_speedup(
    model: nn.Module, meta: dict[str, Any], rows: list[dict[str, Any]] | None, cfg: dict[str, Any],
    table: LatencyTable, measure: Callable[[nn.Module], dict[str, float]],
) -> tuple[dict[str, float], dict[str, Any]]:
    """Per-group ratios (exact kept widths) meeting the target as measured by `measure` on the device, and
    the plan's record: the table used, predicted and measured speed-ups of every candidate timed. `rows`: the
    sensitivity table, or None to cost each cut by the share of channels it removes."""
    target = cfg.get("target") or {}
    want = required_speedup(target, table)
    max_rounds, max_ratio = int(target.get("rounds", 3)), float(cfg.get("max_ratio", 0.8))
    ignore = cfg.get("ignore") or []
    moves = table_moves(table, None if rows is None else accuracy_drops(rows), max_ratio)
    if not moves:
        within = "prune.max_ratio" if rows is None else "the sensitivity table's ratios and prune.max_ratio"
        raise EdgeoptError(f"{table.path}: no group of the latency table has a width that is both faster on the "
                           f"device and within {within}")

    def predicted(n: int) -> float:
        return table.baseline_ms / table.predict_ms(widths_after(moves, n))

    def first_reaching(goal: float, start: int) -> int | None:
        return next((k for k in range(start, len(moves) + 1) if predicted(k) >= goal - 1e-9), None)

    n = first_reaching(want, 1)
    if n is None:
        raise EdgeoptError(
            f"prune.target: a {want:.3g}x speed-up is out of reach by {table.path}: every move up to max_ratio "
            f"{max_ratio:g} predicts {predicted(len(moves)):.3g}x on that device")
    goal, rounds, stop = want, [], ""
    for _ in range(max_rounds):
        widths = widths_after(moves, n)
        m = measure(cut_to(model, meta, widths, table.channels, ignore))
        rounds.append({"moves": n, "goal_speedup": round(goal, 4), "predicted_speedup": round(predicted(n), 4),
                       "measured_speedup": m["speedup"], "baseline_ms": m["baseline_ms"],
                       "candidate_ms": m["candidate_ms"]})
        if m["speedup"] >= want:
            break
        if n == len(moves):
            stop = "every move taken"
            break
        goal *= want / m["speedup"]  # the table was optimistic by this much: ask it for more
        n = first_reaching(goal, n + 1) or len(moves)
    met = rounds[-1]["measured_speedup"] >= want
    if not met and not stop:
        stop = f"target.rounds ({max_rounds}) used up"
    last = rounds[-1]
    widths = widths_after(moves, last["moves"])
    macs, params = count(cut_to(model, meta, widths, table.channels, ignore), meta)
    base_macs, base_params = count(model, meta)
    summary = {
        "metric": "speedup",
        "order": "share_per_ms" if rows is None else "loss_per_ms",
        "required_reduction": round(want, 4),
        "reached_reduction": last["measured_speedup"],
        "macs": macs, "params": params, "baseline_macs": base_macs, "baseline_params": base_params,
        "macs_reduction": round(base_macs / max(macs, 1), 4),
        "latency_model": "latency table measured on the device",
        "latency_table": table.path,
        "latency_table_sha256": table.sha256,
        "device": target.get("device", "local"),
        "format": target.get("format", "ort-fp32"),
        "table_baseline_latency_ms": table.baseline_ms,
        "predicted_speedup": last["predicted_speedup"],
        "measured_speedup": last["measured_speedup"],
        "measured_latency_ms": last["candidate_ms"],
        "met": met,
        "stopped_short": None if met else stop,
        "rounds": rounds,
        "max_rounds": max_rounds,
        "widths": dict(sorted(widths.items())),
    }
    if target.get("kind") == "latency":
        summary["latency_budget_ms"] = float(target["value"])
    ratios = {g: round((table.channels[g] - w) / table.channels[g], 6) for g, w in widths.items()}
    return ratios, summary
