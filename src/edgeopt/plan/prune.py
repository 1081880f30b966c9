"""Planning of sensitivity and pruning: which pruned/thinner variants a model gets, and their rules' inputs."""

from __future__ import annotations

import json
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
    if target["kind"] in ("latency", "speedup"):
        from edgeopt.errors import EdgeoptError

        raise EdgeoptError(f"prune.width.mult: must be set when prune.target.kind is {target['kind']}")
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
    if t["kind"] != "latency" or latency_table_target(config):
        return None
    return layout.path(layout.BENCH_RESULT, device=t["device"], model=model, variant="baseline", format=t["format"])


def prune_plan_json(config: dict[str, Any], variant: str) -> str:
    """plan_pruning's params for one variant: only the `prune` keys that variant's recipe uses (a target planned
    from a latency table adds how candidates are timed and the target device's settings)."""
    if variant == "pruned" and latency_table_target(config):
        from edgeopt.devices.config import device_settings

        cfg = json.loads(subset_json(prune_section(config), PLAN_KEYS[variant]))
        cfg["latency_table"] = latency_table_settings(config)
        cfg["device_settings"] = device_settings(config)[target_device(config)]
        return compact_json(cfg)
    return subset_json(prune_section(config), PLAN_KEYS[variant])


def plan_times_latency(config: dict[str, Any], variant: str) -> bool:
    """Whether plan_pruning times candidate plans on this machine (a measured latency target, or a table-planned
    target on `local`): it then gets the machine alone."""
    t = prune_section(config)["target"]
    if variant == "pruned" and latency_table_target(config):
        from edgeopt.plan.bench import bench_is_local

        return bench_is_local(config, target_device(config))
    return variant == "pruned" and t["kind"] == "latency" and t["latency_model"] == "measured"


def latency_table_target(config: dict[str, Any]) -> bool:
    """Whether the `pruned` plan's target is planned from a latency table measured on its device."""
    from edgeopt.prune.latency_table import plans_from_latency_table

    return plans_from_latency_table(prune_section(config).get("target") or {})


def target_device(config: dict[str, Any]) -> str:
    return str((prune_section(config).get("target") or {}).get("device", "local"))


def target_format(config: dict[str, Any]) -> str:
    return str((prune_section(config).get("target") or {}).get("format", "ort-fp32"))


def latency_table_settings(config: dict[str, Any]) -> dict[str, Any]:
    """What a latency table's numbers depend on (its rule's params: editing one of these rebuilds it): the
    `prune.latency_table` keys `TABLE_KEYS` names (threads: else `bench.threads`), the groups `prune.ignore`
    leaves out, and for an int8 format the `quantize` settings."""
    from edgeopt.formats import FORMATS
    from edgeopt.prune.latency_table import TABLE_KEYS

    t = dict(prune_section(config).get("latency_table") or {})
    s = {k: t[k] for k in TABLE_KEYS if k in t}
    if s.get("threads") is None:
        s["threads"] = int((config.get("bench") or {}).get("threads") or 0)
    s["ignore"] = list(prune_section(config).get("ignore") or [])
    if FORMATS[target_format(config)].precision == "int8":
        s["quantize"] = {k: v for k, v in (config.get("quantize") or {}).items() if k != "qat"}
    return s


def latency_table_json(config: dict[str, Any]) -> str:
    return compact_json(latency_table_settings(config))


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
        if latency_table_target(config):
            inputs["latency_table"] = layout.path(layout.LATENCY_TABLE, device=target_device(config), model=model,
                                                  format=target_format(config))
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
