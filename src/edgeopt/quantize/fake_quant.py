"""Fake quantization for QAT at 2..8 bits, separately for weights and activations, per-layer overrides.

Every Conv2d/Linear is wrapped: its weight is fake-quantized per output channel (symmetric, max-abs
scale), its input activation per tensor (range tracked by an EMA over batches and seeded on the
calibration subset). 8-bit activations are symmetric int8 (zero point 0, scale max|range|/127): the grid
the exported int8 models (ONNX Runtime, TensorRT, LiteRT) run, so what QAT learns is what deploys;
below 8 bits they are asymmetric (simulated only: no runtime here has those kernels). BatchNorm is
folded into the preceding conv first (torch.fx), so what is quantized is what an integer runtime would
run. Gradients pass straight through (STE) inside the range.
"""

from __future__ import annotations

import fnmatch
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from edgeopt.errors import EdgeoptError
from edgeopt.quantize.registry import register_quantizer

MIN_BITS, MAX_BITS = 2, 8
QUANTIZABLE = (nn.Conv2d, nn.Linear)
#: parameter-free or foldable layers the fake-quant wrapper leaves alone
PASSTHROUGH = (nn.BatchNorm1d, nn.BatchNorm2d, nn.Identity)


def check_bits(bits: Any, what: str) -> int:
    """Bit widths are integers in 2..8; anything else is a one-line error naming `what`."""
    if isinstance(bits, bool) or not isinstance(bits, int) or not MIN_BITS <= bits <= MAX_BITS:
        raise EdgeoptError(f"{what}: bit width must be an integer in {MIN_BITS}..{MAX_BITS}, got {bits!r}")
    return bits


class ActivationFakeQuant(nn.Module):
    """Per-tensor fake quantization with an EMA min/max range (frozen in eval mode); symmetric at 8 bits."""

    def __init__(self, bits: int, momentum: float = 0.05) -> None:
        super().__init__()
        self.bits = check_bits(bits, "bits_a")
        self.symmetric = self.bits == MAX_BITS  # what int8 runtimes and TensorRT take
        self.momentum = momentum
        self.observe = False  # update the range in eval mode too (calibration)
        self.register_buffer("lo", torch.zeros(()))
        self.register_buffer("hi", torch.zeros(()))
        self.register_buffer("seen", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def _update(self, x: torch.Tensor) -> None:
        lo, hi = x.min().float().clamp(max=0), x.max().float().clamp(min=0)
        if int(self.seen) == 0:
            self.lo.copy_(lo)
            self.hi.copy_(hi)
        elif self.observe:  # calibration: running mean over batches
            n = float(self.seen)
            self.lo.mul_(n / (n + 1)).add_(lo / (n + 1))
            self.hi.mul_(n / (n + 1)).add_(hi / (n + 1))
        else:
            self.lo.lerp_(lo, self.momentum)
            self.hi.lerp_(hi, self.momentum)
        self.seen += 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or self.observe or int(self.seen) == 0:
            self._update(x)
        scale, zero, qmin, qmax = self.qparams()
        return torch.fake_quantize_per_tensor_affine(x, scale, zero, qmin, qmax)

    def qparams(self) -> tuple[torch.Tensor, torch.Tensor, int, int]:
        """(scale, zero point, qmin, qmax) of the current range: what the forward pass and the export use."""
        if self.symmetric:
            qmax = 2 ** (self.bits - 1) - 1
            scale = (torch.maximum(-self.lo, self.hi) / qmax).clamp(min=1e-8).float()
            return scale, torch.zeros((), dtype=torch.int32, device=scale.device), -qmax - 1, qmax
        qmax = 2**self.bits - 1
        scale = ((self.hi - self.lo) / qmax).clamp(min=1e-8).float()
        zero = torch.round(-self.lo / scale).clamp(0, qmax).to(torch.int32)
        return scale, zero, 0, qmax


def fake_quant_weight(w: torch.Tensor, bits: int) -> torch.Tensor:
    """Per-output-channel symmetric fake quantization (8-bit uses -128..127 so it exports as int8 QDQ)."""
    qmax = 2 ** (bits - 1) - 1
    qmin = -qmax - 1 if bits == 8 else -qmax
    scale = (w.detach().abs().flatten(1).amax(1) / qmax).clamp(min=1e-8).float()
    zero = torch.zeros(w.shape[0], dtype=torch.int32, device=w.device)
    return torch.fake_quantize_per_channel_affine(w, scale, zero, 0, qmin, qmax)


class FakeQuantLayer(nn.Module):
    """A Conv2d or Linear whose weight and input are fake-quantized."""

    def __init__(self, inner: nn.Module, bits_w: int, bits_a: int) -> None:
        super().__init__()
        self.inner = inner
        self.bits_w = check_bits(bits_w, "bits_w")
        self.act = ActivationFakeQuant(bits_a)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(x)
        w = fake_quant_weight(self.inner.weight, self.bits_w)
        if isinstance(self.inner, nn.Conv2d):
            return self.inner._conv_forward(x, w, self.inner.bias)
        return F.linear(x, w, self.inner.bias)


def fold_batchnorm(model: nn.Module) -> tuple[nn.Module, bool]:
    """Fold BatchNorm into the preceding conv (eval semantics); returns (model, folded?)."""
    from torch.fx.experimental.optimization import fuse

    try:
        return fuse(model.eval(), inplace=False), True
    except Exception:  # noqa: BLE001 - untraceable graphs keep their BN (recorded as bn_folded: false)
        return model, False


def _check_supported(model: nn.Module) -> None:
    for name, m in model.named_modules():
        own = list(m.parameters(recurse=False))
        if own and not isinstance(m, QUANTIZABLE + PASSTHROUGH + (FakeQuantLayer,)):
            raise EdgeoptError(
                f"fake-quant: unsupported layer {name!r} ({type(m).__name__}); "
                "supported: Conv2d, Linear, BatchNorm (folded)"
            )
        if isinstance(m, nn.Conv2d) and m.padding_mode != "zeros":
            raise EdgeoptError(
                f"fake-quant: unsupported layer {name!r} (Conv2d padding_mode={m.padding_mode!r})"
            )


def layer_bits(
    names: list[str], bits_w: int, bits_a: int, overrides: dict[str, dict[str, int]] | None
) -> dict[str, tuple[int, int]]:
    """Bit widths per layer: the global pair, then `overrides` (fnmatch patterns, `@first`, `@last`)."""
    table = {n: (check_bits(bits_w, "bits_w"), check_bits(bits_a, "bits_a")) for n in names}
    for pattern, o in (overrides or {}).items():
        if not isinstance(o, dict) or not set(o) <= {"bits_w", "bits_a"}:
            raise EdgeoptError(
                f"quantize.qat.overrides.{pattern}: must be a mapping with bits_w and/or bits_a"
            )
        if pattern == "@first":
            hits = names[:1]
        elif pattern == "@last":
            hits = names[-1:]
        else:
            hits = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            raise EdgeoptError(
                f"quantize.qat.overrides.{pattern}: matches no Conv2d/Linear layer (layers: {', '.join(names[:8])}, ...)"
            )
        for n in hits:
            w, a = table[n]
            table[n] = (
                check_bits(o.get("bits_w", w), f"quantize.qat.overrides.{pattern}.bits_w"),
                check_bits(o.get("bits_a", a), f"quantize.qat.overrides.{pattern}.bits_a"),
            )
    return table


def apply_fake_quant(
    model: nn.Module,
    bits_w: int,
    bits_a: int,
    overrides: dict[str, dict[str, int]] | None = None,
    fold_bn: bool = True,
) -> tuple[nn.Module, dict[str, Any]]:
    """A copy of `model` with every Conv2d/Linear fake-quantized; returns (model, per-layer report)."""
    check_bits(bits_w, "bits_w")
    check_bits(bits_a, "bits_a")
    _check_supported(model)
    folded = False
    if fold_bn:
        model, folded = fold_batchnorm(model)
    else:
        import copy

        model = copy.deepcopy(model)
    names = [n for n, m in model.named_modules() if isinstance(m, QUANTIZABLE)]
    if not names:
        raise EdgeoptError("fake-quant: model has no Conv2d/Linear layer to quantize")
    table = layer_bits(names, bits_w, bits_a, overrides)
    for name in names:
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        w, a = table[name]
        setattr(parent, attr, FakeQuantLayer(getattr(parent, attr), w, a))
    return model, {
        "bn_folded": folded,
        "layers": {n: {"bits_w": w, "bits_a": a} for n, (w, a) in table.items()},
    }


def set_observe(model: nn.Module, on: bool) -> None:
    """Calibration mode: activation ranges update in eval mode (running mean over batches)."""
    for m in model.modules():
        if isinstance(m, ActivationFakeQuant):
            m.observe = on


@register_quantizer("fake-quant")
class FakeQuantQAT:
    """Simulated W/A quantization for QAT; deployable only at 8/8 (ORT QDQ, TFLite int8)."""

    name = "fake-quant"
    fmt = None
    runtime = "pytorch"

    def prepare(
        self,
        model: nn.Module,
        bits_w: int,
        bits_a: int,
        overrides: dict[str, dict[str, int]] | None = None,
        fold_bn: bool = True,
    ) -> tuple[nn.Module, dict[str, Any]]:
        return apply_fake_quant(model, bits_w, bits_a, overrides, fold_bn)

    @staticmethod
    def deployable(bits_w: int, bits_a: int) -> bool:
        """Integer runtimes here (ORT, LiteRT, TensorRT) run 8-bit kernels only."""
        return bits_w == 8 and bits_a == 8
