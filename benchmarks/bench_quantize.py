"""int8 vs fp32 side by side in one run: accuracy delta and CPU latency ratio in ONNX Runtime and LiteRT.

For each model (default ResNet-18 and VGG16 at 32x32): train it quickly on a CIFAR-10 subset with the
workflow's trainer (a few-epoch model, so accuracies are low; the delta and top-1 agreement are what
matter), then build ORT fp32 / ORT int8 QDQ (edgeopt's ort-qdq quantizer) and TFLite fp32 / TFLite int8
(litert-pt2e quantizer), measure accuracy in each runtime on the test subset, and time batch-1 inference
with the runs of fp32 and int8 interleaved so machine noise hits both alike. Prints a table and writes
JSON. Nothing is asserted: the numbers are measurements.

    PYTHONPATH=src python benchmarks/bench_quantize.py --models resnet18 vgg16 --threads 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    add_reuse_args,
    bench_train_cfg,
    line_buffered_stdout,
    reused_baseline,
    reused_data,
    trained_model,
)

from edgeopt.convert.onnx_export import export_onnx  # noqa: E402
from edgeopt.harness.runtimes import evaluate, load_runner, preprocess  # noqa: E402
from edgeopt.quantize.data import load_calibration, load_for_export, load_test, torch_logits  # noqa: E402
from edgeopt.quantize.litert_pt2e import _quiet  # noqa: E402
from edgeopt.quantize.registry import get_quantizer  # noqa: E402


def tflite_fp32(model: torch.nn.Module, meta: dict, out: Path) -> None:
    import litert_torch

    size = int(meta["image_size"])
    with _quiet():
        litert_torch.convert(model, (torch.zeros(1, int(meta["in_channels"]), size, size),)).export(str(out))


def interleaved_latency(runners: dict, x: np.ndarray, runs: int, warmup: int = 5) -> dict[str, float]:
    """Median batch-1 latency (ms) of each runner, runs interleaved round-robin."""
    one = x[:1]
    for r in runners.values():
        for _ in range(warmup):
            r.predict(one)
    times: dict[str, list[float]] = {k: [] for k in runners}
    for i in range(runs):
        for k, r in runners.items():
            xi = x[i % len(x) : i % len(x) + 1]
            t0 = time.perf_counter()
            r.predict(xi)
            times[k].append((time.perf_counter() - t0) * 1e3)
    return {k: statistics.median(v) for k, v in times.items()}


def bench_model(name: str, model_pt: Path, data: Path, work: Path, args: argparse.Namespace) -> list[dict]:
    model, meta = load_for_export(model_pt)
    calib = load_calibration(data, meta)
    x_u8, y = load_test(data, args.test_images)
    x = preprocess(x_u8, meta["mean"], meta["std"])
    ref = torch_logits(model, x)
    fp32_torch = float((ref.argmax(1) == y).mean())
    cfg = {"calib_batch_size": 64, "per_channel": True, "activation_type": "uint8", "weight_type": "int8"}
    paths = {
        "ort-fp32": work / f"{name}-fp32.onnx",
        "ort-int8": work / f"{name}-int8.onnx",
        "tflite-fp32": work / f"{name}-fp32.tflite",
        "tflite-int8": work / f"{name}-int8.tflite",
    }
    t = time.perf_counter()
    export_onnx(model, paths["ort-fp32"], int(meta["image_size"]), int(meta["in_channels"]))
    get_quantizer("ort-qdq").quantize(model, meta, calib, paths["ort-int8"], cfg)
    tflite_fp32(model, meta, paths["tflite-fp32"])
    get_quantizer("litert-pt2e").quantize(model, meta, calib, paths["tflite-int8"], cfg)
    print(f"{name}: built 4 artifacts in {time.perf_counter() - t:.0f} s")
    rows = []
    for rt, runtime in (("ort", "onnxruntime"), ("tflite", "tflite")):
        runners = {
            p: load_runner(runtime, str(paths[f"{rt}-{p}"]), threads=args.threads) for p in ("fp32", "int8")
        }
        bs = 1 if runtime == "tflite" else 256
        acc = {p: evaluate(r, x_u8, y, meta["mean"], meta["std"], bs) for p, r in runners.items()}
        lat = interleaved_latency(runners, x, args.runs)
        agree = float((acc["int8"]["logits"].argmax(1) == acc["fp32"]["logits"].argmax(1)).mean())
        rows.append(
            {
                "model": name,
                "runtime": runtime,
                "test_images": int(len(y)),
                "torch_fp32_accuracy": fp32_torch,
                "fp32_accuracy": acc["fp32"]["accuracy"],
                "int8_accuracy": acc["int8"]["accuracy"],
                "delta_pt": 100 * (acc["int8"]["accuracy"] - acc["fp32"]["accuracy"]),
                "top1_agreement": agree,
                "fp32_ms": lat["fp32"],
                "int8_ms": lat["int8"],
                "speedup": lat["fp32"] / lat["int8"],
                "fp32_bytes": paths[f"{rt}-fp32"].stat().st_size,
                "int8_bytes": paths[f"{rt}-int8"].stat().st_size,
            }
        )
    return rows


def main() -> None:
    line_buffered_stdout()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["resnet18", "vgg16"])
    p.add_argument("--work", default="results/bench_quantize", help="cache of the data subset and models")
    p.add_argument("--train-per-class", type=int, default=100)
    p.add_argument("--test-per-class", type=int, default=100)
    p.add_argument("--test-images", type=int, default=1000)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=64, help="training batch size")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--out", default=None, help="JSON with all rows (default: <work>/bench_quantize.json)")
    add_reuse_args(p)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(args.work)
    data = reused_data(args, work / "cifar10-subset")
    train_cfg = bench_train_cfg(args, lr=0.05)
    reused = reused_baseline(args)
    rows = []
    for name in [reused[0]] if reused else args.models:
        if reused:
            model_pt, metrics = reused[1], reused[2]
            if metrics.get("variant", "baseline") != "baseline":
                name = f"{name}-{metrics['variant']}"
            print(f"{name}: reusing {model_pt}", end=", ")
        else:
            model_pt, metrics = trained_model(name, data, work / "models" / name, train_cfg)
            print(f"{name}: trained {args.epochs} epoch(s) on a {args.train_per_class * 10}-image pool (90% train)",
                  end=", ")  # fmt: skip
        print(f"test accuracy {metrics['accuracy']:.4f}")
        with tempfile.TemporaryDirectory() as tmp:
            rows += bench_model(name, model_pt, data, Path(tmp), args)
    from edgeopt.provenance import device_info, package_versions

    print(
        f"\nCPU: {device_info()['processor']}, {args.threads} threads, batch 1, median of {args.runs} interleaved runs"
    )
    hdr = f"{'model':16} {'runtime':12} {'fp32 acc':>8} {'int8 acc':>8} {'delta pt':>8} {'agree':>6} {'fp32 ms':>8} {'int8 ms':>8} {'int8 speedup':>12}"  # fmt: skip
    print(hdr)
    for r in rows:
        print(
            f"{r['model']:16} {r['runtime']:12} {r['fp32_accuracy']:8.4f} {r['int8_accuracy']:8.4f} "
            f"{r['delta_pt']:+8.2f} {r['top1_agreement']:6.3f} {r['fp32_ms']:8.3f} {r['int8_ms']:8.3f} "
            f"{r['speedup']:11.2f}x"
        )
    out = Path(args.out or work / "bench_quantize.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps({"rows": rows, "device": device_info(), "packages": package_versions()}, indent=2)
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
