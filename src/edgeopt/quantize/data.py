"""Model and dataset inputs of the quantization rules, loaded with one-line errors for bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgeopt.data import Split, load_meta, load_split
from edgeopt.errors import EdgeoptError
from edgeopt.harness.runtimes import preprocess
from edgeopt.models import load_model


def load_calibration(data_dir: str | Path, meta: dict[str, Any], limit: int | None = None) -> np.ndarray:
    """The calibration subset as normalised float32 NCHW (what the runtimes are fed)."""
    path = Path(data_dir) / "calib.npz"
    if not path.exists():
        raise EdgeoptError(f"{path}: calibration data missing; run prepare_data (dataset.calib_size) first")
    split = load_split(data_dir, "calib")
    if len(split) == 0:
        raise EdgeoptError(f"{path}: calibration split is empty (dataset.calib_size)")
    x = split.x[:limit] if limit else split.x
    return preprocess(x, meta["mean"], meta["std"])


def subset(split: Split, limit: int | None, seed: int = 0) -> Split:
    """A seeded random subset of `limit` images, or all (also right for caches written before splits were stored shuffled)."""
    if not limit or limit >= len(split):
        return split
    idx = np.sort(np.random.default_rng(seed).permutation(len(split))[:limit])
    return Split(split.x[idx], split.y[idx])


def load_test(data_dir: str | Path, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """uint8 NHWC test images and labels (a seeded subset of `limit` when given)."""
    split = subset(load_split(data_dir, "test"), limit)
    return split.x, split.y


def load_for_export(model_path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Load `model.pt` on CPU in eval mode with contiguous (NCHW) weights.

    Training leaves channels_last weights; litert mis-converts those and exporters are happier
    with plain contiguous tensors, so everything is made contiguous before export.
    """
    model, meta = load_model(model_path, "cpu")
    model = make_contiguous(model)
    for key in ("image_size", "in_channels", "mean", "std"):
        if key not in meta:
            raise EdgeoptError(f"{model_path}: model metadata lacks {key!r} (not written by edgeopt?)")
    return model, meta


def make_contiguous(model: nn.Module) -> nn.Module:
    """Every parameter and buffer as a plain contiguous tensor (undoes channels_last)."""
    model = model.to(memory_format=torch.contiguous_format)
    with torch.no_grad():
        for p in model.parameters():
            p.data = p.data.contiguous()
        for b in model.buffers():
            b.data = b.data.contiguous()
    return model.eval()


def dataset_meta(data_dir: str | Path) -> dict[str, Any]:
    return load_meta(data_dir)


def torch_logits(model: nn.Module, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """fp32 PyTorch logits of normalised NCHW float input (the reference for parity)."""
    outs = []
    model.eval()
    with torch.inference_mode():
        for i in range(0, len(x), batch_size):
            outs.append(model(torch.from_numpy(np.ascontiguousarray(x[i : i + batch_size]))).float().numpy())
    return np.concatenate(outs) if outs else np.zeros((0, 0), np.float32)
