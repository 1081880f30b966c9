"""The baseline-training stage: dataset cache + model name -> trained `model.pt` + `metrics.json`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch

from edgeopt.config import UNTRAINED_WARNING
from edgeopt.data import load_meta, load_split
from edgeopt.data.sources import file_digest
from edgeopt.models import create_model, load_weights, model_stats, save_model
from edgeopt.provenance import provenance
from edgeopt.records import ModelMetrics, write_record
from edgeopt.train.device_data import DeviceData
from edgeopt.train.loop import (
    TrainSettings,
    autocast_dtype,
    evaluate,
    fit,
    remove_checkpoints,
    resolve_device,
)


def load_device_splits(
    data_dir: str | Path,
    device: torch.device,
    channels_last: bool,
    names: tuple[str, ...] = ("train", "val", "test"),
) -> tuple[dict[str, Any], dict[str, DeviceData]]:
    """Load the dataset cache once and move the requested splits to `device`."""
    meta = load_meta(data_dir)
    splits = {n: DeviceData(load_split(data_dir, n), meta, device, channels_last) for n in names}
    return meta, splits


def model_build(model_name: str, model_cfg: dict[str, Any]) -> tuple[str, dict[str, Any], str | None]:
    """(arch, constructor options, weights file) from train_baseline's model params: a built-in model's
    options, or for a model from outside the registry also its `arch` and starting `weights`."""
    options = dict(model_cfg)
    return str(options.pop("arch", model_name)), options, options.pop("weights", None)


def train_baseline(
    model_name: str,
    data_dir: str | Path,
    out_model: str | Path,
    out_metrics: str | Path,
    train_cfg: dict[str, Any],
    model_cfg: dict[str, Any] | None = None,
    checkpoint: str | Path | None = None,
    variant: str = "baseline",
) -> dict[str, Any]:
    """Train `model_name` from scratch on the cached dataset and write the model and its metrics."""
    model_cfg = model_cfg or {}
    settings = TrainSettings.from_config(train_cfg)
    torch.manual_seed(settings.seed)
    device = resolve_device(settings.device)
    meta, data = load_device_splits(data_dir, device, settings.channels_last)
    # what is trained on what: a checkpoint resumes only for the same architecture, width and data cache
    settings.extra = {**settings.extra, "model": model_name, "model_cfg": model_cfg,
                      "data": file_digest(Path(data_dir) / "meta.json", "sha256")}
    arch, options, weights = model_build(model_name, model_cfg)
    width = float(options.pop("width_mult", 1.0))
    model = create_model(arch, meta["num_classes"], meta["channels"], width, **options)
    if weights:  # trained elsewhere: fine-tuned for train.epochs (0: evaluated and carried on as it is)
        load_weights(model, weights)
    if settings.epochs == 0 and not weights:
        print(f"warning: {UNTRAINED_WARNING}", file=sys.stderr)
    stats = model_stats(model, meta["image_size"], meta["channels"])
    result = fit(model, data["train"], data["val"], settings, checkpoint, desc=f"{model_name}/{variant}")
    amp = autocast_dtype(settings.precision, device)
    test = evaluate(model, data["test"], settings.eval_batch_size, amp)
    model_meta = {
        "arch": arch,
        "options": options,
        "weights": weights,
        "variant": variant,
        "num_classes": meta["num_classes"],
        "in_channels": meta["channels"],
        "image_size": meta["image_size"],
        "width_mult": width,
        "model_options": {**options, "width_mult": width},  # what create_model(arch, ...) is rebuilt with
        "mean": meta["mean"],
        "std": meta["std"],
        "classes": meta["classes"],
    }
    save_model(out_model, model, model_meta)
    record = ModelMetrics(
        model=model_name,
        variant=variant,
        stage="train",
        accuracy=test["accuracy"],
        loss=test["loss"],
        **stats,
        extra={
            "val_accuracy": result.history[-1].get("val_accuracy") if result.history else None,
            "epochs": settings.epochs,
            "train_seconds": result.train_seconds,
            "train_images_per_second": result.images_per_second,
            "resumed_from_epoch": result.resumed_from_epoch,
            "history": result.history,
        },
        provenance=provenance({"train": train_cfg, "model": model_cfg}, str(device)),
    )
    written = write_record(out_metrics, record)
    remove_checkpoints(checkpoint)
    return written
