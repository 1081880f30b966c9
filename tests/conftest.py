"""Shared fixtures: a tiny real dataset cache (from the CIFAR-10 sample in data/) and a tiny trained model.

Tests that need the whole CIFAR-10 JPEG set ask for `cifar_tar`: $EDGEOPT_CIFAR_JPEG, else
../shared/datasets/cifar10-jpeg.tar.gz beside the checkout (skipped when neither exists).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
sys.path.insert(0, str(SRC))
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH")) if p)
CIFAR_JPEG_TAR = Path(
    os.environ.get("EDGEOPT_CIFAR_JPEG") or ROOT.parent / "shared" / "datasets" / "cifar10-jpeg.tar.gz"
)
SAMPLE_TAR = ROOT / "data" / "cifar10-sample.tar.gz"  # the tiny preset's dataset, in the repository

#: fixture modules shared by stages' tests
pytest_plugins: list[str] = [
    "quantize_fixtures",
    "device_fixtures",
    "workflow_fixtures",
]

import torch  # noqa: E402

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def cifar_tar() -> Path:
    if not CIFAR_JPEG_TAR.exists():
        pytest.skip(f"{CIFAR_JPEG_TAR} not found (set EDGEOPT_CIFAR_JPEG to the CIFAR-10 JPEG tarball)")
    return CIFAR_JPEG_TAR


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A prepared cache of the shipped sample: 10 classes, 40 train/class (36 train + 4 val), 10 test/class, 64 calib."""
    from edgeopt.config import check_config
    from edgeopt.data.prepare import prepare

    out = tmp_path_factory.mktemp("data") / "cifar10-tiny"
    cfg = check_config(
        {
            "dataset": {
                "name": "cifar10-tiny",
                "source": "tar",
                "path": str(SAMPLE_TAR),
                "max_train_per_class": 40,
                "max_test_per_class": 10,
                "calib_size": 64,
            }
        }
    )["dataset"]
    prepare(cfg, out)
    return out


@pytest.fixture(scope="session")
def tiny_train_cfg() -> dict:
    """Training settings for tests: 1 quick CPU epoch."""
    return {
        "epochs": 1,
        "batch_size": 64,
        "lr": 0.05,
        "device": "cpu",
        "progress": False,
        "eval_batch_size": 256,
    }


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory, tiny_data: Path, tiny_train_cfg: dict) -> Path:
    """A ResNet-20 trained for one epoch on `tiny_data`: a real model.pt with metadata."""
    from edgeopt.train.baseline import train_baseline

    out = tmp_path_factory.mktemp("model")
    train_baseline("resnet20", tiny_data, out / "model.pt", out / "metrics.json", tiny_train_cfg)
    return out / "model.pt"
