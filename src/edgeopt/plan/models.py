"""Planning of the `models:` entries: names, what each model can go through, how its baseline is made.

What a model supports is answered in one place, `edgeopt.model_capabilities`: the registry declares it
for built-in models, and models from outside the registry are built once, checked and cached. Every
stage's planner asks `model_capabilities(config, model)` (that module's `config_capabilities`) here.
"""

from __future__ import annotations

import re
from typing import Any

from edgeopt import formats, layout
from edgeopt.model_capabilities import config_capabilities as model_capabilities
from edgeopt.model_capabilities import model_notes
from edgeopt.plan.common import compact_json, model_metrics

__all__ = ["model_capabilities", "model_notes"]  # the planner's names for edgeopt.model_capabilities' answers


def model_specs(config: dict[str, Any]):  # type: ignore[no-untyped-def]
    """The parsed `models:` entries by results name (edgeopt.model_entries)."""
    from edgeopt.model_entries import model_specs as specs

    return specs(config)


def model_names(config: dict[str, Any]) -> list[str]:
    """Results names of the `models:` entries."""
    return list(model_specs(config))


def model_spec(config: dict[str, Any], model: str):  # type: ignore[no-untyped-def]
    return model_specs(config)[model]


def model_options(config: dict[str, Any], model: str) -> dict[str, Any]:
    return dict(config.get("model_options", {}).get(model) or {})


def has_torch_model(config: dict[str, Any], model: str) -> bool:
    """False for a deploy-only ONNX entry: the stages that need the PyTorch model skip it."""
    return not model_spec(config, model).deploy_only


def torch_model_names(config: dict[str, Any]) -> list[str]:
    return [m for m in model_names(config) if has_torch_model(config, m)]


def onnx_model_regex(config: dict[str, Any]) -> str:
    """Wildcard constraint matching the deploy-only ONNX entries' names (nothing when there are none)."""
    names = [m for m in model_names(config) if not has_torch_model(config, m)]
    return "|".join(re.escape(n) for n in names) or "(?!)"


def model_formats(config: dict[str, Any], model: str, fmts: list[str]) -> list[str]:
    """`fmts` this model can be built in: all, or for an ONNX entry those made from the ONNX file alone."""
    if has_torch_model(config, model):
        return fmts
    return [f for f in fmts if formats.get(f).from_onnx]


def model_params_json(config: dict[str, Any], model: str) -> str:
    """train_baseline's model params: `model_options` for a built-in model; for others also how to build it
    (arch, options) and the weights file it starts from."""
    spec = model_spec(config, model)
    params = model_options(config, model)
    if spec.kind != "builtin" or spec.weights:
        params = {**params, **spec.options, "arch": spec.arch}
        if spec.weights:
            from edgeopt.model_entries import resolve_path

            params["weights"] = str(resolve_path(spec.weights))
    return compact_json(params)


def weights_input(config: dict[str, Any], model: str) -> list[str]:
    """The weights file a baseline starts from (a rule input, so a new file retrains), if any."""
    spec = model_spec(config, model)
    return [spec.weights] if spec.weights else []


def onnx_source(config: dict[str, Any], model: str) -> str:
    """The user's ONNX file of a deploy-only entry."""
    spec = model_spec(config, model)
    assert spec.onnx is not None
    return spec.onnx


def baseline_targets(config: dict[str, Any]) -> list[str]:
    """Trained baselines; for a deploy-only ONNX entry its imported model.onnx and sidecar."""
    out = []
    for m in model_names(config):
        if has_torch_model(config, m):
            out.append(model_metrics(m, "baseline"))
        else:
            out += [layout.path(p, model=m, variant="baseline") for p in (layout.ONNX_EXPORT, layout.ONNX_EXPORT_SIDECAR)]
    return out
