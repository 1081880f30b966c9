"""Automatic pruning plans: from a sensitivity table to per-group ratios that reach a target.

Each group's ratio levels become moves, ordered by the accuracy they cost when pruned alone
(running maximum over lower ratios, so a group's levels stay in order), ties broken by MACs
saved; or (`order: loss_per_saving`) by that cost per unit of the target metric saved, which
prefers the groups that buy most of the target for their accuracy (NetAdapt/AMC-style resource
normalisation) over cheap groups that save little. The shortest prefix of moves whose *combined*
pruning reaches the target is found by bisection, counting MACs/params on the really pruned model
each time (coupled groups make the sum of single-group savings wrong). With `order: global` the
moves are channels (in blocks of `round_to`) ranked by their group-normalised magnitude across every
group (DepGraph's global pruning), so the table only names the groups and its accuracies do not steer the plan. The plan
is written as a recipe the user can edit and replay.
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from edgeopt.cli import json_arg
from edgeopt.config import fill_section
from edgeopt.errors import EdgeoptError
from edgeopt.prune import RECIPE_VARIANTS
from edgeopt.prune.common import count, load_for_pruning
from edgeopt.prune.groups import channel_importance, list_groups, prune_structured, unprunable_groups
from edgeopt.prune.latency_probe import SpeedupProbe
from edgeopt.prune.latency_table import plans_from_latency_table
from edgeopt.prune.pruners import check_cut_plan
from edgeopt.prune.recipe import RECIPE_VERSION, save_recipe
from edgeopt.prune.regularize import read_regularize
from edgeopt.prune.sensitivity import read_csv
from edgeopt.prune.zeropad import residual_blocks
from edgeopt.records import BenchResult, read_record

TARGET_KINDS = ("macs", "params", "latency", "speedup")
MOVE_ORDERS = ("loss", "loss_per_saving", "global")
TABLE_ORDERS = ("loss", "loss_per_saving")
PLANNED_VARIANTS = RECIPE_VARIANTS


def bench_latency_ms(path: str | Path) -> float:
    """Batch-1 median latency (ms) of a benchmark result (`records.BenchResult`)."""
    path = Path(path)
    if not path.exists():
        raise EdgeoptError(
            f"prune.target: kind latency needs a measured baseline latency, but {path} does not exist "
            "(run the benchmark rule for the baseline on that device first, or use kind macs/params)"
        )
    result = read_record(path, BenchResult)
    for batch in result.batches:
        if batch.batch_size == 1 and batch.latency_ms.get("p50", 0) > 0:
            return float(batch.latency_ms["p50"])
    raise EdgeoptError(f"{path}: no batch-1 latency found (bench.batch_sizes must include 1)")


def required_reduction(target: dict[str, Any], base_latency_ms: float | None = None) -> tuple[str, float]:
    """(metric, reduction factor) a target asks for; a latency budget becomes a MACs reduction."""
    target = fill_section("prune", {"target": target})["target"]
    kind = target["kind"]
    if kind not in TARGET_KINDS:
        raise EdgeoptError(f"prune.target.kind: must be one of {TARGET_KINDS}, got {kind!r}")
    value = float(target["value"])
    if kind == "latency":
        if base_latency_ms is None:
            raise EdgeoptError("prune.target: kind latency needs the baseline benchmark JSON")
        if value <= 0:
            raise EdgeoptError(f"prune.target.value: a latency budget must be > 0 ms, got {value}")
        # first guess: latency proportional to MACs (the planner then checks measured speed-ups, `_meet_latency`)
        return "macs", max(1.0, base_latency_ms / value)
    if value < 1:
        raise EdgeoptError(f"prune.target.value: a {kind} reduction factor must be >= 1, got {value}")
    return kind, value


def _moves(
    rows: list[dict[str, Any]], max_ratio: float, metric: str, order: str = "loss"
) -> list[tuple[str, float]]:
    """Ordered (group, ratio) moves: cheapest accuracy loss (or loss per `metric` saved) first, then most saved."""
    if order not in TABLE_ORDERS:
        raise EdgeoptError(f"prune.order: must be one of {MOVE_ORDERS}, got {order!r}")
    by_layer: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_layer.setdefault(r["layer"], []).append(r)
    keyed = []
    for layer, lr in by_layer.items():
        lr.sort(key=lambda r: r["ratio"])
        base = next((r for r in lr if r["ratio"] == 0.0), None)
        if base is None:
            raise EdgeoptError(f"sensitivity table: group {layer!r} has no ratio-0 (baseline) row")
        worst, cost, last_saved = 0.0, 0.0, 0
        for r in lr:
            if r["ratio"] == 0.0 or r["ratio"] > max_ratio + 1e-9:
                continue
            saved = base[metric] - r[metric]
            if saved <= last_saved:  # rounding made this level identical to a lower one
                continue
            last_saved = saved
            worst = max(worst, base["accuracy"] - r["accuracy"])
            # running maximum here too: a level never ranks below the group's lower levels (a tie goes to the larger saving)
            cost = worst if order == "loss" else max(cost, worst / (saved / base[metric]))
            keyed.append(((cost, -saved), layer, r["ratio"]))
    keyed.sort(key=lambda k: k[0])
    return [(layer, ratio) for _, layer, ratio in keyed]


def _global_moves(scores: dict[str, torch.Tensor], max_ratio: float, step: int = 1) -> list[tuple[str, float]]:
    """Each group's channels, weakest first, in blocks of `step` (the rounding multiple, so every move is a width the
    pruner keeps exactly), as moves ranked across all groups by the block's mean importance; a group never goes past
    `max_ratio`."""
    keyed = []
    step = max(1, int(step or 1))
    for layer, s in scores.items():
        c, ranked = len(s), sorted(s.tolist())
        for k in range(step, c, step):
            if k / c > max_ratio + 1e-9:
                break
            keyed.append((sum(ranked[k - step : k]) / step, layer, k / c))
    keyed.sort()
    return [(layer, ratio) for _, layer, ratio in keyed]


def _ratios_after(moves: list[tuple[str, float]], n: int) -> dict[str, float]:
    ratios: dict[str, float] = {}
    for layer, ratio in moves[:n]:
        ratios[layer] = max(ratio, ratios.get(layer, 0.0))
    return ratios


def _first_ok(ok: Callable[[int], bool], lo: int, hi: int) -> int:
    """Smallest n in [lo, hi] with ok(n), by bisection (ok(hi) is known to hold)."""
    while lo < hi:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid + 1
    return hi


def plan_structured(
    model: torch.nn.Module, meta: dict[str, Any], rows: list[dict[str, Any]] | None, cfg: dict[str, Any],
    base_latency_ms: float | None = None, probe: SpeedupProbe | None = None,
) -> tuple[dict[str, float], dict[str, Any]]:
    """Per-group ratios reaching the target with the least sensitivity cost, and what they reach.

    A latency target first asks for the MACs reduction baseline/budget; with a `probe`, moves are then added
    until the *measured* speed-up brings the baseline latency within the budget.
    """
    cfg = fill_section("prune", cfg)
    target = cfg["target"]
    metric, factor = required_reduction(target, base_latency_ms)
    round_to, crit, ignore = cfg["round_to"], cfg["importance"], cfg["ignore"]
    order, max_ratio = cfg["order"], float(cfg["max_ratio"])
    if rows is None and order != "global":
        raise EdgeoptError(f"prune.order: {order} plans from a sensitivity table; none was given")
    known = {g.name for g in list_groups(model, meta["image_size"], meta["in_channels"], meta.get("num_classes"), ignore)}
    if rows is not None:
        rows = [r for r in rows if r["layer"] in known]
        if not rows:
            raise EdgeoptError("sensitivity table: none of its layers is a prunable group of this model")
    base_macs, base_params = count(model, meta)
    base = {"macs": base_macs, "params": base_params}
    if order == "global":
        scores = channel_importance(model, meta["image_size"], meta["in_channels"], meta.get("num_classes"), crit,
                                    ignore)
        # a table, when given, limits the plan to the groups it names (e.g. one made with a narrower `ignore`)
        named = known if rows is None else {r["layer"] for r in rows}
        moves = _global_moves({g: s for g, s in scores.items() if g in named}, max_ratio, round_to)
    else:
        moves = _moves(rows, max_ratio, metric, order)

    def build(n: int) -> torch.nn.Module:
        m = copy.deepcopy(model)
        prune_structured(m, _ratios_after(moves, n), meta["image_size"], meta["in_channels"],
                         meta.get("num_classes"), round_to, crit, ignore)
        return m

    stats_of: dict[int, dict[str, int]] = {}

    def measure(n: int) -> dict[str, int]:
        if n not in stats_of:
            macs, params = count(build(n), meta) if n else (base_macs, base_params)
            stats_of[n] = {"macs": macs, "params": params}
        return stats_of[n]

    def reached(stats: dict[str, int]) -> float:
        return base[metric] / max(stats[metric], 1)

    full = measure(len(moves))
    if reached(full) < factor - 1e-9:
        raise EdgeoptError(
            f"prune.target: a {factor:.3g}x {metric} reduction is impossible: pruning every group up to "
            f"max_ratio {cfg['max_ratio']} reaches only {reached(full):.3g}x"
        )
    n = _first_ok(lambda k: reached(measure(k)) >= factor, 0, len(moves))
    latency: dict[str, Any] = {}
    if base_latency_ms is not None:
        latency = {"baseline_latency_ms": base_latency_ms, "latency_model": "proportional to MACs"}
    if probe is not None and base_latency_ms is not None:
        n, latency = _meet_latency(n, len(moves), build, probe, base_latency_ms, float(target["value"]), factor)
    best = measure(n)
    ratios = _ratios_after(moves, n)
    single = {(r["layer"], r["ratio"]): r["accuracy"] for r in rows or []}
    worst = max([0.0] + [single[(g, 0.0)] - single[(g, r)] for g, r in ratios.items() if (g, r) in single])
    summary = {
        "metric": metric,
        "order": order,
        "required_reduction": round(factor, 4),
        "reached_reduction": round(reached(best), 4),
        "macs": best["macs"],
        "params": best["params"],
        "baseline_macs": base_macs,
        "baseline_params": base_params,
        "worst_single_group_val_drop": round(worst, 4),
        **latency,
    }
    return ratios, summary


def _meet_latency(
    n: int, n_max: int, build: Callable[[int], torch.nn.Module], probe: SpeedupProbe, base_ms: float, budget: float,
    macs_factor: float,
) -> tuple[int, dict[str, Any]]:
    """The shortest prefix (at least `n`, the MACs-proportional guess) whose measured speed-up predicts a latency
    within `budget`; an error when even every move is too slow."""
    speedups: dict[int, float] = {}

    def predicted(k: int) -> float:
        if k not in speedups:
            speedups[k] = probe.speedup(build(k))
        return base_ms / speedups[k]

    if predicted(n) > budget:
        if n == n_max or predicted(n_max) > budget:
            raise EdgeoptError(
                f"prune.target: a latency of {budget:g} ms is out of reach: pruning every group up to max_ratio "
                f"measured {speedups[n_max]:.3g}x faster than the baseline here, i.e. {predicted(n_max):.3g} ms "
                f"from the baseline's {base_ms:g} ms"
            )
        n = _first_ok(lambda k: predicted(k) <= budget, n + 1, n_max)
    return n, {
        "latency_model": "baseline latency / ONNX Runtime speed-up measured on the planning machine",
        "baseline_latency_ms": base_ms,
        "latency_budget_ms": budget,
        "predicted_latency_ms": round(predicted(n), 4),
        "measured_speedup": round(speedups[n], 4),
        "macs_proportional_reduction": round(macs_factor, 4),
        "candidates_timed": len(speedups),
    }


def _plan_from_table(
    model: torch.nn.Module, meta: dict[str, Any], cfg: dict[str, Any], sensitivity_csv: str | Path | None,
    latency_table: str | Path | None,
) -> tuple[dict[str, float], dict[str, Any]]:
    """`plan_for_speedup` with the candidates timed on the target device."""
    from edgeopt.devices import device_from_json
    from edgeopt.prune.latency_sweep import DeviceTimer
    from edgeopt.prune.latency_table import read_table
    from edgeopt.prune.latency_target import plan_for_speedup

    target = cfg.get("target") or {}
    if latency_table is None:
        raise EdgeoptError(f"prune.target: kind {target.get('kind')} plans from a latency table: pass --latency-table")
    table = read_table(latency_table)
    rows = None if sensitivity_csv is None else read_csv(sensitivity_csv)  # None: order global, cost = share cut
    device = device_from_json(target.get("device", "local"), cfg.get("device_settings") or {})
    timer = DeviceTimer(model, meta, device, target.get("format", "ort-fp32"), cfg.get("latency_table") or {})
    try:
        return plan_for_speedup(model, meta, rows, cfg, table, timer.measure)
    finally:
        timer.close()


def plan_zeropad(model: torch.nn.Module, meta: dict[str, Any], cfg: dict[str, Any]) -> tuple[dict, dict]:
    """Every residual block: its inner groups and its output channels (zero-padded) at `zeropad.ratio`."""
    ratio = float(cfg["zeropad"]["ratio"])
    blocks = residual_blocks(model)
    if not blocks:
        raise EdgeoptError(f"prune: zeropad needs residual blocks; model {meta.get('arch')!r} has none")
    groups = list_groups(model, meta["image_size"], meta["in_channels"], meta.get("num_classes"), cfg.get("ignore"))
    inner = {
        g.name: ratio
        for g in groups
        if any(all(m.startswith(b + ".") for m in g.members) for b in blocks)
    }
    return inner, {b: ratio for b in blocks}


def _unpruned(model: torch.nn.Module, meta: dict[str, Any], cfg: dict[str, Any]) -> dict[str, str]:
    """Groups the plan leaves alone because DepGraph cannot prune them safely (recorded in the recipe)."""
    return unprunable_groups(model, meta["image_size"], meta["in_channels"], meta.get("num_classes"), cfg.get("ignore"))


def plan_pruning(
    variant: str,
    model_path: str | Path,
    out_recipe: str | Path,
    cfg: dict[str, Any],
    sensitivity_csv: str | Path | None = None,
    bench_json: str | Path | None = None,
    model_name: str | None = None,
    latency_table: str | Path | None = None,
) -> dict[str, Any]:
    """Write the recipe of `variant` (pruned | zeropad | sparse) for a trained model.

    A target planned from a latency table (`plans_from_latency_table`) reads `latency_table` and times its candidates
    on `cfg["device_settings"]` (the target device's settings, as the rule passes them)."""
    if variant not in PLANNED_VARIANTS:
        raise EdgeoptError(f"prune-plan: unknown variant {variant!r} (known: {', '.join(PLANNED_VARIANTS)})")
    model, meta = load_for_pruning(str(model_path), "cpu")
    name = model_name or meta.get("arch", "model")
    common = {
        "version": RECIPE_VERSION,
        "model": name,
        "variant": variant,
        "source": str(model_path),
    }
    cfg = dict(cfg)
    # how a table-planned target's candidates are timed, and where: the rule's additions to the `prune` keys
    timing = {"device_settings": cfg.pop("device_settings", None) or {}, "latency_table": cfg.pop("latency_table", None) or {}}
    cfg = fill_section("prune", cfg)
    finetune = dict(cfg["finetune"])
    round_to = cfg["round_to"]
    if variant == "pruned":
        if sensitivity_csv is None and cfg["order"] != "global":
            raise EdgeoptError("prune-plan: variant pruned needs --sensitivity (all orders but global plan from it)")
        latency, probe = None, None
        target = cfg["target"]
        if plans_from_latency_table(target):
            ratios, summary = _plan_from_table(model, meta, {**cfg, **timing}, sensitivity_csv, latency_table)
            round_to = 1  # the table's widths, exactly
        elif target.get("kind") == "latency":
            if bench_json is None:
                raise EdgeoptError("prune.target: kind latency needs --bench (the baseline benchmark JSON)")
            latency = bench_latency_ms(bench_json)
            if target["latency_model"] == "measured":
                probe = SpeedupProbe(model, meta, int(target["probe_runs"]), int(target["probe_threads"]))
        if not plans_from_latency_table(target):
            try:
                rows = read_csv(sensitivity_csv) if sensitivity_csv is not None else None
                ratios, summary = plan_structured(model, meta, rows, cfg, latency, probe)
            finally:
                if probe is not None:
                    probe.close()
        steps, epochs_per_step, _ = check_cut_plan(cfg, "prune")
        reg_epochs, shrink, ramp = read_regularize(cfg, "prune")
        recipe = {
            **common,
            "pruner": "structured",
            "importance": cfg["importance"],
            "round_to": round_to,
            "ignore": list(cfg["ignore"]),
            "target": dict(cfg["target"]),
            "planned": {"sensitivity": str(sensitivity_csv) if sensitivity_csv is not None else None, **summary},
            "ratios": dict(sorted(ratios.items())),
            "unpruned": _unpruned(model, meta, cfg),
            "schedule": {"steps": steps, "epochs_per_step": epochs_per_step},
            "regularize": {"epochs": reg_epochs, "shrink": shrink, "ramp": ramp},
            "finetune": finetune,
        }
    elif variant == "zeropad":
        inner, blocks = plan_zeropad(model, meta, cfg)
        recipe = {**common, "pruner": "zeropad", "importance": cfg["importance"], "round_to": round_to,
                  "ignore": list(cfg["ignore"]), "ratios": inner, "blocks": blocks, "unpruned": _unpruned(model, meta, cfg),
                  "finetune": finetune}
    else:
        sp = cfg["sparse"]
        recipe = {
            **common,
            "pruner": "unstructured",
            "sparsity": float(sp["sparsity"]),
            "scope": sp["scope"],
            "schedule": {
                "start_fraction": float(sp["start_fraction"]),
                "end_fraction": float(sp["end_fraction"]),
                "frequency": int(sp["frequency"]),
            },
            "finetune": finetune,
        }
    save_recipe(out_recipe, recipe)
    return recipe


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--variant", required=True, choices=PLANNED_VARIANTS)
    p.add_argument("--model", required=True, help="baseline model.pt")
    p.add_argument("--model-name", help="registry name recorded in the recipe")
    p.add_argument("--sensitivity", help="sensitivity.csv (variant pruned; optional with order global)")
    p.add_argument("--bench", help="baseline benchmark JSON (target kind latency)")
    p.add_argument("--latency-table", help="latency table CSV (target kind speedup, or latency_model table)")
    p.add_argument("--params", type=json_arg, required=True, help="the `prune` config section as JSON")
    p.add_argument("--out", required=True, help="recipe YAML to write")


def run(args: argparse.Namespace) -> int:
    r = plan_pruning(args.variant, args.model, args.out, args.params, args.sensitivity, args.bench, args.model_name,
                     args.latency_table)
    if r["pruner"] == "structured":
        pl = r["planned"]
        if pl["metric"] == "speedup":
            print(f"{args.out}: {len(r['ratios'])} groups pruned, predicted {pl['predicted_speedup']}x, measured "
                  f"{pl['measured_speedup']}x on {pl['device']} (target {pl['required_reduction']}x"
                  + (")" if pl["met"] else f", stopped short: {pl['stopped_short']})"))
            return 0
        print(f"{args.out}: {len(r['ratios'])} groups pruned, {pl['metric']} reduction {pl['reached_reduction']}x "
              f"(target {pl['required_reduction']}x)")
    return 0
