"""Converter registry: one function per deployable format conversion owns (plus the ONNX export).

A converter writes its artifact and says how to run it (harness runtime + options) so
`verify_artifact` can measure it; quantization registers its int8 formats the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from edgeopt.errors import EdgeoptError


@dataclass
class Built:
    """What a converter produced: how to run it and what to record about it."""

    runtime: str
    precision: str
    runner_options: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


#: converter(torch_model, model_meta, convert_settings, out_path, onnx_path) -> Built
Converter = Callable[[nn.Module, dict[str, Any], dict[str, Any], Path, "Path | None"], Built]
CONVERTERS: dict[str, Converter] = {}


def register_converter(fmt: str) -> Callable[[Converter], Converter]:
    def deco(fn: Converter) -> Converter:
        CONVERTERS[fmt] = fn
        return fn

    return deco


def get_converter(fmt: str) -> Converter:
    if fmt not in CONVERTERS:
        raise EdgeoptError(f"--format {fmt!r} unknown (known: {', '.join(sorted(CONVERTERS))})")
    return CONVERTERS[fmt]


def _shape(meta: dict[str, Any]) -> tuple[int, int]:
    try:
        return int(meta["image_size"]), int(meta.get("in_channels", 3))
    except KeyError:
        raise EdgeoptError(
            "model.pt: metadata lacks image_size (re-save it with edgeopt.models.save_model)"
        ) from None


@register_converter("onnx")
def build_onnx(
    model: nn.Module, meta: dict[str, Any], settings: dict[str, Any], out: Path, onnx: Path | None
) -> Built:
    """model.onnx: fp32, dynamic batch, simplified; parity measured in ONNX Runtime."""
    from edgeopt.convert.onnx_export import export_onnx, onnx_graph_stats, simplify_onnx

    opts = settings.get("onnx") or {}
    image_size, channels = _shape(meta)
    dynamic = bool(opts.get("dynamic_batch", True))
    opset = int(opts.get("opset", 18))
    export_onnx(
        model, out, image_size, channels, opset=opset, dynamic_batch=dynamic, batch=2 if dynamic else 1
    )
    if opts.get("simplify", True):
        simplify_onnx(out)
    stats = onnx_graph_stats(out)
    return Built(
        "onnxruntime",
        "fp32",
        {"opt_level": "all"},
        {"onnx": {**stats, "dynamic_batch": dynamic, "simplified": bool(opts.get("simplify", True))}},
    )


@register_converter("ort-fp32")
def build_ort_fp32(
    model: nn.Module, meta: dict[str, Any], settings: dict[str, Any], out: Path, onnx: Path | None
) -> Built:
    """ort-fp32.onnx: model.onnx after ONNX Runtime's graph optimizations, saved; run as saved."""
    from edgeopt.convert.onnx_export import onnx_graph_stats
    from edgeopt.convert.ort import optimize_ort

    if onnx is None:
        raise EdgeoptError("--onnx is required for --format ort-fp32 (the model.onnx to optimize)")
    if not Path(onnx).exists():
        raise EdgeoptError(f"{onnx}: missing; run the export_onnx rule first")
    opts = settings.get("ort") or {}
    level = str(opts.get("optimization_level", "extended"))
    optimize_ort(onnx, out, level)
    return Built(
        "onnxruntime",
        "fp32",
        {"opt_level": "disable", "threads": int(opts.get("threads") or 0)},
        {"onnx": onnx_graph_stats(out), "optimization_level": level, "source": str(onnx)},
    )


def _tflite(precision: str) -> Converter:
    def build(
        model: nn.Module, meta: dict[str, Any], settings: dict[str, Any], out: Path, onnx: Path | None
    ) -> Built:
        from edgeopt.convert.tflite import convert_tflite, tflite_stats

        opts = settings.get("tflite") or {}
        image_size, channels = _shape(meta)
        batch = int(opts.get("batch_size", 1))
        convert_tflite(model, out, precision, image_size, channels, batch)
        return Built(
            "tflite",
            precision,
            {"threads": int(opts.get("threads") or 0)},
            {"tflite": {**tflite_stats(out), "fixed_batch": batch}, "converter": "litert-torch"},
        )

    build.__doc__ = f"tflite-{precision}.tflite via litert-torch, fixed batch `convert.tflite.batch_size`."
    return build


register_converter("tflite-fp32")(_tflite("fp32"))
register_converter("tflite-fp16")(_tflite("fp16"))
