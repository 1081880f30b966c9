"""Deterministic train/val/test split and calibration subset, written as the uint8 cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgeopt.atomic import write_json
from edgeopt.data.arrays import DatasetArrays, Split, save_split
from edgeopt.data.sources import read_source
from edgeopt.errors import EdgeoptError
from edgeopt.provenance import provenance


def stratified_take(y: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask selecting `fraction` of each class (at least one image per class when fraction > 0)."""
    mask = np.zeros(len(y), dtype=bool)
    if fraction <= 0:
        return mask
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        n = max(1, int(round(len(idx) * fraction)))
        if n >= len(idx):
            raise EdgeoptError(
                f"dataset: class {c} has only {len(idx)} images; cannot hold out {fraction:.0%}"
            )
        mask[rng.permutation(idx)[:n]] = True
    return mask


def split_dataset(data: DatasetArrays, cfg: dict[str, Any]) -> dict[str, Split]:
    """Split into train/val/test plus a calibration subset of train, all from `dataset.seed`."""
    rng = np.random.default_rng(int(cfg.get("seed", 0)))
    pool = data.train
    test = data.test
    if test is None:
        test_mask = stratified_take(pool.y, float(cfg.get("test_fraction", 0.2)), rng)
        test = Split(pool.x[test_mask], pool.y[test_mask])
        pool = Split(pool.x[~test_mask], pool.y[~test_mask])
    val_mask = stratified_take(pool.y, float(cfg.get("val_fraction", 0.1)), rng)
    train = Split(pool.x[~val_mask], pool.y[~val_mask])
    val = Split(pool.x[val_mask], pool.y[val_mask])
    n_calib = min(int(cfg.get("calib_size", 512)), len(train))
    calib_idx = np.sort(rng.permutation(len(train))[:n_calib])
    calib = Split(train.x[calib_idx], train.y[calib_idx])
    if len(train) == 0 or len(test) == 0:
        raise EdgeoptError("dataset: the split left no training or test images; use more images")
    # Sources list images class by class; store every split in a seeded random order so that the
    # first N images (val_limit, test_images, a calibration prefix) are a sample of all classes.
    order_rng = np.random.default_rng([int(cfg.get("seed", 0)), 1])
    splits = {"train": train, "val": val, "test": test, "calib": calib}
    return {name: shuffled(split, order_rng) for name, split in splits.items()}


def shuffled(split: Split, rng: np.random.Generator) -> Split:
    """The same images in a random order (membership unchanged)."""
    order = rng.permutation(len(split))
    return Split(split.x[order], split.y[order])


def channel_stats(x: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean/std on the 0..1 scale, accumulated in float64 (float32 sums stall on 50k images)."""
    flat = x.reshape(-1, x.shape[-1])
    mean = flat.mean(axis=0, dtype=np.float64)
    sq = np.zeros(x.shape[-1], dtype=np.float64)
    for start in range(0, len(flat), 1 << 22):
        chunk = flat[start : start + (1 << 22)].astype(np.float64)
        sq += ((chunk - mean) ** 2).sum(axis=0)
    std = np.sqrt(sq / max(len(flat), 1))
    return (mean / 255).round(6).tolist(), (std / 255).round(6).tolist()


def prepare(cfg: dict[str, Any], out_dir: str | Path) -> dict[str, Any]:
    """Read the source, split it and write `<out_dir>/{train,val,test,calib}.npz` and `meta.json`."""
    out = Path(out_dir)
    data = read_source(cfg)
    present = np.unique(data.train.y)
    if len(present) < 2:
        where = cfg.get("path") or cfg.get("url")
        raise EdgeoptError(
            f"dataset.path: {where} holds {len(present)} class ({', '.join(data.classes) or 'none'}) with training "
            "images; a classifier needs at least 2 (one folder per class)"
        )
    splits = split_dataset(data, cfg)
    for name, split in splits.items():
        save_split(out / f"{name}.npz", split)
    mean, std = channel_stats(splits["train"].x)
    meta = {
        "name": cfg["name"],
        "source": cfg["source"],
        "classes": data.classes,
        "num_classes": len(data.classes),
        "image_size": int(splits["train"].x.shape[1]),
        "channels": int(splits["train"].x.shape[3]),
        "counts": {k: len(v) for k, v in splits.items()},
        "mean": mean,
        "std": std,
        "provenance": provenance({"dataset": cfg}),
    }
    write_json(out / "meta.json", meta)
    return meta
