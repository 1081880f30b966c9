"""The on-disk cache format every later stage reads: one `.npz` per split plus `meta.json`.

Images are uint8 NHWC (compact, and what the device-side harness can read with numpy
alone); labels are int64. `meta.json` holds class names, mean/std for normalisation and
provenance.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeopt.atomic import atomic_path
from edgeopt.errors import EdgeoptError

SPLITS = ("train", "val", "test", "calib")


@dataclass
class Split:
    """One split: images uint8 [N, H, W, C] and int64 labels [N]."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class DatasetArrays:
    """All images of a source before splitting: a train pool and (optionally) an official test set."""

    train: Split
    test: Split | None
    classes: list[str]


def save_split(path: str | Path, split: Split) -> None:
    """Atomically write a split as an uncompressed npz (fast to load, numpy-only)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, x=split.x, y=split.y)


def load_split(data_dir: str | Path, name: str) -> Split:
    """Load `<data_dir>/<name>.npz`, with a clear error when it is missing or unreadable."""
    path = Path(data_dir) / f"{name}.npz"
    if not path.exists():
        raise EdgeoptError(f"{path}: missing; run the prepare_data rule first")
    try:
        with np.load(path) as z:
            return Split(x=z["x"], y=z["y"])
    except (OSError, ValueError, KeyError) as exc:
        raise EdgeoptError(f"{path}: unreadable dataset split ({exc})") from None


def load_meta(data_dir: str | Path) -> dict[str, Any]:
    """Load `<data_dir>/meta.json` (class names, image shape, normalisation)."""
    path = Path(data_dir) / "meta.json"
    if not path.exists():
        raise EdgeoptError(f"{path}: missing; run the prepare_data rule first")
    return json.loads(path.read_text())
