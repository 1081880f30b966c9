"""The `retrain` config section: named settings (freezing, precision, batch size) and frameworks.

Settings are declarative so a field engineer can add "freeze all but the classifier, bf16,
batch 32" in YAML and get a new measured row without touching code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgeopt.errors import EdgeoptError

PRECISIONS = ("fp32", "fp16", "bf16")
FREEZE_HEAD = "all_but_classifier"

#: framework name -> precisions it can train in (None: not a training framework at all)
FRAMEWORKS: dict[str, tuple[str, ...] | None] = {
    "pytorch": PRECISIONS,
    # onnxruntime-training 1.19.2 (CPU package): fp32 kernels only; mixed precision needs its CUDA
    # build and ORTModule, which are not on-device training.
    "onnxruntime": ("fp32",),
    # TensorRT builds inference engines: weights are constants folded into the engine, and
    # parameters fed as network inputs cannot be optimised, so there is no training to measure.
    "tensorrt": None,
}

TENSORRT_MESSAGE = (
    "retrain.frameworks: tensorrt cannot train (TensorRT builds inference-only engines; parameters "
    "given as network inputs cannot be optimised): use pytorch or onnxruntime"
)


@dataclass(frozen=True)
class RetrainSetting:
    """One named way of fine-tuning: which layers train, in which precision, with which batch size."""

    name: str
    freeze: int | str = 0
    precision: str = "fp32"
    batch_size: int = 64

    @classmethod
    def from_config(cls, d: dict[str, Any]) -> RetrainSetting:
        name = d.get("name")
        if not isinstance(name, str) or not name:
            raise EdgeoptError("retrain.settings: every setting needs a `name`")
        freeze = d.get("freeze", 0)
        if (
            not (isinstance(freeze, int) and not isinstance(freeze, bool) and freeze >= 0)
            and freeze != FREEZE_HEAD
        ):
            raise EdgeoptError(
                f"retrain.settings.{name}.freeze: an integer >= 0 or {FREEZE_HEAD!r}, got {freeze!r}"
            )
        precision = d.get("precision", "fp32")
        if precision not in PRECISIONS:
            raise EdgeoptError(f"retrain.settings.{name}.precision: one of {PRECISIONS}, got {precision!r}")
        bs = d.get("batch_size", 64)
        if not isinstance(bs, int) or bs < 1:
            raise EdgeoptError(f"retrain.settings.{name}.batch_size: an integer >= 1, got {bs!r}")
        return cls(name=name, freeze=freeze, precision=precision, batch_size=bs)


def check_framework(name: str) -> None:
    """Unknown or non-training frameworks are one-line config errors."""
    if name == "tensorrt":
        raise EdgeoptError(TENSORRT_MESSAGE)
    if name not in FRAMEWORKS:
        raise EdgeoptError(f"retrain.frameworks: unknown framework {name!r} (known: pytorch, onnxruntime)")


def supports(framework: str, setting: RetrainSetting) -> bool:
    """Whether `framework` can train in this setting's precision (the plan skips the pairs it cannot)."""
    check_framework(framework)
    return setting.precision in (FRAMEWORKS[framework] or ())


def settings_of(section: dict[str, Any]) -> dict[str, RetrainSetting]:
    """The named settings of a `retrain` section, in config order; names must be unique."""
    out: dict[str, RetrainSetting] = {}
    for d in section.get("settings", []):
        s = RetrainSetting.from_config(d)
        if s.name in out:
            raise EdgeoptError(f"retrain.settings: duplicate name {s.name!r}")
        out[s.name] = s
    return out


def get_setting(section: dict[str, Any], name: str) -> RetrainSetting:
    settings = settings_of(section)
    if name not in settings:
        raise EdgeoptError(f"retrain.settings: no setting named {name!r} (have: {', '.join(settings)})")
    return settings[name]
