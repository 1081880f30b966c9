"""TFLite / LiteRT via litert-torch (torch.export -> TFLite flatbuffer; no TensorFlow needed)."""

from __future__ import annotations

import copy
from collections import Counter
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgeopt.atomic import atomic_path
from edgeopt.errors import EdgeoptError
from edgeopt.harness.op_errors import unsupported_op_message

PRECISIONS = ("fp32", "fp16")


def contiguous_copy(model: nn.Module) -> nn.Module:
    """A CPU eval copy whose weights are plain contiguous (NCHW) tensors.

    Models trained channels_last keep channels_last weights; torch.export then records strides the
    TFLite lowering does not expect, so every parameter and buffer is made contiguous first.
    """
    model = copy.deepcopy(model).to("cpu").eval().to(memory_format=torch.contiguous_format)
    with torch.no_grad():
        for t in list(model.parameters()) + list(model.buffers()):
            t.data = t.data.contiguous()
    return model


def convert_tflite(
    model: nn.Module,
    out: str | Path,
    precision: str = "fp32",
    image_size: int = 32,
    in_channels: int = 3,
    batch: int = 1,
) -> Path:
    """Write `model` as a `.tflite` with a fixed `[batch, C, H, W]` float input.

    fp16 stores weights as float16 (dequantized at load: half the size, fp32 compute on CPUs,
    fp16 on GPU delegates) using litert-torch's fp16 recipe.
    """
    if precision not in PRECISIONS:
        raise EdgeoptError(f"tflite precision {precision!r} unknown (known: {', '.join(PRECISIONS)})")
    import litert_torch

    quant_config = None
    if precision == "fp16":
        from litert_torch.generative.quantize import quant_recipes

        quant_config = quant_recipes.full_fp16_recipe()
    example = torch.randn(batch, in_channels, image_size, image_size)
    try:
        edge_model = litert_torch.convert(contiguous_copy(model), (example,), quant_config=quant_config)
    except Exception as exc:  # noqa: BLE001 - torch.export / lowering / MLIR raise many types
        text = str(exc)
        named = unsupported_op_message("litert-torch", text, where=f"{out}: TFLite conversion")
        first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
        raise EdgeoptError(
            named or f"{out}: TFLite conversion failed ({type(exc).__name__}: {first})"
        ) from None
    with atomic_path(out) as tmp:
        edge_model.export(str(tmp))
    return Path(out)


def tflite_stats(path: str | Path) -> dict[str, Any]:
    """Op counts and input signature of a `.tflite` file (for its sidecar JSON)."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    inp = interp.get_input_details()[0]
    stats: dict[str, Any] = {
        "input_shape": [int(d) for d in inp["shape"]],
        "input_dtype": str(inp["dtype"].__name__ if hasattr(inp["dtype"], "__name__") else inp["dtype"]),
        "size_bytes": Path(path).stat().st_size,
    }
    try:  # private API, but the only way to list ops without the flatbuffer schema
        ops = Counter(d["op_name"] for d in interp._get_ops_details())
        stats["op_counts"] = dict(sorted(ops.items()))
    except Exception:  # noqa: BLE001 - optional detail
        pass
    return stats
