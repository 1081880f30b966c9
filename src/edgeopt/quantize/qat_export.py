"""Deploy the 8-bit QAT model: int8 files the runtimes execute, on the grid QAT trained on.

`train_qat` saves each QAT model's state (`qat-<pair>.pt`: tensors only). For the w8a8 pair this
module rebuilds that model (source `model.pt` + the same fake-quant wrapping + the saved state) and
writes it through the post-training pipelines, keeping what QAT learned instead of recalibrating it:

* `qat-ort-int8`: symmetric int8 QDQ ONNX (the `trt-qdq` pipeline: int8 activations and weights, zero
  point 0, so TensorRT builds it too). The input of every Conv/Gemm gets the scale its QAT fake-quant
  learned (ORT `TensorQuantOverrides`); weights are quantized per channel with max|w|/127, the same
  formula QAT trained with, so they land on the same int8 values.
* `qat-tflite-int8`: full-integer LiteRT through litert-torch's pt2e quantizer (`litert-pt2e`): after
  calibration, the observer in front of every conv/linear is replaced by a fixed one holding the QAT
  scale (zero point 0).

Tensors QAT does not fake-quantize (conv outputs, residual sums) get calibrated ranges: QAT learned
nothing for them. Where one tensor feeds several layers, it takes the widest learned scale.
Bits below 8 are never exported: no runtime here has those kernels (their results stay simulated).
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgeopt.atomic import atomic_path
from edgeopt.data import load_meta
from edgeopt.errors import EdgeoptError
from edgeopt.provenance import provenance
from edgeopt.quantize.data import load_calibration, load_for_export
from edgeopt.quantize.fake_quant import MAX_BITS, FakeQuantLayer, apply_fake_quant
from edgeopt.quantize.ptq import calib_limit, record_int8
from edgeopt.quantize.registry import get_quantizer
from edgeopt.safe_load import load_plain

#: the `format` entry of a QAT state file (`qat-<pair>.pt`)
QAT_STATE_FORMAT = "edgeopt-qat-state-1"
#: QAT deploy format -> the post-training quantizer whose pipeline writes it
QAT_EXPORTERS = {"qat-ort-int8": "trt-qdq", "qat-tflite-int8": "litert-pt2e"}
#: ONNX ops whose output ORT quantizes with their input's scale (values pass through unchanged)
SCALE_SHARING_OPS = ("Flatten", "Reshape", "Squeeze", "Unsqueeze", "Transpose")


def save_qat_state(
    path: str | Path, qmodel: nn.Module, bits_w: int, bits_a: int, qat_cfg: dict[str, Any], source: str
) -> None:
    """Write the trained QAT model as tensors + plain data (no code): rebuilt by `load_qat_model`."""
    blob = {
        "format": QAT_STATE_FORMAT,
        "bits_w": bits_w,
        "bits_a": bits_a,
        "overrides": copy.deepcopy(qat_cfg.get("overrides") or {}),
        "fold_bn": bool(qat_cfg.get("fold_bn", True)),
        "source_model": source,
        "state_dict": {k: v.detach().cpu().clone().contiguous() for k, v in qmodel.state_dict().items()},
    }
    with atomic_path(path) as tmp:
        torch.save(blob, tmp)


def load_qat_model(model_path: str | Path, state_path: str | Path) -> tuple[nn.Module, dict[str, Any], dict[str, Any]]:
    """The trained QAT model (eval mode, CPU): `model_path` wrapped as QAT wrapped it, then its saved state."""
    blob = load_plain(state_path, "QAT state file")
    if not isinstance(blob, dict) or blob.get("format") != QAT_STATE_FORMAT:
        raise EdgeoptError(f"{state_path}: not an edgeopt QAT state file ({QAT_STATE_FORMAT}); re-run train_qat")
    fp32, meta = load_for_export(model_path)
    qmodel, _ = apply_fake_quant(fp32, blob["bits_w"], blob["bits_a"], blob["overrides"], blob["fold_bn"])
    try:
        qmodel.load_state_dict(blob["state_dict"], strict=True)
    except RuntimeError as exc:
        lines = str(exc).strip().splitlines()
        raise EdgeoptError(
            f"{state_path}: does not fit {model_path} ({lines[-1].strip() if lines else exc}); re-run train_qat"
        ) from None
    return qmodel.eval(), meta, blob


def learned_scales(qmodel: nn.Module, where: str) -> list[tuple[str, torch.Tensor, float]]:
    """(layer, weight, input scale) of every fake-quantized layer; refuses a layer below 8 bits, and BatchNorm
    left unfolded (exporters fold it into the conv: the QAT-trained weights would not be what runs)."""
    out = []
    for name, m in qmodel.named_modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            raise EdgeoptError(
                f"{where}: BatchNorm {name!r} is not folded (quantize.qat.fold_bn: false, or a graph torch.fx "
                "cannot trace): only BN-folded QAT models export"
            )
        if not isinstance(m, FakeQuantLayer):
            continue
        if m.bits_w != MAX_BITS or not m.act.symmetric:
            raise EdgeoptError(
                f"{where}: layer {name!r} is w{m.bits_w}a{m.act.bits}: only 8-bit QAT models deploy "
                "(lower bit widths stay simulated)"
            )
        out.append((name, m.inner.weight.detach(), float(m.act.qparams()[0])))
    return out


def strip_fake_quant(qmodel: nn.Module) -> nn.Module:
    """A copy of the QAT model with every wrapper replaced by its trained fp32 layer (BN stays folded)."""
    plain = copy.deepcopy(qmodel)
    for name, m in list(plain.named_modules()):
        if isinstance(m, FakeQuantLayer):
            parent, _, attr = name.rpartition(".")
            setattr(plain.get_submodule(parent) if parent else plain, attr, m.inner)
    return plain.eval()


class _Matcher:
    """Finds which QAT layer a graph's weight tensor belongs to (by value: names differ by exporter)."""

    def __init__(self, learned: list[tuple[str, torch.Tensor, float]], where: str) -> None:
        self.learned = [(n, w.cpu().numpy(), s) for n, w, s in learned]
        self.where = where
        self.found: dict[str, float] = {}  # graph tensor/observer -> widest learned scale
        self.layers: set[str] = set()

    def match(self, weight: np.ndarray | None, key: str) -> None:
        if weight is None:
            return
        for name, w, scale in self.learned:
            if name not in self.layers and _same(w, weight):
                self.layers.add(name)
                self.found[key] = max(scale, self.found.get(key, 0.0))
                return

    def check(self) -> dict[str, float]:
        missing = [n for n, _, _ in self.learned if n not in self.layers]
        if missing:
            raise EdgeoptError(
                f"{self.where}: QAT layer {missing[0]!r} not found in the exported graph "
                f"({len(missing)} of {len(self.learned)} unmatched): its learned scale would be lost"
            )
        return self.found


def _same(w: np.ndarray, candidate: np.ndarray) -> bool:
    if candidate.shape == w.shape:
        return bool(np.array_equal(candidate, w))
    return candidate.ndim == 2 and candidate.T.shape == w.shape and bool(np.array_equal(candidate.T, w))


def onnx_overrides(learned: list[tuple[str, torch.Tensor, float]], where: str):  # type: ignore[no-untyped-def]
    """ORT `TensorQuantOverrides` giving each Conv/Gemm/MatMul input its QAT scale (zero point 0)."""

    def overrides(model: Any) -> dict[str, list[dict[str, Any]]]:
        from onnx import numpy_helper

        inits = {i.name: i for i in model.graph.initializer}
        producer = {o: n for n in model.graph.node for o in n.output}
        matcher = _Matcher(learned, where)
        for node in model.graph.node:
            if node.op_type in ("Conv", "Gemm", "MatMul") and len(node.input) > 1 and node.input[1] in inits:
                matcher.match(numpy_helper.to_array(inits[node.input[1]]), node.input[0])
        fixed: dict[str, float] = {}
        for tensor, scale in matcher.check().items():
            fixed[tensor] = scale
            # ORT gives a reshaping op's output its input's scale: fix the tensors up that chain too
            while tensor in producer and producer[tensor].op_type in SCALE_SHARING_OPS:
                tensor = producer[tensor].input[0]
                fixed[tensor] = max(scale, fixed.get(tensor, 0.0))
        return {t: [{"scale": np.array(s, np.float32), "zero_point": np.array(0, np.int8)}] for t, s in fixed.items()}

    return overrides


def pt2e_fixer(learned: list[tuple[str, torch.Tensor, float]], where: str):  # type: ignore[no-untyped-def]
    """A pt2e `after_calibration` hook: the observer in front of each conv/linear holds its QAT scale."""

    def fix(prepared: nn.Module) -> None:
        from torchao.quantization.pt2e.observer import FixedQParamsObserver

        ops = (torch.ops.aten.conv2d.default, torch.ops.aten.linear.default)
        matcher = _Matcher(learned, where)
        for node in prepared.graph.nodes:  # type: ignore[union-attr]
            if node.op == "call_function" and node.target in ops:
                obs = node.args[0]
                if getattr(obs, "op", None) == "call_module":
                    matcher.match(_tensor_of(prepared, node.args[1]), obs.target)
        for target, scale in matcher.check().items():
            setattr(prepared, target, FixedQParamsObserver(
                scale, 0, dtype=torch.int8, qscheme=torch.per_tensor_affine, quant_min=-128, quant_max=127
            ))  # fmt: skip

    return fix


def _tensor_of(gm: nn.Module, node: Any) -> np.ndarray | None:
    """The constant tensor behind a graph argument (through its weight observer), if any."""
    while getattr(node, "op", None) == "call_module":
        node = node.args[0]
    if getattr(node, "op", None) != "get_attr":
        return None
    obj: Any = gm
    for part in str(node.target).split("."):
        obj = getattr(obj, part)
    return obj.detach().cpu().numpy() if isinstance(obj, torch.Tensor) else None


def export_qat(
    fmt: str,
    model_path: str | Path,
    state_path: str | Path,
    data_dir: str | Path,
    out: str | Path,
    cfg: dict[str, Any],
    model_name: str | None = None,
    variant: str | None = None,
    threads: int = 0,
) -> dict[str, Any]:
    """Write the QAT model of `state_path` as deploy format `fmt` at `out`, measured in its runtime
    against the PyTorch QAT model and the fp32 source; returns the sidecar (`<out>.json`)."""
    if fmt not in QAT_EXPORTERS:
        raise EdgeoptError(f"--format {fmt!r}: not a QAT deploy format (known: {', '.join(QAT_EXPORTERS)})")
    out = Path(out)
    qmodel, meta, state = load_qat_model(model_path, state_path)
    learned = learned_scales(qmodel, str(state_path))
    quantizer = get_quantizer(QAT_EXPORTERS[fmt])
    hook = (onnx_overrides if quantizer.runtime == "onnxruntime" else pt2e_fixer)(learned, str(out))
    calib = load_calibration(data_dir, load_meta(data_dir), calib_limit(cfg))
    t0 = time.perf_counter()
    try:
        info = quantizer.quantize(strip_fake_quant(qmodel), meta, calib, out, cfg, hook)
    except EdgeoptError:
        out.unlink(missing_ok=True)
        raise
    seconds = time.perf_counter() - t0
    fp32, _ = load_for_export(model_path)
    extra = {
        "method": "qat",
        "quantizer": quantizer.name,
        "settings": {**info, "qat_scales": len(learned), "other_tensors": "calibrated"},
        "calibration_images": int(len(calib)),
        "parity_reference": "pytorch QAT model (fake-quant)",
        "quantize_seconds": seconds,
        "source_model": str(model_path),
        "qat_state": str(state_path),
    }
    side = record_int8(fmt, quantizer.runtime, out, fp32, meta, data_dir, cfg, extra, model_name, variant,
                       threads, provenance({"quantize": cfg}), reference=qmodel)  # fmt: skip
    return side
