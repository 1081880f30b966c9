"""What the workflow builds for a config: artifact paths and target lists.

The Snakefile and rule files ask this module for paths and targets so the `.smk` files
stay declarative and the planning is unit-tested like the rest of the code.
"""

from __future__ import annotations

import json
from typing import Any

RESULTS = "results"


def data_dir(config: dict[str, Any]) -> str:
    """Folder of the prepared dataset cache."""
    return f"{RESULTS}/data/{config['dataset']['name']}"


def model_names(config: dict[str, Any]) -> list[str]:
    return list(config["models"])


def model_options(config: dict[str, Any], model: str) -> dict[str, Any]:
    return dict(config.get("model_options", {}).get(model) or {})


def section_json(config: dict[str, Any], *keys: str) -> str:
    """A config section as compact JSON: rules pass it as `params`, so editing it reruns the rule."""
    node: Any = config
    for k in keys:
        node = node[k]
    return json.dumps(node, sort_keys=True, separators=(",", ":"))


def data_targets(config: dict[str, Any]) -> list[str]:
    d = data_dir(config)
    return [f"{d}/{s}.npz" for s in ("train", "val", "test", "calib")] + [f"{d}/meta.json"]


def baseline_targets(config: dict[str, Any]) -> list[str]:
    return [f"{RESULTS}/models/{m}/baseline/metrics.json" for m in model_names(config)]


def all_targets(config: dict[str, Any]) -> list[str]:
    """Everything `rule all` asks for."""
    targets = data_targets(config) + baseline_targets(config)
    # -- issue 3: sensitivity + pruning (extend `targets` below this line)
    # -- issue 4: quantization (extend `targets` below this line)
    # -- issue 5: conversion (extend `targets` below this line)
    # -- issue 6: devices + benchmarks (extend `targets` below this line)
    # -- issue 7: on-device retraining (extend `targets` below this line)
    targets += retrain_targets(config)
    # -- issue 8: reports (extend `targets` below this line)
    return targets


def model_options_json(config: dict[str, Any], model: str) -> str:
    return json.dumps(model_options(config, model), sort_keys=True, separators=(",", ":"))


# ---------------------------------------------------------------- variants and deployable formats
# Stages extend these: pruning and QAT add model variants, conversion/quantization add formats.

#: deployable formats: `<runtime>-<precision>` -> (file extension, harness runtime name)
FORMATS: dict[str, tuple[str, str]] = {
    "ort-fp32": ("onnx", "onnxruntime"),
    "ort-int8": ("onnx", "onnxruntime"),
    "tflite-fp32": ("tflite", "tflite"),
    "tflite-fp16": ("tflite", "tflite"),
    "tflite-int8": ("tflite", "tflite"),
}


def model_variants(config: dict[str, Any], model: str) -> list[str]:
    """Trained variants of `model` that go on to conversion and benchmarks."""
    variants = ["baseline"]
    # -- issue 3: pruning variants (extend `variants` below this line)
    # -- issue 4: quantization-aware-training variants (extend `variants` below this line)
    return variants


def deploy_formats(config: dict[str, Any]) -> list[str]:
    """Formats every variant is converted to (`convert.formats`)."""
    return list(config.get("convert", {}).get("formats", list(FORMATS)))


def deploy_path(model: str, variant: str, fmt: str) -> str:
    """Where a deployable artifact lives; its metrics JSON sits beside it with `.json`."""
    return f"{RESULTS}/deploy/{model}/{variant}/{fmt}.{FORMATS[fmt][0]}"


# ---------------------------------------------------------------- issue 3: sensitivity + pruning
# (this stage's planning functions go below this line)


# ---------------------------------------------------------------- issue 4: quantization
# (this stage's planning functions go below this line)


# ---------------------------------------------------------------- issue 5: conversion
# (this stage's planning functions go below this line)


# ---------------------------------------------------------------- issue 6: devices + benchmarks
# (this stage's planning functions go below this line)


# ---------------------------------------------------------------- issue 7: on-device retraining
# (this stage's planning functions go below this line)


def retrain_jobs(config: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(device, model, framework, setting) for every retraining job the config asks for.

    Pairs a framework cannot train (onnxruntime in fp16/bf16) are left out; an unknown or
    non-training framework (tensorrt), device or duplicate setting raises a one-line EdgeoptError.
    """
    from edgeopt.errors import EdgeoptError
    from edgeopt.retrain.settings import check_framework, settings_of, supports

    sec = config.get("retrain") or {}
    if not sec.get("enabled", True):
        return []
    known = {"local", *(config.get("devices") or {})}
    for dev in sec.get("devices", ["local"]):
        if dev not in known:
            raise EdgeoptError(f"retrain.devices: {dev!r} is not `local` nor a `devices:` entry")
    frameworks = sec.get("frameworks", ["pytorch", "onnxruntime"])
    for fw in frameworks:
        check_framework(fw)
    settings = settings_of(sec)
    return [
        (dev, m, fw, s.name)
        for dev in sec.get("devices", ["local"])
        for m in model_names(config)
        for fw in frameworks
        for s in settings.values()
        if supports(fw, s)
    ]


def retrain_path(device: str, model: str, framework: str, setting: str) -> str:
    return f"{RESULTS}/retrain/{device}/{model}/{framework}-{setting}.json"


def retrain_targets(config: dict[str, Any]) -> list[str]:
    return [retrain_path(*job) for job in retrain_jobs(config)]


def retrain_model_path(config: dict[str, Any], model: str) -> str:
    """The model file retraining starts from (`retrain.variant`)."""
    variant = (config.get("retrain") or {}).get("variant", "baseline")
    return f"{RESULTS}/models/{model}/{variant}/model.pt"


def retrain_device_json(config: dict[str, Any], device: str) -> str:
    """The device's `devices:` entry as JSON (empty for `local`), passed to `edgeopt retrain`."""
    entry = (config.get("devices") or {}).get(device) or {}
    return json.dumps(entry, sort_keys=True, separators=(",", ":"))


# ---------------------------------------------------------------- issue 8: reports
# (this stage's planning functions go below this line)
