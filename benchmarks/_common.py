"""Helpers shared by the quantization benchmarks: a prepared CIFAR-10 subset and a quickly trained model."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from edgeopt.train.loop import PRECISIONS

ROOT = Path(__file__).resolve().parents[1]
#: the full CIFAR-10 JPEG set: $EDGEOPT_CIFAR_JPEG, else ../shared/datasets beside the checkout
CIFAR_JPEG_TAR = Path(os.environ.get("EDGEOPT_CIFAR_JPEG") or ROOT.parent / "shared" / "datasets" / "cifar10-jpeg.tar.gz")


def line_buffered_stdout() -> None:
    """Hours-long runs are often logged to a file (`> log`): flush every line so the log shows where they are."""
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(line_buffering=True)


def prepared_subset(
    out: Path, train_per_class: int, test_per_class: int, calib: int = 512, tar: Path = CIFAR_JPEG_TAR
) -> Path:
    """A real CIFAR-10 cache from the JPEG tarball (cached in `out` across runs)."""
    from edgeopt.config import check_config
    from edgeopt.data.prepare import prepare

    if (out / "meta.json").exists():
        return out
    cfg = check_config(
        {
            "dataset": {
                "name": out.name,
                "source": "tar",
                "path": str(tar),
                "max_train_per_class": train_per_class,
                "max_test_per_class": test_per_class,
                "calib_size": calib,
            }
        }
    )["dataset"]
    prepare(cfg, out)
    return out


def trained_model(name: str, data: Path, out: Path, train_cfg: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
    """Train `name` with the workflow's own baseline trainer (cached: reused when `out` exists).

    Checkpointed per epoch in `out/ckpt.pt`, so a long CPU run that is stopped resumes where it was."""
    from edgeopt.train.baseline import train_baseline

    model_pt, metrics = out / "model.pt", out / "metrics.json"
    if not model_pt.exists():
        train_baseline(name, data, model_pt, metrics, train_cfg, checkpoint=out / "ckpt.pt")
    return model_pt, json.loads(metrics.read_text())


def add_distill_args(p: argparse.ArgumentParser) -> None:
    """Fine-tuning with the unpruned baseline as teacher, alike in every pruning benchmark."""
    p.add_argument(
        "--distill-alpha", type=float, default=0.0, help="weight of the baseline-as-teacher term in fine-tuning (0: off)"
    )
    p.add_argument("--distill-temperature", type=float, default=4.0)


def distill_config(args: argparse.Namespace) -> dict[str, float]:
    """A recipe's `finetune.distill` from the options `add_distill_args` adds."""
    return {"alpha": args.distill_alpha, "temperature": args.distill_temperature}


def add_reuse_args(p: argparse.ArgumentParser) -> None:
    """Options to run a benchmark on a converged model instead of a quick one trained on a subset."""
    p.add_argument(
        "--data", help="a prepared dataset cache (`edgeopt prepare-data` output) instead of a tarball subset"
    )
    p.add_argument("--baseline", help="a trained model.pt (metrics.json beside it) instead of training one")
    p.add_argument(
        "--tar", type=Path, default=CIFAR_JPEG_TAR,
        help="the JPEG CIFAR-10 tarball the subset is prepared from (default: $EDGEOPT_CIFAR_JPEG, else ../shared/datasets beside the checkout)",
    )
    p.add_argument(
        "--device", default="cpu", help="where training, fine-tuning and evaluation run: cpu|cuda|auto"
    )
    p.add_argument(
        "--precision", default="auto", choices=PRECISIONS,
        help="training autocast (train.precision); bf16 runs on AMX tiles on CPUs that have them (bench_precision.py)",
    )


def reused_data(args: argparse.Namespace, subset_dir: Path) -> Path:
    """`--data` when given (it must be a prepared cache), else the tarball subset cached in `subset_dir`."""
    if not args.data:
        return prepared_subset(subset_dir, args.train_per_class, args.test_per_class, tar=args.tar)
    data = Path(args.data)
    if not (data / "meta.json").exists():
        raise SystemExit(f"--data {data}: not a prepared dataset cache (no meta.json)")
    return data


def reused_baseline(args: argparse.Namespace) -> tuple[str, Path, dict[str, Any]] | None:
    """(arch, model.pt, metrics) of `--baseline`, or None when the benchmark should train its own."""
    if not args.baseline:
        return None
    model_pt = Path(args.baseline)
    metrics = model_pt.with_name("metrics.json")
    if not model_pt.exists() or not metrics.exists():
        raise SystemExit(f"--baseline {model_pt}: needs the model file and a metrics.json beside it")
    m = json.loads(metrics.read_text())
    return str(m["model"]), model_pt, m


def bench_train_cfg(args: argparse.Namespace, **extra: Any) -> dict[str, Any]:
    """The `train` section the benchmarks use for a baseline (`--epochs`, `--batch-size`, `--device`)."""
    return {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": 0.1,
        "device": args.device,
        "precision": args.precision,
        "progress": "epochs",  # one line per epoch: long runs show how far they are in their log
        **extra,
    }


def baseline_for(
    args: argparse.Namespace, data: Path, out: Path, train_cfg: dict[str, Any]
) -> tuple[str, Path, dict[str, Any]]:
    """(arch, model.pt, metrics): `--baseline` when given, else `args.model` trained (and cached) in `out`."""
    reused = reused_baseline(args)
    if reused:
        return reused
    model_pt, metrics = trained_model(args.model, data, out, train_cfg)
    return args.model, model_pt, metrics


def quick_baseline(args: argparse.Namespace) -> tuple[Path, Path, dict[str, Any], Path, dict[str, Any]]:
    """(work, data, train section, model.pt, metrics) of the QAT benchmarks: `--threads` set, the subset (or
    `--data`) prepared in `--work`, the baseline reused (`--baseline`) or trained there, its accuracy printed."""
    import time

    import torch

    torch.set_num_threads(args.threads)
    work = Path(args.work)
    data = reused_data(args, work / "cifar10-subset")
    train_cfg = bench_train_cfg(args)
    t0 = time.perf_counter()
    args.model, model_pt, metrics = baseline_for(args, data, work / "models" / args.model, train_cfg)
    print(f"{args.model}: baseline test accuracy {metrics['accuracy']:.4f} ({time.perf_counter() - t0:.0f} s)")
    return work, data, train_cfg, model_pt, metrics
