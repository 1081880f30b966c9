"""Export a PyTorch classifier to ONNX with a dynamic batch dimension."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from edgeopt.atomic import atomic_path
from edgeopt.errors import EdgeoptError


def export_onnx(
    model: nn.Module,
    path: str | Path,
    image_size: int,
    in_channels: int = 3,
    opset: int = 18,
    dynamic_batch: bool = True,
) -> Path:
    """Write `model` (eval mode, CPU, NCHW float input named `input`, output `logits`) to `path`.

    Uses the TorchScript-based exporter: it is faster than dynamo here and handles pruned and
    zero-padded graphs alike (the dynamo exporter is the fallback).
    """
    model = model.to("cpu").eval()
    example = torch.randn(2, in_channels, image_size, image_size)
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
            raise EdgeoptError(
                f"{path}: ONNX export failed ({type(exc).__name__}: {str(exc).splitlines()[0]})"
            ) from None
    return Path(path)
