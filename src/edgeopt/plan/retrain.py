"""Planning of on-device retraining: one job per (device, model, framework, setting)."""

from __future__ import annotations

from typing import Any

from edgeopt import layout
from edgeopt.plan.bench import device_settings
from edgeopt.plan.common import model_file
from edgeopt.plan.models import torch_model_names


def retrain_jobs(config: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(device, model, framework, setting) for every retraining job the config asks for.

    Pairs a framework cannot train (onnxruntime in fp16/bf16) are left out; an unknown or
    non-training framework (tensorrt), device or duplicate setting raises a one-line EdgeoptError.
    """
    from edgeopt.errors import EdgeoptError
    from edgeopt.retrain.settings import check_framework, settings_of, supports

    sec = config["retrain"]
    if not sec["enabled"]:
        return []
    known = set(device_settings(config))
    for dev in sec["devices"]:
        if dev not in known:
            raise EdgeoptError(f"retrain.devices: {dev!r} is not `local` nor a `devices:` entry")
    for fw in sec["frameworks"]:
        check_framework(fw)
    settings = settings_of(sec)
    return [
        (dev, m, fw, s.name)
        for dev in sec["devices"]
        for m in torch_model_names(config)
        for fw in sec["frameworks"]
        for s in settings.values()
        if supports(fw, s)
    ]


def retrain_path(device: str, model: str, framework: str, setting: str) -> str:
    return layout.path(layout.RETRAIN_RESULT, device=device, model=model, framework=framework, setting=setting)


def retrain_targets(config: dict[str, Any]) -> list[str]:
    return [retrain_path(*job) for job in retrain_jobs(config)]


def retrain_model_path(config: dict[str, Any], model: str) -> str:
    """The model file retraining starts from (`retrain.variant`)."""
    return model_file(model, config["retrain"]["variant"])
