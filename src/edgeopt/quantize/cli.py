"""`edgeopt quantize <mode>`: the quantize_ort / quantize_tflite / train_qat / sweep_qat rules' command.

Modes: `ptq-ort` (ONNX Runtime QDQ int8), `ptq-tflite` (LiteRT full-integer int8), `ptq-trt` (symmetric
int8 QDQ ONNX that TensorRT builds trt-int8 from), `qat` (fake-quant
fine-tuning at one W/A pair), `sweep` (collect QAT results into the sweep table).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from edgeopt.cli import json_arg
from edgeopt.formats import TRT_QDQ_SOURCE
from edgeopt.jobguard import output_lock

PTQ_MODES = {"ptq-ort": "ort-int8", "ptq-tflite": "tflite-int8", "ptq-trt": TRT_QDQ_SOURCE}


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="mode", metavar="MODE", required=True)
    for mode, fmt in PTQ_MODES.items():
        q = sub.add_parser(mode, help=f"post-training static int8 -> {fmt}")
        q.add_argument("--model-file", required=True, help="results/models/<m>/<v>/model.pt")
        q.add_argument("--data", required=True, help="dataset cache folder (needs calib.npz, test.npz)")
        q.add_argument("--params", type=json_arg, required=True, help="the `quantize` config section as JSON")
        q.add_argument("--out", required=True, help=f"the {fmt} artifact; its sidecar is <out>.json")
        q.add_argument("--model", help="model name recorded in the sidecar")
        q.add_argument("--variant", help="variant name recorded in the sidecar")
        q.add_argument("--threads", type=int, default=0)
    q = sub.add_parser("qat", help="fake-quant fine-tuning at one bit pair")
    q.add_argument("--model-file", required=True)
    q.add_argument("--data", required=True)
    q.add_argument("--params", type=json_arg, required=True, help="the `quantize.qat` config section as JSON")
    q.add_argument("--train-params", type=json_arg, default={}, help="the `train` section as JSON")
    q.add_argument("--bits", required=True, help="w<bits>a<bits>, e.g. w5a5 (2..8 each)")
    q.add_argument("--out", required=True, help="result JSON")
    q.add_argument("--model")
    q.add_argument("--variant")
    q.add_argument("--threads", type=int, default=0)
    q = sub.add_parser("sweep", help="collect QAT result JSONs into qat_sweep.csv")
    q.add_argument("--out", required=True)
    q.add_argument("results", nargs="+")


def run(args: argparse.Namespace) -> int:
    if getattr(args, "threads", 0):
        torch.set_num_threads(args.threads)
    if args.mode in PTQ_MODES:
        from edgeopt.quantize.ptq import quantize_ptq

        s = quantize_ptq(
            PTQ_MODES[args.mode],
            args.model_file,
            args.data,
            args.out,
            args.params,
            args.model,
            args.variant,
            args.threads,
        )
        print(
            f"{s['model']}/{s['variant']} {s['format']}: accuracy {s['accuracy']:.4f} in {s['runtime']} "
            f"(fp32 PyTorch {s['fp32_accuracy']:.4f}, delta {100 * s['accuracy_delta']:+.2f} pt), "
            f"{s['size_bytes'] / 1e6:.2f} MB"
        )
        return 0
    if args.mode == "qat":
        from edgeopt.quantize.qat import parse_pair, run_qat

        bw, ba = parse_pair(args.bits)
        out = Path(args.out)
        with output_lock(out.parent, out.name):  # QAT pairs of one model share the folder: one lock per result
            r = run_qat(
                args.model_file,
                args.data,
                args.out,
                bw,
                ba,
                args.params,
                args.train_params,
                args.model,
                args.variant,
            )
        print(
            f"{r['model']}/{r['variant']} QAT w{bw}a{ba}: accuracy {r['accuracy']:.4f} "
            f"(fp32 {r['fp32_accuracy']:.4f}, delta {100 * r['delta']:+.2f} pt, simulated)"
        )
        return 0
    from edgeopt.quantize.qat import write_sweep

    rows = write_sweep(args.results, args.out)
    print(f"{args.out}: {len(rows)} bit pairs")
    return 0
