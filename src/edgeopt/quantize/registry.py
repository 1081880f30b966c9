"""Registry of quantizer families: post-training (ONNX Runtime QDQ, LiteRT pt2e) and fake-quant QAT.

A post-training quantizer turns an fp32 `nn.Module` plus calibration images into a deployable file;
the QAT family (`fake-quant`) instead wraps the module for fine-tuning and is simulated unless 8-bit.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from torch import nn

from edgeopt.errors import EdgeoptError


class PostTrainingQuantizer(Protocol):
    """fp32 module + calibration batch -> an int8 artifact at `out` (returns what it did)."""

    name: str
    fmt: str  # deploy format it produces (edgeopt.formats.FORMATS key)
    runtime: str  # harness runtime that runs the artifact

    def quantize(
        self, model: nn.Module, meta: dict[str, Any], calib: np.ndarray, out: Path, cfg: dict[str, Any]
    ) -> dict[str, Any]: ...


QUANTIZERS: dict[str, Callable[[], Any]] = {}


def register_quantizer(name: str) -> Callable[[Callable[[], Any]], Callable[[], Any]]:
    def deco(cls: Callable[[], Any]) -> Callable[[], Any]:
        if name in QUANTIZERS:
            raise ValueError(f"quantizer {name!r} registered twice")
        QUANTIZERS[name] = cls
        return cls

    return deco


def get_quantizer(name: str) -> Any:
    """An instance of the quantizer `name` (importing the family modules registers them)."""
    from edgeopt.quantize import fake_quant, litert_pt2e, ort_qdq  # noqa: F401

    if name not in QUANTIZERS:
        raise EdgeoptError(f"unknown quantizer {name!r} (known: {', '.join(sorted(QUANTIZERS))})")
    return QUANTIZERS[name]()


def quantizer_for_format(fmt: str) -> Any:
    """The post-training quantizer that produces deploy format `fmt` (e.g. 'ort-int8')."""
    from edgeopt.quantize import litert_pt2e, ort_qdq  # noqa: F401

    for name, cls in QUANTIZERS.items():
        if getattr(cls, "fmt", None) == fmt:
            return get_quantizer(name)
    known = sorted(c.fmt for c in QUANTIZERS.values() if getattr(c, "fmt", None))
    raise EdgeoptError(f"no quantizer produces format {fmt!r} (known: {', '.join(known)})")
