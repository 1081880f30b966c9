"""ONNX Runtime fp32: save the graph ORT optimizes at load time, so devices start from it."""

from __future__ import annotations

from pathlib import Path

from edgeopt.atomic import atomic_path
from edgeopt.errors import EdgeoptError
from edgeopt.harness.op_errors import unsupported_op_message

#: `convert.ort.optimization_level` -> onnxruntime.GraphOptimizationLevel member
LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}


def optimize_ort(src: str | Path, dst: str | Path, level: str = "extended") -> Path:
    """Load `src` in an ORT CPU session at `level` and save the optimized graph to `dst` (atomically).

    "all" adds layout rewrites (NCHWc) chosen for this machine's CPU; "extended" keeps the model
    portable to other CPUs (ARM boards) while fusing Conv+BN/activation and friends.
    """
    import onnxruntime as ort

    if level not in LEVELS:
        raise EdgeoptError(f"convert.ort.optimization_level: {level!r} unknown (known: {', '.join(LEVELS)})")
    so = ort.SessionOptions()
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, LEVELS[level])
    with atomic_path(dst) as tmp:
        so.optimized_model_filepath = str(tmp)
        try:
            ort.InferenceSession(str(src), so, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - ORT raises Fail / NotImplemented / InvalidGraph ...
            text = str(exc)
            named = unsupported_op_message("onnxruntime", text, where=str(src))
            raise EdgeoptError(
                named or f"{src}: onnxruntime could not load it ({text.splitlines()[0]})"
            ) from None
        if not tmp.exists() or tmp.stat().st_size == 0:
            raise EdgeoptError(f"{dst}: onnxruntime wrote no optimized model")
    return Path(dst)
