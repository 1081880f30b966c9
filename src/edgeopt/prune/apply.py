"""Apply a recipe to a trained model, fine-tune it with the training loop, save it and its metrics."""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import torch

from edgeopt.atomic import read_json
from edgeopt.cli import json_arg
from edgeopt.data.sources import file_digest
from edgeopt.jobguard import output_lock
from edgeopt.models import model_stats, save_model
from edgeopt.provenance import provenance
from edgeopt.prune.common import load_for_pruning
from edgeopt.prune.pruners import PRUNERS, Applied
from edgeopt.prune.recipe import load_recipe
from edgeopt.records import ModelMetrics, write_record
from edgeopt.train.baseline import load_device_splits
from edgeopt.train.distill import Distill
from edgeopt.train.loop import (
    TrainSettings,
    autocast_dtype,
    evaluate,
    fit,
    remove_checkpoints,
    resolve_device,
)


def steps_per_run(n_train: int, settings: TrainSettings) -> int:
    """Optimizer steps `fit` will take (the AGP schedule is laid out over them)."""
    per_epoch = max(1, math.floor(n_train / settings.batch_size)) if n_train >= settings.batch_size else 1
    return max(1, settings.epochs * per_epoch)


def _stage_checkpoint(checkpoint: str | Path | None, step: int, name: str = "step") -> Path | None:
    """Step 1's fine-tuning checkpoint is the given file; each later step of an iterative schedule has its own
    (as has the regularization phase: `<stem>.regularize<i>`)."""
    if checkpoint is None:
        return None
    c = Path(checkpoint)
    return c if step == 1 and name == "step" else c.with_name(f"{c.stem}.{name}{step}{c.suffix}")


def apply_recipe(model: torch.nn.Module, recipe: dict[str, Any], meta: dict[str, Any]) -> Applied:
    """Prune `model` in place as `recipe` says (no fine-tuning)."""
    return PRUNERS[recipe["pruner"]].apply(model, recipe, meta)


def prune_model(
    recipe_path: str | Path,
    model_path: str | Path,
    data_dir: str | Path,
    out_model: str | Path,
    out_metrics: str | Path,
    train_cfg: dict[str, Any],
    baseline_metrics: dict[str, Any] | None = None,
    checkpoint: str | Path | None = None,
) -> dict[str, Any]:
    """Recipe + baseline model -> pruned, fine-tuned `model.pt` and `metrics.json`."""
    recipe = load_recipe(recipe_path)
    finetune = dict(recipe.get("finetune") or {})
    distill = Distill.from_config(finetune.pop("distill", None), str(recipe_path))
    settings = TrainSettings.from_config({**train_cfg, **finetune})
    torch.manual_seed(settings.seed)
    device = resolve_device(settings.device)
    model, meta = load_for_pruning(str(model_path), "cpu")
    _, data = load_device_splits(data_dir, device, settings.channels_last)
    # the recipe (layer widths, teacher term), the starting model and the data are part of the checkpoint
    # fingerprint: an edited recipe, a retrained baseline or a new data cache restart the fine-tuning
    settings.extra = {**settings.extra, "recipe": json.dumps(recipe, sort_keys=True, default=str),
                      "baseline": file_digest(Path(model_path), "sha256"),
                      "data": file_digest(Path(data_dir) / "meta.json", "sha256")}
    amp = autocast_dtype(settings.precision, device)
    base_stats = model_stats(model, meta["image_size"], meta["in_channels"])
    teacher = copy.deepcopy(model) if distill.enabled else None
    applied = apply_recipe(model, recipe, meta)
    model.to(device)
    hook = applied.hook_factory(steps_per_run(len(data["train"]), settings)) if applied.hook_factory else None
    before = evaluate(model, data["val"], settings.eval_batch_size, amp)
    variant = recipe.get("variant", Path(out_model).parent.name)
    desc = f"{recipe.get('model', '')}/{variant}"
    history, seconds, after_cuts = [], 0.0, []
    n_fits = len(applied.stages) + 1
    for i, prune_next in enumerate(applied.stages, 1):  # train (iterative step / regularization), then cut
        stage_settings = dataclasses.replace(settings, epochs=applied.epochs_per_stage)
        stage_hook = applied.stage_hook_factory(steps_per_run(len(data["train"]), stage_settings)) \
            if applied.stage_hook_factory else None
        r = fit(model, data["train"], data["val"], stage_settings, _stage_checkpoint(checkpoint, i, applied.stage_name),
                after_step=stage_hook, desc=f"{desc} {applied.stage_name} {i}/{n_fits}", teacher=teacher,
                distill=distill)
        history += [{**h, "step": i} for h in r.history]
        seconds += r.train_seconds
        model = model.to(memory_format=torch.contiguous_format)
        prune_next()
        after_cuts.append(evaluate(model, data["val"], settings.eval_batch_size, amp)["accuracy"])
    result = fit(model, data["train"], data["val"], settings, _stage_checkpoint(checkpoint, n_fits),
                 after_step=hook, desc=desc, teacher=teacher, distill=distill)
    history += [{**h, "step": n_fits} for h in result.history] if n_fits > 1 else result.history
    seconds += result.train_seconds
    if hook is not None:
        hook.finalize()
    model = model.to(memory_format=torch.contiguous_format)
    test = evaluate(model, data["test"], settings.eval_batch_size, amp)
    stats = model_stats(model.cpu(), meta["image_size"], meta["in_channels"])
    new_meta = {**meta, "variant": variant, "recipe": str(recipe_path), "pruner": recipe["pruner"]}
    save_model(out_model, model, new_meta)
    stats["size_bytes"] = Path(out_model).stat().st_size
    base_acc = (baseline_metrics or {}).get("accuracy")
    details = {
        "pruner": recipe["pruner"],
        "baseline_accuracy": base_acc,
        "accuracy_change": None if base_acc is None else test["accuracy"] - base_acc,
        "baseline_macs": base_stats["macs"],
        "baseline_params": base_stats["params"],
        "macs_reduction": base_stats["macs"] / max(stats["macs"], 1),
        "params_reduction": base_stats["params"] / max(stats["params"], 1),
        "val_accuracy_before_finetune": before["accuracy"],  # right after apply (unpruned if a phase precedes the cut)
        "val_accuracy_after_cuts": after_cuts,  # after each later cut (iterative steps, the cut after regularization)
        "val_accuracy": history[-1].get("val_accuracy") if history else before["accuracy"],
        "prune_steps": applied.prune_steps,
        "finetune_epochs": settings.epochs + (n_fits - 1) * applied.epochs_per_stage,
        "finetune_distill": {"alpha": distill.alpha, "temperature": distill.temperature} if distill.enabled else None,
        "finetune_seconds": seconds,
        "resumed_from_epoch": result.resumed_from_epoch,  # of the last fine-tuning, from its checkpoint
        "sparsity_schedule": getattr(hook, "schedule", None),
        "pruning": applied.report,
        "recipe": str(recipe_path),
        "history": history,
    }
    record = ModelMetrics(
        model=recipe.get("model", meta.get("arch")),
        variant=variant,
        stage="prune",
        accuracy=test["accuracy"],
        loss=test["loss"],
        **stats,
        extra=details,
        provenance=provenance({"recipe": recipe, "train": train_cfg}, str(device)),
    )
    written = write_record(out_metrics, record)
    remove_checkpoints(checkpoint)
    return written


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recipe", required=True, help="recipe YAML (results/recipes/<model>/<variant>.yaml)")
    p.add_argument("--model", required=True, help="baseline model.pt")
    p.add_argument("--baseline-metrics", help="baseline metrics.json (for the accuracy change)")
    p.add_argument("--data", required=True, help="dataset cache folder")
    p.add_argument("--params", type=json_arg, required=True, help="the `train` config section as JSON")
    p.add_argument("--out-model", required=True)
    p.add_argument("--out-metrics", required=True)
    p.add_argument("--checkpoint", help="per-epoch fine-tuning checkpoint (resumed when it matches)")
    p.add_argument("--threads", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    base = read_json(args.baseline_metrics) if args.baseline_metrics else None
    with output_lock(Path(args.out_model).parent):
        m = prune_model(args.recipe, args.model, args.data, args.out_model, args.out_metrics, args.params, base,
                        args.checkpoint)
    print(f"{args.out_model}: accuracy {m['accuracy']:.4f} (baseline {m['baseline_accuracy']}), "
          f"{m['macs_reduction']:.2f}x fewer MACs, weight sparsity {m['weight_sparsity']:.3f}")
    return 0
