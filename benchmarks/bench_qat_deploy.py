"""QAT int8 vs PTQ int8 on the same baseline, measured in the runtimes: accuracy and CPU latency side by side.

Trains a baseline (default ResNet-20) with the workflow's trainer on a CIFAR-10 subset, fine-tunes it
with 8-bit fake quantization (the workflow's QAT, `run_qat`), then builds with the workflow's own code:

* PTQ from the fp32 baseline: `ort-int8` (u8s8 QDQ, the default ORT format), `trt-qdq` (symmetric int8
  QDQ, the same number format as the QAT export), `tflite-int8` (LiteRT full int8);
* QAT from the fine-tuned model: `qat-ort-int8` (symmetric int8 QDQ with the learned scales) and
  `qat-tflite-int8` (LiteRT full int8 with the learned scales);
* fp32 references: ORT fp32 and LiteRT fp32 of the baseline.

Accuracy is each file's own, in its runtime (ONNX Runtime / LiteRT interpreter) on the test subset;
top-1 agreement is against the PyTorch model it was made from (fp32 baseline for PTQ, the fake-quant
QAT model for QAT). Batch-1 latency: the median of interleaved runs (all files of one runtime in turn,
so machine noise hits them alike). Nothing is asserted: the numbers are measurements.

    PYTHONPATH=src python benchmarks/bench_qat_deploy.py --train-per-class 300 --epochs 10 --qat-epochs 2
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import add_reuse_args, line_buffered_stdout, quick_baseline  # noqa: E402
from bench_quantize import interleaved_latency, tflite_fp32  # noqa: E402

from edgeopt.convert.onnx_export import export_onnx  # noqa: E402
from edgeopt.harness.runtimes import evaluate, load_runner, preprocess  # noqa: E402
from edgeopt.quantize.data import load_for_export, load_test  # noqa: E402
from edgeopt.quantize.ptq import quantize_ptq  # noqa: E402
from edgeopt.quantize.qat import run_qat  # noqa: E402
from edgeopt.quantize.qat_export import export_qat  # noqa: E402

#: (row name, runtime, how it is made) in table order: PTQ and QAT of one runtime next to each other
ARTIFACTS = (
    ("ort-fp32", "onnxruntime", "fp32"),
    ("ort-int8", "onnxruntime", "ptq"),
    ("trt-qdq", "onnxruntime", "ptq"),
    ("qat-ort-int8", "onnxruntime", "qat"),
    ("tflite-fp32", "tflite", "fp32"),
    ("tflite-int8", "tflite", "ptq"),
    ("qat-tflite-int8", "tflite", "qat"),
)


def main() -> None:
    line_buffered_stdout()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet20")
    p.add_argument("--work", default="results/bench_qat_deploy")
    p.add_argument("--train-per-class", type=int, default=300)
    p.add_argument("--test-per-class", type=int, default=100)
    p.add_argument("--epochs", type=int, default=10, help="baseline training epochs")
    p.add_argument("--batch-size", type=int, default=128, help="baseline and QAT batch size")
    p.add_argument("--qat-epochs", type=int, default=2)
    p.add_argument("--qat-lr", type=float, default=0.002)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=200, help="interleaved batch-1 timing runs per file")
    add_reuse_args(p)
    args = p.parse_args()
    work, data, train_cfg, model_pt, metrics = quick_baseline(args)

    qat_cfg = {"epochs": args.qat_epochs, "lr": args.qat_lr, "batch_size": args.batch_size, "device": args.device,
               "overrides": {}, "fold_bn": True}  # fmt: skip
    out = work / "artifacts"
    state = out / "qat-w8a8.pt"
    t = time.perf_counter()
    qat = run_qat(model_pt, data, out / "qat-w8a8.json", 8, 8, qat_cfg, train_cfg, args.model, "baseline",
                state_out=state)  # fmt: skip
    print(f"QAT w8a8 ({args.qat_epochs} epochs): PyTorch fake-quant accuracy {qat['accuracy']:.4f} "
          f"(before fine-tuning {qat['accuracy_before_finetune']:.4f}) {time.perf_counter() - t:.0f} s")  # fmt: skip

    quant_cfg = {"calib_batch_size": 64}  # the whole calibration subset, minmax, per channel (the defaults)
    model, meta = load_for_export(model_pt)
    side = {}
    paths = {name: out / f"{name}.{'tflite' if rt == 'tflite' else 'onnx'}" for name, rt, _ in ARTIFACTS}
    export_onnx(model, paths["ort-fp32"], int(meta["image_size"]), int(meta["in_channels"]))
    tflite_fp32(model, meta, paths["tflite-fp32"])
    for name, _, how in ARTIFACTS:
        t = time.perf_counter()
        if how == "ptq":
            side[name] = quantize_ptq(name, model_pt, data, paths[name], quant_cfg, args.model, "baseline",
                                      args.threads)  # fmt: skip
        elif how == "qat":
            side[name] = export_qat(name, model_pt, state, data, paths[name], quant_cfg, args.model, "baseline",
                                    args.threads)  # fmt: skip
        else:
            continue
        print(f"built {name} in {time.perf_counter() - t:.0f} s")

    x_u8, y = load_test(data)
    x = preprocess(x_u8, meta["mean"], meta["std"])
    rows = []
    for runtime in ("onnxruntime", "tflite"):
        names = [n for n, rt, _ in ARTIFACTS if rt == runtime]
        runners = {n: load_runner(runtime, str(paths[n]), threads=args.threads) for n in names}
        lat = interleaved_latency(runners, x, args.runs)
        for n in names:
            s = side.get(n)
            if s is None:  # fp32 reference: its accuracy in the runtime, same images
                ev = evaluate(runners[n], x_u8, y, meta["mean"], meta["std"], 1 if runtime == "tflite" else 256)
                acc, agree, ref = ev["accuracy"], None, "-"
            else:
                acc, agree, ref = s["accuracy"], s["parity"]["top1_agreement"], s.get("parity_reference", "fp32")
            rows.append({"artifact": n, "runtime": runtime, "accuracy": acc, "top1_agreement": agree,
                         "agreement_with": ref, "latency_ms": lat[n], "size_bytes": paths[n].stat().st_size,
                         "test_images": int(len(y))})  # fmt: skip
    from edgeopt.provenance import device_info, package_versions

    fp32 = {r["runtime"]: r for r in rows if r["artifact"].endswith("fp32")}
    print(f"\n{args.model}: {metrics['accuracy']:.4f} fp32 PyTorch; QAT fake-quant {qat['accuracy']:.4f}; "
          f"{len(y)} test images; CPU {device_info()['processor']}, {args.threads} threads, batch 1, "
          f"median of {args.runs} interleaved runs")  # fmt: skip
    print(f"{'artifact':16} {'runtime':12} {'accuracy':>8} {'vs fp32':>8} {'agree':>6} {'ms':>8} {'fp32/x':>7}")
    for row in rows:
        base = fp32[row["runtime"]]
        agree = f"{row['top1_agreement']:6.3f}" if row["top1_agreement"] is not None else f"{'-':>6}"
        print(f"{row['artifact']:16} {row['runtime']:12} {row['accuracy']:8.4f} "
              f"{100 * (row['accuracy'] - base['accuracy']):+7.2f}pt {agree} {row['latency_ms']:8.3f} "
              f"{base['latency_ms'] / row['latency_ms']:6.2f}x")  # fmt: skip
    report = work / "bench_qat_deploy.json"
    report.write_text(json.dumps({"rows": rows, "qat": {k: qat[k] for k in ("accuracy", "accuracy_before_finetune",
                                  "fp32_accuracy", "epochs", "train_images")}, "baseline": metrics["accuracy"],
                                  "device": device_info(), "packages": package_versions()}, indent=2))  # fmt: skip
    print(f"wrote {report}")


if __name__ == "__main__":
    main()
