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
    targets += quantize_targets(config) + qat_targets(config)
    # -- issue 5: conversion (extend `targets` below this line)
    # -- issue 6: devices + benchmarks (extend `targets` below this line)
    # -- issue 7: on-device retraining (extend `targets` below this line)
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
#: deploy formats the quantize stage owns (the rest belong to conversion, issue 5)
QUANT_FORMATS = ("ort-int8", "tflite-int8")


def quantize_section(config: dict[str, Any]) -> dict[str, Any]:
    return dict(config.get("quantize") or {})


def quantize_formats(config: dict[str, Any]) -> list[str]:
    """The int8 formats to build: those of `convert.formats` that quantization owns."""
    return [f for f in deploy_formats(config) if f in QUANT_FORMATS]


def quantize_targets(config: dict[str, Any]) -> list[str]:
    """Every int8 artifact and its sidecar JSON, for every model variant."""
    out = []
    for m in model_names(config):
        for v in model_variants(config, m):
            for f in quantize_formats(config):
                out += [deploy_path(m, v, f), deploy_path(m, v, f) + ".json"]
    return out


def ptq_params_json(config: dict[str, Any]) -> str:
    """The `quantize` section without `qat` (so QAT edits do not rerun post-training quantization)."""
    section = {k: v for k, v in quantize_section(config).items() if k != "qat"}
    return json.dumps(section, sort_keys=True, separators=(",", ":"))


def qat_params_json(config: dict[str, Any]) -> str:
    """`quantize.qat` without the job list keys (adding a bit pair does not rerun the others)."""
    qat = quantize_section(config).get("qat") or {}
    section = {k: v for k, v in qat.items() if k not in ("bits", "variants", "enabled")}
    return json.dumps(section, sort_keys=True, separators=(",", ":"))


def qat_pairs(config: dict[str, Any]) -> list[str]:
    """QAT bit pairs as `w<bits>a<bits>` names."""
    qat = quantize_section(config).get("qat") or {}
    return [f"w{int(w)}a{int(a)}" for w, a in qat.get("bits", [])]


def qat_variants(config: dict[str, Any], model: str) -> list[str]:
    """Variants QAT starts from (`quantize.qat.variants` that exist for this model)."""
    qat = quantize_section(config).get("qat") or {}
    if not qat.get("enabled", True):
        return []
    return [v for v in qat.get("variants", ["baseline"]) if v in model_variants(config, model)]


def qat_result_path(model: str, variant: str, pair: str) -> str:
    return f"{RESULTS}/quantize/{model}/{variant}/qat-{pair}.json"


def qat_sweep_path(model: str, variant: str) -> str:
    return f"{RESULTS}/quantize/{model}/{variant}/qat_sweep.csv"


def qat_targets(config: dict[str, Any]) -> list[str]:
    """The QAT sweep table of every (model, QAT variant); the per-pair JSONs come with it."""
    if not qat_pairs(config):
        return []
    return [qat_sweep_path(m, v) for m in model_names(config) for v in qat_variants(config, m)]
# (this stage's planning functions go below this line)


# ---------------------------------------------------------------- issue 5: conversion
# (this stage's planning functions go below this line)


# ---------------------------------------------------------------- issue 6: devices + benchmarks
# (this stage's planning functions go below this line)


# ---------------------------------------------------------------- issue 7: on-device retraining
# (this stage's planning functions go below this line)


# ---------------------------------------------------------------- issue 8: reports
# (this stage's planning functions go below this line)
