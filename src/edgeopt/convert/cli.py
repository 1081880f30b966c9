"""`edgeopt convert --format F`: the export_onnx, optimize_ort and convert_tflite rules' command."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from edgeopt import layout
from edgeopt.cli import json_arg
from edgeopt.errors import EdgeoptError


def convert_artifact(
    fmt: str,
    model_file: str | Path,
    data_dir: str | Path,
    settings: dict[str, Any],
    out: str | Path,
    onnx: str | Path | None = None,
    model: str | None = None,
    variant: str | None = None,
) -> dict[str, Any]:
    """Convert `model_file` to `fmt` at `out`, verify it against PyTorch and write `<out>.json`.

    A failed check (parity, missing op) removes the artifact, so no unverified file is left behind.
    """
    from edgeopt.convert.formats import get_converter
    from edgeopt.convert.verify import verify_artifact
    from edgeopt.models import load_model

    converter = get_converter(fmt)
    model_file, out = Path(model_file), Path(out)
    torch_model, meta = load_model(model_file)
    parsed = layout.parse(model_file, model_file.parents[3]) if len(model_file.parents) > 3 else None
    named = parsed[1] if parsed and parsed[0] == "model_file" else {}  # a model.pt in the results layout
    model = model or named.get("model") or meta.get("arch", "model")
    variant = variant or named.get("variant") or meta.get("variant", "baseline")
    t0 = time.perf_counter()
    try:
        built = converter(torch_model, meta, settings, out, Path(onnx) if onnx else None)
        seconds = time.perf_counter() - t0
        return verify_artifact(
            out,
            model=model,
            variant=variant,
            fmt=fmt,
            runtime=built.runtime,
            precision=built.precision,
            torch_model=torch_model,
            data_dir=data_dir,
            settings=settings,
            runner_options=built.runner_options,
            extra={**built.extra, "conversion_seconds": round(seconds, 3)},
            batch_size=built.eval_batch,
        )
    except EdgeoptError:
        out.unlink(missing_ok=True)
        raise


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", required=True, help="onnx | ort-fp32 | tflite-fp32 | tflite-fp16")
    p.add_argument("--model-file", required=True, help="results/models/<model>/<variant>/model.pt")
    p.add_argument("--data", required=True, help="dataset cache folder (test split + meta.json)")
    p.add_argument(
        "--params", type=json_arg, required=True, help="the `convert` config section (or part) as JSON"
    )
    p.add_argument("--out", required=True, help="artifact path; its sidecar is <out>.json")
    p.add_argument("--onnx", help="model.onnx to start from (ort-fp32)")
    p.add_argument("--model", help="model name (default: from --model-file's path)")
    p.add_argument("--variant", help="variant name (default: from --model-file's path)")
    p.add_argument(
        "--threads", type=int, default=0, help="torch CPU threads for the PyTorch reference (0: default)"
    )


def run(args: argparse.Namespace) -> int:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    rec = convert_artifact(
        args.format, args.model_file, args.data, args.params, args.out, args.onnx, args.model, args.variant
    )
    p = rec["parity"]
    print(
        f"{rec['path']}: {rec['runtime']} {rec['precision']} accuracy {rec['accuracy']:.4f} "
        f"(PyTorch {p['reference_accuracy']:.4f}), max |logit diff| {p['max_abs_diff']:.3g}, "
        f"top-1 agreement {p['top1_agreement']:.4f}, {rec['size_bytes']} bytes"
    )
    return 0
