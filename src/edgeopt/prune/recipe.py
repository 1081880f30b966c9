"""Compression recipes: declarative YAML (Distiller-style) that a user can read, edit and replay.

A recipe names its pruner (a key of `edgeopt.prune.pruners.PRUNERS`), that pruner's settings
(per-layer ratios, round_to, sparsity, schedule) and the fine-tuning schedule. `edgeopt prune
--recipe R` applies exactly what the file says, so an edited recipe replays without the planner.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from edgeopt.atomic import write_text
from edgeopt.errors import EdgeoptError
from edgeopt.train.distill import Distill

RECIPE_VERSION = 1
HEADER = (
    "# edgeopt compression recipe (edit and replay: python -m edgeopt prune --recipe THIS_FILE ...)\n"
    "# pruner: structured | zeropad | unstructured;  ratios: share of each group's channels removed;\n"
    "# finetune: overrides of the `train` config section used for fine-tuning after pruning,\n"
    "#   plus distill: {alpha, temperature} (the unpruned model teaches the pruned one; alpha 0: off).\n"
)


def save_recipe(path: str | Path, recipe: dict[str, Any]) -> None:
    write_text(path, HEADER + yaml.safe_dump(recipe, sort_keys=False, default_flow_style=False))


def load_recipe(path: str | Path) -> dict[str, Any]:
    """Read and check a recipe's top-level shape (the pruner checks its own keys)."""
    from edgeopt.prune.pruners import PRUNERS

    path = Path(path)
    if not path.exists():
        raise EdgeoptError(f"{path}: recipe not found")
    try:
        recipe = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise EdgeoptError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(recipe, dict):
        raise EdgeoptError(f"{path}: a recipe must be a mapping")
    if recipe.get("version", RECIPE_VERSION) != RECIPE_VERSION:
        raise EdgeoptError(f"{path}: version: unsupported recipe version {recipe.get('version')!r}")
    pruner = recipe.get("pruner")
    if pruner not in PRUNERS:
        raise EdgeoptError(f"{path}: pruner: unknown pruner {pruner!r} (known: {', '.join(PRUNERS)})")
    ft = recipe.get("finetune", {})
    if not isinstance(ft, dict):
        raise EdgeoptError(f"{path}: finetune: must be a mapping of train settings")
    Distill.from_config(ft.get("distill"), f"{path}: finetune")
    PRUNERS[pruner].check(recipe, str(path))
    return recipe


def control_recipe(recipe: dict[str, Any], epochs: int | None = None) -> dict[str, Any]:
    """The same fine-tuning with nothing pruned: the equal-budget control for `recipe`.

    A baseline that is not converged gains accuracy from the fine-tuning's extra epochs alone, so a pruned
    model is fairly judged against the unpruned one fine-tuned exactly alike (epochs, rate, teacher).
    `epochs`: the pruned model's epochs in all, when an iterative schedule or regularization added some."""
    keep = {k: recipe[k] for k in ("version", "model", "source", "finetune") if k in recipe}
    if epochs is not None:
        keep["finetune"] = {**keep.get("finetune", {}), "epochs": epochs}
    return {**keep, "variant": "control", "pruner": "structured", "ratios": {}}
