"""Planning of conversion: the ONNX export of every variant and the host-built fp32/fp16 formats."""

from __future__ import annotations

from typing import Any

from edgeopt import formats
from edgeopt.plan.common import compact_json
from edgeopt.plan.models import model_formats, model_names
from edgeopt.plan.variants import (
    deploy_formats,
    deploy_path,
    model_variants,
    onnx_path,
    owned_formats,
    with_sidecars,
)


def device_built_formats(config: dict[str, Any]) -> list[str]:
    """Chosen formats that are built on the device itself (TensorRT engines), not on the host."""
    return [f for f in deploy_formats(config) if formats.get(f).on_device]


def convert_targets(config: dict[str, Any]) -> list[str]:
    """model.onnx for every variant, plus the conversion-owned formats chosen in `convert.formats`,
    each with its sidecar JSON (in that order per variant)."""
    owned = owned_formats(config, "convert")
    return with_sidecars(
        [
            path
            for m in model_names(config)
            for v in model_variants(config, m)
            for path in [onnx_path(m, v)] + [deploy_path(m, v, f) for f in model_formats(config, m, owned)]
        ]
    )


def convert_params_json(config: dict[str, Any], *keys: str) -> str:
    """Only the `convert` sub-sections a rule uses, as compact JSON (so editing, say, the TensorRT
    options does not rerun the TFLite conversions)."""
    section = config["convert"]
    return compact_json({k: section.get(k) for k in keys})


def tflite_convert_precisions() -> list[str]:
    """Precisions of the TFLite formats the conversion stage builds (convert_tflite's `{precision}`)."""
    return [formats.get(f).precision for f in formats.names(stage="convert", runtime="tflite")]
