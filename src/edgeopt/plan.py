"""What the workflow builds for a config: artifact paths and target lists.

The Snakefile and rule files ask this module for paths and targets so the `.smk` files
stay declarative and the planning is unit-tested like the rest of the code.
"""

from __future__ import annotations

import contextvars
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
    # -- issue 8: reports (extend `targets` below this line)
    if not _PLANNING_REPORT_INPUTS.get():
        targets += report_targets(config)
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


# ---------------------------------------------------------------- issue 8: reports
# (this stage's planning functions go below this line)
REPORT_DIR = f"{RESULTS}/report"

#: report figure -> results/ folder whose presence among the report's inputs means its data exist
#: (None: drawn whenever the report runs, from the model metrics every run has)
REPORT_FIGURES: dict[str, str | None] = {
    "accuracy_latency": f"{RESULTS}/bench/",
    "accuracy_size": None,
    "sensitivity": f"{RESULTS}/sensitivity/",
    "qat_sweep": f"{RESULTS}/quantize/",
    "retrain_speedup": f"{RESULTS}/retrain/",
}

#: normalised tables the collector writes (the figures are drawn from these)
REPORT_TABLES = ("results", "sensitivity", "qat_sweep", "retrain")

_PLANNING_REPORT_INPUTS: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "planning_report_inputs", default=False
)


def report_inputs(config: dict[str, Any]) -> list[str]:
    """Every other stage's targets: what the report is made from (the report's own paths excluded)."""
    token = _PLANNING_REPORT_INPUTS.set(True)
    try:
        targets = all_targets(config)
    finally:
        _PLANNING_REPORT_INPUTS.reset(token)
    return sorted({t for t in targets if not t.startswith(REPORT_DIR + "/")})


def report_figures(config: dict[str, Any]) -> list[str]:
    """Figures this run draws: enabled in `report.plots` and fed by targets of this config."""
    wanted = config.get("report", {}).get("plots", list(REPORT_FIGURES))
    inputs = report_inputs(config)
    out = []
    for fig in wanted:
        prefix = REPORT_FIGURES[fig]
        if prefix is None or any(t.startswith(prefix) for t in inputs):
            out.append(fig)
    return out


def report_table_path(name: str, ext: str = "csv") -> str:
    return f"{REPORT_DIR}/{name}.{ext}"


def report_figure_path(figure: str) -> str:
    return f"{REPORT_DIR}/figures/{figure}.png"


def report_plot_json(config: dict[str, Any]) -> str:
    """The part of `report` the figures depend on (the title does not redraw them)."""
    section = config.get("report", {})
    return json.dumps(
        {k: section.get(k) for k in ("pareto", "batch_size")}, sort_keys=True, separators=(",", ":")
    )


def report_targets(config: dict[str, Any]) -> list[str]:
    """The report's own outputs: tables, figures and the HTML page."""
    tables = [report_table_path(t) for t in REPORT_TABLES] + [report_table_path("results", "parquet")]
    figures = [report_figure_path(f) for f in report_figures(config)]
    return tables + figures + [f"{REPORT_DIR}/index.html"]


def device_resources(config: dict[str, Any]) -> dict[str, Any]:
    """Per-device job slots for rules with a `{device}` wildcard (benchmarks, retraining):
    `resources: **plan.device_resources(config)` makes each job take one `device_<name>` unit of its
    own device, so `--resources device_jetson=1` (workflow/profiles/remote) runs one job per board."""
    names = list(config.get("devices") or {"local": {}})
    return {f"device_{n}": (lambda wildcards, n=n: int(wildcards.get("device") == n)) for n in names}

