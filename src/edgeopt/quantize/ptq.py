"""The post-training rule: `model.pt` + calibration subset -> int8 artifact + sidecar JSON.

Accuracy is measured in the runtime that will run the artifact (ONNX Runtime, LiteRT interpreter)
on the test split, next to the fp32 PyTorch accuracy on the same images, so the delta is honest.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from edgeopt.convert.parity import compare_logits
from edgeopt.data import load_meta
from edgeopt.harness.runtimes import evaluate, load_runner, preprocess
from edgeopt.provenance import provenance
from edgeopt.quantize.data import load_calibration, load_for_export, load_test, torch_logits
from edgeopt.quantize.registry import quantizer_for_format
from edgeopt.records import DeployMetrics, write_record


def calib_limit(cfg: dict[str, Any]) -> int | None:
    """Calibration images used: `calib_batches` x `calib_batch_size` (null batches: the whole subset)."""
    batches = cfg.get("calib_batches")
    return None if batches is None else int(batches) * int(cfg.get("calib_batch_size", 64))


def quantize_ptq(
    fmt: str,
    model_path: str | Path,
    data_dir: str | Path,
    out: str | Path,
    cfg: dict[str, Any],
    model_name: str | None = None,
    variant: str | None = None,
    threads: int = 0,
) -> dict[str, Any]:
    """Quantize `model_path` to deploy format `fmt` at `out`; write `<out>.json`; return the sidecar."""
    out = Path(out)
    quantizer = quantizer_for_format(fmt)
    model, meta = load_for_export(model_path)
    data_meta = load_meta(data_dir)
    calib = load_calibration(data_dir, data_meta, calib_limit(cfg))
    t0 = time.perf_counter()
    info = quantizer.quantize(model, meta, calib, out, cfg)
    seconds = time.perf_counter() - t0
    x, y = load_test(data_dir, cfg.get("eval_limit"))
    ref = torch_logits(model, preprocess(x, meta["mean"], meta["std"]))
    fp32_acc = float((ref.argmax(1) == y).mean()) if len(y) else 0.0
    runner = load_runner(quantizer.runtime, str(out), threads=threads)
    # TFLite models are converted at batch 1 (the deployed shape): evaluate them one image at a time
    ev = evaluate(
        runner, x, y, meta["mean"], meta["std"], batch_size=1 if quantizer.runtime == "tflite" else 256
    )
    sidecar = DeployMetrics(
        model=model_name or meta.get("arch"),
        variant=variant or meta.get("variant", "baseline"),
        format=fmt,
        runtime=quantizer.runtime,
        precision="int8",  # what every post-training quantizer makes (bits_w, bits_a below)
        path=str(out),
        size_bytes=out.stat().st_size,
        accuracy=ev["accuracy"],
        images=ev["images"],
        parity=compare_logits(ref, ev["logits"]),
        deployable=True,
        simulated=False,
        bits_w=8,
        bits_a=8,
        extra={
            "fp32_accuracy": fp32_acc,
            "fp32_runtime": "pytorch",
            "accuracy_delta": ev["accuracy"] - fp32_acc,
            "quantizer": quantizer.name,
            "calibration_images": int(len(calib)),
            "settings": info,
            "quantize_seconds": seconds,
            "source_model": str(model_path),
        },
        provenance=provenance({"quantize": cfg}),
    )
    return write_record(f"{out}.json", sidecar)
