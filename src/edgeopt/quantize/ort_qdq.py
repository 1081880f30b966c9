"""ONNX Runtime static int8 quantization in QDQ form, calibrated on the calibration subset.

uint8 activations + int8 per-channel weights: on x86 this runs the VNNI u8s8 kernels, which
were faster here than all-int8 (S8S8) QDQ. On an x86 CPU *without* VNNI (AVX2 only), ONNX Runtime's
u8s8 kernels add pairs of u8*s8 products in saturating int16 (vpmaddubsw), which costs accuracy:
measured here on an AVX2-only EPYC, a ResNet-20 lost 1.4 pt (top-1 agreement with fp32 0.949) where
7-bit weights (`reduce_range`) lost 0.3 pt (0.991). So `reduce_range: auto` turns it on for u8s8
when the machine that quantizes is such a CPU; set it explicitly when the target CPU differs.
"""

from __future__ import annotations

import platform
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from edgeopt.atomic import atomic_path
from edgeopt.convert.onnx_export import export_onnx
from edgeopt.errors import EdgeoptError
from edgeopt.formats import TRT_QDQ_SOURCE
from edgeopt.harness.sysinfo import cpu_flags as read_cpu_flags
from edgeopt.quantize.registry import register_quantizer

CALIBRATE_METHODS = ("minmax", "entropy", "percentile")
TYPES = ("uint8", "int8")


VNNI_FLAGS = ("avx512_vnni", "avx_vnni")


def u8s8_saturates(machine: str | None = None, cpu_flags: set[str] | None = None) -> bool:
    """Whether ONNX Runtime's u8s8 kernels saturate here: an x86 CPU without VNNI (unreadable flags count as such)."""
    machine = (machine or platform.machine()).lower()
    if machine not in ("x86_64", "amd64", "i386", "i686"):
        return False  # ARM's dot-product kernels accumulate in int32
    flags = read_cpu_flags() if cpu_flags is None else cpu_flags
    return not any(f in flags for f in VNNI_FLAGS)


def resolve_reduce_range(cfg: dict[str, Any], act: str, wt: str) -> tuple[bool, str]:
    """(reduce_range, why) from `quantize.reduce_range`: true | false | auto (u8s8 on a non-VNNI x86 CPU)."""
    value = cfg.get("reduce_range", "auto")
    if isinstance(value, bool):
        return value, "set in the config"
    if value != "auto":
        raise EdgeoptError(f"quantize.reduce_range: must be auto, true or false, got {value!r}")
    if (act, wt) != ("uint8", "int8"):
        return False, f"auto: {act} activations with {wt} weights do not use the u8s8 kernels"
    if u8s8_saturates():
        return True, "auto: this x86 CPU has no VNNI, so ONNX Runtime's u8s8 kernels saturate (7-bit weights avoid it)"
    return False, "auto: this CPU's u8s8 kernels do not saturate (VNNI or not x86)"


class _Batches:
    """onnxruntime CalibrationDataReader over a float32 NCHW array."""

    def __init__(self, x: np.ndarray, input_name: str, batch_size: int) -> None:
        self._it = iter([{input_name: x[i : i + batch_size]} for i in range(0, len(x), batch_size)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)

    def rewind(self) -> None:  # pragma: no cover - not used by MinMax
        raise NotImplementedError


def quantize_onnx_file(
    src: Path, out: Path, calib: np.ndarray, cfg: dict[str, Any], input_name: str = "input"
) -> dict[str, Any]:
    """Static QDQ quantization of an fp32 ONNX file (also used for QAT-free comparisons in benchmarks and for
    models imported as ONNX, whose input is named `input_name`)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    act = cfg.get("activation_type", "uint8")
    wt = cfg.get("weight_type", "int8")
    method = cfg.get("calibrate_method", "minmax")
    if act not in TYPES or wt not in TYPES:
        raise EdgeoptError(
            f"quantize.activation_type/weight_type: must be one of {TYPES}, got {act!r}/{wt!r}"
        )
    if method not in CALIBRATE_METHODS:
        raise EdgeoptError(f"quantize.calibrate_method: must be one of {CALIBRATE_METHODS}, got {method!r}")
    reduce_range, why = resolve_reduce_range(cfg, act, wt)
    symmetric = bool(cfg.get("symmetric", False))
    extra = {"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False} if symmetric else {}
    qtype = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        with atomic_path(out) as dst:
            quantize_static(
                str(pre),
                str(dst),
                _Batches(calib, input_name, int(cfg.get("calib_batch_size", 64))),
                quant_format=QuantFormat.QDQ,
                per_channel=bool(cfg.get("per_channel", True)),
                activation_type=qtype[act],
                weight_type=qtype[wt],
                reduce_range=reduce_range,
                calibrate_method={
                    "minmax": CalibrationMethod.MinMax,
                    "entropy": CalibrationMethod.Entropy,
                    "percentile": CalibrationMethod.Percentile,
                }[method],
                extra_options=extra,
            )
    return {
        "activation_type": act,
        "weight_type": wt,
        "calibrate_method": method,
        "format": "QDQ",
        "reduce_range": reduce_range,
        "reduce_range_reason": why,
        "symmetric": symmetric,
    }


@register_quantizer("ort-qdq")
class OrtQdqQuantizer:
    """fp32 module -> ONNX (edgeopt.convert.onnx_export) -> ORT static QDQ int8."""

    name = "ort-qdq"
    fmt = "ort-int8"
    runtime = "onnxruntime"

    def quantize(
        self, model: nn.Module, meta: dict[str, Any], calib: np.ndarray, out: Path, cfg: dict[str, Any]
    ) -> dict[str, Any]:
        with tempfile.TemporaryDirectory() as tmp:
            fp32 = Path(tmp) / "model.onnx"
            export_onnx(model, fp32, int(meta["image_size"]), int(meta["in_channels"]))
            try:
                info = quantize_onnx_file(fp32, Path(out), calib, cfg)
            except EdgeoptError:
                raise
            except Exception as exc:  # noqa: BLE001 - ORT raises many types for unsupported graphs
                raise EdgeoptError(
                    f"{out}: ONNX Runtime quantization failed ({type(exc).__name__}: {str(exc).splitlines()[0]})"
                ) from None
        return {**info, "per_channel": bool(cfg.get("per_channel", True))}


#: what TensorRT accepts as explicit (Q/DQ) int8: int8 activations and weights, symmetric (zero point
#: 0), per-channel weights, float biases (TensorRT has no int32 DequantizeLinear for them)
TENSORRT_QDQ = {"activation_type": "int8", "weight_type": "int8", "symmetric": True, "reduce_range": False}


@register_quantizer(TRT_QDQ_SOURCE)
class TrtQdqQuantizer(OrtQdqQuantizer):
    """fp32 module -> symmetric int8 QDQ ONNX for TensorRT (trt-int8 with `convert.tensorrt.int8_source: qdq`).

    The calibration method and image count follow the `quantize` section; the number format is fixed
    to what TensorRT reads, whatever `quantize.activation_type` says (that one is for ort-int8).
    """

    name = TRT_QDQ_SOURCE
    fmt = TRT_QDQ_SOURCE

    def quantize(
        self, model: nn.Module, meta: dict[str, Any], calib: np.ndarray, out: Path, cfg: dict[str, Any]
    ) -> dict[str, Any]:
        return super().quantize(model, meta, calib, out, {**cfg, **TENSORRT_QDQ})
