"""The check every deployable artifact passes: accuracy in its own runtime, parity with PyTorch, sidecar.

`verify_artifact` is shared by conversion (ONNX, ORT fp32, TFLite fp32/fp16) and quantization (int8
QDQ ONNX, int8 TFLite): it runs the artifact in the runtime that will deploy it on the test split,
compares its logits with the PyTorch model's on the same images, fails with one line saying by how
much a threshold was missed, and writes `<artifact>.json`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgeopt.convert.parity import check_parity, compare_logits
from edgeopt.data import load_meta, load_split
from edgeopt.errors import EdgeoptError
from edgeopt.harness.op_errors import unsupported_op_message
from edgeopt.harness.runtimes import RuntimeUnavailable, evaluate, load_runner, preprocess
from edgeopt.provenance import provenance
from edgeopt.records import DeployMetrics, write_record

#: precisions with parity thresholds in `convert.parity`
PRECISIONS = ("fp32", "fp16", "int8")


def sidecar_path(artifact: str | Path) -> Path:
    """`<artifact>.json`: the metrics file beside every deployable artifact."""
    return Path(str(artifact) + ".json")


def load_test_images(
    data_dir: str | Path, max_images: int | None = None
) -> tuple[np.ndarray, np.ndarray, dict]:
    """The test split (uint8 NHWC, labels) and dataset meta, capped at `max_images` (the first N:
    prepare stores every split in a seeded random order, so they sample all classes)."""
    split = load_split(data_dir, "test")
    meta = load_meta(data_dir)
    x, y = split.x, split.y
    if max_images is not None:
        x, y = x[:max_images], y[:max_images]
    return x, y, meta


@torch.no_grad()
def reference_logits(
    model: nn.Module, x_uint8: np.ndarray, mean: list[float], std: list[float], batch_size: int = 256
) -> np.ndarray:
    """PyTorch fp32 logits on CPU, preprocessed exactly as the runtimes are fed (harness.preprocess)."""
    model = model.to("cpu").eval()
    out = [
        model(torch.from_numpy(preprocess(x_uint8[i : i + batch_size], mean, std))).float().numpy()
        for i in range(0, len(x_uint8), batch_size)
    ]
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def load_artifact_runner(runtime: str, artifact: str | Path, **options: Any):  # type: ignore[no-untyped-def]
    """Load `artifact` in `runtime`; a missing operator becomes one line naming the op and runtime."""
    try:
        return load_runner(runtime, str(artifact), **options)
    except RuntimeUnavailable as exc:
        raise EdgeoptError(f"{artifact}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - runtimes raise their own types (ORT Fail/NotImplemented, ...)
        named = unsupported_op_message(runtime, str(exc), where=str(artifact))
        raise EdgeoptError(
            named or f"{artifact}: {runtime} could not load it ({type(exc).__name__}: {_first_line(exc)})"
        ) from None


def verify_artifact(
    artifact: str | Path,
    *,
    model: str,
    variant: str,
    fmt: str,
    runtime: str,
    precision: str,
    torch_model: nn.Module,
    data_dir: str | Path,
    settings: dict[str, Any],
    runner_options: dict[str, Any] | None = None,
    deployable: bool = True,
    simulated: bool = False,
    extra: dict[str, Any] | None = None,
    reference: np.ndarray | None = None,
    write: bool = True,
    batch_size: int | None = None,
) -> dict[str, Any]:
    """Measure `artifact` in `runtime` on the test split, check parity, write and return its sidecar.

    `settings` is the `convert` config section (its `parity.<precision>` thresholds and `eval`
    options are used). Pass `reference` (PyTorch logits on the same images) to skip recomputing them,
    `batch_size` to feed a fixed-batch artifact exactly the batch it was built for.
    Raises `EdgeoptError` with one line when the artifact misses a parity threshold or the runtime
    lacks an operator.
    """
    if precision not in PRECISIONS:
        raise EdgeoptError(f"precision {precision!r} unknown (known: {', '.join(PRECISIONS)})")
    ev = settings.get("eval") or {}
    x, y, meta = load_test_images(data_dir, ev.get("max_images"))
    batch = int(batch_size or ev.get("batch_size") or 256)
    if reference is None:
        reference = reference_logits(torch_model, x, meta["mean"], meta["std"], batch)
    runner = load_artifact_runner(runtime, artifact, **(runner_options or {}))
    try:
        result = evaluate(runner, x, y, meta["mean"], meta["std"], batch_size=batch)
    except Exception as exc:  # noqa: BLE001 - an op can also fail only at run time
        named = unsupported_op_message(runtime, str(exc), where=str(artifact))
        raise EdgeoptError(
            named or f"{artifact}: {runtime} failed running it ({type(exc).__name__}: {_first_line(exc)})"
        ) from None
    parity = compare_logits(reference, result["logits"])
    thresholds = (settings.get("parity") or {}).get(precision) or {}
    parity["thresholds"] = {
        "max_abs_diff": thresholds.get("max_abs_diff"),
        "min_top1_agreement": thresholds.get("min_top1_agreement"),
    }
    parity["reference_accuracy"] = float((reference.argmax(1) == y).mean()) if len(y) else 0.0
    check_parity(
        f"{artifact} ({runtime} {precision})",
        parity,
        thresholds.get("max_abs_diff"),
        thresholds.get("min_top1_agreement"),
    )
    path = Path(artifact)
    extra = dict(extra or {})
    bits = {k: extra.pop(k) for k in ("bits_w", "bits_a") if k in extra}  # declared fields, not details
    record = DeployMetrics(
        model=model,
        variant=variant,
        format=fmt,
        runtime=runtime,
        precision=precision,
        path=str(path),
        size_bytes=path.stat().st_size,
        accuracy=result["accuracy"],
        images=result["images"],
        parity=parity,
        deployable=deployable,
        simulated=simulated,
        **bits,
        extra={
            "runtime_package": getattr(runner, "package", runtime),
            "runtime_version": getattr(runner, "version", None)
            or _package_version(getattr(runner, "package", runtime)),
            **extra,
        },
        provenance=provenance(settings),
    )
    if write:
        return write_record(sidecar_path(path), record)
    return record.to_json()


def _package_version(package: str) -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
