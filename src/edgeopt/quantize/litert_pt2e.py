"""TFLite/LiteRT full-integer int8 through litert-torch's pt2e quantizer (no TensorFlow needed).

torch.export (dynamic batch, so calibration can run in batches) -> prepare_pt2e with the symmetric
per-channel PT2EQuantizer -> calibrate -> convert_pt2e(fold_quantize=False) -> litert_torch.convert
at batch 1 (the deployed shape). Weights must be contiguous, not channels_last: channels_last weights
mis-convert in litert.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgeopt.atomic import atomic_path
from edgeopt.errors import EdgeoptError
from edgeopt.quantize.data import make_contiguous
from edgeopt.quantize.registry import register_quantizer


@contextlib.contextmanager
def _quiet() -> Any:
    """litert/jax/absl print pages of INFO on conversion; keep the rule log readable."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    level = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            yield
        finally:
            logging.getLogger().setLevel(level)


def pt2e_quantize(
    model: nn.Module,
    calib: np.ndarray,
    per_channel: bool = True,
    batch_size: int = 64,
    after_calibration: Callable[[nn.Module], Any] | None = None,
) -> tuple[nn.Module, Any]:
    """Export, annotate with litert's PT2EQuantizer, calibrate and convert; returns (module, quantizer).

    `after_calibration(prepared)` may replace observers before conversion (the QAT export fixes the
    ranges QAT learned)."""
    from litert_torch.quantize import pt2e_quantizer
    from torchao.quantization.pt2e import quantize_pt2e

    model = make_contiguous(model)
    example = torch.from_numpy(np.ascontiguousarray(calib[:2]))
    batch = torch.export.Dim("batch", min=1, max=4096)
    try:
        exported = torch.export.export(model, (example,), dynamic_shapes=({0: batch},)).module()
    except Exception:  # noqa: BLE001 - a graph that pins its batch size: calibrate one image at a time
        exported = torch.export.export(model, (example[:1],)).module()
        batch_size = 1
    quantizer = pt2e_quantizer.PT2EQuantizer().set_global(
        pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=per_channel)
    )
    prepared = quantize_pt2e.prepare_pt2e(exported, quantizer)
    with torch.no_grad():
        for i in range(0, len(calib), batch_size):
            prepared(torch.from_numpy(np.ascontiguousarray(calib[i : i + batch_size])))
    if after_calibration is not None:
        after_calibration(prepared)
    return quantize_pt2e.convert_pt2e(prepared, fold_quantize=False), quantizer


@register_quantizer("litert-pt2e")
class LitertPt2eQuantizer:
    """fp32 module -> full-integer TFLite flatbuffer (int8 weights per channel, int8 activations)."""

    name = "litert-pt2e"
    fmt = "tflite-int8"
    runtime = "tflite"

    def quantize(
        self,
        model: nn.Module,
        meta: dict[str, Any],
        calib: np.ndarray,
        out: Path,
        cfg: dict[str, Any],
        after_calibration: Callable[[nn.Module], Any] | None = None,
    ) -> dict[str, Any]:
        import litert_torch
        from litert_torch.quantize.quant_config import QuantConfig

        per_channel = bool(cfg.get("per_channel", True))
        try:
            with _quiet():
                converted, quantizer = pt2e_quantize(
                    model, calib, per_channel, int(cfg.get("calib_batch_size", 64)), after_calibration
                )
                sample = torch.zeros(
                    1, int(meta["in_channels"]), int(meta["image_size"]), int(meta["image_size"])
                )
                edge = litert_torch.convert(
                    converted, (sample,), quant_config=QuantConfig(pt2e_quantizer=quantizer)
                )
                with atomic_path(out) as tmp:
                    edge.export(str(tmp))
        except EdgeoptError:
            raise
        except Exception as exc:  # noqa: BLE001 - export/convert raise many types for unsupported layers
            raise EdgeoptError(
                f"{out}: LiteRT int8 conversion failed ({type(exc).__name__}: {str(exc).splitlines()[0][:300]})"
            ) from None
        return {"activation_type": "int8", "weight_type": "int8", "per_channel": per_channel, "batch": 1}
