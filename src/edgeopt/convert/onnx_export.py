"""Export a PyTorch classifier to ONNX with a dynamic batch dimension, simplify it, count its ops."""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgeopt.atomic import atomic_path
from edgeopt.errors import EdgeoptError
from edgeopt.harness.op_errors import unsupported_op_message


def export_onnx(
    model: nn.Module,
    path: str | Path,
    image_size: int,
    in_channels: int = 3,
    opset: int = 18,
    dynamic_batch: bool = True,
    batch: int = 2,
) -> Path:
    """Write `model` (eval mode, CPU, NCHW float input named `input`, output `logits`) to `path`.

    Uses the TorchScript-based exporter: it is faster than dynamo here and handles pruned and
    zero-padded graphs alike (the dynamo exporter is the fallback). With `dynamic_batch=False` the
    graph is fixed at `batch` images.
    """
    model = model.to("cpu").eval()
    example = torch.randn(batch, in_channels, image_size, image_size)
    axes = {"input": {0: "batch"}, "logits": {0: "batch"}} if dynamic_batch else None
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                model,
                (example,),
                str(tmp),
                input_names=["input"],
                output_names=["logits"],
                dynamic_axes=axes,
                opset_version=opset,
                dynamo=False,
            )
        except Exception as exc:  # noqa: BLE001 - exporter errors come in many types
            named = unsupported_op_message("onnx-exporter", str(exc), where=f"{path}: ONNX export (opset {opset})")
            raise EdgeoptError(
                named or f"{path}: ONNX export failed ({type(exc).__name__}: {str(exc).splitlines()[0]})"
            ) from None
    return Path(path)


def simplify_onnx(path: str | Path) -> Path:
    """Constant-fold and drop dead/identity nodes in place with onnxscript's optimizer (onnxsim is
    not a dependency); the result is checked with onnx's checker before it replaces the file."""
    import onnx
    import onnxscript.optimizer

    model = onnx.load(str(path))
    try:
        optimized = onnxscript.optimizer.optimize(model)
        onnx.checker.check_model(optimized)
    except Exception as exc:  # noqa: BLE001 - the optimizer raises many types; keep the plain export
        warnings.warn(f"{path}: graph simplification skipped ({type(exc).__name__}: {exc})", stacklevel=2)
        return Path(path)
    with atomic_path(path) as tmp:
        onnx.save(optimized, str(tmp))
    return Path(path)


def onnx_graph_stats(path: str | Path) -> dict[str, Any]:
    """Op counts, node/parameter counts, opset and I/O shapes of an ONNX file (for its sidecar JSON)."""
    import onnx

    model = onnx.load(str(path))
    graph = model.graph
    init_names = {i.name for i in graph.initializer}

    def shape(v: Any) -> list[int | str]:
        return [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]

    return {
        "op_counts": dict(sorted(Counter(n.op_type for n in graph.node).items())),
        "nodes": len(graph.node),
        "initializers": len(graph.initializer),
        "initializer_elements": int(sum(int(np.prod(i.dims)) for i in graph.initializer)),
        "opset": {o.domain or "ai.onnx": o.version for o in model.opset_import},
        "inputs": {v.name: shape(v) for v in graph.input if v.name not in init_names},
        "outputs": {v.name: shape(v) for v in graph.output},
        "size_bytes": Path(path).stat().st_size,
    }
