"""QAT bit-width sweep on a CIFAR-10 subset on CPU: does accuracy hold at 5-bit weights and activations?

Trains a baseline (default ResNet-20) with the workflow's trainer on a subset, then fine-tunes it with
fake quantization at each W/A pair (first/last layer at 8 bits, as in the default config) with the
workflow's QAT code, and prints the sweep table (accuracy, delta vs fp32 on the same test images).
Sub-8-bit rows are simulated (PyTorch fake-quant): no runtime here has such kernels, so no latency.

    PYTHONPATH=src python benchmarks/bench_qat.py --train-per-class 500 --epochs 15 --qat-epochs 3
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import add_reuse_args, line_buffered_stdout, quick_baseline  # noqa: E402

from edgeopt.quantize.qat import run_qat, write_sweep  # noqa: E402


def main() -> None:
    line_buffered_stdout()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet20")
    p.add_argument("--work", default="results/bench_qat")
    p.add_argument("--train-per-class", type=int, default=500)
    p.add_argument("--test-per-class", type=int, default=200)
    p.add_argument("--epochs", type=int, default=15, help="baseline training epochs")
    p.add_argument("--qat-epochs", type=int, default=3)
    p.add_argument("--qat-lr", type=float, default=0.002)
    p.add_argument("--bits", nargs="+", default=["8,8", "6,6", "5,5", "4,4", "3,3", "2,2"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--no-fold-bn", action="store_true", help="keep BatchNorm (fake-quantize unfolded weights)"
    )
    p.add_argument("--tag", default="", help="suffix of the result folder (compare settings side by side)")
    p.add_argument("--qat-train-limit", type=int, help="fine-tune each pair on this many training images")
    p.add_argument("--batch-size", type=int, default=128, help="baseline and QAT batch size")
    add_reuse_args(p)
    args = p.parse_args()
    work, data, train_cfg, model_pt, _ = quick_baseline(args)
    qat_cfg = {
        "epochs": args.qat_epochs,
        "lr": args.qat_lr,
        "batch_size": args.batch_size,
        "device": args.device,
        "train_limit": args.qat_train_limit,
        "overrides": {"@first": {"bits_w": 8, "bits_a": 8}, "@last": {"bits_w": 8, "bits_a": 8}},
        "fold_bn": not args.no_fold_bn,
    }
    paths = []
    for pair in args.bits:
        bw, ba = (int(v) for v in pair.split(","))
        out = work / "quantize" / (args.model + args.tag) / f"qat-w{bw}a{ba}.json"
        t = time.perf_counter()
        r = run_qat(model_pt, data, out, bw, ba, qat_cfg, train_cfg, args.model, "baseline")
        print(
            f"w{bw}a{ba}: {r['accuracy']:.4f} (fp32 {r['fp32_accuracy']:.4f}, delta {100 * r['delta']:+.2f} pt, "
            f"before fine-tuning {r['accuracy_before_finetune']:.4f}) {time.perf_counter() - t:.0f} s"
        )
        paths.append(out)
    sweep = work / "quantize" / (args.model + args.tag) / "qat_sweep.csv"
    write_sweep(paths, sweep)
    print(f"\n{args.model} on {r['train_images']} train / {r['test_images']} test images, "
          f"{args.qat_epochs} QAT epochs per pair (simulated below 8 bits):")  # fmt: skip
    print(sweep.read_text())


if __name__ == "__main__":
    main()
