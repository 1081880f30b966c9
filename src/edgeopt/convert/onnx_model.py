"""`edgeopt onnx-model`: the deploy stages of a model trained and exported elsewhere (`{name, onnx: file}`).

There is no PyTorch model, so the reference every artifact is checked against is the user's ONNX file
itself, run in ONNX Runtime with its graph optimizations off; the steps are:

- `import`: copy the file to `results/deploy/<name>/baseline/model.onnx` and measure its accuracy on
  the test split (when its input takes the data's images: NCHW float32 normalised with the dataset's
  mean and std, like every edgeopt model);
- `ort-fp32`: ONNX Runtime's portable graph optimizations, checked against model.onnx;
- `ort-int8`: ONNX Runtime static QDQ int8 calibrated on the data set's calibration split.

TensorRT engines are built from model.onnx on the boards like for any other model.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path
from typing import Any

from edgeopt.atomic import atomic_path
from edgeopt.cli import json_arg
from edgeopt.errors import EdgeoptError

STEPS = ("import", "ort-fp32", "ort-int8")


def _reference(onnx: Path, data_dir: Path, settings: dict[str, Any]) -> Any:
    """The ONNX file's own logits on the evaluated test images (ORT, optimizations off)."""
    from edgeopt.convert.verify import load_artifact_runner, load_test_images
    from edgeopt.harness.runtimes import evaluate

    x, y, meta = load_test_images(data_dir, (settings.get("eval") or {}).get("max_images"))
    runner = load_artifact_runner("onnxruntime", onnx, opt_level="disable")
    batch = int((settings.get("eval") or {}).get("batch_size") or 256)
    return evaluate(runner, x, y, meta["mean"], meta["std"], batch_size=batch)["logits"]


def run_step(
    step: str, source: Path, data_dir: Path, settings: dict[str, Any], out: Path, model: str,
    quantize: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One step for the deploy-only model `model`; writes `out` and `<out>.json`, or nothing on error."""
    from edgeopt.convert.verify import verify_artifact
    from edgeopt.data import load_meta
    from edgeopt.model_capabilities import input_matches, onnx_input

    if step not in STEPS:
        raise EdgeoptError(f"onnx-model: unknown step {step!r} (known: {', '.join(STEPS)})")
    meta = load_meta(data_dir)
    info = onnx_input(source, f"model {model}")
    if not input_matches(info, int(meta["image_size"]), int(meta["channels"])):
        raise EdgeoptError(f"model {model}: {source}: input {info['name']!r} {info['shape']} does not take the "
                           f"data's {meta['channels']}x{meta['image_size']}x{meta['image_size']} images")
    t0 = time.perf_counter()
    extra: dict[str, Any] = {"source": str(source), "input": info}
    precision, options = "fp32", {"opt_level": "all"}
    try:
        if step == "import":
            with atomic_path(out) as tmp:
                shutil.copyfile(source, tmp)
            options = {"opt_level": "disable"}
        elif step == "ort-fp32":
            from edgeopt.convert.ort import optimize_ort

            level = str((settings.get("ort") or {}).get("optimization_level", "extended"))
            optimize_ort(source, out, level)
            extra["optimization_level"] = level
        else:
            from edgeopt.quantize.data import load_calibration
            from edgeopt.quantize.ort_qdq import quantize_onnx_file
            from edgeopt.quantize.ptq import calib_limit

            cfg = quantize or {}
            calib = load_calibration(data_dir, meta, calib_limit(cfg))
            extra["settings"] = quantize_onnx_file(source, out, calib, cfg, input_name=info["name"])
            extra.update({"calibration_images": int(len(calib)), "bits_w": 8, "bits_a": 8, "quantizer": "ort-qdq"})
            precision = "int8"
            settings = {**settings, "parity": {}}  # measured, not gated (as for every post-training int8 model)
        extra["conversion_seconds"] = round(time.perf_counter() - t0, 3)
        return verify_artifact(
            out, model=model, variant="baseline", fmt="onnx" if step == "import" else step, runtime="onnxruntime",
            precision=precision, torch_model=None, data_dir=data_dir, settings=settings,  # type: ignore[arg-type]
            runner_options=options, extra={**extra, "fp32_runtime": "onnxruntime"},
            reference=_reference(source, data_dir, settings),
        )
    except EdgeoptError:
        out.unlink(missing_ok=True)
        raise


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--step", required=True, choices=STEPS)
    p.add_argument("--onnx", required=True, help="the user's ONNX file (import) or the imported model.onnx")
    p.add_argument("--model", required=True, help="the entry's name")
    p.add_argument("--data", required=True, help="dataset cache folder")
    p.add_argument("--params", type=json_arg, required=True, help="the convert sections used, as JSON")
    p.add_argument("--quantize", type=json_arg, default={}, help="ort-int8: the quantize section as JSON")
    p.add_argument("--out", required=True)


def run(args: argparse.Namespace) -> int:
    rec = run_step(args.step, Path(args.onnx), Path(args.data), args.params, Path(args.out), args.model,
                   args.quantize)
    print(f"{args.model} {args.step}: accuracy {rec['accuracy']:.4f} in onnxruntime")
    return 0
