"""The pruner registry: what a recipe's `pruner:` key selects.

Each pruner checks its recipe keys, prunes a model in place and may return an `after_step`
hook for fine-tuning (unstructured pruning keeps its masks and AGP schedule there).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from torch import nn

from edgeopt.errors import EdgeoptError
from edgeopt.prune.groups import (
    IMPORTANCES,
    cut_slices,
    kept_channels,
    list_groups,
    plan_cuts,
    prune_structured,
    resolve_ratios,
    step_keeps,
)
from edgeopt.prune.regularize import GrowingShrink, read_regularize, shrunk_norm_ratio
from edgeopt.prune.sparse import SCOPES, AGPMasker
from edgeopt.prune.zeropad import prune_zeropad


@dataclass
class Applied:
    """What applying a recipe did: per-layer report, and an optional fine-tuning hook."""

    report: dict[str, Any]
    hook_factory: Callable[[int], Any] | None = None  # total fine-tuning steps -> after_step hook
    stages: list[Callable[[], None]] = field(default_factory=list)  # later cuts (iterative schedule, regularization)
    epochs_per_stage: int = 0  # training epochs before each of `stages`
    stage_hook_factory: Callable[[int], Any] | None = None  # the after_step hook of those epochs (regularization)
    stage_name: str = "step"  # what the training before each stage is called in progress bars and checkpoints
    prune_steps: int = 1  # cuts made in all (now or in `stages`)


class Pruner(Protocol):
    def check(self, recipe: dict[str, Any], where: str) -> None: ...

    def apply(self, model: nn.Module, recipe: dict[str, Any], meta: dict[str, Any]) -> Applied: ...


PRUNERS: dict[str, Pruner] = {}


def register_pruner(name: str) -> Callable[[type], type]:
    def deco(cls: type) -> type:
        PRUNERS[name] = cls()
        return cls

    return deco


def _ratios(recipe: dict[str, Any], key: str, where: str) -> dict[str, float]:
    value = recipe.get(key) or {}
    if not isinstance(value, dict):
        raise EdgeoptError(f"{where}: {key}: must be a mapping layer -> ratio")
    for k, v in value.items():
        if not isinstance(v, (int, float)) or not 0 <= v < 1:
            raise EdgeoptError(f"{where}: {key}.{k}: ratio must be a number in [0, 1), got {v!r}")
    return {str(k): float(v) for k, v in value.items()}


def _round_to(recipe: dict[str, Any], where: str) -> int | None:
    r = recipe.get("round_to", 8)
    if r is not None and (not isinstance(r, int) or r < 1):
        raise EdgeoptError(f"{where}: round_to: must be a positive integer or null, got {r!r}")
    return r


def _group_args(
    model: nn.Module, recipe: dict[str, Any], meta: dict[str, Any], step_ratios: dict[str, float] | None = None
) -> tuple[Any, ...]:
    """The DepGraph arguments of the recipe's cut, shared by the structured and zero-padding pruners (every step of
    an iterative schedule, the cut after regularization) so all honour the same `importance`, `round_to`, `ignore`.

    `step_ratios` (one step of an iterative schedule) replaces `ratios` and are applied unrounded: they are
    computed to land on exact channel counts."""
    return (
        model,
        _ratios(recipe, "ratios", "recipe") if step_ratios is None else step_ratios,
        meta["image_size"],
        meta.get("in_channels", 3),
        meta.get("num_classes"),
        _round_to(recipe, "recipe") if step_ratios is None else None,
        recipe.get("importance", "l2"),
        list(recipe.get("ignore") or []),
    )


def _prune_groups(
    model: nn.Module, recipe: dict[str, Any], meta: dict[str, Any], step_ratios: dict[str, float] | None = None,
    chosen: dict[str, list[int]] | None = None,
) -> dict[str, dict[str, int]]:
    """DepGraph pruning of the recipe's `ratios` (see `_group_args`); `chosen`: which channels each group loses."""
    return prune_structured(*_group_args(model, recipe, meta, step_ratios), chosen=chosen)


def read_schedule(recipe: dict[str, Any], where: str) -> tuple[int, int]:
    """(steps, epochs_per_step) of a structured recipe's iterative `schedule` (default: one shot)."""
    sched = recipe.get("schedule") or {}
    if not isinstance(sched, dict):
        raise EdgeoptError(f"{where}: schedule: must be a mapping with steps and epochs_per_step")
    for k in sched:
        if k not in ("steps", "epochs_per_step"):
            raise EdgeoptError(f"{where}: schedule.{k}: unknown key (allowed: steps, epochs_per_step)")
    steps, epochs = sched.get("steps", 1), sched.get("epochs_per_step", 2)
    for key, v, low in (("steps", steps, 1), ("epochs_per_step", epochs, 0)):
        if not isinstance(v, int) or isinstance(v, bool) or v < low:
            raise EdgeoptError(f"{where}: schedule.{key}: must be an integer >= {low}, got {v!r}")
    return steps, epochs


def check_cut_plan(recipe: dict[str, Any], where: str) -> tuple[int, int, int]:
    """(steps, epochs_per_step, regularize epochs) of a structured recipe or the `prune` config: the iterative
    schedule and growing regularization are two ways of easing the same cut, so only one may be on."""
    steps, epochs = read_schedule(recipe, where)
    reg_epochs = read_regularize(recipe, where)[0]
    if steps > 1 and reg_epochs > 0:
        raise EdgeoptError(f"{where}: regularize: cannot be combined with schedule.steps > 1 (choose one)")
    return steps, epochs, reg_epochs


@register_pruner("structured")
class StructuredPruner:
    """DepGraph channel pruning: `ratios` per group, importance `l2`/`l1`/`random`, `round_to`, and optionally
    an iterative `schedule` ({steps, epochs_per_step}: prune an equal share per step, fine-tune in between) or
    growing `regularize` ({epochs, shrink, ramp}: shrink the channels to be cut while training, then cut)."""

    def check(self, recipe: dict[str, Any], where: str) -> None:
        _ratios(recipe, "ratios", where)
        _round_to(recipe, where)
        check_cut_plan(recipe, where)
        if recipe.get("importance", "l2") not in IMPORTANCES:
            raise EdgeoptError(f"{where}: importance: unknown {recipe.get('importance')!r} (known: {', '.join(IMPORTANCES)})")

    def apply(self, model: nn.Module, recipe: dict[str, Any], meta: dict[str, Any]) -> Applied:
        steps, epochs, reg_epochs = check_cut_plan(recipe, "recipe")
        if reg_epochs:
            return self._regularized(model, recipe, meta)
        if steps == 1:
            return Applied({"groups": _prune_groups(model, recipe, meta)})
        infos = list_groups(model, meta["image_size"], meta.get("in_channels", 3), meta.get("num_classes"),
                            list(recipe.get("ignore") or []))
        ratios = resolve_ratios(_ratios(recipe, "ratios", "recipe"), {g.name: g.members for g in infos})
        channels = {g.name: g.channels for g in infos}
        round_to = _round_to(recipe, "recipe")
        keeps = {g: step_keeps(channels[g], kept_channels(channels[g], r, round_to), steps) for g, r in ratios.items()}
        current = dict(channels)

        def stage(i: int) -> None:
            """Prune every group to its step-`i` channel count (ratios relative to the current widths)."""
            _prune_groups(model, recipe, meta, {g: 1.0 - k[i] / current[g] for g, k in keeps.items()})
            current.update({g: k[i] for g, k in keeps.items()})

        stage(0)
        report = {"groups": {g: {"before": channels[g], "after": k[-1]} for g, k in keeps.items()},
                  "steps": {g: k for g, k in keeps.items()}}
        return Applied(report, stages=[lambda i=i: stage(i) for i in range(1, steps)], epochs_per_stage=epochs,
                       prune_steps=steps)

    @staticmethod
    def _regularized(model: nn.Module, recipe: dict[str, Any], meta: dict[str, Any]) -> Applied:
        """Choose the channels to cut now, shrink them while training `regularize.epochs`, then cut exactly them."""
        reg_epochs, shrink, ramp = read_regularize(recipe, "recipe")
        dg, cuts = plan_cuts(*_group_args(model, recipe, meta))
        slices = cut_slices(dg, cuts)
        chosen = {g: c.remove for g, c in cuts.items()}
        reg: dict[str, Any] = {"epochs": reg_epochs, "shrink": shrink, "ramp": ramp}
        report = {"groups": {g: {"before": c.channels, "after": c.keep} for g, c in cuts.items()}, "regularize": reg}

        def cut() -> None:
            reg["norm_ratio_at_cut"] = shrunk_norm_ratio(slices)
            _prune_groups(model, recipe, meta, chosen=chosen)

        return Applied(report, stages=[cut], epochs_per_stage=reg_epochs,
                       stage_hook_factory=lambda total: GrowingShrink(slices, total, shrink, ramp),
                       stage_name="regularize")


@register_pruner("zeropad")
class ZeroPadPruner:
    """Residual blocks: inner groups pruned structurally (`ratios`), block outputs zero-padded (`blocks`)."""

    def check(self, recipe: dict[str, Any], where: str) -> None:
        _ratios(recipe, "ratios", where)
        _ratios(recipe, "blocks", where)
        _round_to(recipe, where)
        if recipe.get("schedule"):
            raise EdgeoptError(f"{where}: schedule: supported by the structured pruner only")
        if read_regularize(recipe, where)[0]:
            raise EdgeoptError(f"{where}: regularize: supported by the structured pruner only")

    def apply(self, model: nn.Module, recipe: dict[str, Any], meta: dict[str, Any]) -> Applied:
        inner = _prune_groups(model, recipe, meta)
        blocks = prune_zeropad(model, _ratios(recipe, "blocks", "recipe"), _round_to(recipe, "recipe"))
        return Applied({"groups": inner, "blocks": blocks})


@register_pruner("unstructured")
class UnstructuredPruner:
    """Magnitude pruning to `sparsity` (`scope` global or layer) on an AGP schedule during fine-tuning."""

    def check(self, recipe: dict[str, Any], where: str) -> None:
        s = recipe.get("sparsity")
        if not isinstance(s, (int, float)) or not 0 <= s < 1:
            raise EdgeoptError(f"{where}: sparsity: must be a number in [0, 1), got {s!r}")
        if recipe.get("scope", "global") not in SCOPES:
            raise EdgeoptError(f"{where}: scope: must be one of {SCOPES}, got {recipe.get('scope')!r}")
        sched = recipe.get("schedule") or {}
        for k in sched:
            if k not in ("start_fraction", "end_fraction", "frequency"):
                raise EdgeoptError(f"{where}: schedule.{k}: unknown key (allowed: start_fraction, end_fraction, frequency)")

    def apply(self, model: nn.Module, recipe: dict[str, Any], meta: dict[str, Any]) -> Applied:
        sched = recipe.get("schedule") or {}

        def factory(total_steps: int) -> AGPMasker:
            return AGPMasker(
                model,
                float(recipe["sparsity"]),
                recipe.get("scope", "global"),
                total_steps,
                float(sched.get("start_fraction", 0.0)),
                float(sched.get("end_fraction", 0.75)),
                int(sched.get("frequency", 1)),
            )

        return Applied({"sparsity": recipe["sparsity"], "scope": recipe.get("scope", "global")}, factory)
