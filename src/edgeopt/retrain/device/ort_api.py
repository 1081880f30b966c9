"""Import onnxruntime-training's `api` and `artifacts` without torch.

`onnxruntime/training/__init__.py` (1.19.2) imports its torch-based `optim` helpers, so a
device with only onnxruntime-training + numpy cannot `import onnxruntime.training.api`. The
`api` (CheckpointState, Module, Optimizer) and `artifacts` modules themselves need no torch:
when the package import fails for lack of torch, register a bare package object with the
right `__path__` and import just those submodules.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any


def _training_package() -> None:
    try:
        importlib.import_module("onnxruntime.training")
        return
    except ModuleNotFoundError as exc:
        if exc.name != "torch":
            raise
    for name in [m for m in sys.modules if m.startswith("onnxruntime.training")]:
        del sys.modules[name]
    spec = importlib.util.find_spec("onnxruntime.training")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("onnxruntime.training (install onnxruntime-training)")
    pkg = types.ModuleType("onnxruntime.training")
    pkg.__path__ = list(spec.submodule_search_locations)
    pkg.__package__ = "onnxruntime.training"
    sys.modules["onnxruntime.training"] = pkg


def api() -> Any:
    """`onnxruntime.training.api` (CheckpointState, Module, Optimizer)."""
    _training_package()
    return importlib.import_module("onnxruntime.training.api")


def artifacts() -> Any:
    """`onnxruntime.training.artifacts` (generate_artifacts; needs onnx)."""
    _training_package()
    return importlib.import_module("onnxruntime.training.artifacts")
