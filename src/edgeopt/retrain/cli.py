"""`edgeopt retrain`: the retrain_model rule's command."""

from __future__ import annotations

import argparse

from edgeopt.cli import json_arg


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model-file", required=True, help="model.pt of the variant to fine-tune")
    p.add_argument("--data", required=True, help="dataset cache folder (results/data/<name>)")
    p.add_argument("--framework", required=True, help="pytorch | onnxruntime")
    p.add_argument("--setting", required=True, help="name of a retrain.settings entry")
    p.add_argument("--device", default="local", help="device name (a devices: entry; local runs here)")
    p.add_argument("--params", type=json_arg, required=True, help="the `retrain` config section as JSON")
    p.add_argument("--device-params", type=json_arg, default={}, help="the device's `devices` entry as JSON")
    p.add_argument("--model", help="model name for the metrics (default: the file's arch)")
    p.add_argument("--variant", help="variant name for the metrics")
    p.add_argument("--out", required=True, help="metrics JSON to write")
    p.add_argument("--log", help="where the device's output goes (default: beside the job)")


def run(args: argparse.Namespace) -> int:
    from edgeopt.retrain.run import retrain

    m = retrain(
        args.model_file,
        args.data,
        args.framework,
        args.setting,
        args.params,
        device=args.device,
        out=args.out,
        model=args.model,
        variant=args.variant,
        log=args.log,
        device_cfg=args.device_params,
    )
    print(
        f"{m['model']} {m['framework']}-{m['setting']} on {m['device']}: {m['seconds_per_epoch']:.2f} s/epoch, "
        f"{m['images_per_second']:.0f} img/s, accuracy {m['accuracy_before']:.4f} -> {m['accuracy_after']:.4f}"
    )
    return 0
