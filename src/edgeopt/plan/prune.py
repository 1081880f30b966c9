"""Planning of sensitivity and pruning: which pruned/thinner variants a model gets, and their rules' inputs."""

from __future__ import annotations

from typing import Any

from edgeopt import layout
from edgeopt.plan.common import compact_json, data_files, model_file, model_metrics, subset_json
from edgeopt.plan.models import model_capabilities, model_names
from edgeopt.prune import PLAN_KEYS, RECIPE_VARIANTS


def prune_section(config: dict[str, Any]) -> dict[str, Any]:
    return dict(config.get("prune") or {})


def sensitivity_json(config: dict[str, Any]) -> str:
    """The sensitivity rule's params: its section plus the pruning settings it must share."""
    p = prune_section(config)
    cfg = {**(config.get("sensitivity") or {}), "round_to": p["round_to"], "importance": p["importance"],
           "ignore": p.get("ignore") or []}  # fmt: skip
    if cfg.get("bn_recalib"):  # recalibration augments like the training; off, a change there reruns nothing
        train = config.get("train") or {}
        cfg.update({k: train[k] for k in ("crop_padding", "flip") if k in train})
    return compact_json(cfg)


def width_mult(config: dict[str, Any], model: str) -> float | None:
    """The width multiplier of the `width<mult>` variant: `prune.width.mult`, or computed to match the target."""
    p = prune_section(config)
    if "width" not in p["variants"] or not model_capabilities(config, model)["width"]:
        return None
    explicit = (p.get("width") or {}).get("mult")
    if explicit:
        return float(explicit)
    target = p["target"]
    if target["kind"] == "latency":
        from edgeopt.errors import EdgeoptError

        raise EdgeoptError("prune.width.mult: must be set when prune.target.kind is latency")
    from edgeopt.prune.width_cache import cached_match_width

    ds = config["dataset"]
    return cached_match_width(layout.WIDTH_CACHE, model, float(target["value"]), target["kind"],
                              int(ds["image_size"]), int(ds["channels"]))  # fmt: skip


def pruning_variants(config: dict[str, Any], model: str) -> list[str]:
    """Variants pruning adds for `model`, each only when listed in `prune.variants` and supported by the model."""
    wanted = prune_section(config)["variants"]
    caps = model_capabilities(config, model)
    can = {"pruned": caps["structured"], "zeropad": caps["residual"], "sparse": caps["torch"]}
    out = [v for v in RECIPE_VARIANTS if v in wanted and can[v]]
    mult = width_mult(config, model)
    if mult is not None:
        from edgeopt.prune.width_cache import variant_name

        out.append(variant_name(mult))
    return out


def sensitivity_paths(model: str) -> list[str]:
    return [layout.path(p, model=model) for p in (layout.SENSITIVITY_TABLE, layout.SENSITIVITY_PLOT)]


def recipe_path(model: str, variant: str) -> str:
    return layout.path(layout.RECIPE, model=model, variant=variant)


def bench_baseline_path(config: dict[str, Any], model: str) -> str | None:
    """The baseline benchmark a latency target reads."""
    t = prune_section(config)["target"]
    if t["kind"] != "latency":
        return None
    return layout.path(layout.BENCH_RESULT, device=t["device"], model=model, variant="baseline", format=t["format"])


def prune_plan_json(config: dict[str, Any], variant: str) -> str:
    """plan_pruning's params for one variant: only the `prune` keys that variant's recipe uses."""
    return subset_json(prune_section(config), PLAN_KEYS[variant])


def plan_times_latency(config: dict[str, Any], variant: str) -> bool:
    """Whether plan_pruning times candidate plans (a measured latency target): it then gets the machine alone."""
    t = prune_section(config)["target"]
    return variant == "pruned" and t["kind"] == "latency" and t["latency_model"] == "measured"


def plans_from_table(config: dict[str, Any]) -> bool:
    """Whether the `pruned` plan reads the sensitivity table: every order but `global` (DepGraph's ranking of
    channel magnitudes) does, so with `global` the table is made only when `sensitivity.enabled` asks for it."""
    return prune_section(config)["order"] != "global"


def plan_pruning_inputs(config: dict[str, Any], model: str, variant: str) -> dict[str, str]:
    """Inputs of plan_pruning: the baseline, plus the sensitivity table (and benchmark) for `pruned`."""
    inputs = {"model": model_file(model, "baseline")}
    if variant == "pruned":
        if plans_from_table(config):
            inputs["sensitivity"] = layout.path(layout.SENSITIVITY_TABLE, model=model)
        bench = bench_baseline_path(config, model)
        if bench:
            inputs["bench"] = bench
    return inputs


def train_width_inputs(config: dict[str, Any], model: str) -> dict[str, str]:
    """Inputs of train_width: the data cache, plus the pruned model's metrics it is matched with."""
    inputs = {k: v for k, v in data_files(config).items() if k != "calib"}
    if "pruned" in pruning_variants(config, model):
        inputs["pruned"] = model_metrics(model, "pruned")
    return inputs


def prune_targets(config: dict[str, Any]) -> list[str]:
    """Sensitivity tables (when the pruned variant is on), recipes and pruned/thinner models."""
    out: list[str] = []
    for m in model_names(config):
        variants = pruning_variants(config, m)
        if not model_capabilities(config, m)["structured"]:
            pass  # no group to measure: no sensitivity table
        elif ("pruned" in variants and plans_from_table(config)) or config["sensitivity"]["enabled"]:
            out += sensitivity_paths(m)
        for v in variants:
            if v in RECIPE_VARIANTS:
                out.append(recipe_path(m, v))
            out.append(model_metrics(m, v))
    return out
