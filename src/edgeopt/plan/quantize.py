"""Planning of quantization: int8 artifacts (post-training) and QAT sweeps."""

from __future__ import annotations

from typing import Any

from edgeopt import layout
from edgeopt.plan.common import compact_json
from edgeopt.plan.models import has_torch_model, model_formats, model_names
from edgeopt.plan.variants import deploy_path, model_variants, owned_formats, with_sidecars
from edgeopt.quantize import QAT_JOB_KEYS


def quantize_section(config: dict[str, Any]) -> dict[str, Any]:
    return dict(config.get("quantize") or {})


def quantize_formats(config: dict[str, Any]) -> list[str]:
    """The int8 formats to build: those of `convert.formats` that quantization owns."""
    return owned_formats(config, "quantize")


def quantize_targets(config: dict[str, Any]) -> list[str]:
    """Every int8 artifact and its sidecar JSON, for every model variant."""
    fmts = quantize_formats(config)
    return with_sidecars(
        [
            deploy_path(m, v, f)
            for m in model_names(config)
            for v in model_variants(config, m)
            for f in model_formats(config, m, fmts)
        ]
    )


def ptq_params_json(config: dict[str, Any]) -> str:
    """The `quantize` section without `qat` (so QAT edits do not rerun post-training quantization)."""
    return compact_json({k: v for k, v in quantize_section(config).items() if k != "qat"})


def qat_params_json(config: dict[str, Any]) -> str:
    """`quantize.qat` without the job list keys (adding a bit pair does not rerun the others)."""
    qat = quantize_section(config)["qat"]
    return compact_json({k: v for k, v in qat.items() if k not in QAT_JOB_KEYS})


def qat_pairs(config: dict[str, Any]) -> list[str]:
    """QAT bit pairs as `w<bits>a<bits>` names."""
    return [f"w{int(w)}a{int(a)}" for w, a in quantize_section(config)["qat"]["bits"]]


def qat_variants(config: dict[str, Any], model: str) -> list[str]:
    """Variants QAT starts from (`quantize.qat.variants` that exist for this model)."""
    qat = quantize_section(config)["qat"]
    if not qat["enabled"] or not has_torch_model(config, model):
        return []
    return [v for v in qat["variants"] if v in model_variants(config, model)]


def qat_result_path(model: str, variant: str, pair: str) -> str:
    return layout.path(layout.QAT_RESULT, model=model, variant=variant, pair=pair)


def qat_sweep_path(model: str, variant: str) -> str:
    return layout.path(layout.QAT_SWEEP, model=model, variant=variant)


def qat_targets(config: dict[str, Any]) -> list[str]:
    """The QAT sweep table of every (model, QAT variant); the per-pair JSONs come with it."""
    if not qat_pairs(config):
        return []
    return [qat_sweep_path(m, v) for m in model_names(config) for v in qat_variants(config, m)]
