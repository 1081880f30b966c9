"""The trained variants of a model and the deployable formats chosen for them."""

from __future__ import annotations

import re
from typing import Any

from edgeopt import formats, layout
from edgeopt.plan.prune import pruning_variants


def model_variants(config: dict[str, Any], model: str) -> list[str]:
    """Trained variants of `model` that go on to conversion and benchmarks."""
    return ["baseline", *pruning_variants(config, model)]


def deploy_formats(config: dict[str, Any]) -> list[str]:
    """Formats every variant is converted to (`convert.formats`)."""
    chosen = list(config["convert"]["formats"])
    for f in chosen:
        formats.get(f, "convert.formats")
    return chosen


def deploy_path(model: str, variant: str, fmt: str) -> str:
    """Where a deployable artifact lives; its metrics JSON sits beside it with `.json`."""
    return layout.path(layout.DEPLOY_FILE, model=model, variant=variant, format=fmt, ext=formats.get(fmt).ext)


def deploy_pattern(fmt: str, sidecar: bool = False) -> str:
    """A rule's deploy output pattern for `fmt`, which may hold wildcards (`tflite-{precision}`): the
    extension is the one the table gives every format the pattern matches."""
    regex = re.compile(re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(fmt)))
    exts = {f.ext for f in formats.FORMATS.values() if regex.fullmatch(f.name)}
    if len(exts) != 1:
        raise ValueError(f"format pattern {fmt!r} matches formats with extensions {sorted(exts)}")
    return layout.fill(layout.DEPLOY_SIDECAR if sidecar else layout.DEPLOY_FILE, format=fmt, ext=exts.pop())


def onnx_path(model: str, variant: str) -> str:
    """The fp32 ONNX export every ONNX-based artifact (ORT, TensorRT, int8 QDQ) starts from."""
    return layout.path(layout.ONNX_EXPORT, model=model, variant=variant)


def with_sidecars(paths: list[str]) -> list[str]:
    """Each artifact followed by its metrics JSON (`<artifact>.json`)."""
    return [p for path in paths for p in (path, path + ".json")]


def owned_formats(config: dict[str, Any], stage: str) -> list[str]:
    """The chosen formats (`convert.formats`) whose artifacts `stage` builds on the host."""
    return [f for f in deploy_formats(config) if f in formats.names(stage=stage, built_on="host")]
