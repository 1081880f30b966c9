"""Config validation: defaults are filled, a bad key or value is one line naming it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from edgeopt.config import check_config, deep_merge, load_config
from edgeopt.errors import EdgeoptError
from edgeopt.models import list_models

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_configs_validate() -> None:
    cfg = load_config(ROOT / "config.yaml")
    assert cfg["train"]["epochs"] > 0
    tiny = deep_merge(
        yaml.safe_load((ROOT / "config.yaml").read_text()),
        yaml.safe_load((ROOT / "config" / "tiny.yaml").read_text()),
    )
    tiny = check_config(tiny)
    assert tiny["models"] == ["resnet20"] and 0 < tiny["train"]["epochs"] < cfg["train"]["epochs"]


def test_defaults_filled_for_missing_sections() -> None:
    cfg = check_config({})
    assert cfg["dataset"]["image_size"] == 32
    assert cfg["train"]["precision"] == "auto"
    assert cfg["models"] == ["resnet20"]


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        ({"train": {"epochs": -1}}, "train.epochs"),
        ({"train": {"epoch": 3}}, "train.epoch: unknown key"),
        ({"models": ["resnet21"]}, "models[0]: unknown model 'resnet21'"),
        ({"dataset": {"source": "zip"}}, "dataset.source"),
        ({"dataset": {"checksum": "crc:12"}}, "dataset.checksum"),
        ({"bogus": 1}, "bogus: unknown key"),
        ({"prune": {"finetune": {"distill": {"alpha": 1.5}}}}, "prune.finetune.distill.alpha"),
        ({"prune": {"finetune": {"distill": {"temp": 4}}}}, "prune.finetune.distill.temp: unknown key"),
        ({"prune": {"schedule": {"steps": 0}}}, "prune.schedule.steps"),
        ({"prune": {"regularize": {"shrink": 2}}}, "prune.regularize.shrink"),
        ({"prune": {"regularize": {"epochs": 3, "schedule": 1}}}, "prune.regularize.schedule: unknown key"),
        ({"prune": {"regularize": {"epochs": 3}, "schedule": {"steps": 2}}}, "prune.regularize: cannot be combined"),
    ],
)
def test_bad_values_name_the_key(bad: dict, expected: str) -> None:
    with pytest.raises(EdgeoptError) as info:
        check_config(bad)
    msg = str(info.value)
    assert expected in msg and "\n" not in msg


def test_config_model_names_match_registry() -> None:
    """The torch-free list the config check and the planner use is the registry's."""
    from edgeopt.model_capabilities import BUILTIN_CAPABILITIES
    from edgeopt.model_entries import BUILTIN_MODELS

    assert sorted(BUILTIN_MODELS) == sorted(BUILTIN_CAPABILITIES) == list_models()


def test_cli_reports_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {batch_size: 0}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "edgeopt", "check-config", str(ROOT / "config.yaml"), str(bad)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "train.batch_size" in proc.stderr
