"""Helpers shared by the quantization benchmarks: a prepared CIFAR-10 subset and a quickly trained model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CIFAR_JPEG_TAR = ROOT.parent / "shared" / "datasets" / "cifar10-jpeg.tar.gz"


def prepared_subset(out: Path, train_per_class: int, test_per_class: int, calib: int = 512) -> Path:
    """A real CIFAR-10 cache from the JPEG tarball (cached in `out` across runs)."""
    from edgeopt.config import check_config
    from edgeopt.data.prepare import prepare

    if (out / "meta.json").exists():
        return out
    cfg = check_config(
        {
            "dataset": {
                "name": out.name,
                "source": "tar",
                "path": str(CIFAR_JPEG_TAR),
                "max_train_per_class": train_per_class,
                "max_test_per_class": test_per_class,
                "calib_size": calib,
            }
        }
    )["dataset"]
    prepare(cfg, out)
    return out


def trained_model(name: str, data: Path, out: Path, train_cfg: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
    """Train `name` with the workflow's own baseline trainer (cached: reused when `out` exists)."""
    import json

    from edgeopt.train.baseline import train_baseline

    model_pt, metrics = out / "model.pt", out / "metrics.json"
    if not model_pt.exists():
        train_baseline(name, data, model_pt, metrics, train_cfg)
    return model_pt, json.loads(metrics.read_text())
